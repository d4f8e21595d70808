"""Benchmark the press node across processes: action latencies and telemetry at 500 Hz.

Starts a simulated press node (paced lockstep at 1x, loop 500 Hz, ``~/state`` at 500 Hz) in
another process and measures, from this process (wall clock, median and p99):

* goal sent -> accepted, and accepted -> first feedback, over ``--cycles`` goals;
* cancel -> release: the cancel request until a ``~/state`` sample shows RELEASE, and the same
  in the loop's own time (cancel arrival -> release start, from the node's result message);
* e-stop -> vent: the ~/estop call until a ``~/state`` sample shows VENTING, and in loop time;
  and the same through the cell-wide ``estop`` topic (std_msgs/Empty);
* telemetry: ``~/state`` messages received over ``--seconds`` (rate, stamp gaps = loop samples
  never seen, duplicates = the same loop sample twice).

Baseline, measured in the same run after the press node has been stopped: a bare rclpy process
(``--baseline-server``) with the same names, message types and QoS and no press behind them:
a PressCycle action server that accepts at once, sends one feedback and, on cancel or e-stop,
publishes RELEASE / VENTING on its ``~/state`` immediately; its ``~/state`` timer publishes at
the same 500 Hz. The ratios say what the press node adds to plain rclpy across processes.

Prints a table; ``--json PATH`` writes the figures (bench/result_format.py). Example::

    .venv/bin/python bench/bench_press_node.py --seconds 30 --cycles 20 --json out.json
"""

import argparse
import bisect
import math
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from std_msgs.msg import Empty

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from press_cell.action import PressCycle  # noqa: E402
from press_cell.msg import PressSegment, PressState  # noqa: E402
from press_cell.nodes.press_client import PressClient  # noqa: E402
from press_cell.nodes.qos import COMMAND, TELEMETRY  # noqa: E402
from press_cell.srv import EmergencyStop, ResetFault  # noqa: E402
from result_format import add_json_argument, figure, write_result  # noqa: E402

STAMPS = re.compile(r"arrived at stamp ([0-9.]+) s, \w+ began at stamp ([0-9.]+) s")
RATE_HZ = 500.0


def _env():
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return env


class _BaselineState:
    """The bare server's state: phase, e-stop flag and the ``~/state`` publisher."""

    def __init__(self, node) -> None:
        """Create the publisher on ``node``."""
        self.pub = node.create_publisher(PressState, "~/state", TELEMETRY)
        self.phase = PressState.PHASE_IDLE
        self.estopped = threading.Event()
        self.start_s = time.monotonic()

    def publish(self, phase=None) -> None:
        """Publish one PressState now (switching to ``phase`` first when given)."""
        if phase is not None:
            self.phase = phase
        msg = PressState(phase=self.phase)
        stamp = time.monotonic() - self.start_s
        msg.header.stamp.sec = int(stamp)
        msg.header.stamp.nanosec = int((stamp % 1.0) * 1e9)
        self.pub.publish(msg)


def run_baseline_server(namespace: str, rate_hz: float) -> None:
    """Serve a bare press_cycle action, ~/estop, ~/reset_fault and ~/state (the baseline)."""
    rclpy.init()
    # Telemetry on its own node and single-threaded executor (rclpy's multi-threaded executor
    # runs a 500 Hz timer at ~400 Hz here); the action and services on a second node.
    publisher = rclpy.create_node("press", namespace=namespace)
    state = _BaselineState(publisher)
    publisher.create_timer(1.0 / rate_hz, state.publish)
    publisher_executor = SingleThreadedExecutor()
    publisher_executor.add_node(publisher)
    threading.Thread(target=publisher_executor.spin, daemon=True).start()
    node = rclpy.create_node("press_services", namespace=namespace)
    group = ReentrantCallbackGroup()

    def execute(goal_handle):
        state.publish(PressState.PHASE_HOLD)
        goal_handle.publish_feedback(PressCycle.Feedback(phase=PressState.PHASE_HOLD))
        while rclpy.ok():
            if goal_handle.is_cancel_requested:
                goal_handle.canceled()
                state.publish(PressState.PHASE_IDLE)
                return PressCycle.Result(error_code=PressCycle.Result.CANCELED)
            if state.estopped.is_set():
                goal_handle.abort()
                return PressCycle.Result(error_code=PressCycle.Result.ESTOP)
            time.sleep(0.0005)
        goal_handle.abort()
        return PressCycle.Result(error_code=PressCycle.Result.NOT_ACTIVE)

    def on_cancel(_request):
        state.publish(PressState.PHASE_RELEASE)
        return CancelResponse.ACCEPT

    def on_estop(_request, response):
        state.estopped.set()
        state.publish(PressState.PHASE_VENTING)
        response.success = True
        return response

    def on_estop_topic(_msg):
        state.estopped.set()
        state.publish(PressState.PHASE_VENTING)

    def on_reset(_request, response):
        state.estopped.clear()
        state.publish(PressState.PHASE_IDLE)
        response.success = True
        return response

    ActionServer(node, PressCycle, f"{namespace}/press_cycle", execute_callback=execute,
                 cancel_callback=on_cancel, callback_group=group)
    node.create_service(EmergencyStop, f"{namespace}/press/estop", on_estop,
                        callback_group=group)
    node.create_service(ResetFault, f"{namespace}/press/reset_fault", on_reset,
                        callback_group=group)
    node.create_subscription(Empty, f"{namespace}/estop", on_estop_topic, COMMAND,
                             callback_group=group)
    executor = MultiThreadedExecutor(num_threads=4)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def _goal(hold_s: float) -> PressCycle.Goal:
    goal = PressCycle.Goal(part_id="bench", die_diameter=0.013)
    # ramp at 20 MPa/s: the press refuses ramps above half its 50 MPa/s rate-of-rise limit
    goal.segments = [PressSegment(kind=0, target_pressure=20e6, rate=20e6),
                     PressSegment(kind=1, target_pressure=20e6, duration=hold_s,
                                  tolerance=0.4e6),
                     PressSegment(kind=2, target_pressure=0.0, rate=40e6)]
    return goal


