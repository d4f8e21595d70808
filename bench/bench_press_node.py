"""Benchmark the press node across processes: action latencies and telemetry at 500 Hz.

Starts a simulated press node (paced lockstep at 1x, loop 500 Hz, ``~/state`` at 500 Hz) in
another process and measures, from this process:

* goal accept -> first feedback (wall, cross-process), over ``--cycles`` goals;
* cancel -> release: the cancel request until a ``~/state`` sample shows RELEASE (wall), and
  the same in the loop's own time (cancel arrival -> release start, from the node's trace);
* e-stop -> vent: the ~/estop call until a ``~/state`` sample shows VENTING (wall), and in loop
  time from the trace;
* telemetry: ``~/state`` messages received over ``--seconds`` (rate, stamp gaps = loop samples
  never seen, duplicates = the same loop sample twice), against a baseline measured in the same
  run: a bare rclpy publisher process with the same message, QoS and timer rate.

Prints a table (median and p99) or ``--json``. Example::

    .venv/bin/python bench/bench_press_node.py --seconds 60 --cycles 20
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from press_cell.action import PressCycle  # noqa: E402
from press_cell.msg import PressSegment, PressState  # noqa: E402
from press_cell.nodes.press_client import PressClient  # noqa: E402
from press_cell.nodes.qos import TELEMETRY  # noqa: E402
from press_cell.srv import EmergencyStop  # noqa: E402

STAMPS = re.compile(r"arrived at stamp ([0-9.]+) s, \w+ began at stamp ([0-9.]+) s")
RATE_HZ = 500.0


def _env():
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    return env


def run_baseline_talker(topic: str, rate_hz: float) -> None:
    """Publish PressState on ``topic`` at ``rate_hz`` with a plain rclpy timer (baseline)."""
    rclpy.init()
    node = rclpy.create_node("bench_baseline_talker")
    pub = node.create_publisher(PressState, topic, TELEMETRY)
    start = time.monotonic()

    def publish():
        msg = PressState()
        stamp = time.monotonic() - start
        msg.header.stamp.sec = int(stamp)
        msg.header.stamp.nanosec = int((stamp % 1.0) * 1e9)
        pub.publish(msg)

    node.create_timer(1.0 / rate_hz, publish)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass


def _goal(hold_s: float) -> PressCycle.Goal:
    goal = PressCycle.Goal(part_id="bench", die_diameter=0.013)
    goal.segments = [PressSegment(kind=0, target_pressure=20e6, rate=40e6),
                     PressSegment(kind=1, target_pressure=20e6, duration=hold_s,
                                  tolerance=0.4e6),
                     PressSegment(kind=2, target_pressure=0.0, rate=40e6)]
    return goal


def _stamp_s(msg) -> float:
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


class Bench:
    """The client side: a press client, a ~/state recorder with arrival times."""

    def __init__(self, ns: str) -> None:
        """Create the client node and spin it in a thread."""
        self.node = rclpy.create_node("bench_press_client")
        self.executor = MultiThreadedExecutor(num_threads=4)
        self.executor.add_node(self.node)
        self.client = PressClient(self.node, namespace=ns)
        # Telemetry on its own node and single-threaded executor: rclpy's multi-threaded
        # executor delivers only ~170 Hz of a 500 Hz stream here.
        self.listener = rclpy.create_node("bench_press_listener")
        self.listener_executor = SingleThreadedExecutor()
        self.listener_executor.add_node(self.listener)
        self.states = deque(maxlen=1_000_000)
        self.listener.create_subscription(PressState, f"{ns}/press/state", self._on_state,
                                          TELEMETRY)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        threading.Thread(target=self.listener_executor.spin, daemon=True).start()

    def _on_state(self, msg) -> None:
        self.states.append((time.monotonic(), msg))

    def wait_state(self, phase: int, since_s: float, timeout_s: float = 10.0) -> float:
        """Return the arrival time of the first ~/state with ``phase`` after ``since_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            hits = [a for a, m in list(self.states) if a >= since_s and m.phase == phase]
            if hits:
                return hits[0]
            time.sleep(0.0005)
        return math.nan

    def accept_to_feedback(self) -> float:
        """Return goal accepted -> first feedback, s (runs and cancels one short goal)."""
        first, accepted = [], []
        future = self.client.action.send_goal_async(
            _goal(30.0), feedback_callback=lambda m: first.append(time.monotonic()))
        future.add_done_callback(lambda f: accepted.append(time.monotonic()))
        deadline = time.monotonic() + 5.0
        while not (first and future.done()) and time.monotonic() < deadline:
            time.sleep(0.0002)
        handle = future.result()
        self.client.cancel(handle)
        self.client.wait_result(handle, 30.0)
        return first[0] - accepted[0] if first and accepted else math.nan

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


