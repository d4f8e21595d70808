"""Recipe schema, material and tooling library, validation and dry run (no rclpy)."""
