"""Turn ROS messages into plain dicts (for ``--json`` output); rosidl_runtime_py is not a wheel."""

import math


def message_to_dict(message):
    """Return ``message`` as nested dicts/lists of Python scalars (NaN becomes None)."""
    if hasattr(message, "get_fields_and_field_types"):
        return {name: message_to_dict(getattr(message, name))
                for name in message.get_fields_and_field_types()}
    if isinstance(message, (list, tuple)) or hasattr(message, "tolist"):
        values = message.tolist() if hasattr(message, "tolist") else message
        return [message_to_dict(v) for v in values]
    if isinstance(message, float) and not math.isfinite(message):
        return None
    if isinstance(message, bytes):
        return list(message)
    return message
