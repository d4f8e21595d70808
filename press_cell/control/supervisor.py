"""Safety supervisor: checks every control cycle and latches named faults until an explicit reset.

Checks (DESIGN.md section 5), in the order they are evaluated each cycle:

* e-stop (latched by ``estop()``), device-reported fault or relief trip (``DEVICE_FAULT``);
* comms watchdog: the driver raised ``PressConnectionError`` or the sample stamp has not moved
  for ``watchdog_s`` (``DISCONNECTED``);
* sensor plausibility (``SENSOR_FAULT``): NaN/inf force; a reading that does not change at all
  for ``stuck_time_s`` while the valve demands motion, or ``stuck_hold_time_s`` while the press
  merely holds a load (a live 24-bit indicator always shows noise); a jump between
  consecutive samples larger than ``jump_fraction_fs`` of full scale; a noise level (rms of
  the second difference of the samples, EWMA over ``noise_time_s``) above
  ``noise_limit_fraction_fs`` of full scale;
* ``OVERPRESSURE``: measured pressure above the limit = min(press capacity, die rating, recipe
  limit) / area, or measured force above min(press capacity, die rating);
* ``RATE_LIMIT``: rate of rise (over ``rate_window_s``) above ``max_rate_pa_s`` for
  ``rate_debounce_s``, and at least ``RATE_DEBOUNCE_MIN_CYCLES`` loop cycles (one noisy sample
  is the noise detector's business, not a runaway);
* arm-in-press-zone interlock (``ZONE_OCCUPIED``): the lease is held while the press is
  pressurised or a cycle is running;
* ``TRACKING_FAULT``: |setpoint - pressure| above the tracking band for ``tracking_time_s``;
  a hold that keeps pumping above ``leak_demand_limit`` of full demand for ``leak_time_s``
  without gaining pressure (a big leak, or a dead pump) is a ``DEVICE_FAULT``, and so is a hold
  whose pressure stays more than the tracking band below its highest value (up to the
  setpoint) for
  ``leak_fall_time_s`` while the valve pumps (a leak that outruns the pump; found by the fault
  suite: the pump's slow gain kept the first rule from tripping, so such a leak was only named
  a tracking fault, and released under control, 2 s later).

Fault response (who releases how, ``Fault.release``): VENT (dump valve, fastest unload) for
e-stop, overpressure, rate limit, sensor fault (a controlled release needs a sensor we no longer
trust), disconnection (the valve may no longer be ours to command), device fault/relief trip
(including the big-leak fault: a leaking press is not to be trusted with a slow unload) and zone
occupation (a person or the arm may be at the tool). CONTROLLED release at the recipe's release
rate for tracking faults: the press and its sensor are still trustworthy and a gentle unload
spares the part; the runtime vents anyway when that release does not progress.

Recovery never re-applies a stale setpoint: ``reset()`` only clears the latch; the runtime ends
the cycle and restarts from the measured state. ``check`` is loop-safe (no allocation beyond
a fault record when one trips, no locks).
"""

import enum
import math
from collections import deque
from dataclasses import dataclass

_isfinite = math.isfinite

RATE_DEBOUNCE_MIN_CYCLES = 4     # fewest loop cycles a rate above the limit must last [est]

# Error codes of action/PressCycle.action, by name.
ERROR_CODES = {
    "NONE": 0, "UNKNOWN": 100, "INVALID_GOAL": 101, "BUSY": 102, "OVER_LIMIT": 103,
    "ZONE_OCCUPIED": 104, "CANCELED": 105, "ESTOP": 106, "SENSOR_FAULT": 107,
    "OVERPRESSURE": 108, "RATE_LIMIT": 109, "DISCONNECTED": 110, "DEVICE_FAULT": 111,
    "TRACKING_FAULT": 112, "NOT_ACTIVE": 113,
}


class FaultKind(enum.Enum):
    """A latched fault; the value is the PressCycle result error-code name."""

    ESTOP = "ESTOP"
    SENSOR_FAULT = "SENSOR_FAULT"
    OVERPRESSURE = "OVERPRESSURE"
    RATE_LIMIT = "RATE_LIMIT"
    DISCONNECTED = "DISCONNECTED"
    DEVICE_FAULT = "DEVICE_FAULT"
    TRACKING_FAULT = "TRACKING_FAULT"
    ZONE_OCCUPIED = "ZONE_OCCUPIED"

    @property
    def code(self) -> int:
        """Return the numeric PressCycle error code."""
        return ERROR_CODES[self.value]


