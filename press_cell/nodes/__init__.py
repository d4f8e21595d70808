"""Thin rclpy nodes wrapping the pure core: press, arm, impedance, coordinator, recorder."""
