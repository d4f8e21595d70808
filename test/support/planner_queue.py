"""Task planner stand-in: queue several ``assemble_cell`` goals on one cell, print the results.

Usage: ``python planner_queue.py --namespace cell1 --recipe li_symmetric_cell --count 3
[--overrides YAML] [--timeout S]``. All goals are sent (each once the previous one is
accepted) before any result is awaited, so they wait in the coordinator's queue together; the
process then waits for every result and prints one JSON list (in sending order) with, per goal:
whether it was accepted, its acceptance stamp (s), the result code, success, the
record's start (s, wall clock) and duration (s), failed step and verdict. Exit code 0 when every
goal was accepted and answered, 1 otherwise.
"""

import argparse
import json
import sys
import threading
import time

from rclpy.action import ActionClient

from press_cell.action import AssembleCell
from press_cell.nodes.blocking_action import wait_for_server
from press_cell.nodes.client_session import ClientSession


def _wait(future, timeout_s):
    """Block until an rclpy future (served by the session's executor thread) is done."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return done.wait(timeout_s)


def _stamp_s(stamp):
    return stamp.sec + stamp.nanosec * 1e-9


def main(argv=None):
    """Send the goals, wait for the results and print them as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--namespace", default="")
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--overrides", default="")
    parser.add_argument("--timeout", type=float, default=120.0, help="s, for all results")
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout
    rows = []
    with ClientSession("planner_queue", args.namespace) as node:
        client = ActionClient(node, AssembleCell, "assemble_cell")
        if not wait_for_server(client, 30.0):
            print(json.dumps({"error": "no assemble_cell server"}))
            return 1
        result_futures = []
        for index in range(args.count):
            # Each goal is sent once the previous one is accepted (milliseconds later): goals
            # sent in the same instant are accepted in whatever order the server's executor
            # threads finish their goal callbacks, so the planner's order would not be defined.
            future = client.send_goal_async(AssembleCell.Goal(
                recipe_name=args.recipe, overrides_yaml=args.overrides))
            handle = future.result() if _wait(future, 30.0) else None
            accepted = handle is not None and handle.accepted
            rows.append({"goal": index, "accepted": accepted,
                         "accepted_stamp_s": _stamp_s(handle.stamp) if accepted else None})
            result_futures.append(handle.get_result_async() if accepted else None)
        for row, future in zip(rows, result_futures, strict=True):
            if future is None or not _wait(future, max(0.0, deadline - time.monotonic())):
                row["answered"] = False
                continue
            result = future.result().result
            record = result.record
            row.update(answered=True, status=future.result().status, success=result.success,
                       error_code=result.error_code, record_cell_id=record.cell_id,
                       started_s=_stamp_s(record.started), duration_s=record.duration,
                       passed=record.passed, failed_step=record.failed_step,
                       verdict=record.verdict, certificates=len(record.certificates))
    print(json.dumps(rows), flush=True)
    return 0 if all(row["accepted"] and row["answered"] for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
