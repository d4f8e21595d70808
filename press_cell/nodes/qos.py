"""QoS profiles of press_cell, one per kind of stream (STYLE.md point 10).

| stream                                  | profile            | why                                  |
|-----------------------------------------|--------------------|--------------------------------------|
| high-rate telemetry (~/state, pressure, | TELEMETRY          | best effort, keep last 50: a late    |
| wrench, ~/timing, ~/monitor)            |                    | sample is worth less than a new one  |
| latched status (~/status,               | LATCHED            | reliable + transient local, depth 1: |
| ~/in_press_zone)                        |                    | a late joiner gets the current state |
| commands (~/estop topic)                | COMMAND            | reliable, keep last 10               |
| records and spectra (~/spectrum,        | RECORD             | reliable, keep last 10: never lose a |
| cell_record)                            |                    | measurement                          |
| /diagnostics                            | DIAGNOSTICS        | reliable, keep last 10 (ROS default) |

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