def _stamp_s(msg) -> float:
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


class Target:
    """One press-like server seen from this process: its client and its ~/state arrivals."""

    def __init__(self, node, listener, namespace: str) -> None:
        """Create the client on ``node`` and the ~/state subscription on ``listener``."""
        self.client = PressClient(node, namespace=namespace)
        self.estop_topic = node.create_publisher(Empty, f"{namespace}/estop", COMMAND)
        self.states = []  # (arrival s, PressState), in arrival order
        self._arrived = threading.Condition()
        listener.create_subscription(PressState, f"{namespace}/press/state", self._on_state,
                                     TELEMETRY)

    def _on_state(self, msg) -> None:
        arrival_s = time.monotonic()
        with self._arrived:
            self.states.append((arrival_s, msg))
            self._arrived.notify_all()

    def wait_state(self, phase: int, since_s: float, timeout_s: float = 10.0) -> float:
        """Return the arrival time of the first ~/state with ``phase`` after ``since_s``.

        Scans only the samples not seen yet (the arrival time is taken in the subscription
        callback, so how late this waiter wakes does not enter the figure).
        """
        deadline = time.monotonic() + timeout_s
        with self._arrived:
            index = bisect.bisect_left(self.states, since_s, key=lambda sample: sample[0])
            while True:
                for arrival_s, msg in self.states[index:]:
                    if msg.phase == phase:
                        return arrival_s
                index = len(self.states)
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    return math.nan
                self._arrived.wait(remaining)

    def accept_and_feedback(self) -> tuple:
        """Return (goal sent -> accepted, accepted -> first feedback), s; cancels the goal."""
        first, accepted = [], []
        sent_s = time.monotonic()
        future = self.client.action.send_goal_async(
            _goal(30.0), feedback_callback=lambda m: first.append(time.monotonic()))
        future.add_done_callback(lambda f: accepted.append(time.monotonic()))
        deadline = time.monotonic() + 5.0
        while not (first and future.done()) and time.monotonic() < deadline:
            time.sleep(0.0002)
        handle = future.result()
        if handle is not None and handle.accepted:
            self.client.cancel(handle)
            self.client.wait_result(handle, 30.0)
        to_accept = accepted[0] - sent_s if accepted else math.nan
        return to_accept, first[0] - accepted[0] if first and accepted else math.nan

    def cancel_latency(self) -> tuple:
        """Return (cancel sent -> RELEASE on ~/state, s wall; loop-time latency, s)."""
        handle = self.client.send_goal(_goal(30.0))
        self.wait_state(PressState.PHASE_HOLD, time.monotonic())
        sent_s = time.monotonic()
        handle.cancel_goal_async()
        seen_s = self.wait_state(PressState.PHASE_RELEASE, sent_s)
        _, result = self.client.wait_result(handle, 30.0)
        return seen_s - sent_s, _loop_latency(result.error_msg)

    def estop_latency(self) -> tuple:
        """Return (e-stop sent -> VENTING on ~/state, s wall; loop-time latency, s)."""
        handle = self.client.send_goal(_goal(30.0))
        self.wait_state(PressState.PHASE_HOLD, time.monotonic())
        sent_s = time.monotonic()
        future = self.client.estop_client.call_async(EmergencyStop.Request(reason="bench"))
        seen_s = self.wait_state(PressState.PHASE_VENTING, sent_s)
        while not future.done():
            time.sleep(0.001)
        _, result = self.client.wait_result(handle, 30.0)
        self.client.reset_fault()
        return seen_s - sent_s, _loop_latency(result.error_msg)

    def estop_topic_latency(self) -> float:
        """Return e-stop published on the cell's ``estop`` topic -> VENTING on ~/state, s."""
        handle = self.client.send_goal(_goal(30.0))
        self.wait_state(PressState.PHASE_HOLD, time.monotonic())
        sent_s = time.monotonic()
        self.estop_topic.publish(Empty())
        seen_s = self.wait_state(PressState.PHASE_VENTING, sent_s)
        self.client.wait_result(handle, 30.0)
        self.client.reset_fault()
        return seen_s - sent_s

    def measure(self, seconds: float, cycles: int) -> dict:
        """Record ~/state for ``seconds``, then run every latency ``cycles`` times."""
        start = time.monotonic()
        time.sleep(seconds)
        with self._arrived:
            window = [(a, m) for a, m in self.states if start <= a < start + seconds]
        report = {"telemetry": _telemetry(window, seconds, 1.0 / RATE_HZ)}
        accepts = [self.accept_and_feedback() for _ in range(cycles)]
        cancels = [self.cancel_latency() for _ in range(cycles)]
        estops = [self.estop_latency() for _ in range(cycles)]
        topic_estops = [self.estop_topic_latency() for _ in range(cycles)]
        report["goal_sent_to_accepted"] = _stats(a[0] for a in accepts)
        report["accept_to_first_feedback"] = _stats(a[1] for a in accepts)
        report["cancel_to_release_seen_wall"] = _stats(c[0] for c in cancels)
        report["cancel_to_release_loop_time"] = _stats(c[1] for c in cancels)
        report["estop_to_vent_seen_wall"] = _stats(e[0] for e in estops)
        report["estop_to_vent_loop_time"] = _stats(e[1] for e in estops)
        report["estop_topic_to_vent_seen_wall"] = _stats(topic_estops)
        return report


