"""The press node in-process with a prebuilt driver (the bringup's shared-workcell hook)."""

import threading

import pytest
from rclpy.executors import MultiThreadedExecutor

from press_cell.action import PressCycle
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.msg import PressSegment
from press_cell.nodes.press_client import PressClient
from press_cell.nodes.press_node import PressNode
from press_cell.timebase import SimulatedClock


@pytest.mark.timeout(60)
def test_prebuilt_driver_is_used_and_left_connected(rclpy_context):
    """A driver passed to the constructor runs the cycle; cleanup does not disconnect it."""
    import rclpy

    clock = SimulatedClock()
    driver = SimulatedPress(clock, rated_force_n=100e3, seed=3)
    driver.connect()
    node = PressNode(namespace="/inproc", context=rclpy_context, driver=driver, clock=clock,
                     parameter_overrides={"autostart": True, "time_scale": 0.0})
    client_node = rclpy.create_node("inproc_client", context=rclpy_context)
    executor = MultiThreadedExecutor(num_threads=6, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(client_node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        client = PressClient(client_node, namespace="/inproc")
        client.wait_for_server(10.0)
        goal = PressCycle.Goal(part_id="shared", contact_area=1e-4)
        goal.segments = [PressSegment(kind=0, target_pressure=30e6, rate=10e6),
                         PressSegment(kind=1, target_pressure=30e6, duration=5.0,
                                      tolerance=0.3e6),
                         PressSegment(kind=2, target_pressure=0.0, rate=10e6)]
        status, result = client.wait_result(client.send_goal(goal), 30.0)
        assert status == "succeeded", result.error_msg
        assert result.certificate.peak_force == pytest.approx(3e3, rel=0.02)
        assert clock.now() > 10.0           # the shared simulated clock carried the cycle
        assert result.certificate.loop_timing.lockstep
    finally:
        node.close()
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        node.destroy_node()
        client_node.destroy_node()
    assert driver.is_connected              # shared: the owner disconnects it, not the node
    driver.disconnect()


@pytest.mark.timeout(30)
def test_sim_publishes_clock_at_the_time_scale(rclpy_context):
    """With publish_clock, /clock carries the simulated time, time_scale times wall time."""
    import time

    import rclpy
    from rosgraph_msgs.msg import Clock

    node = PressNode(namespace="/clock_test", context=rclpy_context, parameter_overrides={
        "autostart": True, "time_scale": 5.0, "publish_clock": True, "rate_hz": 200.0,
        "state_rate_hz": 50.0})
    listener = rclpy.create_node("clock_listener", context=rclpy_context)
    got = []
    listener.create_subscription(Clock, "/clock", lambda m: got.append(
        (time.monotonic(), m.clock.sec + 1e-9 * m.clock.nanosec)), 10)
    executor = MultiThreadedExecutor(num_threads=4, context=rclpy_context)
    executor.add_node(node)
    executor.add_node(listener)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        time.sleep(2.0)
    finally:
        node.close()
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        node.destroy_node()
        listener.destroy_node()
    assert len(got) > 50
    (w0, s0), (w1, s1) = got[len(got) // 4], got[-1]
    assert all(b[1] >= a[1] for a, b in zip(got, got[1:], strict=False))
    # Paced lockstep may fall behind the time scale on a busy machine, never ahead of it.
    assert 1.0 < (s1 - s0) / (w1 - w0) <= 5.5
