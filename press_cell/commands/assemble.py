"""`press-cell assemble`: assemble one or more cells through the coordinator's action."""

import json
import sys
import threading
import time

from press_cell.commands.record_text import record_text

HELP = "assemble cells from a named assembly recipe (on a running cell, or --sim in-process)"


def add_arguments(parser):
    """Declare the options of `press-cell assemble`."""
    parser.add_argument("--recipe", required=True, help="assembly recipe in recipes.yaml")
    parser.add_argument("--cell-id", default="", help="cell id (default: generated)")
    parser.add_argument("--count", type=int, default=1, help="cells to assemble in a row")
    parser.add_argument("--namespace", default="", help="namespace of the cell's nodes")
    parser.add_argument("--overrides", default="", metavar="YAML",
                        help="YAML overrides of the recipes file, lab units")
    parser.add_argument("--sim", action="store_true",
                        help="start a simulated cell in this process first")
    parser.add_argument("--presses", type=int, choices=(1, 2), default=1,
                        help="with --sim: presses in the simulated cell; with 2, queued cells "
                             "are pipelined over both (the arm serves one while the other "
                             "holds)")
    parser.add_argument("--time-scale", type=float, default=50.0,
                        help="with --sim: simulated devices run this many times real time")
    parser.add_argument("--record", metavar="DIR", default="",
                        help="with --sim: record the run to a rosbag2 bag in DIR")
    parser.add_argument("--json", action="store_true", help="print the cell records as JSON")
    parser.add_argument("--timeout", type=float, default=4 * 3600.0,
                        help="s, give up waiting for a cell after this long")


def check_recipe(name, overrides=""):
    """Load and validate the recipe locally; return an error text or None."""
    from press_cell.recipes import RecipeError, load_recipes

    try:
        book = load_recipes(overrides_yaml=overrides)
    except RecipeError as exc:
        return f"recipe file refused:\n{exc}"
    if name not in book.assembly:
        return f"unknown assembly recipe {name!r}; known: {', '.join(sorted(book.assembly))}"
    return None


