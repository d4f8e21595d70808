"""press_cell interfaces cross process boundaries over DDS (topics and actions)."""

import time

import pytest
import rclpy
from conftest import SUPPORT
from rclpy.action import ActionClient

from press_cell.action import PressCycle
from press_cell.msg import PressSegment, PressState

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]


def _spin_until(node, context, predicate, timeout_s):
    executor = rclpy.executors.SingleThreadedExecutor(context=context)
    executor.add_node(node)
    deadline = time.monotonic() + timeout_s
    while not predicate() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    executor.remove_node(node)
    return predicate()


def test_press_state_published_in_one_process_arrives_in_another(rclpy_context, start_process):
    start_process("/test_transport/state", script=SUPPORT / "press_state_talker.py")
    node = rclpy.create_node("listener", context=rclpy_context)
    received = []
    node.create_subscription(PressState, "/test_transport/state", received.append, 10)
    assert _spin_until(node, rclpy_context, lambda: len(received) >= 5, 30.0), \
        "no PressState arrived from the other process within 30 s"
    pressures = [m.pressure for m in received]
    in_order = all(b > a for a, b in zip(pressures, pressures[1:], strict=False))
    assert in_order, "samples out of order"
    assert received[-1].phase == PressState.PHASE_RAMP
    assert received[-1].force == pytest.approx(received[-1].pressure * 7.85e-5)


def test_press_cycle_goal_feedback_result_across_processes(rclpy_context, start_process):
    start_process(script=SUPPORT / "minimal_press_cycle_server.py")
    node = rclpy.create_node("press_cycle_client", context=rclpy_context)
    client = ActionClient(node, PressCycle, "press_cycle")
    executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    deadline = time.monotonic() + 30
    while not client.server_is_ready() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    assert client.server_is_ready(), "press_cycle server not discovered within 30 s"

    goal = PressCycle.Goal(part_id="pellet-001")
    goal.segments = [PressSegment(kind=PressSegment.KIND_RAMP, target_pressure=370e6, rate=5e6)]
    feedback = []
    send = client.send_goal_async(goal, feedback_callback=lambda f: feedback.append(f.feedback))
    executor.spin_until_future_complete(send, timeout_sec=10)
    handle = send.result()
    assert handle is not None and handle.accepted
    result_future = handle.get_result_async()
    executor.spin_until_future_complete(result_future, timeout_sec=10)
    result = result_future.result().result
    assert result.success
    assert result.certificate.part_id == "pellet-001"
    assert result.certificate.peak_pressure == pytest.approx(370e6)
    assert [f.segment_index for f in feedback] == [0, 1, 2]
