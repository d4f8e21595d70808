"""Simulated hydraulic press: a ``PressDriver`` on top of ``press_cell.physics.press_plant``.

The physics is integrated lazily: every read or command first integrates the plant from the
last call up to ``clock.now()`` in bounded sub-steps (``max_substep_s``), so the press behaves
the same at any call rate, in real time (``MonotonicClock``) or in lockstep with the control
loop (``SimulatedClock``). With equal seeds and equal call sequences the traces are identical.

Modes: both ``PressMode.VALVE`` (``command_valve``) and ``PressMode.SUPERVISORY``
(``command_setpoint``: the press's own inner loop tracks the setpoint at the ramp rate) are
available unless ``modes=`` restricts them; the last command decides which one drives the
valve. ``vent()`` opens the dump valve until the next command.

Watchdog (``watchdog_s``): if neither ``command_valve`` nor ``command_setpoint`` arrives within
``watchdog_s`` of clock time, the press vents itself at that instant and latches the device
fault "watchdog: ..."; commands then raise ``PressDeviceFault`` until ``reset_fault()``.
Serial press emulators reuse this.

Fault injection (``inject_fault(kind, duration_s=None, **params)``; ``clear_faults()``), all
timed on the driver clock, ``duration_s=None`` meaning until cleared:

* ``"sensor_stuck"``: the force reading freezes at its last value.
* ``"sensor_noise_burst"``: extra Gaussian noise, ``rms_n`` (default 2 % of full scale).
* ``"sensor_nan"``: the force reading is NaN.
* ``"leak"``: a large leak, time constant ``tau_s`` on a stiff load (default 0.005 s, which
  outruns the pump above ~10 % of the rating).
* ``"relief_trip"``: the relief valve opens at ``force_n`` (default 0 N, dumps the load);
  readings show ``relief_open`` and the device fault "relief trip"; commands are still
  accepted (the force just cannot rise above ``force_n``).
* ``"comms_stall"``: every call raises ``PressConnectionError`` while it lasts; the physics
  keeps running on the last command.

Tuning facts for an external VALVE-mode loop (defaults of ``HydraulicParams``): on a stiff
load the force rate at full demand is ``frame_stiffness_n_m * pump_speed_m_s`` = 5e4 N/s
(``HydraulicParams.plant_gain_n_s``), reached through a first-order lag of 0.25 s; a soft
specimen lowers that gain (a loose powder bed by ~100x at first); a foil that starts to flow
makes the force plateau while the ram advances. Leak-down 1000 s at zero demand.

Ground truth for tests: ``true_force_n``, ``ram_position_m``, ``specimen_thickness_m``,
``pressure_pa``, ``valve_state``, ``plant`` (the ``PressPlant``).

Public API::

    SimulatedPress(clock, rated_force_n=100e3, *, hydraulics=None, load_cell=None, seed=0,
                   specimen=None, temperature_k=298.15, modes=(VALVE, SUPERVISORY),
                   watchdog_s=None, max_substep_s=2e-3, initial_gap_m=0.0,
                   max_read_rate_hz=2000.0, model="press_cell simulated hydraulic press")
    PressDriver methods + sync(), load_specimen(specimen, initial_gap_m=0.0),
    set_temperature(temperature_k), inject_fault(kind, duration_s=None, **params),
    clear_faults(), active_faults, reset_fault(), FaultKind,
    SetpointRangeError (a PressModeError): setpoint outside [0, rated] N or ramp <= 0
"""

import enum
import logging
import math
import threading

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
from press_cell.physics.hydraulics import HydraulicParams
from press_cell.physics.load_cell import LoadCellParams
from press_cell.physics.press_plant import PlantMode, PressPlant, PressSpecimen
from press_cell.timebase import Clock

LOG = logging.getLogger(__name__)

ROOM_TEMPERATURE_K = 298.15


_VENT = PlantMode.VENT


class SimulatedPressConfigError(ValueError):
    """A simulator setting is out of range."""


class SetpointRangeError(PressModeError):
    """A supervisory setpoint or ramp is outside what the press accepts."""


class FaultKind(enum.Enum):
    """Faults the simulator can inject."""

    SENSOR_STUCK = "sensor_stuck"
    SENSOR_NOISE_BURST = "sensor_noise_burst"
    SENSOR_NAN = "sensor_nan"
    LEAK = "leak"
    RELIEF_TRIP = "relief_trip"
    COMMS_STALL = "comms_stall"


