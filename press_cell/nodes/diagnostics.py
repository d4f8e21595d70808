"""Small stand-in for ``diagnostic_updater`` (not installable here): build and publish /diagnostics.

A node calls ``DiagnosticsPublisher.publish(stamp, [status, ...])`` from a 1 Hz timer; each
status comes from ``diagnostic_status(name, hardware_id, level, message, values)``. Values are
rendered as text the way ``diagnostic_updater`` does (floats with 6 significant digits, NaN as
"nan"), so rqt_robot_monitor and Foxglove show them unchanged.
"""

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from press_cell.nodes.qos import DIAGNOSTICS

OK = DiagnosticStatus.OK
WARN = DiagnosticStatus.WARN
ERROR = DiagnosticStatus.ERROR
STALE = DiagnosticStatus.STALE


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def diagnostic_status(name: str, hardware_id: str, level: int, message: str,
                      values: dict) -> DiagnosticStatus:
    """Return one ``DiagnosticStatus`` with ``values`` (key -> number/bool/text) as key-values.

    ``level`` is one of ``OK``, ``WARN``, ``ERROR``, ``STALE`` (the message's byte constants).
    """
    status = DiagnosticStatus(level=level, name=name, message=message,
                              hardware_id=hardware_id)
    status.values = [KeyValue(key=str(key), value=_text(value)) for key, value in values.items()]
    return status


class DiagnosticsPublisher:
    """Publish ``diagnostic_msgs/DiagnosticArray`` on the absolute topic ``/diagnostics``."""

    def __init__(self, node) -> None:
        """Create the publisher on ``node`` (reliable, keep last 10: the ROS convention)."""
        self._node = node
        self._pub = node.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS)

    def publish(self, stamp, statuses) -> None:
        """Publish ``statuses`` with header stamp ``stamp`` (builtin_interfaces/Time)."""
        msg = DiagnosticArray()
        msg.header.stamp = stamp
        msg.status = list(statuses)
        self._pub.publish(msg)

    def destroy(self) -> None:
        """Destroy the publisher."""
        self._node.destroy_publisher(self._pub)
