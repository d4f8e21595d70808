"""`press-cell replay`: republish a recorded bag with its QoS and timing (and /clock).

Exit codes: 0 played (or stopped with Ctrl-C / SIGTERM), 2 the bag cannot be read or an
option is invalid (one line on stderr, no traceback).
"""

import signal
import sys
import threading

HELP = "republish a recorded bag's topics with their QoS and original timing (and /clock)"


def add_arguments(parser):
    """Declare the options of `press-cell replay`."""
    parser.add_argument("bag", help="rosbag2 directory (or a bare .mcap/.db3 file)")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="playback speed factor (10 = ten times faster); default 1")
    parser.add_argument("--loop", action="store_true", help="play again and again until Ctrl-C")
    parser.add_argument("--topics", nargs="+", metavar="T", default=None,
                        help="replay only these topics (default: all)")
    parser.add_argument("--clock", action="store_true",
                        help="also publish the recorded time on /clock (rosgraph_msgs/Clock)")
    parser.add_argument("--clock-rate", type=float, default=40.0, metavar="HZ",
                        help="/clock messages per second of recorded time; default 40")
    parser.add_argument("--wait-for-subscribers", type=float, default=0.0, metavar="S",
                        help="wait up to S seconds until every topic has a subscriber")
    parser.add_argument("--delay", type=float, default=0.0, metavar="S",
                        help="wait S seconds after creating the publishers (discovery)")


def run(args):
    """Replay the bag; return the exit code."""
    from press_cell.analysis.bag_reader import BagReadError
    from press_cell.analysis.replay import Replayer, ReplayError

    try:
        replayer = Replayer(args.bag, rate=args.rate, loop=0 if args.loop else 1,
                            topics=args.topics)
    except (BagReadError, ReplayError) as exc:
        print(f"press-cell replay: {exc}", file=sys.stderr)
        return 2
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    from press_cell.nodes.replay_publisher import ReplayPublisher

    stop = threading.Event()
    # rclpy's own handlers would shut the context down under a publish in progress; stop the
    # playback loop instead and shut down in order.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    node = None
    try:
        node = ReplayPublisher(replayer, clock=args.clock, clock_rate_hz=args.clock_rate)
        for name, reason in node.skipped.items():
            print(f"press-cell replay: skipping {name}: {reason}", file=sys.stderr)
        if args.wait_for_subscribers > 0.0:
            lonely = node.wait_for_subscribers(args.wait_for_subscribers)
            if lonely:
                print(f"press-cell replay: no subscriber yet on {', '.join(lonely)}; playing",
                      file=sys.stderr)
        if args.delay > 0.0:
            stop.wait(args.delay)
        print(f"press-cell replay: playing {len(replayer.topics)} topics of {args.bag} at "
              f"{args.rate:g}x{' in a loop' if args.loop else ''} (Ctrl-C stops)",
              file=sys.stderr, flush=True)
        stats = node.play(stop)
    except ValueError as exc:
        print(f"press-cell replay: {exc}", file=sys.stderr)
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if node is not None:
            node.destroy_node()
        replayer.close()
        rclpy.try_shutdown()
    how = "stopped" if stats.stopped else "done"
    print(f"press-cell replay: {how}: {stats.messages} messages in {stats.loops} pass(es), "
          f"worst lateness {stats.max_lateness_s * 1e3:.1f} ms", file=sys.stderr)
    return 0
