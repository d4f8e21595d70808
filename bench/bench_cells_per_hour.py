"""Benchmark cells per hour of a simulated cell: one press against two presses pipelined.

Case: ``--cells`` N Li|Li6PS5Cl|Li symmetric cells (``li_symmetric_cell``; ``--short`` uses
the ROS tests' shortened holds and ramps) queued at once on an in-process simulated cell
(``press-cell bringup`` path) with one press, then on one with two presses
(``--presses 2``: press + press_b, one arm shared under a lock). Every device, the presses
included, runs paced at the same ``--time-scale`` (not the demo's unpaced lockstep press), so
simulated time = wall time x time scale and the two runs are comparable. The trays are a
larger copy of the shipped layout (enough rods and pellets for N cells).

Figures: cells per simulated hour for both and their ratio (the baseline is the one-press
cell, measured in the same run); wall time of each queue; the overlap fraction: the share of
the arm's placement time during which the other press ran a cycle (from the coordinator's
per-step feedback times).

Measured on the 2-core development machine (other jobs running), N = 4, time scale 10, no
control-loop overruns:

=================  =======  ======  ============  ============  ===========
recipe             presses  wall s  cells/sim h   ratio         arm overlap
=================  =======  ======  ============  ============  ===========
shipped            1        558.7   2.58          (baseline)    -
shipped            2        286.2   5.03          1.95x         1.00
``--short``        1        100.4   14.34         (baseline)    -
``--short``        2        59.2    24.32         1.70x         0.73
=================  =======  ======  ============  ============  ===========

(shortened holds leave the per-line impedance sweep and the arm's placement block a larger
share of each cell, so less of the arm's work hides behind the other press).

Usage: ``python bench/bench_cells_per_hour.py [--cells 4] [--time-scale 10] [--short]
[--json PATH]``
"""

import argparse
import logging
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from result_format import add_json_argument, figure, write_result

RECIPE = "li_symmetric_cell"
PRESS_RATE_HZ = 100.0       # press loop rate: 1000 paced ticks per wall s per press at 10x
# The ROS tests' shortened Li recipe (test/test_coordinator_ros.py): holds of seconds.
SHORT_OVERRIDES = yaml.safe_dump({"press_recipes": {
    "li6ps5cl_370mpa_200mg": {"ramp_mpa_s": 15, "hold_s": 2, "release_mpa_s": 20},
    "li_foil_25mpa": {"ramp_mpa_s": 5, "hold_s": 5, "release_mpa_s": 5},
    "li_stack_25mpa": {"ramp_mpa_s": 5, "hold_s": 5, "release_mpa_s": 5}}},
    default_flow_style=True)


def roomy_params(folder: Path, cells: int) -> Path:
    """Write params files whose layout has trays for ``cells`` Li cells; return the folder."""
    from press_cell.config_files import config_dir

    shipped = Path(config_dir())
    layout = yaml.safe_load((shipped / "stations.yaml").read_text(encoding="utf-8"))
    stations = layout["stations"]
    rack_rows = max(1, math.ceil(2 * cells / 4))
    stations["anode_rack"]["rows"] = rack_rows
    if rack_rows > 1:
        stations["anode_rack"]["pitch_y_mm"] = 25
    stations["pellet_tray"]["rows"] = max(2, math.ceil(cells / 4))
    path = folder / "stations.yaml"
    path.write_text(yaml.safe_dump(layout), encoding="utf-8")
    for node in ("press", "arm", "impedance", "coordinator", "recorder"):
        params = yaml.safe_load((shipped / f"{node}.yaml").read_text(encoding="utf-8"))
        if node in ("arm", "coordinator"):
            params[f"/**/{node}"]["ros__parameters"]["stations_file"] = str(path)
        (folder / f"{node}.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return folder


def run_queue(presses: int, cells: int, time_scale: float, overrides: str, params: Path):
    """Assemble ``cells`` queued cells; return (wall s, results, feedback events)."""
    from rclpy.action import ActionClient

    from press_cell.action import AssembleCell
    from press_cell.nodes.blocking_action import wait_for_server
    from press_cell.nodes.bringup import BringupConfig, cell_nodes, sim_overrides
    from press_cell.nodes.client_session import ClientSession

    nodes = ("press", "arm", "impedance", "coordinator")
    node_overrides = sim_overrides(cell_nodes(nodes, presses), time_scale,
                                   press_time_scale=time_scale)
    for press in ("press", "press_b"):
        if press in node_overrides:   # paced loops the CPU keeps, two presses in one process
            node_overrides[press].update(rate_hz=PRESS_RATE_HZ, state_rate_hz=PRESS_RATE_HZ / 2)
    config = BringupConfig(nodes=nodes, params_dir=params, presses=presses,
                           overrides=node_overrides)
    events = []             # (wall s, goal index, step name)
    lock = threading.Lock()
    with ClientSession(f"bench_cells_{presses}", "", config, log_level="error") as node:
        client = ActionClient(node, AssembleCell, "assemble_cell")
        if not wait_for_server(client, 60.0):
            raise RuntimeError("no assemble_cell server")
        started = time.monotonic()
        handles = []
        for index in range(cells):
            def on_feedback(msg, index=index):
                with lock:
                    events.append((time.monotonic() - started, index, msg.feedback.step_name))
            future = client.send_goal_async(AssembleCell.Goal(
                recipe_name=RECIPE, overrides_yaml=overrides, cell_id=f"b{presses}-{index}"),
                feedback_callback=on_feedback)
            handles.append(_wait(future, 30.0))
        if not all(h is not None and h.accepted for h in handles):
            raise RuntimeError("a goal was not accepted (see the coordinator's status)")
        results = []
        for index, handle in enumerate(handles):
            response = _wait(handle.get_result_async(), 4 * 3600.0)
            results.append(response.result)
            with lock:
                events.append((time.monotonic() - started, index, "end"))
        wall_s = time.monotonic() - started
    return wall_s, results, events


def _wait(future, timeout_s):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout_s):
        raise RuntimeError(f"no answer within {timeout_s} s")
    return future.result()


