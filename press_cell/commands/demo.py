"""`press-cell demo`: a simulated cell assembles one Li and one Na cell, recorded and analysed.

What it shows a new user in under two minutes: the in-process bringup of a simulated cell
(press, arm, potentiostat, recorder, coordinator), two whole assemblies from the shipped
recipes with simulated time running faster than real time, the cell records with every press
certificate and the impedance verdict, and the bag and analysis report on disk.
"""

import logging
import sys
import time
from datetime import datetime
from pathlib import Path

from press_cell.commands.assemble import ProgressLine, cell_goals, run_goals, sim_bringup_config
from press_cell.commands.record_text import record_text

HELP = "assemble a Li and a Na cell in simulation, record a bag and write an analysis report"

RECIPES = ("li_symmetric_cell", "na_symmetric_cell")


def add_arguments(parser):
    """Declare the options of `press-cell demo`."""
    parser.add_argument("--time-scale", type=float, default=50.0,
                        help="simulated devices run this many times real time (default 50)")
    parser.add_argument("--presses", type=int, choices=(1, 2), default=1,
                        help="presses in the simulated cell; with 2 the Li and Na cells run at "
                             "once, the arm placing one while the other press holds")
    parser.add_argument("--out", default="out",
                        help="folder for the demo's bag and report (default: ./out)")


def run(args):
    """Run the demo; exit 0 when both cells pass their acceptance criteria."""
    from press_cell.analysis.bag_reader import BagReadError
    from press_cell.analysis.report import write_report
    from press_cell.analysis.run import load_run
    from press_cell.nodes.blocking_action import ActionCallError
    from press_cell.nodes.client_session import ClientSession

    if not args.verbose:    # the demo's own lines tell the story; node logs say warnings only
        logging.getLogger().setLevel(logging.WARNING)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out).resolve() / f"demo-{stamp}"
    bag_root = out / "bags"
    presses = "one press" if args.presses == 1 else "two presses (pipelined)"
    print(f"press_cell demo: simulated cell with {presses} at {args.time_scale:g}x real time; "
          f"assembling {' and '.join(f'#{i + 1} {r}' for i, r in enumerate(RECIPES))}",
          flush=True)
    started = time.monotonic()
    bringup = sim_bringup_config("", args.time_scale, bag_root, args.presses)
    # the demo's own cell journal: its cells are numbered from 0 in every demo folder
    bringup.overrides.setdefault("coordinator", {})["journal_dir"] = str(out / "journal")
    try:
        with ClientSession("press_cell_demo", "", bringup,
                           log_level="" if args.verbose else "warn") as node:
            goals = [goal for recipe in RECIPES for goal in cell_goals(recipe, 1)]
            replies, refusals = run_goals(node, goals, progress=ProgressLine())
    except ActionCallError as exc:
        print(f"press-cell demo: {exc}", file=sys.stderr)
        return 1
    for refusal in refusals:
        print(f"press-cell demo: {refusal}", file=sys.stderr)
    assembled = time.monotonic() - started
    print()
    for reply in replies:
        print(record_text(reply.result.record, reply.result.error_code, reply.result.error_msg))
        print()
    bags = sorted(p for p in bag_root.iterdir() if (p / "metadata.yaml").exists()) \
        if bag_root.is_dir() else []
    for bag in bags:
        report_dir = out / "reports" / bag.name
        try:
            files = write_report(load_run(bag), report_dir)
        except BagReadError as exc:
            print(f"bag {bag}: could not be analysed: {exc}")
            continue
        print(f"bag     {bag}")
        print(f"report  {report_dir} ({files.table.name}, {files.csv.name}, {files.json.name}, "
              "plots)")
    passed = sum(1 for r in replies if r.result.record.passed)
    print(f"\n{passed}/{len(replies)} cells passed; assembly took {assembled:.1f} s wall, "
          f"demo {time.monotonic() - started:.1f} s")
    return 0 if passed == len(replies) == len(RECIPES) else 1
