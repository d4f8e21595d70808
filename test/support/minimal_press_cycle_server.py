"""Test support: the smallest PressCycle action server (no press), for the transport test."""

import time

import rclpy
from rclpy.action import ActionServer
from rclpy.executors import ExternalShutdownException

from press_cell.action import PressCycle


def execute(goal_handle):
    """Send three feedback messages, then succeed with a certificate echoing the goal."""
    target = goal_handle.request.segments[0].target_pressure
    for index in range(3):
        goal_handle.publish_feedback(PressCycle.Feedback(
            segment_index=index, pressure=target * (index + 1) / 3, pressure_setpoint=target))
        time.sleep(0.05)
    goal_handle.succeed()
    result = PressCycle.Result(success=True)
    result.certificate.part_id = goal_handle.request.part_id
    result.certificate.peak_pressure = target
    return result


def main():
    """Serve press_cycle until killed."""
    rclpy.init()
    node = rclpy.create_node("minimal_press_cycle_server")
    ActionServer(node, PressCycle, "press_cycle", execute_callback=execute)
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
