"""Record the real press node (sim) through a press cycle; the bag gives the live certificate.

The press node and the recorder run in their own processes; the test sends a real PressCycle
goal and compares the certificate of the action result with the one the analysis computes from
the bag: the press's ``~/trace`` (every loop sample, the profile as laid out) is in the bag, and
the certificate recomputed from it equals the live one (same samples, same profile, same code).
"""

import os
import signal
import threading
import time

import pytest
from conftest import REPO
from rclpy.executors import MultiThreadedExecutor

from press_cell.action import PressCycle
from press_cell.analysis.bag_reader import open_bag
from press_cell.analysis.run import load_run
from press_cell.msg import PressSegment, PressTrace
from press_cell.nodes.press_client import PressClient
from press_cell.nodes.qos import RECORD

MPA = 1e6
TARGET_PA, RATE_PA_S, HOLD_S, TOL_PA = 10 * MPA, 10 * MPA, 2.0, 0.2 * MPA


def _wait_for(output, text, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(text in line for line in output):
            return
        time.sleep(0.05)
    raise AssertionError(f"no {text!r} within {timeout_s} s:\n" + "".join(output))


def _wait_for_true(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"no {what} within {timeout_s} s")


def _collect(proc):
    lines = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")),
                     daemon=True).start()
    return lines


@pytest.mark.timeout(90)
def test_bag_of_a_press_cycle_reproduces_the_action_certificate(start_process, rclpy_context,
                                                                 tmp_path):
    import rclpy

    ns = f"/recpress_{os.getpid()}"
    start_process("--ros-args", "-r", f"__ns:={ns}", "--params-file",
                  str(REPO / "config" / "press.yaml"), "-p", "hardware:=sim",
                  "-p", "autostart:=true", "-p", "time_scale:=4.0", "-p", "rate_hz:=500.0",
                  "-p", "state_rate_hz:=500.0", module="press_cell.nodes.press_node")
    recorder = start_process("--ros-args", "-r", f"__ns:={ns}", "-p",
                             f"output_dir:={tmp_path}", "-p", "session:=press",
                             "-p", "discovery_period:=0.3", module="press_cell.nodes.recorder_node")
    recorder_output = _collect(recorder)
    node = rclpy.create_node("recorder_press_test", context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=3, context=rclpy_context)
    executor.add_node(node)
    threading.Thread(target=executor.spin, daemon=True).start()
    try:
        traces = []
        node.create_subscription(PressTrace, f"{ns}/press/trace", traces.append, RECORD)
        client = PressClient(node, namespace=ns)
        client.wait_for_server(30.0)
        _wait_for(recorder_output, f"recording {ns}/press/state", 20)
        goal = PressCycle.Goal(part_id="rec-1", step_name="prepress_a", die_diameter=0.013,
                               material="Li")
        goal.segments = [
            PressSegment(kind=PressSegment.KIND_RAMP, target_pressure=TARGET_PA,
                         rate=RATE_PA_S),
            PressSegment(kind=PressSegment.KIND_HOLD, target_pressure=TARGET_PA,
                         duration=HOLD_S, tolerance=TOL_PA),
            PressSegment(kind=PressSegment.KIND_RELEASE, target_pressure=0.0, rate=RATE_PA_S)]
        handle = client.send_goal(goal)
        _status, result = client.wait_result(handle, 60.0)
        assert result.success, result.error_msg
        live = result.certificate
        _wait_for_true(lambda: traces, 10.0, "the press's ~/trace")
        time.sleep(0.3)   # the recorder's copy, delivered at the same moment, is written too
    finally:
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()
    recorder.send_signal(signal.SIGINT)
    assert recorder.wait(timeout=10) == 0

    bag_path = tmp_path / "press"
    with open_bag(bag_path) as bag:
        assert f"{ns}/press/state" in bag.topics and "/diagnostics" in bag.topics
        trace = bag.topics.get(f"{ns}/press/trace")
        assert trace is not None and trace.message_count == 1, sorted(bag.topics)
        assert trace.qos[0].reliability.name == "RELIABLE"
        assert bag.info.calibration_id == live.calibration_id != ""
    run = load_run(bag_path)
    results = run.cycle_results()
    assert len(results) == 1, run.problems
    cert = results[0].certificate
    assert results[0].method.startswith("full-rate trace")
    assert results[0].extra["matches_live"], results[0].extra["differences_from_live"]
    for name in ("peak_pressure", "mean_hold_pressure", "min_hold_pressure", "max_hold_pressure",
                 "hold_pressure_std", "target_pressure", "overshoot", "ramp_rate_achieved",
                 "settling_time", "ram_travel", "duration", "fraction_in_band", "hold_duration"):
        assert getattr(cert, name) == pytest.approx(getattr(live, name), rel=1e-9, abs=1e-12), name
    # The tolerance band is the one the press used, not a guess.
    assert results[0].segments[1].tolerance_pa == TOL_PA