def _loop_latency(error_msg: str) -> float:
    match = STAMPS.search(error_msg)
    return float(match.group(2)) - float(match.group(1)) if match else math.nan


def _telemetry(samples, seconds: float, period_s: float) -> dict:
    """Return rate, gaps and duplicates of ``(arrival, msg)`` samples."""
    if len(samples) < 2:
        return {"received": len(samples), "rate_hz": 0.0}
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


def _record(bench: Bench, seconds: float) -> list:
    start = time.monotonic()
    time.sleep(seconds)
    return [(a, m) for a, m in list(bench.states) if start <= a < start + seconds]


def main(argv=None) -> int:
    """Run the benchmark; print the table or JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="telemetry window, s")
    parser.add_argument("--cycles", type=int, default=20, help="repetitions per latency")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--baseline-talker", nargs=2, metavar=("TOPIC", "RATE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.baseline_talker:
        run_baseline_talker(args.baseline_talker[0], float(args.baseline_talker[1]))
        return 0
    ns = f"/bench_{os.getpid()}"
    node_proc = subprocess.Popen(
        [sys.executable, "-m", "press_cell.nodes.press_node", "--ros-args", "-r", f"__ns:={ns}",
         "--params-file", str(REPO / "config" / "press.yaml"), "-p", "autostart:=true",
         "-p", "time_scale:=1.0", "-p", f"rate_hz:={RATE_HZ}", "-p", f"state_rate_hz:={RATE_HZ}"],
        cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rclpy.init()
    report = {}
    try:
        bench = Bench(ns)
        bench.client.wait_for_server(30.0)
        time.sleep(1.0)
        report["telemetry_press_node"] = _telemetry(_record(bench, args.seconds), args.seconds,
                                                    1.0 / RATE_HZ)
        feedback = [bench.accept_to_feedback() for _ in range(args.cycles)]
        cancels = [bench.cancel_latency() for _ in range(args.cycles)]
        estops = [bench.estop_latency() for _ in range(args.cycles)]
        report["accept_to_first_feedback"] = _stats(feedback)
        report["cancel_to_release_seen_wall"] = _stats(c[0] for c in cancels)
        report["cancel_to_release_loop_time"] = _stats(c[1] for c in cancels)
        report["estop_to_vent_seen_wall"] = _stats(e[0] for e in estops)
        report["estop_to_vent_loop_time"] = _stats(e[1] for e in estops)
        talker = subprocess.Popen([sys.executable, __file__, "--baseline-talker",
                                   f"{ns}/baseline", str(RATE_HZ)], cwd=REPO, env=_env(),
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        baseline = deque(maxlen=1_000_000)
        bench.listener.create_subscription(PressState, f"{ns}/baseline",
                                       lambda m: baseline.append((time.monotonic(), m)),
                                       TELEMETRY)
        time.sleep(3.0)
        start = time.monotonic()
        time.sleep(args.seconds)
        window = [(a, m) for a, m in list(baseline) if start <= a < start + args.seconds]
        report["telemetry_baseline_talker"] = _telemetry(window, args.seconds, 1.0 / RATE_HZ)
        talker.send_signal(2)
        talker.wait(timeout=10)
        bench.executor.shutdown(timeout_sec=2.0)
        bench.listener_executor.shutdown(timeout_sec=2.0)
    finally:
        node_proc.send_signal(2)
        try:
            node_proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            node_proc.kill()
        rclpy.try_shutdown()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"press node across processes, loop and ~/state at {RATE_HZ:g} Hz, "
          f"{args.cycles} repetitions, telemetry over {args.seconds:g} s")
    print(f"{'latency':<34}{'n':>4}{'median ms':>12}{'p99 ms':>10}")
    for key in ("accept_to_first_feedback", "cancel_to_release_seen_wall",
                "cancel_to_release_loop_time", "estop_to_vent_seen_wall",
                "estop_to_vent_loop_time"):
        row = report[key]
        print(f"{key:<34}{row['n']:>4}{row['median_ms']:>12.2f}{row['p99_ms']:>10.2f}")
    print(f"{'telemetry':<34}{'received':>9}{'rate Hz':>9}{'missed':>8}{'dup':>6}")
    for key in ("telemetry_press_node", "telemetry_baseline_talker"):
        row = report[key]
        print(f"{key:<34}{row['received']:>9}{row['rate_hz']:>9.1f}"
              f"{row.get('loop_samples_missed', 0):>8}{row.get('duplicates', 0):>6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
