"""`press-cell assemble`: assemble one or more cells through the coordinator's action."""

import json
import sys
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

    def show(self, feedback):
        """Show one AssembleCell feedback message."""
        text = (f"[{feedback.step_index}/{feedback.step_count}] {feedback.step_name}: "
                f"{feedback.detail}")
        if self.tty:
            self.stream.write("\r" + text[:120].ljust(120))
            self.stream.flush()
        elif (feedback.step_index, feedback.step_name) != self._last_step:
            self.stream.write(text + "\n")
        self._last_step = (feedback.step_index, feedback.step_name)

    def done(self):
        """End the progress display."""
        if self.tty:
            self.stream.write("\n")


def sim_bringup_config(namespace, time_scale, record_dir):
    """Return the in-process bringup of a simulated cell."""
    from press_cell.nodes.bringup import NODE_CLASSES, BringupConfig, sim_overrides

    nodes = tuple(n for n in NODE_CLASSES if n != "recorder" or record_dir)
    # The press loop runs in lockstep with its simulated clock as fast as the CPU allows
    # (time_scale 0): pacing 500 Hz at 50x would ask for 25 000 loop cycles per wall second.
    overrides = sim_overrides(nodes, time_scale, press_time_scale=0.0)
    if record_dir:
        overrides["recorder"] = {"output_dir": str(record_dir)}
    return BringupConfig(namespace=namespace, nodes=nodes, overrides=overrides)


def run_cells(node, recipe, count, cell_id="", overrides="", timeout_s=4 * 3600.0,
              progress=None):
    """Assemble ``count`` cells through ``node``'s action client; return (result, status) list."""
    from rclpy.action import ActionClient

    from press_cell.action import AssembleCell
    from press_cell.nodes.blocking_action import call_action

    client = ActionClient(node, AssembleCell, "assemble_cell")
    results = []
    for index in range(count):
        goal = AssembleCell.Goal(recipe_name=recipe, overrides_yaml=overrides,
                                 cell_id=f"{cell_id}-{index}" if cell_id and count > 1
                                 else cell_id)
        reply = call_action(client, goal, feedback=progress.show if progress else None,
                            server_timeout_s=30.0, result_timeout_s=timeout_s)
        if progress:
            progress.done()
        results.append(reply)
    return results


def run(args):
    """Assemble the cells; exit 0 when every cell passed, 1 otherwise, 2 on bad input."""
    from press_cell.nodes.blocking_action import ActionCallError
    from press_cell.nodes.client_session import ClientSession
    from press_cell.nodes.message_dict import message_to_dict

    problem = check_recipe(args.recipe, args.overrides)
    if problem:
        print(f"press-cell assemble: {problem}", file=sys.stderr)
        return 2
    bringup = sim_bringup_config(args.namespace, args.time_scale, args.record) if args.sim \
        else None
    started = time.monotonic()
    try:
        with ClientSession("press_cell_assemble", args.namespace, bringup) as node:
            replies = run_cells(node, args.recipe, args.count, args.cell_id, args.overrides,
                                args.timeout, None if args.json else ProgressLine())
    except ActionCallError as exc:
        print(f"press-cell assemble: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([message_to_dict(r.result) for r in replies], indent=1))
    else:
        for reply in replies:
            print(record_text(reply.result.record, reply.result.error_code,
                              reply.result.error_msg))
        print(f"{len(replies)} cell(s) in {time.monotonic() - started:.1f} s")
    return 0 if all(r.result.success for r in replies) else 1
