"""Abstract press driver: the contract every press backend (simulator, serial) fulfils.

Units are SI throughout: force in N, ram position in m, time in s. Die pressure is not a
driver concern: the control layer divides force by the contact area it was given.

Two command styles exist because real presses come in two kinds:

* ``PressMode.VALVE``: press_cell closes the force loop and commands a proportional
  valve / pump demand in [-1, 1] (positive pressurises, negative bleeds, 0 holds).
* ``PressMode.SUPERVISORY``: the press runs its own inner loop; press_cell streams a force
  setpoint and a ramp rate (the ASCII and Modbus presses of DESIGN.md section 6 work this way).

Every driver also has ``vent()``: open the dump valve, the fastest safe unload (e-stop path).
Drivers raise the exceptions below and never swallow a lost connection.
"""

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass


class PressError(Exception):
    """Base class of every press driver error."""


class PressConnectionError(PressError):
    """The link to the press is down (port gone, unplugged, no reply within the timeout)."""


class PressProtocolError(PressError):
    """The press sent a frame that does not parse, or answered with an error reply."""


class PressDeviceFault(PressError):
    """The press reported a fault of its own (relief trip, over-travel, internal watchdog)."""


class PressWatchdogTrip(PressDeviceFault):
    """The press's own comms watchdog vented it: its controller or the link went quiet.

    The press dumped its load by itself, so clearing this latch once the link is back applies
    nothing; a controller that (re)connects may clear it with ``reset_fault()``.
    """


class PressModeError(PressError):
    """A command was sent in a mode the press does not support."""


class PressMode(enum.Enum):
    """How press_cell commands the press."""

    VALVE = "valve"
    SUPERVISORY = "supervisory"


@dataclass(frozen=True)
class PressCapabilities:
    """What a press can do; fixed for the life of a connection."""

    model: str                      # human-readable model name
    rated_force_n: float            # press capacity, N (relief valve setting)
    modes: tuple                    # tuple of PressMode the press accepts
    max_read_rate_hz: float         # highest useful read rate (serial presses are slower), Hz
    force_full_scale_n: float       # load-cell full scale, N
    stroke_m: float                 # usable ram stroke, m


@dataclass(frozen=True)
class PressReading:
    """One sample from the press."""

    stamp_s: float                  # driver clock time of the sample, s
    force_n: float                  # load-cell force after tare, N (NaN when the sensor failed)
    ram_position_m: float           # ram travel from its home position, m (down = positive)
    relief_open: bool               # the relief valve is (or was, since the last read) open
    vented: bool                    # the dump valve is open: the press is unloading itself
    device_fault: str = ""          # fault text reported by the device; "" when healthy


class PressDriver(ABC):
    """A hydraulic press, simulated or real. Methods are called from the control-loop thread."""

    @property
    @abstractmethod
    def capabilities(self) -> PressCapabilities:
        """Return what this press can do (valid after ``connect``)."""

    @abstractmethod
    def connect(self) -> None:
        """Open the link to the press; raise ``PressConnectionError`` with a reason on failure."""

    @abstractmethod
    def disconnect(self) -> None:
        """Vent if possible, then close the link; safe to call twice."""

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Return whether the link is up."""

    @abstractmethod
    def self_check(self) -> None:
        """Check the press is healthy and unloaded; raise a ``PressError`` naming the problem."""

    @abstractmethod
    def read(self) -> PressReading:
        """Return the latest sample; raise ``PressConnectionError`` if the press does not answer."""

    @abstractmethod
    def command_valve(self, demand: float) -> None:
        """Set the valve demand in [-1, 1] (VALVE mode only; values outside are clamped)."""

    @abstractmethod
    def command_setpoint(self, force_n: float, ramp_n_s: float) -> None:
        """Ask the press's own loop to move to ``force_n`` at ``ramp_n_s`` (SUPERVISORY only)."""

    @abstractmethod
    def vent(self) -> None:
        """Open the dump valve: unload as fast as the hydraulics allow (e-stop path)."""

    @abstractmethod
    def tare(self, samples: int = 50) -> float:
        """Zero the load cell over ``samples`` averaged readings; return the offset removed, N."""
