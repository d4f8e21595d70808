"""The `press-cell` command: one entry point, a subcommand per job.

Each subcommand lives in ``press_cell/commands/<name>.py`` with ``HELP``, ``add_arguments`` and
``run(args) -> int``; this module only builds the parser and dispatches.
"""

import argparse
import importlib
import logging
import sys

from press_cell import __version__

# Subcommand name -> module under press_cell.commands.
COMMANDS = {
    "demo": "demo",
    "bringup": "bringup",
    "assemble": "assemble",
    "doctor": "doctor",
    "press": "press",
    "analyze": "analyze",
    "replay": "replay",
}


def build_parser():
    """Return the argument parser of `press-cell` with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="press-cell",
        description="Run and analyse a robotic solid-state battery assembly cell (ROS 2).",
    )
    parser.add_argument("--version", action="version", version=f"press_cell {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"press_cell.commands.{module_name}")
        sub_parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv=None):
    """Run `press-cell` with ``argv`` (default: the process arguments); return the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args._run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
