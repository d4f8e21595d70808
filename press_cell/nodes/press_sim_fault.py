"""Parse the press node's ``sim_fault`` parameter into a ``SimulatedPress.inject_fault`` call.

Syntax (one fault per set; times on the simulated press's clock)::

    sensor_stuck | sensor_nan | sensor_noise_burst[:rms_n] | leak[:tau_s]
    | relief_trip[:force_n] | comms_stall[:duration_s] | clear

``clear`` ends every injected fault (a fault the supervisor latched stays until
``~/reset_fault``). Without a value the simulator's defaults apply (``press_sim`` module doc).
No rclpy here: the node calls ``parse_sim_fault`` in its parameter callback.
"""

import math
from dataclasses import dataclass, field

# fault name -> name of its optional value (None: takes no value)
SIM_FAULT_VALUES = {
    "sensor_stuck": None,
    "sensor_nan": None,
    "sensor_noise_burst": "rms_n",
    "leak": "tau_s",
    "relief_trip": "force_n",
    "comms_stall": "duration_s",
    "clear": None,
}


class SimFaultError(ValueError):
    """A ``sim_fault`` value is malformed; the message says what is allowed."""


@dataclass(frozen=True)
class SimFault:
    """One parsed fault: ``kind`` (a ``FaultKind`` value or "clear"), duration and parameters."""

    kind: str
    duration_s: float | None = None
    params: dict = field(default_factory=dict)


def _allowed() -> str:
    return ", ".join(name + (f"[:{value}]" if value else "")
                     for name, value in SIM_FAULT_VALUES.items())


def parse_sim_fault(text: str) -> SimFault:
    """Return the ``SimFault`` that ``text`` names; raise ``SimFaultError`` with the reason."""
    name, sep, raw = text.strip().partition(":")
    if name not in SIM_FAULT_VALUES:
        raise SimFaultError(f"sim_fault {text!r}: unknown fault {name!r}; allowed: {_allowed()}")
    value_name = SIM_FAULT_VALUES[name]
    if not sep:
        return SimFault(name)
    if value_name is None:
        raise SimFaultError(f"sim_fault {text!r}: {name} takes no value")
    try:
        value = float(raw)
    except ValueError:
        raise SimFaultError(f"sim_fault {text!r}: {value_name} must be a number") from None
    lowest_ok = value >= 0.0 if value_name == "force_n" else value > 0.0
    if not (math.isfinite(value) and lowest_ok):
        bound = ">= 0" if value_name == "force_n" else "> 0"
        raise SimFaultError(f"sim_fault {text!r}: {value_name} must be finite and {bound}")
    if value_name == "duration_s":
        return SimFault(name, duration_s=value)
    return SimFault(name, params={value_name: value})
