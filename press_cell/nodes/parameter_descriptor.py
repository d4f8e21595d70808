"""Build ``ParameterDescriptor`` messages with a description and an optional range."""

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor


def describe(text: str, *, read_only: bool = False, floats: tuple | None = None,
             ints: tuple | None = None, name: str = "") -> ParameterDescriptor:
    """Return a descriptor: ``floats``/``ints`` are inclusive (low, high) ranges."""
    descriptor = ParameterDescriptor(name=name, description=text, read_only=read_only)
    if floats is not None:
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(floats[0]), to_value=float(floats[1]), step=0.0)]
    if ints is not None:
        descriptor.integer_range = [IntegerRange(from_value=int(ints[0]), to_value=int(ints[1]),
                                                 step=1)]
    return descriptor