def _loop_latency(error_msg: str) -> float:
    match = STAMPS.search(error_msg)
    return float(match.group(2)) - float(match.group(1)) if match else math.nan


def _telemetry(samples, seconds: float, period_s: float) -> dict:
    """Return rate, gaps and duplicates of ``(arrival, msg)`` samples."""
    if len(samples) < 2:
        return {"received": len(samples), "rate_hz": len(samples) / seconds,
                "duplicates": 0, "loop_samples_missed": 0, "missed_fraction": math.nan}
    stamps = np.array([_stamp_s(m) for _, m in samples])
    steps = np.diff(stamps)
    duplicates = int(np.sum(steps == 0.0))
    missing = int(np.sum(np.maximum(np.round(steps[steps > 0] / period_s) - 1, 0)))
    return {"received": len(samples), "rate_hz": len(samples) / seconds,
            "duplicates": duplicates, "loop_samples_missed": missing,
            "missed_fraction": missing / max(1.0, (stamps[-1] - stamps[0]) / period_s)}


def _stats(values) -> dict:
    arr = np.array([v for v in values if math.isfinite(v)])
    if arr.size == 0:
        return {"n": 0, "median_ms": math.nan, "p99_ms": math.nan}
    return {"n": int(arr.size), "median_ms": 1e3 * float(np.median(arr)),
            "p99_ms": 1e3 * float(np.percentile(arr, 99))}


def _start(command: list) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(2)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


LATENCIES = (  # key, label, good
    ("goal_sent_to_accepted", "goal sent -> accepted", "ratio <= 2 (validation is cheap)"),
    ("accept_to_first_feedback", "goal accepted -> first feedback",
     "<= one feedback period; ratio near 1"),
    ("cancel_to_release_seen_wall", "cancel sent -> RELEASE seen on ~/state",
     "< 10 ms; a few loop periods over the bare path"),
    ("cancel_to_release_loop_time", "cancel arrival -> release start, loop time",
     "<= 1 loop period (2 ms)"),
    ("estop_to_vent_seen_wall", "e-stop sent -> VENTING seen on ~/state",
     "< 10 ms; a few loop periods over the bare path"),
    ("estop_to_vent_loop_time", "e-stop arrival -> vent, loop time", "<= 1 loop period (2 ms)"),
    ("estop_topic_to_vent_seen_wall", "e-stop on cell topic -> VENTING seen on ~/state",
     "< 10 ms; a few loop periods over the bare path"),
)


