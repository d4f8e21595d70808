"""Find the rclpy message class of a ROS type name (``pkg/msg/Name``) without rosidl_runtime_py.

The recorder subscribes and the replay publisher publishes by type *name* (from the ROS graph or
a bag); rclpy needs the generated class. ``rosidl_runtime_py`` is not a wheel, so this does its
one job: import ``pkg.msg`` (or ``pkg.action`` for the message types an action derives, e.g.
``press_cell/action/PressCycle_FeedbackMessage``) and pick the class.
"""

import importlib

# Message types rosidl derives from an action: suffix -> attribute of ``Action.Impl``.
_ACTION_PARTS = {
    "_FeedbackMessage": "FeedbackMessage",
    "_Goal": "Goal",
    "_Result": "Result",
    "_Feedback": "Feedback",
}


class UnknownMessageType(LookupError):
    """A ROS type name does not name an importable message class."""


def message_class(type_name: str):
    """Return the rclpy message class of ``type_name`` (``pkg/msg/Name`` or ``pkg/action/X_Y``).

    Raises ``UnknownMessageType`` when the package is not installed or has no such type.
    """
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] not in ("msg", "action"):
        raise UnknownMessageType(
            f"{type_name!r} is not a message type name (expected pkg/msg/Name or "
            "pkg/action/Name_FeedbackMessage)")
    package, kind, name = parts
    try:
        module = importlib.import_module(f"{package}.{kind}")
    except ImportError as exc:
        raise UnknownMessageType(f"{type_name}: package {package!r} is not importable "
                                 f"({exc})") from None
    if kind == "msg":
        cls = getattr(module, name, None)
    else:
        cls = None
        for suffix, attribute in _ACTION_PARTS.items():
            if name.endswith(suffix):
                action = getattr(module, name[: -len(suffix)], None)
                cls = getattr(getattr(action, "Impl", None), attribute, None) if suffix in (
                    "_FeedbackMessage",) else getattr(action, attribute, None)
                break
    if cls is None:
        raise UnknownMessageType(f"{type_name}: no such type in {package}.{kind}")
    return cls
