"""Test support: publish PressState samples with a known ramp until killed."""

import sys

import rclpy
from rclpy.executors import ExternalShutdownException

from press_cell.msg import PressState


def main():
    """Publish PressState at 50 Hz on the topic given as the first argument."""
    rclpy.init()
    node = rclpy.create_node("press_state_talker")
    publisher = node.create_publisher(PressState, sys.argv[1], 10)
    count = [0]

    def publish():
        count[0] += 1
        publisher.publish(PressState(phase=PressState.PHASE_RAMP, segment_index=0,
                                     pressure=1.0e5 * count[0], force=7.85 * count[0]))

    node.create_timer(0.02, publish)
    print("ready", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