class ProgressLine:
    """Print progress in place on a terminal, one line per step otherwise."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream
        self.tty = stream.isatty()
        self._last_step = None

    def show(self, feedback, label=""):
        """Show one AssembleCell feedback message (``label``: which cell, when several run)."""
        text = (f"{label}[{feedback.step_index}/{feedback.step_count}] {feedback.step_name}: "
                f"{feedback.detail}")
        if self.tty:
            self.stream.write("\r" + text[:120].ljust(120))
            self.stream.flush()
        elif (label, feedback.step_index, feedback.step_name) != self._last_step:
            self.stream.write(text + "\n")
        self._last_step = (label, feedback.step_index, feedback.step_name)

    def done(self):
        """End the progress display."""
        if self.tty:
            self.stream.write("\n")


def sim_bringup_config(namespace, time_scale, record_dir, presses=1):
    """Return the in-process bringup of a simulated cell with ``presses`` press lines."""
    from press_cell.nodes.bringup import NODE_CLASSES, BringupConfig, cell_nodes, sim_overrides

    nodes = tuple(n for n in NODE_CLASSES if n != "recorder" or record_dir)
    # The press loop runs in lockstep with its simulated clock as fast as the CPU allows
    # (time_scale 0): pacing 500 Hz at 50x would ask for 25 000 loop cycles per wall second.
    overrides = sim_overrides(cell_nodes(nodes, presses), time_scale, press_time_scale=0.0)
    if record_dir:
        overrides["recorder"] = {"output_dir": str(record_dir)}
    return BringupConfig(namespace=namespace, nodes=nodes, overrides=overrides,
                         presses=presses)


def _wait(future, timeout_s):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return done.wait(timeout_s)


def run_goals(node, goals, timeout_s=4 * 3600.0, progress=None):
    """Queue every goal on the coordinator (in order), wait for all; return (replies, refusals).

    The goals wait in the coordinator's queue together, so a cell with two presses pipelines
    them. ``refusals`` holds one line per rejected goal with the reason the coordinator
    published on its ``~/status`` (e.g. the trays cannot serve the cell: refill them first).
    """
    from rclpy.action import ActionClient

    from press_cell.action import AssembleCell
    from press_cell.msg import DeviceStatus
    from press_cell.nodes import qos

    statuses = []
    subscription = node.create_subscription(DeviceStatus, "coordinator/status", statuses.append,
                                            qos.LATCHED)
    client = ActionClient(node, AssembleCell, "assemble_cell")
    try:
        return _queue_and_wait(client, statuses, goals, timeout_s, progress)
    finally:    # a long-lived node (soak, notebooks) calls this many times
        client.destroy()
        node.destroy_subscription(subscription)


def _queue_and_wait(client, statuses, goals, timeout_s, progress):
    from press_cell.nodes.blocking_action import ActionCallError, ActionReply, wait_for_server

    if not wait_for_server(client, 30.0):
        raise ActionCallError("no 'assemble_cell' action server within 30 s (is the cell's "
                              "coordinator running?)")
    handles, refusals = [], []
    for index, goal in enumerate(goals):
        label = f"#{index + 1} " if len(goals) > 1 else ""
        callback = (lambda msg, label=label: progress.show(msg.feedback, label)) \
            if progress else None
        seen = len(statuses)
        future = client.send_goal_async(goal, feedback_callback=callback)
        if not _wait(future, 30.0):
            raise ActionCallError("'assemble_cell' did not answer a goal within 30 s")
        handle = future.result()
        if not handle.accepted:
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline and not any(
                    "rejected" in s.message for s in statuses[seen:]):
                time.sleep(0.05)
            reasons = [s.message for s in statuses[seen:] if "rejected" in s.message]
            refusals.append(f"goal #{index + 1} ({goal.recipe_name}): "
                            f"{reasons[-1] if reasons else 'rejected (no reason seen)'}")
            continue
        handles.append(handle)
    replies = []
    deadline = time.monotonic() + timeout_s
    for handle in handles:
        future = handle.get_result_async()
        if not _wait(future, max(0.0, deadline - time.monotonic())):
            raise ActionCallError(f"no result within {timeout_s:g} s")
        response = future.result()
        replies.append(ActionReply(status=response.status, result=response.result))
    if progress:
        progress.done()
    return replies, refusals


def cell_goals(recipe, count, cell_id="", overrides=""):
    """Return ``count`` AssembleCell goals of ``recipe`` (ids ``<cell_id>-<n>`` when given)."""
    from press_cell.action import AssembleCell

    return [AssembleCell.Goal(recipe_name=recipe, overrides_yaml=overrides,
                              cell_id=f"{cell_id}-{index}" if cell_id and count > 1
                              else cell_id) for index in range(count)]


def run_cells(node, recipe, count, cell_id="", overrides="", timeout_s=4 * 3600.0,
              progress=None):
    """Assemble ``count`` cells of ``recipe`` through ``node``; return the ActionReplies.

    Raise ``ActionCallError`` (after the accepted cells ended) when a goal was rejected.
    """
    from press_cell.nodes.blocking_action import ActionCallError

    replies, refusals = run_goals(node, cell_goals(recipe, count, cell_id, overrides),
                                  timeout_s, progress)
    if refusals:
        raise ActionCallError("; ".join(refusals))
    return replies


def run(args):
    """Assemble the cells; exit 0 when every cell passed, 1 otherwise, 2 on bad input."""
    from press_cell.nodes.blocking_action import ActionCallError
    from press_cell.nodes.client_session import ClientSession
    from press_cell.nodes.message_dict import message_to_dict

    problem = check_recipe(args.recipe, args.overrides)
    if problem:
        print(f"press-cell assemble: {problem}", file=sys.stderr)
        return 2
    bringup = sim_bringup_config(args.namespace, args.time_scale, args.record,
                                 args.presses) if args.sim else None
    started = time.monotonic()
    try:
        with ClientSession("press_cell_assemble", args.namespace, bringup) as node:
            goals = cell_goals(args.recipe, args.count, args.cell_id, args.overrides)
            replies, refusals = run_goals(node, goals, args.timeout,
                                          None if args.json else ProgressLine())
    except ActionCallError as exc:
        print(f"press-cell assemble: {exc}", file=sys.stderr)
        return 1
    for refusal in refusals:
        print(f"press-cell assemble: {refusal}", file=sys.stderr)
    if args.json:
        print(json.dumps([message_to_dict(r.result) for r in replies], indent=1))
    else:
        for reply in replies:
            print(record_text(reply.result.record, reply.result.error_code,
                              reply.result.error_msg))
        print(f"{len(replies)} cell(s) in {time.monotonic() - started:.1f} s")
    return 0 if all(r.result.success for r in replies) and not refusals else 1