_FAULT_PARAMS = {
    FaultKind.SENSOR_STUCK: set(),
    FaultKind.SENSOR_NOISE_BURST: {"rms_n"},
    FaultKind.SENSOR_NAN: set(),
    FaultKind.LEAK: {"tau_s"},
    FaultKind.RELIEF_TRIP: {"force_n"},
    FaultKind.COMMS_STALL: set(),
}


class SimulatedPress(PressDriver):
    """A hydraulic press simulated from first principles; see the module docstring."""

    def __init__(self, clock: Clock, rated_force_n: float = 100e3, *,
                 hydraulics: HydraulicParams | None = None,
                 load_cell: LoadCellParams | None = None, seed: int = 0,
                 specimen: PressSpecimen | None = None,
                 temperature_k: float = ROOM_TEMPERATURE_K,
                 modes: tuple = (PressMode.VALVE, PressMode.SUPERVISORY),
                 watchdog_s: float | None = None, max_substep_s: float = 2e-3,
                 initial_gap_m: float = 0.0, max_read_rate_hz: float = 2000.0,
                 model: str = "press_cell simulated hydraulic press") -> None:
        if hydraulics is None:
            hydraulics = HydraulicParams(rated_force_n=rated_force_n)
        if load_cell is None:
            load_cell = LoadCellParams(full_scale_n=hydraulics.rated_force_n)
        if not modes or not all(isinstance(m, PressMode) for m in modes):
            raise SimulatedPressConfigError(f"modes must be a non-empty tuple of PressMode, "
                                            f"got {modes!r}")
        if watchdog_s is not None and not watchdog_s > 0.0:
            raise SimulatedPressConfigError(f"watchdog_s must be > 0 s or None, got {watchdog_s!r}")
        self._clock = clock
        self._lock = threading.RLock()
        self._plant = PressPlant(hydraulics, load_cell, seed=seed, specimen=specimen,
                                 temperature_k=temperature_k, max_substep_s=max_substep_s,
                                 initial_gap_m=initial_gap_m)
        self._caps = PressCapabilities(
            model=model, rated_force_n=hydraulics.rated_force_n, modes=tuple(modes),
            max_read_rate_hz=float(max_read_rate_hz), force_full_scale_n=load_cell.full_scale_n,
            stroke_m=hydraulics.stroke_m)
        self._watchdog_s = watchdog_s
        self._t_s = clock.now()
        self._last_command_s = self._t_s
        self._connected = False
        self._device_fault = ""
        self._latched = False           # watchdog trip: commands refused until reset_fault()
        self._faults: dict[FaultKind, dict] = {}
        self._last_force_reading_n = 0.0

    # ---- PressDriver ---------------------------------------------------------------------
    @property
    def capabilities(self) -> PressCapabilities:
        """Return what this press can do."""
        return self._caps

    def connect(self) -> None:
        """Open the (simulated) link."""
        with self._lock:
            self._sync()
            self._connected = True
            self._last_command_s = self._t_s

    def disconnect(self) -> None:
        """Vent and close the link; safe to call twice."""
        with self._lock:
            if self._connected:
                self._sync()
                self._plant.vent()
            self._connected = False

    @property
    def is_connected(self) -> bool:
        """Return whether the link is up."""
        return self._connected

    def self_check(self) -> None:
        """Raise a ``PressError`` if the press is faulted, loaded or its sensor is bad."""
        with self._lock:
            self._check_link()
            self._sync()
            if self._device_fault:
                error = PressWatchdogTrip if self._device_fault.startswith("watchdog") \
                    else PressDeviceFault
                raise error(f"press reports a fault: {self._device_fault}")
            reading = self._force_reading_n()
            if math.isnan(reading):
                raise PressDeviceFault("load cell reads NaN; check the sensor cable")
            limit = 0.02 * self._caps.force_full_scale_n
            if abs(reading) > limit:
                raise PressDeviceFault(
                    f"press is not unloaded: load cell reads {reading:.1f} N "
                    f"(allowed within +-{limit:.1f} N); vent and tare first"
                )

    def read(self) -> PressReading:
        """Return the latest sample at ``clock.now()``."""
        with self._lock:
            if self._faults or not self._connected:     # else _check_link() has nothing to do
                self._check_link()
            self._sync()
            plant = self._plant
            faults = self._faults
            relief = plant.relief_open or (bool(faults) and FaultKind.RELIEF_TRIP in faults)
            plant.clear_relief_flag()
            return PressReading(self._t_s, self._force_reading_n(), plant.ram_position_m,
                                relief, plant.mode is _VENT, self._device_fault)

    def command_valve(self, demand: float) -> None:
        """Set the valve demand in [-1, 1] (VALVE mode; clamped; NaN holds)."""
        with self._lock:
            self._check_command(PressMode.VALVE)
            self._plant.set_valve_demand(demand)

    def command_setpoint(self, force_n: float, ramp_n_s: float) -> None:
        """Let the press's own loop move to ``force_n`` (N) at ``ramp_n_s`` (N/s)."""
        with self._lock:
            self._check_command(PressMode.SUPERVISORY)
            rated = self._caps.rated_force_n
            if not (math.isfinite(force_n) and 0.0 <= force_n <= rated):
                raise SetpointRangeError(
                    f"setpoint must be in [0, {rated}] N (the press rating), got {force_n!r}")
            if not (math.isfinite(ramp_n_s) and ramp_n_s > 0.0):
                raise SetpointRangeError(f"ramp must be a finite rate > 0 N/s, got {ramp_n_s!r}")
            self._plant.set_force_setpoint(force_n, ramp_n_s)

    def vent(self) -> None:
        """Open the dump valve until the next command."""
        with self._lock:
            self._check_link()
            self._sync()
            self._plant.vent()

    def tare(self, samples: int = 50) -> float:
        """Zero the load cell over ``samples`` readings at the present load; return N."""
        with self._lock:
            self._check_link()
            self._sync()
            if samples < 1:
                raise PressError(f"tare needs at least 1 sample, got {samples!r}")
            return self._plant.tare(samples)

    # ---- simulator extras ----------------------------------------------------------------
    def sync(self) -> None:
        """Integrate the physics up to ``clock.now()`` (every read and command does this).

        Call it before inspecting a specimen object directly (``foil.contact_fraction``):
        specimens are only stepped when the press is touched.
        """
        with self._lock:
            self._sync()

    def load_specimen(self, specimen: PressSpecimen | None, initial_gap_m: float = 0.0) -> None:
        """Put ``specimen`` under the ram (press must be unloaded; vent first)."""
        with self._lock:
            self._sync()
            self._plant.load_specimen(specimen, initial_gap_m)

    def set_temperature(self, temperature_k: float) -> None:
        """Set the specimen temperature, K (from now on)."""
        if not temperature_k > 0.0:
            raise SimulatedPressConfigError(f"temperature must be > 0 K, got {temperature_k!r}")
        with self._lock:
            self._sync()
            self._plant.temperature_k = float(temperature_k)

    def inject_fault(self, kind, duration_s: float | None = None, **params) -> None:
        """Start fault ``kind`` (``FaultKind`` or its value) now, for ``duration_s`` or ever."""
        kind = FaultKind(kind)
        unknown = set(params) - _FAULT_PARAMS[kind]
        if unknown:
            raise SimulatedPressConfigError(
                f"fault {kind.value} takes {sorted(_FAULT_PARAMS[kind]) or 'no'} parameters, "
                f"got {sorted(unknown)}"
            )
        if duration_s is not None and not duration_s > 0.0:
            raise SimulatedPressConfigError(f"duration_s must be > 0 s or None, got {duration_s!r}")
        with self._lock:
            self._sync()
            end = math.inf if duration_s is None else self._t_s + duration_s
            fault = {"end_s": end, **params}
            if kind is FaultKind.SENSOR_STUCK:
                fault["value_n"] = self._last_force_reading_n
            self._faults[kind] = fault
            self._apply_faults()
            LOG.info("simulated press: injected fault %s %s", kind.value, params)

    def clear_faults(self) -> None:
        """End every injected fault (latched device faults stay until ``reset_fault``)."""
        with self._lock:
            self._sync()
            self._faults.clear()
            self._apply_faults()

    @property
    def active_faults(self) -> tuple:
        """Return the injected faults in force, as ``FaultKind`` values."""
        with self._lock:
            return tuple(self._faults)

    def reset_fault(self) -> None:
        """Clear a latched device fault (watchdog); the press stays vented until commanded."""
        with self._lock:
            self._sync()
            self._latched = False
            self._device_fault = ""
            self._apply_faults()
            self._last_command_s = self._t_s

    # ---- ground truth --------------------------------------------------------------------
    @property
    def plant(self) -> PressPlant:
        """Return the underlying plant (ground truth; do not command it directly)."""
        return self._plant

    @property
    def true_force_n(self) -> float:
        """Return the true ram force at ``clock.now()``, N."""
        with self._lock:
            self._sync()
            return self._plant.true_force_n

    @property
    def ram_position_m(self) -> float:
        """Return the true ram travel at ``clock.now()``, m."""
        with self._lock:
            self._sync()
            return self._plant.ram_position_m

    @property
    def specimen_thickness_m(self) -> float:
        """Return the true specimen thickness at ``clock.now()``, m (NaN without one)."""
        with self._lock:
            self._sync()
            return self._plant.specimen_thickness_m

    @property
    def pressure_pa(self) -> float:
        """Return the true pressure on the specimen at ``clock.now()``, Pa."""
        with self._lock:
            self._sync()
            return self._plant.pressure_pa

    @property
    def valve_state(self) -> float:
        """Return the lagged valve opening in [-1, 1]."""
        with self._lock:
            self._sync()
            return self._plant.valve_state

    # ---- internals -----------------------------------------------------------------------
    def _check_link(self) -> None:
        if not self._connected:
            raise PressConnectionError("simulated press is not connected; call connect() first")
        if not self._faults:
            return          # nothing to expire or stall: the path of every healthy loop cycle
        self._expire_faults(self._clock.now())
        if FaultKind.COMMS_STALL in self._faults:
            raise PressConnectionError("simulated press does not answer (comms stall injected)")

    def _check_command(self, mode: PressMode) -> None:
        if self._faults or not self._connected:     # else _check_link() has nothing to do
            self._check_link()
        if mode not in self._caps.modes:
            raise PressModeError(
                f"{mode.value} commands are not supported by this press "
                f"(modes: {[m.value for m in self._caps.modes]})"
            )
        self._sync()
        if self._latched:
            raise PressDeviceFault(
                f"press fault latched: {self._device_fault}; call reset_fault() first")
        self._last_command_s = self._t_s

    def _force_reading_n(self) -> float:
        faults = self._faults
        if faults:
            if FaultKind.SENSOR_NAN in faults:
                return math.nan
            if FaultKind.SENSOR_STUCK in faults:
                return faults[FaultKind.SENSOR_STUCK]["value_n"]
        value = self._plant.sensor_force_n()
        self._last_force_reading_n = value
        return value

    def _apply_faults(self) -> None:
        plant = self._plant
        burst = self._faults.get(FaultKind.SENSOR_NOISE_BURST)
        plant.load_cell.extra_noise_rms_n = (
            0.0 if burst is None
            else float(burst.get("rms_n", 0.02 * plant.load_cell.params.full_scale_n)))
        leak = self._faults.get(FaultKind.LEAK)
        plant.ram.extra_leak_tau_s = math.inf if leak is None else float(leak.get("tau_s", 0.005))
        trip = self._faults.get(FaultKind.RELIEF_TRIP)
        if trip is None:
            plant.relief_force_n = plant.hydraulics.relief_force_n
            if self._device_fault == "relief trip" and not self._latched:
                self._device_fault = ""
        else:
            plant.relief_force_n = max(0.0, float(trip.get("force_n", 0.0)))
            if not self._device_fault:
                self._device_fault = "relief trip"

    def _expire_faults(self, now_s: float) -> None:
        expired = [k for k, f in self._faults.items() if f["end_s"] <= now_s]
        for kind in expired:
            del self._faults[kind]
        if expired:
            self._apply_faults()

    def _sync(self) -> None:
        """Integrate the plant up to ``clock.now()``, honouring fault ends and the watchdog."""
        now = self._clock.now()
        if not now > self._t_s:
            return
        if not self._faults and self._watchdog_s is None:
            # No fault can end and no watchdog can fire: one stretch up to now (what the loop
            # below does in this case, without its bookkeeping).
            self._plant.advance(now - self._t_s)
            self._t_s = now
            return
        while now > self._t_s:
            stop = now
            if self._faults:
                fault_ends = [f["end_s"] for f in self._faults.values() if f["end_s"] > self._t_s]
                if fault_ends:
                    stop = min(stop, min(fault_ends))
            deadline = math.inf
            if (self._watchdog_s is not None and self._connected and not self._latched
                    and self._plant.mode in (PlantMode.VALVE, PlantMode.SUPERVISORY)):
                deadline = self._last_command_s + self._watchdog_s
                stop = min(stop, max(deadline, self._t_s))
            self._plant.advance(stop - self._t_s)
            self._t_s = stop
            if self._faults:
                self._expire_faults(self._t_s)
            if self._t_s >= deadline:
                self._plant.vent()
                self._latched = True
                self._device_fault = (
                    f"watchdog: no command for {self._watchdog_s:.3f} s, press vented")
                LOG.warning("simulated press: %s", self._device_fault)
