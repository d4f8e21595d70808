"""Behaviour shared by the serial SUPERVISORY presses (ASCII and Modbus RTU, DESIGN.md section 6).

Both protocols carry the same press model: the press runs its own force loop and accepts a
pressure setpoint (MPa) and ramp rate (MPa/s); it converts MPa <-> N with the die diameter the
host sets at connect time. This base class turns the ``PressDriver`` contract (SI, force in N)
into those lab-unit commands and owns the connection policy; a subclass only moves bytes.

Connection policy (documented in doc/press_protocols.md, "Host driver behaviour"):

* Every exchange is bounded by ``timeout_s``; nothing blocks longer.
* A timeout, a closed port or an OS error raises ``PressConnectionError`` and marks the link
  down (``is_connected`` is False). Nothing reconnects behind the caller's back: the control
  loop decides (its safety supervisor must see the loss). ``reconnect()`` then retries
  ``connect()`` with exponential backoff (``reconnect_base_delay_s`` doubling up to
  ``reconnect_max_delay_s``, ``reconnect_attempts`` tries) and never re-sends a setpoint.
* A reply that does not parse raises ``PressProtocolError``; idempotent queries and setters
  are retried once after discarding the input buffer (line noise), commands with side effects
  (tare) are not.
* A fault the press reports (watchdog trip, relief, sensor) raises ``PressDeviceFault`` when a
  command is refused because of it; ``read()`` reports it in ``PressReading.device_fault``.
"""

from __future__ import annotations

import logging
import math
import time
from abc import abstractmethod

from press_cell.hardware.press_ascii_protocol import (
    FaultCode,
    IdentityReply,
    LoadReply,
    Phase,
    StateReply,
    StatusFlag,
)
from press_cell.hardware.press_driver import (
    PressCapabilities,
    PressConnectionError,
    PressDeviceFault,
    PressDriver,
    PressError,
    PressMode,
    PressModeError,
    PressReading,
    PressWatchdogTrip,
)
from press_cell.timebase import Clock, MonotonicClock

_LOG = logging.getLogger(__name__)

FAULT_TEXT = {
    FaultCode.NONE: "",
    FaultCode.WATCHDOG: "comms watchdog tripped: the press vented itself",
    FaultCode.RELIEF: "relief valve tripped",
    FaultCode.SENSOR: "load cell failed",
    FaultCode.OVERTRAVEL: "ram over-travel",
    FaultCode.DEVICE: "internal press fault",
}
UNLOADED_FRACTION_OF_FS = 0.02  # self_check: |force| < 2 % FS is unloaded (as SimulatedPress) [est]


class PressCommandRangeError(PressError, ValueError):
    """A setpoint or ramp cannot be expressed in the protocol (negative, above rating, ...)."""


def _check_die(die_diameter_m: float) -> None:
    """Raise PressCommandRangeError unless the die fits the protocol's DD field."""
    if not 0.001 <= die_diameter_m <= 0.099999:
        raise PressCommandRangeError(
            f"die_diameter_m={die_diameter_m!r} outside the protocol range 0.001-0.099999 m"
        )


