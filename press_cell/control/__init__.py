"""Profile generation, force control, the fixed-rate loop and the safety supervisor (no rclpy)."""
