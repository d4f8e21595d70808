"""QoS profiles of press_cell, one per kind of stream (STYLE.md point 10).

- TELEMETRY (~/state, ~/pressure, ~/wrench, ~/timing, ~/monitor): best effort, keep last 50;
  a late sample is worth less than a fresh one and must never stall the publisher.
- LATCHED (~/status, ~/in_press_zone): reliable + transient local, depth 1; a late joiner
  gets the current state at once.
- COMMAND (~/estop topic): reliable, keep last 10.
- RECORD (~/spectrum, ~/cell_record): reliable, keep last 10; a measurement is never dropped.
- DIAGNOSTICS (/diagnostics): reliable, keep last 10 (the ROS convention).

Actions and services use rclpy's defaults (reliable).
"""

from rclpy.qos import (
    DurabilityPolicy,
    HistoryPolicy,
    QoSProfile,
    ReliabilityPolicy,
)

TELEMETRY = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=50,
                       reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)

LATCHED = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)

COMMAND = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.VOLATILE)

RECORD = COMMAND

DIAGNOSTICS = COMMAND