def figures(press: dict, base: dict, seconds: float) -> list:
    """Return the named figures: each latency and the telemetry against the bare server."""
    out = []
    for key, label, good in LATENCIES:
        row, ref = press[key], base.get(key, {})
        loop_time = key.endswith("_loop_time")
        out.append(figure(
            f"press_node_{key}", f"press node across processes: {label}", row["median_ms"], "ms",
            p99=row["p99_ms"], baseline=None if loop_time else ref.get("median_ms"),
            baseline_p99=None if loop_time else ref.get("p99_ms"),
            baseline_name="bare rclpy server process, same names and QoS, same run",
            good=good))
    tel, ref = press["telemetry"], base["telemetry"]
    out.append(figure(
        "press_node_telemetry_rate", f"~/state received across processes ({seconds:g} s)",
        tel["rate_hz"], "Hz", stat="rate", baseline=ref["rate_hz"],
        baseline_name="bare rclpy 500 Hz timer publisher, same run",
        good=f"~{RATE_HZ:g} Hz; ratio near 1"))
    out.append(figure(
        "press_node_telemetry_missed", f"~/state loop samples missed ({seconds:g} s)",
        100.0 * tel["missed_fraction"] if tel["missed_fraction"] is not None else None, "%",
        stat="fraction", baseline=100.0 * ref["missed_fraction"],
        baseline_name="bare rclpy 500 Hz timer publisher, same run",
        good="< 1 %; no worse than the bare publisher"))
    return out


def _print_table(press: dict, base: dict, args) -> None:
    print(f"press node across processes, loop and ~/state at {RATE_HZ:g} Hz, "
          f"{args.cycles} repetitions, telemetry over {args.seconds:g} s; "
          "baseline = bare rclpy server process")
    print(f"{'latency':<31}{'n':>4}{'median ms':>11}{'p99 ms':>9}{'base med':>10}"
          f"{'base p99':>10}")
    for key, _, _ in LATENCIES:
        row, ref = press[key], base.get(key, {"median_ms": math.nan, "p99_ms": math.nan})
        print(f"{key:<31}{row['n']:>4}{row['median_ms']:>11.2f}{row['p99_ms']:>9.2f}"
              f"{ref['median_ms']:>10.2f}{ref['p99_ms']:>10.2f}")
    print(f"{'telemetry':<31}{'received':>9}{'rate Hz':>9}{'missed':>8}{'dup':>6}")
    for label, row in (("press node", press["telemetry"]), ("bare publisher", base["telemetry"])):
        print(f"{label:<31}{row['received']:>9}{row['rate_hz']:>9.1f}"
              f"{row['loop_samples_missed']:>8}{row['duplicates']:>6}")


def main(argv=None) -> int:
    """Run the benchmark; print the table (and write the JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="telemetry window, s")
    parser.add_argument("--cycles", type=int, default=20, help="repetitions per latency")
    add_json_argument(parser)
    parser.add_argument("--baseline-server", nargs=2, metavar=("NAMESPACE", "RATE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_server:
        run_baseline_server(args.baseline_server[0], float(args.baseline_server[1]))
        return 0
    ns = f"/bench_{os.getpid()}"
    ns_base = f"{ns}_base"
    node_proc = _start(
        [sys.executable, "-m", "press_cell.nodes.press_node", "--ros-args", "-r", f"__ns:={ns}",
         "--params-file", str(REPO / "config" / "press.yaml"), "-p", "autostart:=true",
         "-p", "time_scale:=1.0", "-p", f"rate_hz:={RATE_HZ}", "-p", f"state_rate_hz:={RATE_HZ}"])
    base_proc = None
    rclpy.init()
    try:
        node = rclpy.create_node("bench_press_client")
        executor = MultiThreadedExecutor(num_threads=4)
        executor.add_node(node)
        # Telemetry on its own node and single-threaded executor: rclpy's multi-threaded
        # executor delivers only ~170 Hz of a 500 Hz stream here.
        listener = rclpy.create_node("bench_press_listener")
        listener_executor = SingleThreadedExecutor()
        listener_executor.add_node(listener)
        press_target = Target(node, listener, ns)
        base_target = Target(node, listener, ns_base)
        threading.Thread(target=executor.spin, daemon=True).start()
        threading.Thread(target=listener_executor.spin, daemon=True).start()
        press_target.client.wait_for_server(30.0)
        time.sleep(1.0)
        press = press_target.measure(args.seconds, args.cycles)
        _stop(node_proc)
        base_proc = _start([sys.executable, __file__, "--baseline-server", ns_base,
                            str(RATE_HZ)])
        base_target.client.wait_for_server(30.0)
        time.sleep(1.0)
        base = base_target.measure(args.seconds, args.cycles)
        executor.shutdown(timeout_sec=2.0)
        listener_executor.shutdown(timeout_sec=2.0)
    finally:
        for proc in (node_proc, base_proc):
            if proc is not None and proc.poll() is None:
                _stop(proc)
        rclpy.try_shutdown()
    _print_table(press, base, args)
    write_result(args.json, "bench_press_node", figures(press, base, args.seconds),
                 {"rate_hz": RATE_HZ, "seconds": args.seconds, "cycles": args.cycles,
                  "press_node": press, "baseline_server": base})
    return 0


if __name__ == "__main__":
    sys.exit(main())
