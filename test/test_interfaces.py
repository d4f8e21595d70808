"""Every press_cell message, service and action imports and round-trips through CDR."""

import importlib
import math
from pathlib import Path

import pytest
from rclpy.serialization import deserialize_message, serialize_message

REPO = Path(__file__).resolve().parent.parent


def _interface_classes():
    classes = []
    for folder, parts in (("msg", [""]), ("srv", ["Request", "Response"]),
                          ("action", ["Goal", "Result", "Feedback"])):
        module = importlib.import_module(f"press_cell.{folder}")
        for path in sorted((REPO / folder).glob(f"*.{folder}")):
            interface = getattr(module, path.stem)
            for part in parts:
                classes.append(getattr(interface, part) if part else interface)
    return classes


INTERFACES = _interface_classes()


def test_every_interface_file_was_generated():
    files = [p for ext in ("msg", "srv", "action") for p in (REPO / ext).glob(f"*.{ext}")]
    expected = {"PressState", "PressSegment", "PressCertificate", "ImpedanceSpectrum",
                "CircuitFit", "CellRecord", "ControllerTiming", "PressCycle", "PlaceComponent",
                "MeasureImpedance", "AssembleCell", "Tare", "ResetFault", "ZoneLease"}
    assert expected <= {p.stem for p in files}
    assert len(INTERFACES) == sum({"msg": 1, "srv": 2, "action": 3}[p.suffix[1:]] for p in files)


def _fill(message, depth=0):
    """Set every plain field of message to a non-default value; recurse into nested messages."""
    for name, kind in message.get_fields_and_field_types().items():
        value = getattr(message, name)
        if kind in ("double", "float"):
            setattr(message, name, 1.25e6 + depth)
        elif kind.startswith(("int", "uint")):
            setattr(message, name, 7)
        elif kind == "boolean":
            setattr(message, name, True)
        elif kind == "string":
            setattr(message, name, f"{name}-µ")
        elif kind.startswith("sequence<double"):
            setattr(message, name, [1.0, -2.5, math.pi])
        elif kind.startswith("sequence<string"):
            setattr(message, name, ["a", "b"])
        elif hasattr(value, "get_fields_and_field_types") and depth < 3:
            _fill(value, depth + 1)


@pytest.mark.parametrize("cls", INTERFACES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_round_trip_through_cdr(cls):
    message = cls()
    _fill(message)
    data = serialize_message(message)
    assert deserialize_message(data, cls) == message
    assert deserialize_message(serialize_message(cls()), cls) == cls()


def test_constants_follow_the_documented_codes():
    from press_cell.action import AssembleCell, MeasureImpedance, PlaceComponent, PressCycle
    from press_cell.msg import PressSegment, PressState

    assert PressCycle.Result.NONE == 0 and PressCycle.Result.OVER_LIMIT == 103
    assert PlaceComponent.Result.ZONE_DENIED == 209
    assert MeasureImpedance.Result.OVERLOAD == 303
    assert AssembleCell.Result.REJECTED == 405
    assert PressState.PHASE_FAULT == 5 and PressSegment.KIND_RELEASE == 2
