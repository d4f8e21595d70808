"""Physics models of the press, the foil, the powder and the cell (no rclpy)."""
