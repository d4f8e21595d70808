"""`press-cell bringup`: run a cell's nodes in this process (the path without `ros2 launch`)."""

import signal
import sys
import threading

HELP = "start a cell's nodes in this process with the launch files' parameter files"


def add_arguments(parser):
    """Declare the options of `press-cell bringup`."""
    from press_cell.nodes.bringup import NODE_CLASSES

    parser.add_argument("--namespace", default="", help="namespace of this cell (e.g. cell1)")
    parser.add_argument("--hardware", choices=("sim", "real"), default="sim",
                        help="sim: every device simulated; real: the drivers in the params files")
    parser.add_argument("--params-dir", default=None,
                        help="folder with <node>.yaml parameter files (default: shipped config)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="with sim hardware: arm and impedance run this many times real "
                             "time")
    parser.add_argument("--press-time-scale", type=float, default=None,
                        help="with sim hardware: the press's time scale (0 = unpaced lockstep; "
                             "default: 0 when --time-scale is above 1, else --time-scale)")
    parser.add_argument("--presses", type=int, choices=(1, 2), default=1,
                        help="2: add line B (press_b, impedance_b on die press_die_b); the "
                             "coordinator pipelines queued cells over both presses")
    parser.add_argument("--log-level", default="info",
                        choices=("debug", "info", "warn", "error", "fatal"),
                        help="ROS log level of every node")
    parser.add_argument("--nodes", default=",".join(NODE_CLASSES),
                        help="comma-separated nodes to start (default: all)")
    parser.add_argument("--record", metavar="DIR", default="",
                        help="bag output folder of the recorder (default: its parameter)")
    parser.add_argument("--no-record", action="store_true", help="do not start the recorder")


def build_config(args):
    """Return the BringupConfig the options describe."""
    from press_cell.nodes.bringup import BringupConfig, cell_nodes, sim_overrides

    nodes = tuple(n.strip() for n in args.nodes.split(",") if n.strip())
    if args.no_record:
        nodes = tuple(n for n in nodes if n != "recorder")
    overrides = {}
    if args.hardware == "sim":
        overrides = sim_overrides(cell_nodes(nodes, args.presses), args.time_scale,
                                  args.press_time_scale)
    if args.record and "recorder" in nodes:
        overrides["recorder"] = {"output_dir": args.record}
    return BringupConfig(namespace=args.namespace, nodes=nodes, params_dir=args.params_dir,
                         overrides=overrides, presses=args.presses)


def run(args):
    """Start the nodes and spin until Ctrl-C or SIGTERM; exit 0 after a clean stop."""
    import rclpy
    from rclpy.context import Context

    from press_cell.nodes.bringup import BringupError, CellBringup

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    context = Context()
    rclpy.init(args=["--ros-args", "--log-level", args.log_level], context=context)
    bringup = CellBringup(build_config(args), context=context)
    try:
        bringup.start()
        names = ", ".join(bringup.nodes)
        print(f"press-cell bringup: {names} running in namespace '{args.namespace or '/'}' "
              f"({args.hardware}); Ctrl-C to stop", flush=True)
        while not stop.wait(0.2):
            pass
    except BringupError as exc:
        print(f"press-cell bringup: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    finally:
        bringup.stop()
        context.try_shutdown()
    return 0