def step_spans(events) -> dict:
    """Return {goal: [(step, start s, end s)]}: a step lasts until the goal's next step."""
    spans = {}
    for index in sorted({e[1] for e in events}):
        mine = sorted((t, step) for t, i, step in events if i == index)
        spans[index] = [(step, t0, t1) for (t0, step), (t1, _s) in zip(mine, mine[1:],
                                                                      strict=False)]
    return spans


def overlap_fraction(events) -> float:
    """Return the share of placement time during which another cell's press step ran."""
    press_steps = ("compaction", "foil_prepress", "stack_press")
    spans = step_spans(events)
    placed = overlapped = 0.0
    for index, steps in spans.items():
        for step, p0, p1 in steps:
            if step != "place":
                continue
            placed += p1 - p0
            others = [(h0, h1) for j, other in spans.items() if j != index
                      for s, h0, h1 in other if s in press_steps]
            overlapped += _covered(p0, p1, others)
    return overlapped / placed if placed else float("nan")


def _covered(a0, a1, intervals) -> float:
    """Return the length of [a0, a1] covered by the union of ``intervals``."""
    total, cursor = 0.0, a0
    for b0, b1 in sorted(intervals):
        b0, b1 = max(b0, cursor), min(b1, a1)
        if b1 > b0:
            total += b1 - b0
            cursor = b1
    return total


def main(argv=None) -> int:
    """Run both queues, print the table, write --json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=4, help="cells per queue (default 4)")
    parser.add_argument("--time-scale", type=float, default=10.0,
                        help="simulated s per wall s for every device (default 10)")
    parser.add_argument("--short", action="store_true",
                        help="shortened holds and ramps (the ROS tests' overrides)")
    add_json_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    overrides = SHORT_OVERRIDES if args.short else ""
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        params = roomy_params(Path(tmp), args.cells)
        for presses in (1, 2):
            wall_s, results, events = run_queue(presses, args.cells, args.time_scale,
                                                overrides, params)
            passed = sum(1 for r in results if r.record.passed)
            sim_h = wall_s * args.time_scale / 3600.0
            rows[presses] = {"wall_s": wall_s, "sim_s": wall_s * args.time_scale,
                             "cells_per_sim_hour": args.cells / sim_h, "passed": passed,
                             "overlap_fraction": overlap_fraction(events)}
    one, two = rows[1], rows[2]
    ratio = two["cells_per_sim_hour"] / one["cells_per_sim_hour"]
    print(f"cells per hour, {args.cells} x {RECIPE}{' (short)' if args.short else ''}, every "
          f"device paced at {args.time_scale:g}x")
    print(f"{'presses':<9}{'passed':>8}{'wall s':>9}{'sim s':>9}{'cells/sim h':>13}"
          f"{'arm overlap':>13}")
    for presses, row in rows.items():
        print(f"{presses:<9}{row['passed']:>5}/{args.cells:<2}{row['wall_s']:>9.1f}"
              f"{row['sim_s']:>9.0f}{row['cells_per_sim_hour']:>13.2f}"
              f"{row['overlap_fraction']:>13.2f}")
    print(f"two presses / one press: {ratio:.2f}x cells per hour")
    figures = [
        figure("cells_per_hour_one_press", "cells per simulated hour, one press",
               one["cells_per_sim_hour"], "cells/h", stat="rate", good="higher"),
        figure("cells_per_hour_two_presses", "cells per simulated hour, two presses pipelined",
               two["cells_per_sim_hour"], "cells/h", stat="rate", baseline=one[
                   "cells_per_sim_hour"], baseline_name="one press, same run",
               good="ratio near 2 (the arm is the shared resource)"),
        figure("arm_overlap_two_presses", "share of arm placing time overlapping the other "
               "press's cycle", two["overlap_fraction"], "1", stat="fraction",
               good="near 1: placements hide behind the other press"),
    ]
    write_result(args.json, "bench_cells_per_hour", figures,
                 {"cells": args.cells, "time_scale": args.time_scale, "short": args.short,
                  "rows": rows})
    all_passed = one["passed"] == two["passed"] == args.cells
    return 0 if all_passed else 1


if __name__ == "__main__":
    sys.exit(main())
