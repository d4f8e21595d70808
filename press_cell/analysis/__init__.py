"""Bag reading, per-cycle metrics, circuit fitting, plots and reports (no rclpy)."""