class ReleaseMode(enum.Enum):
    """How the press is unloaded after a fault."""

    VENT = "vent"
    CONTROLLED = "controlled"


_RELEASE = {
    FaultKind.TRACKING_FAULT: ReleaseMode.CONTROLLED,
}


@dataclass(frozen=True)
class Fault:
    """A latched fault with the reason a user can act on."""

    kind: FaultKind
    message: str
    stamp_s: float              # clock time the fault tripped, s
    release: ReleaseMode

    @property
    def code(self) -> int:
        """Return the numeric PressCycle error code."""
        return self.kind.code


class LimitsError(ValueError):
    """A safety limit is missing or not physical."""


@dataclass(frozen=True)
class SafetyLimits:
    """Limits and detector settings of the supervisor (per press; recipe limit per cycle)."""

    press_capacity_n: float                 # press rating / relief setting, N
    die_rated_force_n: float = math.inf     # die maker's limit, N
    max_rate_pa_s: float = 50e6             # rate-of-rise limit, Pa/s [est, 50 MPa/s]
    rate_window_s: float = 0.02             # window of the rate estimate, s [est]
    rate_debounce_s: float = 0.01           # rate above the limit this long -> fault, s [est]
    force_full_scale_n: float = math.nan    # load-cell full scale, N; NaN -> press capacity
    watchdog_s: float = 0.05                # no fresh sample for this long -> DISCONNECTED, s
    stuck_time_s: float = 0.1               # identical readings while demanding motion, s [est]
    stuck_hold_time_s: float = 2.0          # identical readings under load at rest, s [est: a
    #                                         serial indicator with 1 N counts can sit still for
    #                                         a while in a quiet hold; a live one never does]
    stuck_demand: float = 0.01              # |demand| above which the reading must move, 1 [est]
    jump_fraction_fs: float = 0.05          # implausible sample-to-sample change / FS, 1 [est]
    noise_limit_fraction_fs: float = 2e-3   # rms noise limit / FS (10x a 0.1 % class cell) [est]
    noise_time_s: float = 0.05              # EWMA time constant of the noise estimate, s [est]
    tracking_fraction: float = 0.05         # tracking band / cycle's peak target, 1 [est]
    tracking_min_pa: float = 0.5e6          # smallest tracking band, Pa [est]
    tracking_time_s: float = 2.0            # out of the tracking band this long -> fault, s [est]
    leak_demand_limit: float = 0.3          # pumping demand in a hold above this -> leak [est]
    leak_time_s: float = 0.5                # leak demand sustained this long -> fault, s [est]
    leak_fall_time_s: float = 0.05          # a hold a band below its peak this long while
    #                                         pumping -> leak, s [est: 10 noise time constants
    #                                         would be 0.5 s; a noise burst trips the noise
    #                                         detector within ~0.02 s, so 0.05 s keeps it first]
    headroom_fraction: float = 0.01         # targets must stay this far below the limit, 1 [est]

    def __post_init__(self) -> None:
        """Validate limits and fill the load-cell full scale."""
        for name in ("press_capacity_n", "max_rate_pa_s", "rate_window_s", "rate_debounce_s",
                     "watchdog_s", "stuck_time_s", "stuck_hold_time_s", "tracking_time_s",
                     "leak_time_s", "leak_fall_time_s", "noise_time_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise LimitsError(f"{name}={value!r} must be a finite number > 0")
        if not self.die_rated_force_n > 0.0:
            raise LimitsError(f"die_rated_force_n={self.die_rated_force_n!r} must be > 0")
        if math.isnan(self.force_full_scale_n):
            object.__setattr__(self, "force_full_scale_n", float(self.press_capacity_n))
        for name in ("jump_fraction_fs", "noise_limit_fraction_fs", "tracking_fraction",
                     "headroom_fraction", "stuck_demand", "leak_demand_limit"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise LimitsError(f"{name}={value!r} must be in (0, 1)")

    @property
    def force_limit_n(self) -> float:
        """Return min(press capacity, die rating), N."""
        return min(self.press_capacity_n, self.die_rated_force_n)

    def pressure_limit_pa(self, contact_area_m2: float,
                          recipe_max_pressure_pa: float = math.inf) -> float:
        """Return min(press capacity, die rating, recipe limit) as a die pressure, Pa."""
        return min(self.force_limit_n / contact_area_m2, recipe_max_pressure_pa)


@dataclass(slots=True)
class SupervisorInput:
    """What the supervisor sees in one cycle (mutable so the loop can refill one instance)."""

    now_s: float                # clock time, s
    force_n: float              # measured force, N (NaN when no sample this cycle)
    pressure_pa: float          # measured die pressure, Pa
    sample_stamp_s: float       # stamp of the newest sample, s (NaN if none yet)
    comms_error: str            # text of a PressConnectionError this cycle, "" if none
    device_fault: str           # device-reported fault text, "" if none
    relief_open: bool
    demand: float               # valve demand commanded last cycle, 1
    active: bool                # a cycle (ramp/hold/release) is running
    setpoint_pa: float          # current setpoint, Pa (NaN when idle)
    in_hold: bool
    pressurised: bool           # the press carries load above the released threshold


class SafetySupervisor:
    """Evaluate all safety checks each cycle; latch the first fault until ``reset()``."""

    def __init__(self, limits: SafetyLimits, rate_hz: float) -> None:
        """Set up detectors for a loop running at ``rate_hz`` (Hz); not loop-safe."""
        self.limits = limits
        self._window = max(2, int(round(limits.rate_window_s * rate_hz)) + 1)
        # At least RATE_DEBOUNCE_MIN_CYCLES samples over the limit: at a slow loop 10 ms is two
        # samples, and a noise burst could then be named a runaway before the noise detector
        # (a few samples) names it (fault suite: 1 in ~150 bursts at 200 Hz).
        self._rate_debounce_s = max(limits.rate_debounce_s, RATE_DEBOUNCE_MIN_CYCLES / rate_hz)
        self._history = deque(maxlen=self._window)
        self.fault = None
        self.zone_leased = False
        self.contact_area_m2 = math.nan
        self.pressure_limit_pa = math.inf
        self.tracking_band_pa = math.inf
        self._clear_detectors()

    def _clear_detectors(self) -> None:
        self._history.clear()
        self._last_force_n = math.nan
        self._last_change_s = math.nan
        self._last_fresh_s = math.nan
        self._last_stamp_s = math.nan
        self._noise_var_n2 = 0.0
        self._noise_prev_diff = math.nan
        self._track_since_s = math.nan
        self._leak_since_s = math.nan
        self._leak_start_pa = math.nan
        self._hold_max_pa = math.nan
        self._fall_since_s = math.nan
        self._last_now_s = math.nan
        self._rate_since_s = math.nan

    # --- configuration, from the loop thread ---------------------------------------------
    def arm_cycle(self, contact_area_m2: float, recipe_max_pressure_pa: float,
                  peak_target_pa: float) -> None:
        """Set the area-dependent limits for a new cycle (loop-safe)."""
        self.contact_area_m2 = contact_area_m2
        self.pressure_limit_pa = self.limits.pressure_limit_pa(contact_area_m2,
                                                               recipe_max_pressure_pa)
        self.tracking_band_pa = max(self.limits.tracking_min_pa,
                                    self.limits.tracking_fraction * peak_target_pa)
        self._track_since_s = math.nan
        self._leak_since_s = math.nan
        self._hold_max_pa = math.nan
        self._fall_since_s = math.nan

    def estop(self, reason: str, now_s: float) -> Fault:
        """Latch an e-stop (loop-safe); an e-stop replaces any other latched fault."""
        self.fault = Fault(FaultKind.ESTOP, f"emergency stop: {reason}", now_s, ReleaseMode.VENT)
        return self.fault

    def trip(self, kind: FaultKind, message: str, now_s: float) -> Fault:
        """Latch ``kind`` unless a fault is already latched; return the latched fault."""
        if self.fault is None:
            self.fault = Fault(kind, message, now_s, _RELEASE.get(kind, ReleaseMode.VENT))
        return self.fault

    def reset(self) -> None:
        """Clear the latched fault and the detector history (loop-safe)."""
        self.fault = None
        self._clear_detectors()

    # --- every cycle ----------------------------------------------------------------------
    def check(self, s: SupervisorInput):
        """Run every check on one cycle's input; return a newly latched ``Fault`` or None."""
        if self.fault is not None:
            return None
        # Inputs and limits read once into locals: this runs every loop cycle.
        lim = self.limits
        now_s = s.now_s
        if s.device_fault or s.relief_open:
            what = s.device_fault or "relief valve opened"
            return self.trip(FaultKind.DEVICE_FAULT, f"press reported a fault: {what}", now_s)
        stamp_s = s.sample_stamp_s
        fresh = _isfinite(stamp_s) and stamp_s != self._last_stamp_s
        if fresh:
            self._last_stamp_s = stamp_s
            self._last_fresh_s = now_s
        elif not _isfinite(self._last_fresh_s):
            self._last_fresh_s = now_s
        stale_s = now_s - self._last_fresh_s
        if stale_s > lim.watchdog_s:
            why = s.comms_error or "sample stamp did not advance"
            return self.trip(FaultKind.DISCONNECTED,
                             f"no fresh sample for {1e3 * stale_s:.0f} ms "
                             f"(limit {1e3 * lim.watchdog_s:.0f} ms): {why}", now_s)
        if not fresh:
            return None
        force = s.force_n
        if not _isfinite(force):
            return self.trip(FaultKind.SENSOR_FAULT, f"load cell reads {force!r}", now_s)
        fault = self._check_sensor(s, force, lim.force_full_scale_n)
        if fault is not None:
            return fault
        force_limit_n = lim.force_limit_n
        if force > force_limit_n:
            return self.trip(FaultKind.OVERPRESSURE,
                             f"force {force:.0f} N above the limit {force_limit_n:.0f} N "
                             "(min of press capacity and die rating)", now_s)
        pressure = s.pressure_pa
        if pressure > self.pressure_limit_pa:
            return self.trip(FaultKind.OVERPRESSURE,
                             f"pressure {pressure / 1e6:.2f} MPa above the limit "
                             f"{self.pressure_limit_pa / 1e6:.2f} MPa", now_s)
        # Without a contact area (idle, no cycle yet) the pressure is unknown (NaN): no rate.
        if _isfinite(pressure):
            history = self._history
            history.append((now_s, pressure))
            if len(history) == self._window:
                t0, p0 = history[0]
                if now_s > t0:
                    rate = (pressure - p0) / (now_s - t0)
                    if rate <= lim.max_rate_pa_s:
                        self._rate_since_s = math.nan
                    elif not _isfinite(self._rate_since_s):
                        self._rate_since_s = now_s
                    elif now_s - self._rate_since_s >= self._rate_debounce_s:
                        return self.trip(FaultKind.RATE_LIMIT,
                                         f"pressure rising at {rate / 1e6:.1f} MPa/s for "
                                         f"{1e3 * (now_s - self._rate_since_s):.0f} ms, limit "
                                         f"{lim.max_rate_pa_s / 1e6:.1f} MPa/s", now_s)
        if self.zone_leased and (s.active or s.pressurised):
            return self.trip(FaultKind.ZONE_OCCUPIED,
                             "the arm holds the press-zone lease while the press is pressurised",
                             now_s)
        return self._check_tracking(s)

    def _check_sensor(self, s: SupervisorInput, force: float, fs: float):
        lim = self.limits
        now_s = s.now_s
        prev = self._last_force_n
        self._last_force_n = force
        if not _isfinite(prev):
            self._last_change_s = now_s
            return None
        diff = force - prev
        demand = s.demand
        moving = abs(demand) >= lim.stuck_demand
        if diff != 0.0 or not (moving or s.pressurised):
            self._last_change_s = now_s
        elif now_s - self._last_change_s > (lim.stuck_time_s if moving
                                            else lim.stuck_hold_time_s):
            return self.trip(FaultKind.SENSOR_FAULT,
                             f"load cell stuck at {force:.1f} N for "
                             f"{1e3 * (now_s - self._last_change_s):.0f} ms while the press "
                             f"is loaded or moving (demand {demand:+.2f})", now_s)
        if abs(diff) > lim.jump_fraction_fs * fs:
            return self.trip(FaultKind.SENSOR_FAULT,
                             f"implausible load-cell jump of {diff:+.0f} N in one sample "
                             f"(limit {lim.jump_fraction_fs * fs:.0f} N)", now_s)
        # Noise: the second difference removes ramps and holds alike; its variance is
        # 6 sigma^2 for white noise, so sigma^2 ~ var(d2) / 6.
        if _isfinite(self._noise_prev_diff) and _isfinite(self._last_now_s):
            d2 = diff - self._noise_prev_diff
            dt = now_s - self._last_now_s
            if 1e-6 > dt:           # max(dt, 1e-6), written out
                dt = 1e-6
            a = dt / lim.noise_time_s
            if not a < 1.0:         # min(1.0, a)
                a = 1.0
            self._noise_var_n2 += a * (d2 * d2 / 6.0 - self._noise_var_n2)
            limit = lim.noise_limit_fraction_fs * fs
            if self._noise_var_n2 > limit * limit:
                return self.trip(FaultKind.SENSOR_FAULT,
                                 f"load-cell noise {math.sqrt(self._noise_var_n2):.1f} N rms "
                                 f"above the plausible {limit:.1f} N", now_s)
        self._noise_prev_diff = diff
        self._last_now_s = now_s
        return None

    def _check_tracking(self, s: SupervisorInput):
        lim = self.limits
        if s.active and math.isfinite(s.setpoint_pa) and \
                abs(s.setpoint_pa - s.pressure_pa) > self.tracking_band_pa:
            if not math.isfinite(self._track_since_s):
                self._track_since_s = s.now_s
            elif s.now_s - self._track_since_s > lim.tracking_time_s:
                return self.trip(FaultKind.TRACKING_FAULT,
                                 f"pressure {s.pressure_pa / 1e6:.2f} MPa stayed more than "
                                 f"{self.tracking_band_pa / 1e6:.2f} MPa from the setpoint "
                                 f"{s.setpoint_pa / 1e6:.2f} MPa for {lim.tracking_time_s:g} s",
                                 s.now_s)
        else:
            self._track_since_s = math.nan
        # A leak that outruns the pump: in a hold the pressure falls a tracking band below the
        # highest pressure of the hold while the valve pumps. (A hold still catching up after a
        # ramp pumps too, but never falls; nor does a healthy hold by a whole band.)
        if s.active and s.in_hold and _isfinite(s.pressure_pa):
            # the highest pressure of the hold, counted up to the setpoint only: settling back
            # from an overshoot is no leak
            reached = s.pressure_pa if not s.setpoint_pa < s.pressure_pa else s.setpoint_pa
            if not reached <= self._hold_max_pa:             # also when the max is NaN
                self._hold_max_pa = reached
            if not (s.demand > 0.0 and
                    s.pressure_pa < self._hold_max_pa - self.tracking_band_pa):
                self._fall_since_s = math.nan
            elif not _isfinite(self._fall_since_s):
                self._fall_since_s = s.now_s
            elif s.now_s - self._fall_since_s >= lim.leak_fall_time_s:
                return self.trip(FaultKind.DEVICE_FAULT,
                                 f"hydraulic leak: pressure fell from "
                                 f"{self._hold_max_pa / 1e6:.2f} to {s.pressure_pa / 1e6:.2f} "
                                 f"MPa in a hold while the valve pumped (demand "
                                 f"{s.demand:+.3f})", s.now_s)
        elif not s.in_hold:
            self._hold_max_pa = math.nan
            self._fall_since_s = math.nan
        # A leak shows as heavy pumping in a hold while the pressure does not rise; a hold still
        # catching up after a ramp the pump could not follow pumps hard too, but gains.
        if s.active and s.in_hold and s.demand > lim.leak_demand_limit:
            rising = math.isfinite(self._leak_since_s) and \
                s.pressure_pa > self._leak_start_pa + 0.1 * self.tracking_band_pa
            if not math.isfinite(self._leak_since_s) or rising:
                self._leak_since_s = s.now_s
                self._leak_start_pa = s.pressure_pa
            elif s.now_s - self._leak_since_s > lim.leak_time_s:
                return self.trip(FaultKind.DEVICE_FAULT,
                                 f"hydraulic leak: pumping above {lim.leak_demand_limit:.2f} of "
                                 f"full demand for {lim.leak_time_s:g} s in a hold without "
                                 f"gaining pressure ({self._leak_start_pa / 1e6:.2f} -> "
                                 f"{s.pressure_pa / 1e6:.2f} MPa)", s.now_s)
        else:
            self._leak_since_s = math.nan
        return None