class SupervisorySerialPress(PressDriver):
    """A serial press with its own inner loop; subclasses implement the transport hooks."""

    setpoint_decimals: int | None = 1   # wire resolution of the setpoint, MPa decimals; None: exact

    def __init__(
        self,
        *,
        die_diameter_m: float = 0.013,
        timeout_s: float = 0.25,
        watchdog_s: float = 0.5,
        clock: Clock | None = None,
        reconnect_attempts: int = 5,
        reconnect_base_delay_s: float = 0.05,
        reconnect_max_delay_s: float = 1.0,
    ) -> None:
        _check_die(die_diameter_m)
        if not timeout_s > 0.0:
            raise PressCommandRangeError(f"timeout_s must be > 0, got {timeout_s!r}")
        if not (watchdog_s == 0.0 or 0.05 <= watchdog_s <= 9.999):
            raise PressCommandRangeError(
                f"watchdog_s={watchdog_s!r}: allowed 0 (off) or 0.05-9.999 s"
            )
        self.die_diameter_m = float(die_diameter_m)
        self.timeout_s = float(timeout_s)
        self.watchdog_s = float(watchdog_s)
        self.clock = clock or MonotonicClock()
        self.reconnect_attempts = int(reconnect_attempts)
        self.reconnect_base_delay_s = float(reconnect_base_delay_s)
        self.reconnect_max_delay_s = float(reconnect_max_delay_s)
        self._capabilities: PressCapabilities | None = None
        self._connected = False
        self._running = False
        self._ramp_mpa_s: float | None = None
        self._setpoint_mpa: float | None = None
        self._fault_text = ""

    # ----- transport hooks (one round trip each; raise PressError subclasses) -----
    @abstractmethod
    def _open(self) -> None:
        """Open the port (no traffic yet)."""

    @abstractmethod
    def _close(self) -> None:
        """Close the port; must not raise."""

    @abstractmethod
    def _identify(self) -> IdentityReply:
        """Return the press identity."""

    @abstractmethod
    def _configure(self, die_mm: float, watchdog_ms: float) -> None:
        """Set die diameter (mm), comms watchdog (ms, 0 = off) and hold time 0 (hold until S)."""

    @abstractmethod
    def _set_die(self, die_mm: float) -> None:
        """Set the die diameter, mm."""

    @abstractmethod
    def _load(self) -> LoadReply:
        """Return the load line (force, pressure, position, flags)."""

    @abstractmethod
    def _state(self) -> StateReply:
        """Return the full state."""

    @abstractmethod
    def _set_ramp(self, ramp_mpa_s: float) -> None:
        """Set the ramp rate, MPa/s."""

    @abstractmethod
    def _set_setpoint(self, setpoint_mpa: float) -> None:
        """Set the pressure setpoint, MPa."""

    @abstractmethod
    def _go(self) -> None:
        """Start (or retarget) the press's loop."""

    @abstractmethod
    def _stop(self) -> None:
        """Unload under control at the ramp rate."""

    @abstractmethod
    def _vent(self) -> None:
        """Open the dump valve."""

    @abstractmethod
    def _tare(self, samples: int) -> float:
        """Tare over ``samples`` readings; return the offset removed, kN."""

    @abstractmethod
    def _reset(self) -> None:
        """Clear a latched fault."""

    @abstractmethod
    def _max_read_rate_hz(self) -> float:
        """Return the highest useful poll rate of this link, Hz."""

    # ----- PressDriver contract -----
    @property
    def die_area_m2(self) -> float:
        """Return the die face area the press converts with, m^2."""
        return math.pi * self.die_diameter_m**2 / 4.0

    @property
    def capabilities(self) -> PressCapabilities:
        """Return the press's capabilities (from its identity reply at connect)."""
        if self._capabilities is None:
            raise PressConnectionError("capabilities are known only after connect()")
        return self._capabilities

    @property
    def is_connected(self) -> bool:
        """Return whether the link is up (False after any connection error)."""
        return self._connected

    def connect(self) -> None:
        """Open the port, identify the press and configure die, watchdog and hold time."""
        self._drop_link()
        self._open()
        self._connected = True
        try:
            ident = self._identify()
            self._configure(self.die_diameter_m * 1e3, self.watchdog_s * 1e3)
        except PressError:
            self._drop_link()
            raise
        self._capabilities = PressCapabilities(
            model=ident.model,
            rated_force_n=ident.rated_kn * 1e3,
            modes=(PressMode.SUPERVISORY,),
            max_read_rate_hz=self._max_read_rate_hz(),
            force_full_scale_n=ident.full_scale_kn * 1e3,
            stroke_m=ident.stroke_mm * 1e-3,
        )
        self._running = False
        self._ramp_mpa_s = None
        _LOG.info("connected to press %s (rated %.1f kN)", ident.model, ident.rated_kn)

    def reconnect(self) -> None:
        """Retry ``connect`` with exponential backoff; raise PressConnectionError when all fail."""
        delay_s = self.reconnect_base_delay_s
        last: PressError | None = None
        for attempt in range(1, self.reconnect_attempts + 1):
            try:
                self.connect()
                _LOG.info("reconnected on attempt %d", attempt)
                return
            except PressError as exc:
                last = exc
                _LOG.warning("reconnect attempt %d/%d failed: %s",
                             attempt, self.reconnect_attempts, exc)
            if attempt < self.reconnect_attempts:
                time.sleep(delay_s)
                delay_s = min(2.0 * delay_s, self.reconnect_max_delay_s)
        raise PressConnectionError(
            f"press did not come back after {self.reconnect_attempts} attempts: {last}"
        )

    def disconnect(self) -> None:
        """Vent if the link still answers, then close the port; safe to call twice."""
        if self._connected:
            try:
                self._vent()
            except PressError as exc:
                _LOG.warning("could not vent before disconnecting: %s", exc)
        self._drop_link()

    def _drop_link(self) -> None:
        """Close the port and mark the link down."""
        self._connected = False
        self._running = False
        self._close()

    def _require_link(self) -> None:
        """Raise PressConnectionError if the link is down."""
        if not self._connected:
            raise PressConnectionError("press link is down: call connect() or reconnect()")

    def self_check(self) -> None:
        """Check the press is healthy, not faulted and unloaded; raise a PressError if not."""
        self._require_link()
        state = self._state()
        if state.fault is not FaultCode.NONE:
            error = PressWatchdogTrip if state.fault is FaultCode.WATCHDOG else PressDeviceFault
            raise error(
                f"press reports fault E{int(state.fault):02d} ({FAULT_TEXT[state.fault]}); "
                "clear it with reset_fault() once the cause is fixed"
            )
        if state.load.flags & StatusFlag.SENSOR:
            raise PressDeviceFault("press reports a failed load cell (status flag SENSOR)")
        limit_kn = UNLOADED_FRACTION_OF_FS * self.capabilities.force_full_scale_n * 1e-3
        if abs(state.load.force_kn) > limit_kn or state.phase in (Phase.RAMP, Phase.HOLD):
            raise PressDeviceFault(
                f"press is not unloaded: {state.load.force_kn:.3f} kN in phase "
                f"{state.phase.name} (allowed: |force| <= {limit_kn:.3f} kN, phase IDLE/VENTED)"
            )
        if abs(state.die_mm - self.die_diameter_m * 1e3) > 0.0005:
            raise PressError(
                f"press converts with a {state.die_mm:.3f} mm die, driver expects "
                f"{self.die_diameter_m * 1e3:.3f} mm"
            )

    def set_die_diameter(self, die_diameter_m: float) -> None:
        """Tell the press another die (m) for its MPa <-> N conversion; refused while loaded.

        Forces stay exact whatever die is set (driver and press convert with the same one);
        the die matters for the pressure the press displays and reports.
        """
        _check_die(die_diameter_m)
        if self._connected:
            self._set_die(die_diameter_m * 1e3)
            self._setpoint_mpa = None
        self.die_diameter_m = float(die_diameter_m)

    def state(self) -> StateReply:
        """Return the press's full state (phase, setpoint in MPa, fault code, ...), lab units."""
        self._require_link()
        return self._state()

    def read(self) -> PressReading:
        """Poll the load line and return it in SI units."""
        self._require_link()
        load = self._load()
        stamp_s = self.clock.now()
        self._running = bool(load.flags & StatusFlag.RUN)
        if load.flags & StatusFlag.FAULT:
            if not self._fault_text:
                state = self._state()
                self._fault_text = FAULT_TEXT.get(state.fault) or "fault flag set"
        else:
            self._fault_text = ""
        force_n = math.nan if load.flags & StatusFlag.SENSOR else load.force_kn * 1e3
        return PressReading(
            stamp_s=stamp_s,
            force_n=force_n,
            ram_position_m=load.position_mm * 1e-3,
            relief_open=bool(load.flags & StatusFlag.RELIEF),
            vented=bool(load.flags & StatusFlag.VENT),
            device_fault=self._fault_text,
        )

    def command_valve(self, demand: float) -> None:
        """Refuse: a supervisory press has no valve interface."""
        raise PressModeError(
            f"{type(self).__name__} is a SUPERVISORY press (own inner loop); "
            "use command_setpoint(force_n, ramp_n_s), not command_valve"
        )

    def command_setpoint(self, force_n: float, ramp_n_s: float) -> None:
        """Send setpoint and ramp (converted to MPa with the die area) and start if idle."""
        self._require_link()
        rated_n = self.capabilities.rated_force_n
        if not 0.0 <= force_n <= rated_n:
            raise PressCommandRangeError(
                f"force setpoint {force_n!r} N outside 0..{rated_n:.0f} N (press rating)"
            )
        ramp_mpa_s = ramp_n_s / self.die_area_m2 * 1e-6
        if not 0.1 <= round(ramp_mpa_s, 1) <= 999.9:
            raise PressCommandRangeError(
                f"ramp {ramp_n_s!r} N/s is {ramp_mpa_s:.3f} MPa/s on a "
                f"{self.die_diameter_m * 1e3:.3f} mm die; allowed 0.1-999.9 MPa/s"
            )
        setpoint_mpa = force_n / self.die_area_m2 * 1e-6
        if round(setpoint_mpa, 1) > 9999.9:
            raise PressCommandRangeError(f"setpoint {setpoint_mpa:.1f} MPa above 9999.9 MPa")
        if self._ramp_mpa_s != round(ramp_mpa_s, 1):
            self._set_ramp(ramp_mpa_s)
            self._ramp_mpa_s = round(ramp_mpa_s, 1)
        # While running, an unchanged setpoint is not sent again: it would change nothing at
        # the press and costs a round trip (16 ms on a USB adapter). read() feeds the watchdog.
        wire_mpa = setpoint_mpa if self.setpoint_decimals is None \
            else round(setpoint_mpa, self.setpoint_decimals)
        if not (self._running and self._setpoint_mpa == wire_mpa):
            self._set_setpoint(setpoint_mpa)
            self._setpoint_mpa = wire_mpa
        if not self._running:
            self._go()
            self._running = True

    def stop(self) -> None:
        """Unload at the current ramp rate (controlled release, not the e-stop path)."""
        self._require_link()
        self._stop()
        self._running = False

    def vent(self) -> None:
        """Open the dump valve (e-stop path)."""
        self._require_link()
        self._vent()
        self._running = False

    def tare(self, samples: int = 50) -> float:
        """Tare the press's load cell over ``samples`` (1-999) readings; return the offset, N."""
        self._require_link()
        if not 1 <= samples <= 999:
            raise PressCommandRangeError(f"tare samples {samples!r} outside 1..999")
        return self._tare(int(samples)) * 1e3

    def reset_fault(self) -> None:
        """Clear a latched press fault (the press stays unloaded; nothing is re-applied)."""
        self._require_link()
        self._reset()
        self._fault_text = ""
        self._running = False
