"""Device drivers behind abstract bases: simulators and serial drivers (no rclpy)."""
