"""Run one node standalone (`ros2 run`): spin until SIGINT/SIGTERM, then stop it safely.

The signal only sets a flag. The node is then made safe (press released, sweep aborted, arm
retreated, bag closed) while ROS still runs, so the safe-stop can still publish its status and
talk to its device; only then does ROS shut down. rclpy's own signal handler is disabled for
that reason: it would shut the context down first.
"""

import signal
import threading

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.signals import SignalHandlerOptions


def run_node(make_node, *, make_safe=None, args=None, threads: int = 6,
             single_threaded: bool = False) -> int:
    """Build the node with ``make_node()``, spin it until a signal, call ``make_safe(node)``.

    ``single_threaded`` uses a SingleThreadedExecutor (nodes whose callbacks all share one
    exclusive group gain nothing from more threads). Returns the process exit code.
    """
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    node = make_node()
    executor = SingleThreadedExecutor() if single_threaded else \
        MultiThreadedExecutor(num_threads=threads)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, name=f"{node.get_name()}-executor",
                               daemon=True)
    spinner.start()
    try:
        stop.wait()
    finally:
        if make_safe is not None:
            make_safe(node)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
