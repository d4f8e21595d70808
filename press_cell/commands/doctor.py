"""`press-cell doctor`: report what this machine offers press_cell, and what is missing."""

import importlib.metadata
import os
import platform
import resource
import sys

HELP = "report Python, rclpy, RMW, interface build, real-time rights and serial ports"


def add_arguments(parser):
    """Declare the options of `press-cell doctor`."""
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _rclpy_check():
    try:
        import rclpy  # noqa: F401
        from rclpy.utilities import get_rmw_implementation_identifier
    except ImportError as exc:  # reported, not raised: doctor explains what is missing
        return False, f"not importable ({exc}); run `make setup`", ""
    version = importlib.metadata.version("ros-rclpy") if _has_dist("ros-rclpy") else "?"
    return True, f"rclpy {version}", get_rmw_implementation_identifier()


def _has_dist(name):
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _interfaces_check():
    try:
        from rclpy.serialization import deserialize_message, serialize_message

        from press_cell.action import AssembleCell, MeasureImpedance, PlaceComponent, PressCycle
        from press_cell.msg import PressState
        from press_cell.srv import ZoneLease  # noqa: F401
    except ImportError as exc:
        return False, f"not built ({exc}); run `make interfaces`"
    sample = PressState(pressure=25.0e6)
    if deserialize_message(serialize_message(sample), PressState).pressure != sample.pressure:
        return False, "PressState does not round-trip through CDR"
    names = [a.__name__ for a in (PressCycle, PlaceComponent, MeasureImpedance, AssembleCell)]
    return True, "messages, services and actions import and serialise (" + ", ".join(names) + ")"


def _realtime_check():
    soft, _hard = resource.getrlimit(resource.RLIMIT_RTPRIO)
    can_fifo = os.geteuid() == 0 or soft > 0
    memlock = resource.getrlimit(resource.RLIMIT_MEMLOCK)[0]
    memlock_text = "unlimited" if memlock == resource.RLIM_INFINITY else f"{memlock} B"
    fifo_text = "allowed" if can_fifo else "not allowed"
    return can_fifo, f"SCHED_FIFO {fifo_text}, memlock {memlock_text}"


def _serial_ports():
    try:
        from serial.tools import list_ports
    except ImportError:
        return ["pyserial missing"]
    return [f"{port.device} ({port.description})" for port in list_ports.comports()]


def collect():
    """Return the doctor report as a dict of checks: name -> (ok, text)."""
    rclpy_ok, rclpy_text, rmw = _rclpy_check()
    report = {
        "python": (sys.version_info >= (3, 10), f"{platform.python_version()} ({sys.executable})"),
        "rclpy": (rclpy_ok, rclpy_text),
        "rmw": (bool(rmw), rmw or "unknown (rclpy missing)"),
        "ros_domain_id": (True, os.environ.get("ROS_DOMAIN_ID", "0 (default)")),
        "discovery_range": (True, os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")),
        "interfaces": _interfaces_check() if rclpy_ok else (False, "needs rclpy"),
        "realtime": _realtime_check(),
        "serial_ports": (True, ", ".join(_serial_ports()) or "none found"),
        "ros2_launch": (True, "available" if _has_module("launch_ros") else
                        "not installed (use `press-cell bringup`)"),
    }
    return report


def _has_module(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


ESSENTIAL = ("python", "rclpy", "rmw", "interfaces")


def run(args):
    """Print the report; exit 1 when an essential check fails."""
    report = collect()
    if args.json:
        import json

        print(json.dumps({k: {"ok": ok, "detail": text} for k, (ok, text) in report.items()},
                         indent=2))
    else:
        for name, (ok, text) in report.items():
            mark = "ok " if ok else ("!! " if name in ESSENTIAL else "-- ")
            print(f"{mark}{name:16s} {text}")
    return 0 if all(report[name][0] for name in ESSENTIAL) else 1
