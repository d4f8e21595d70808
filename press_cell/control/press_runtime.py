"""Press runtime: the loop, controller, profile and supervisor behind one thread-safe object.

This is the seam the ROS press node wraps. Every driver call happens on the loop thread
(``LoopRunner``); other threads talk to the loop only through its command inbox and read its
state through a non-blocking hand-off (``snapshot()``), so a slow ROS executor can never stall
the force loop.

Cycle life: ``start_cycle`` validates in the caller's thread (busy, latched fault, zone lease,
limits, profile rules) and raises a ``CycleRefused`` subclass naming the PressCycle error code;
an accepted cycle is laid out on the loop thread from the pressure measured at that instant
(bumpless), runs ramp/hold/release, then waits until the pressure is below the released
threshold before it reports SUCCEEDED. ``cancel`` releases at the profile's release rate and
reports CANCELED; a fault vents (or releases under control, see ``supervisor``), latches, and
reports ABORTED with the fault's code once the pressure is released. After ``reset_fault`` the
press is idle with the setpoint at the measured state: a stale setpoint is never re-applied.

The certificate is computed in the thread that reads the outcome, never in the loop.
"""

import dataclasses
import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from press_cell.control.certificate import PressTrace, compute_certificate
from press_cell.control.force_controller import (
    ControllerGains,
    ForceController,
    SupervisoryStreamer,
)
from press_cell.control.hold_end import HoldEndError, HoldEndEvaluator
from press_cell.control.loop_runner import LatestValue, LoopRunner, LoopTiming
from press_cell.control.profile import Phase, PressProfile, ProfileError
from press_cell.control.supervisor import (
    ERROR_CODES,
    FaultKind,
    ReleaseMode,
    SafetyLimits,
    SafetySupervisor,
    SupervisorInput,
)
from press_cell.hardware.press_driver import (
    PressConnectionError,
    PressDeviceFault,
    PressError,
    PressMode,
    PressProtocolError,
)
from press_cell.recipes.segments import Segment

_LOG = logging.getLogger(__name__)
_NAN = math.nan
_isfinite = math.isfinite
_HOLD = Phase.HOLD
# Cycle modes that follow a profile (sampled every loop cycle).
_PROFILE_MODES = ("approach", "run", "release", "finish")

# While venting, re-send the vent command this often until a reading shows the dump valve open
# (a serial press may have dropped the first one), s.
VENT_RESEND_S = 0.01
# The approach ends at this fraction of the cycle's peak target (at least released_min_pa): low,
# so the loop takes over before the contact stiffness has built much pressure [est].
CONTACT_FRACTION = 5e-4
# ... but never below this, Pa: ~4 sigma of a 100 kN cell's noise on a 13 mm die [est].
CONTACT_MIN_PA = 0.1e6
# Time constant of the low-pass pressure that decides "pressurised" for the zone interlock, s:
# a single noisy idle sample (a 24-bit indicator's noise on a small rod face is ~35 kPa rms)
# must not trip ZONE_OCCUPIED, while a real load (seconds of ramp) still does within ~0.1 s.
PRESSURISED_FILTER_S = 0.02


class RuntimeConfigError(ValueError):
    """A PressRuntime setting is out of range; the message names it and the allowed range."""


class CycleRefused(Exception):
    """A cycle was not started; ``code`` is the PressCycle error-code name."""

    code = "UNKNOWN"

    @property
    def error_code(self) -> int:
        """Return the numeric PressCycle error code."""
        return ERROR_CODES[self.code]


class InvalidGoalError(CycleRefused):
    """The profile or contact area is invalid."""

    code = "INVALID_GOAL"


class BusyError(CycleRefused):
    """A cycle is already running."""

    code = "BUSY"


class OverLimitError(CycleRefused):
    """A target or rate exceeds the press, die, recipe or rate limit."""

    code = "OVER_LIMIT"


class ZoneOccupiedError(CycleRefused):
    """The arm holds the press-zone lease."""

    code = "ZONE_OCCUPIED"


class NotActiveError(CycleRefused):
    """The runtime is not running (not started, stopped, or its loop died)."""

    code = "NOT_ACTIVE"


class FaultLatchedError(CycleRefused):
    """A fault is latched; ``reset_fault()`` first. ``code`` is the latched fault's code."""

    def __init__(self, fault) -> None:
        """Name the latched fault."""
        super().__init__(f"fault {fault.kind.value} is latched ({fault.message}); reset it first")
        self.code = fault.kind.value


@dataclass(frozen=True)
class PressSnapshot:
    """Latest loop state for telemetry and action feedback (immutable, SI)."""

    stamp_s: float = math.nan           # clock time of the cycle, s
    phase: Phase = Phase.IDLE
    segment_index: int = -1
    segment_count: int = 0
    pressure_pa: float = math.nan       # measured die pressure, Pa
    setpoint_pa: float = math.nan       # Pa
    force_n: float = math.nan           # N
    ram_position_m: float = math.nan    # m
    valve_demand: float = 0.0           # 1
    time_in_segment_s: float = 0.0      # s
    time_remaining_s: float = 0.0       # s
    contact_area_m2: float = math.nan   # m^2
    relief_open: bool = False
    zone_leased: bool = False
    fault_code: int = 0
    fault_message: str = ""


@dataclass(frozen=True)
class CycleOutcome:
    """How a cycle ended: status, PressCycle error code, message, certificate and trace."""

    status: str                 # "SUCCEEDED" | "CANCELED" | "ABORTED"
    error_code: str             # PressCycle error-code name ("NONE" on success)
    message: str
    certificate: object         # PressCertificate
    trace: PressTrace

    @property
    def success(self) -> bool:
        """Return whether the cycle succeeded."""
        return self.status == "SUCCEEDED"

    @property
    def error_code_value(self) -> int:
        """Return the numeric PressCycle error code."""
        return ERROR_CODES[self.error_code]


class CycleHandle:
    """Result of ``start_cycle``: wait for, and read, the outcome of one cycle (thread-safe)."""

    def __init__(self, part_id: str, meta: dict) -> None:
        """Create an unfinished handle (runtime-internal)."""
        self.part_id = part_id
        self._meta = meta
        self._event = threading.Event()
        self._raw = None
        self._outcome = None
        self._lock = threading.Lock()

    def _finish(self, raw: dict) -> None:
        self._raw = raw
        self._event.set()

    def done(self) -> bool:
        """Return whether the cycle has ended."""
        return self._event.is_set()

    def wait(self, timeout_s: float = None):
        """Block until the cycle ends (or ``timeout_s``); return the outcome or None on timeout."""
        if not self._event.wait(timeout_s):
            return None
        return self.outcome

    @property
    def outcome(self):
        """Return the ``CycleOutcome`` (None while running); computes the certificate once."""
        if not self._event.is_set():
            return None
        with self._lock:
            if self._outcome is None:
                raw = self._raw
                trace = PressTrace.from_rows(raw["rows"])
                meta = dict(self._meta)
                meta.update(thickness_start=raw["thickness_start"],
                            thickness_end=raw["thickness_end"])
                # The loop hands over its timing getter: percentiles are computed here, in the
                # reader's thread, never in the loop.
                cert = compute_certificate(trace, raw["profile"], raw["contact_area_m2"],
                                           raw["timing"](), **meta)
                self._outcome = CycleOutcome(raw["status"], raw["error_code"], raw["message"],
                                             cert, trace)
            return self._outcome


class _Reply:
    """A one-shot reply from the loop to a waiting caller."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.value = None
        self.error = None

    def set(self, value=None, error=None) -> None:
        self.value, self.error = value, error
        self._event.set()

    def get(self, timeout_s: float):
        if not self._event.wait(timeout_s):
            raise TimeoutError(f"the control loop did not answer within {timeout_s:g} s")
        if self.error is not None:
            raise self.error
        return self.value


@dataclass
class _Cycle:
    """Loop-thread state of the running cycle."""

    handle: CycleHandle
    segments: tuple
    contact_area_m2: float
    max_pressure_pa: float
    release_rate_pa_s: float
    peak_target_pa: float
    thickness_probe: object
    plan: PressProfile = None       # the profile as laid out at the start (certificate)
    profile: PressProfile = None    # the profile being followed (plan, or a release)
    t0_s: float = math.nan
    rows: list = None
    thickness_start: float = math.nan
    # What to report when the pressure is released: status, error code, message.
    ending: tuple = None
    mode: str = "run"           # approach | run | release | finish | vent
    mode_since_s: float = math.nan
    hold_end: object = None         # HoldEndEvaluator for the last hold, or None
    last_hold_index: int = -1
    pending_r_ohm: float = math.nan     # newest interface resistance reported, ohm
    hold_end_note: str = ""


def _warm_up() -> None:
    """Run the certificate and timing code once on toy data before the loop starts.

    numpy initialises parts of itself on first use (linear algebra for the ramp fit,
    percentiles) while holding the GIL for tens of ms; paid here, not in the middle of a cycle.
    """
    profile = PressProfile([Segment("ramp", 2e6, 1e6), Segment("hold", 2e6, 0.0, 1.0, 1e5),
                            Segment("release", 0.0, 1e6)])
    rows = []
    for i in range(400):
        point = profile.sample(0.01 * i)
        rows.append((0.01 * i, point.setpoint_pa, point.setpoint_pa, 0.0, 0.0, 0.0,
                     int(point.phase), point.segment_index))
    compute_certificate(PressTrace.from_rows(rows), profile, 1.0)
    np.percentile(np.zeros(8), [50.0, 99.0, 99.9])


class PressRuntime:
    """Own the control loop of one press and run press cycles on it (thread-safe API)."""

    def __init__(self, driver, clock, rate_hz: float = 1000.0, lockstep: bool = False,
                 limits: SafetyLimits = None, controller_gains: ControllerGains = None,
                 mode: PressMode = PressMode.VALVE, time_scale: float = None,
                 realtime: bool = True, default_release_rate_pa_s: float = 10e6,
                 released_fraction: float = 0.01, released_min_pa: float = 0.05e6,
                 vent_timeout_s: float = 2.0, vent_settle_s: float = 0.5,
                 release_confirm_s: float = 0.02, finish_timeout_s: float = 10.0,
                 approach_timeout_s: float = 60.0, supervisory_lag_s: float = 1.0,
                 stream_rate_hz: float = 100.0, idle_contact_area_m2: float = math.nan) -> None:
        """Configure; ``limits`` default from the driver capabilities at ``start()``.

        ``released_fraction`` x peak target (at least ``released_min_pa``) is the pressure
        below which the press counts as released, once it stayed there ``release_confirm_s``;
        ``vent_timeout_s`` bounds the wait for a vent to be confirmed; after a sensor fault
        nothing can be confirmed and the vent is trusted for ``vent_settle_s`` (10 dump-valve
        time constants [est]); ``finish_timeout_s`` bounds the wait for the release after the
        profile ended before the runtime vents; ``approach_timeout_s`` bounds the approach
        (closing the gap to the part at the controller's approach demand) before contact;
        ``supervisory_lag_s`` is the lag allowed to a press's own loop when tracking is checked
        in supervisory mode [est for real presses; press_cell.physics.hydraulics.InnerForceLoop
        lags ~0.05 s over a 16 ms serial link and lands ~0.3 s after a ramp ends, measured].
        """
        for name, value in (("default_release_rate_pa_s", default_release_rate_pa_s),
                            ("released_min_pa", released_min_pa),
                            ("vent_timeout_s", vent_timeout_s), ("vent_settle_s", vent_settle_s),
                            ("release_confirm_s", release_confirm_s),
                            ("finish_timeout_s", finish_timeout_s),
                            ("approach_timeout_s", approach_timeout_s),
                            ("stream_rate_hz", stream_rate_hz)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0.0):
                raise RuntimeConfigError(f"{name}={value!r} must be a finite number > 0")
        if not 0.0 <= released_fraction < 1.0:
            raise RuntimeConfigError(f"released_fraction={released_fraction!r} must be in [0, 1)")
        if not (math.isfinite(supervisory_lag_s) and supervisory_lag_s >= 0.0):
            raise RuntimeConfigError(f"supervisory_lag_s={supervisory_lag_s!r} must be >= 0 s")
        self.driver = driver
        self.clock = clock
        self.rate_hz = float(rate_hz)
        self.lockstep = bool(lockstep)
        self.mode = PressMode(mode)
        self._limits = limits
        self.gains = controller_gains or ControllerGains()
        self.default_release_rate_pa_s = float(default_release_rate_pa_s)
        self.released_fraction = float(released_fraction)
        self.released_min_pa = float(released_min_pa)
        self.vent_timeout_s = float(vent_timeout_s)
        self.vent_settle_s = float(vent_settle_s)
        self.approach_timeout_s = float(approach_timeout_s)
        self.supervisory_lag_s = float(supervisory_lag_s)
        self.release_confirm_s = float(release_confirm_s)
        self.finish_timeout_s = float(finish_timeout_s)
        self.stream_rate_hz = float(stream_rate_hz)
        self._runner = LoopRunner(self._step, rate_hz, clock, lockstep=lockstep,
                                  time_scale=time_scale, realtime=realtime)
        self._state = LatestValue(None)
        self._api_lock = threading.Lock()
        self._busy = False
        self._started = False
        self._zone_leased = False
        self.supervisor = None
        # Loop-thread state.
        self._cycle = None
        self._controller = None
        self._streamer = None
        self._phase = Phase.IDLE
        self._area_m2 = float(idle_contact_area_m2)
        self._demand = 0.0
        self._vent_since_s = math.nan
        self._pressure_lp = math.nan
        self._last = None
        self._handled_fault = None
        self._stopped = False
        self._supervisor_input = SupervisorInput(
            now_s=math.nan, force_n=math.nan, pressure_pa=math.nan, sample_stamp_s=math.nan,
            comms_error="", device_fault="", relief_open=False, demand=0.0, active=False,
            setpoint_pa=math.nan, in_hold=False, pressurised=False)
        self._shutdown_reply = None
        self._now_s = math.nan
        self._reading_stale = True
        self._released_since_s = math.nan
        self._vent_sent_s = -math.inf

    # ------------------------------------------------------------------ public, any thread
    @property
    def limits(self) -> SafetyLimits:
        """Return the safety limits in force."""
        return self._limits

    def start(self) -> None:
        """Connect if needed, self-check, and start the loop; raise ``PressError`` on failure."""
        with self._api_lock:
            if self._started:
                return
            if not self.driver.is_connected:
                self.driver.connect()
            self.driver.self_check()
            caps = self.driver.capabilities
            if self.mode not in caps.modes:
                raise PressError(f"press {caps.model} does not support {self.mode.value} mode; "
                                 f"it offers {[m.value for m in caps.modes]}")
            if self._limits is None:
                self._limits = SafetyLimits(press_capacity_n=caps.rated_force_n,
                                            force_full_scale_n=caps.force_full_scale_n)
            self.supervisor = SafetySupervisor(self._limits, self.rate_hz)
            self.supervisor.zone_leased = self._zone_leased
            _warm_up()
            self._stopped = False
            self._runner.start()
            self._started = True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Make the press safe (abort any cycle, vent, wait for release) and stop the loop."""
        with self._api_lock:
            if not self._started:
                return
            self._started = False
        if self._runner.running:
            reply = _Reply()
            self._runner.post(("shutdown", reply))
            try:
                reply.get(timeout_s)
            except TimeoutError:
                _LOG.error("control loop did not confirm the press was released within %.1f s",
                           timeout_s)
        self._runner.stop()
        if self._runner.error is not None:
            # The loop died: it can no longer vent, so do it from here (no concurrent caller).
            try:
                self.driver.vent()
            except PressError as exc:
                _LOG.error("could not vent the press after the loop stopped: %s", exc)

    def start_cycle(self, segments, contact_area_m2: float, part_id: str = "",
                    max_pressure_pa: float = math.inf, step_name: str = "",
                    recipe_name: str = "", recipe_hash: str = None, calibration_id: str = "",
                    material: str = "", thickness_probe=None,
                    hold_end=None) -> CycleHandle:
        """Validate and start a cycle; return its handle or raise a ``CycleRefused`` subclass.

        ``contact_area_m2`` converts force to die pressure; ``max_pressure_pa`` is the recipe
        limit (Pa). ``thickness_probe`` (optional callable -> m) is read at start and end.
        ``hold_end`` (``HoldEndCriterion`` or the message) ends the last hold adaptively from
        the interface resistances fed through ``report_interface_resistance``; when enabled the
        last hold lasts up to ``max_hold_s`` instead of its own duration.
        """
        if not (isinstance(contact_area_m2, (int, float)) and math.isfinite(contact_area_m2)
                and contact_area_m2 > 0.0):
            raise InvalidGoalError(f"contact_area_m2={contact_area_m2!r} must be a finite "
                                   "value > 0 m^2")
        if not max_pressure_pa > 0.0:
            raise InvalidGoalError(f"max_pressure_pa={max_pressure_pa!r} must be > 0 "
                                   "(inf: only press and die ratings apply)")
        try:
            segs = PressProfile(segments).segments
            evaluator = None
            holds = [i for i, seg in enumerate(segs) if seg.kind == "hold"]
            if hold_end is not None:
                evaluator = HoldEndEvaluator(hold_end)
                if not evaluator.criterion.enabled:
                    evaluator = None
            if evaluator is not None:
                if not holds:
                    raise InvalidGoalError("hold_end is enabled but the profile has no hold")
                if not math.isfinite(evaluator.criterion.max_hold_s):
                    raise InvalidGoalError("hold_end needs a finite max_hold (s)")
                segs = list(segs)
                segs[holds[-1]] = dataclasses.replace(
                    segs[holds[-1]], duration_s=evaluator.criterion.max_hold_s)
                segs = PressProfile(segs).segments
        except (ProfileError, HoldEndError) as exc:
            raise InvalidGoalError(str(exc)) from exc
        with self._api_lock:
            if not self._started or not self._runner.running:
                raise NotActiveError("the press runtime is not running; start() it first")
            fault = self.supervisor.fault
            if fault is not None:
                raise FaultLatchedError(fault)
            if self._busy:
                raise BusyError("a press cycle is already running; cancel it or wait")
            if self.supervisor.zone_leased:
                raise ZoneOccupiedError("the arm holds the press-zone lease; the press will "
                                        "not pressurise until it is released")
            lim = self._limits
            limit_pa = lim.pressure_limit_pa(contact_area_m2, max_pressure_pa)
            allowed_pa = limit_pa * (1.0 - lim.headroom_fraction)
            peak = max(s.target_pressure_pa for s in segs)
            if peak > allowed_pa:
                raise OverLimitError(
                    f"target {peak / 1e6:.2f} MPa exceeds the allowed {allowed_pa / 1e6:.2f} MPa "
                    f"(min of press {lim.press_capacity_n / 1e3:.1f} kN, die "
                    f"{lim.die_rated_force_n / 1e3:.1f} kN on {contact_area_m2 * 1e6:.2f} mm^2, "
                    f"recipe {max_pressure_pa / 1e6:.1f} MPa, less "
                    f"{100 * lim.headroom_fraction:g} % headroom)")
            fastest = max(s.rate_pa_s for s in segs if s.kind == "ramp")
            rate_allowed = lim.max_rate_pa_s * (1.0 - lim.headroom_fraction)
            if fastest > rate_allowed:
                raise OverLimitError(f"ramp rate {fastest / 1e6:.2f} MPa/s exceeds the rate limit "
                                     f"{rate_allowed / 1e6:.2f} MPa/s")
            release_rates = [s.rate_pa_s for s in segs if s.kind == "release"]
            meta = dict(part_id=part_id, step_name=step_name, recipe_name=recipe_name,
                        calibration_id=calibration_id, material=material)
            if recipe_hash is not None:
                meta["recipe_hash"] = recipe_hash
            handle = CycleHandle(part_id, meta)
            cycle = _Cycle(handle=handle, segments=segs, contact_area_m2=float(contact_area_m2),
                           max_pressure_pa=float(max_pressure_pa),
                           release_rate_pa_s=min(release_rates[-1], lim.max_rate_pa_s),
                           peak_target_pa=peak, thickness_probe=thickness_probe,
                           hold_end=evaluator, last_hold_index=holds[-1] if holds else -1)
            self._busy = True
            self._runner.post(("start", cycle))
            return handle

    def cancel(self) -> bool:
        """Ask for a controlled release of the running cycle (outcome CANCELED); never blocks.

        Returns whether a cycle was running.
        """
        if not self._busy:
            return False
        self._runner.post(("cancel", None))
        return True

    def report_interface_resistance(self, r_interface_ohm: float) -> None:
        """Feed one interface-resistance estimate (ohm) to the hold-end criterion; never blocks."""
        self._runner.post(("r_int", float(r_interface_ohm)))

    def estop(self, reason: str = "requested") -> None:
        """Vent the press and latch an ESTOP fault (next loop cycle); never blocks."""
        self._runner.post(("estop", str(reason)))

    def reset_fault(self, timeout_s: float = 2.0) -> bool:
        """Clear a latched fault once the press is released; return whether a fault was cleared.

        Raises ``PressError`` when the press is still venting (pressure not yet released).
        """
        self._require_running()
        reply = _Reply()
        self._runner.post(("reset", reply))
        return reply.get(timeout_s)

    def set_zone_lease(self, held: bool) -> None:
        """Record whether the arm holds the press-zone lease (takes effect next cycle)."""
        self._zone_leased = bool(held)
        if self.supervisor is not None:
            self.supervisor.zone_leased = self._zone_leased

    @property
    def zone_leased(self) -> bool:
        """Return whether the arm holds the press-zone lease."""
        return self._zone_leased

    def tare(self, samples: int = 50, timeout_s: float = 5.0) -> float:
        """Zero the load cell while idle; return the offset removed, N.

        Raises ``BusyError`` during a cycle and ``PressError`` from the driver.
        """
        if not (isinstance(samples, int) and 1 <= samples <= 100_000):
            raise ValueError(f"samples={samples!r} must be an integer in [1, 100000]")
        self._require_running()
        reply = _Reply()
        self._runner.post(("tare", (samples, reply)))
        return reply.get(timeout_s)

    def _require_running(self) -> None:
        if not self._started or not self._runner.running:
            raise NotActiveError("the press runtime is not running; start() it first")

    def snapshot(self) -> PressSnapshot:
        """Return the latest loop state (never blocks)."""
        values = self._state.read()
        return PressSnapshot() if values is None else PressSnapshot(*values)

    def timing(self) -> LoopTiming:
        """Return the loop timing statistics (never blocks the loop)."""
        return self._runner.timing()

    @property
    def loop_error(self):
        """Return the exception that stopped the loop, or None."""
        return self._runner.error

    # ------------------------------------------------------------------ loop thread
    def _released_pa(self) -> float:
        return self._released_pa_for(self._cycle)

    def _contact_pa(self, cycle) -> float:
        """Return the pressure that counts as contact at the end of the approach, Pa."""
        return max(CONTACT_FRACTION * cycle.peak_target_pa, CONTACT_MIN_PA)

    def _released_pa_for(self, cycle) -> float:
        """Return the pressure below which the press counts as released / out of contact, Pa."""
        peak = cycle.peak_target_pa if cycle is not None else 0.0
        return max(self.released_fraction * peak, self.released_min_pa)

    def _step(self, now_s: float, dt_s: float, commands: list) -> bool:
        """Run one control cycle: commands, read, supervise, control, write, publish."""
        for kind, arg in commands:
            self._handle_command(kind, arg, now_s)
        if self._stopped:
            return False        # shut down: the press is vented and left alone
        comms_error = ""
        reading = None
        try:
            reading = self.driver.read()
        except (PressConnectionError, PressProtocolError) as exc:
            comms_error = str(exc) or type(exc).__name__
        except PressDeviceFault as exc:
            self.supervisor.trip(FaultKind.DEVICE_FAULT, f"press reported a fault: {exc}", now_s)
        self._now_s = now_s
        # One input record, refilled every cycle (no allocation in the loop).
        inp = self._supervisor_input
        if reading is None:
            self._reading_stale = True
            force = _NAN
            inp.sample_stamp_s = _NAN
            inp.device_fault = ""
            inp.relief_open = False
        else:
            self._reading_stale = False
            self._last = reading
            force = reading.force_n
            inp.sample_stamp_s = reading.stamp_s
            inp.device_fault = reading.device_fault
            inp.relief_open = reading.relief_open
        area = self._area_m2
        pressure = force / area if _isfinite(area) else _NAN
        released_pa = self._released_pa()
        # Released: a fresh reading at or below the released threshold (since when).
        if reading is not None and _isfinite(pressure) and pressure <= released_pa:
            if not _isfinite(self._released_since_s):
                self._released_since_s = now_s
        else:
            self._released_since_s = _NAN
        cycle = self._cycle
        mode = cycle.mode if cycle is not None else None

        point = None
        setpoint = _NAN
        if mode in _PROFILE_MODES:
            point = cycle.profile.sample(now_s - cycle.t0_s)
            setpoint = point.setpoint_pa
        inp.now_s = now_s
        inp.force_n = force
        inp.pressure_pa = pressure
        inp.comms_error = comms_error
        inp.demand = self._demand
        inp.active = mode == "run"
        controller = self._controller
        if mode == "run" and controller is not None:
            inp.setpoint_pa = controller.reference_pa       # _tracking_reference, valve mode
        else:
            inp.setpoint_pa = self._tracking_reference(cycle, now_s, setpoint, pressure)
        inp.in_hold = point is not None and point.phase is _HOLD and mode == "run"
        if _isfinite(pressure):
            alpha = dt_s / (PRESSURISED_FILTER_S + dt_s) if dt_s > 0.0 else 1.0
            self._pressure_lp = pressure if not _isfinite(self._pressure_lp) else \
                self._pressure_lp + alpha * (pressure - self._pressure_lp)
        inp.pressurised = (_isfinite(self._pressure_lp) and self._pressure_lp > released_pa) \
            or (cycle is not None and mode != "vent")
        new_fault = self.supervisor.check(inp)
        del new_fault   # every latched fault, however it tripped, is handled just below
        fault = self.supervisor.fault
        if fault is not None and fault is not self._handled_fault:
            self._on_fault(fault, now_s, pressure)
            cycle = self._cycle
            if cycle is not None and cycle.mode == "release":
                point = cycle.profile.sample(now_s - cycle.t0_s)
                setpoint = point.setpoint_pa

        demand = 0.0
        if cycle is not None:
            demand = self._advance_cycle(cycle, point, now_s, dt_s, pressure, setpoint)
        elif self._phase is Phase.VENTING:
            if self._vent_progress(now_s) is not None:
                self._phase = Phase.FAULT if self.supervisor.fault is not None else Phase.IDLE
        elif self._phase is Phase.IDLE and self.mode is PressMode.VALVE:
            self._write_valve(0.0)

        self._publish(now_s, force, pressure, setpoint, demand, point)
        return self._cycle is not None or self._phase is Phase.VENTING

    def _tracking_reference(self, cycle, now_s: float, setpoint: float,
                            pressure: float) -> float:
        """Return what the pressure should be now, for the tracking check, Pa.

        Valve mode: the controller's reference (the setpoint through the valve lag).
        Supervisory mode: the press's own loop may lag by up to ``supervisory_lag_s``, so any
        pressure between the profile now and the profile that long ago is on track; return
        the point of that window nearest to the measured pressure.
        """
        if cycle is None or cycle.mode != "run":
            return setpoint
        if self._controller is not None:
            return self._controller.reference_pa
        before = cycle.profile.sample(now_s - cycle.t0_s - self.supervisory_lag_s).setpoint_pa
        low, high = min(setpoint, before), max(setpoint, before)
        return min(high, max(low, pressure)) if math.isfinite(pressure) else setpoint

    def _write_valve(self, demand: float) -> None:
        self._demand = demand
        try:
            self.driver.command_valve(demand)
        except (PressConnectionError, PressProtocolError):
            pass            # the watchdog reports a link that stays down
        except PressError as exc:   # device fault latched in the press, or a mode error
            self.supervisor.trip(FaultKind.DEVICE_FAULT, f"press refused the valve command: "
                                 f"{exc}", self._now_s)

    def _vent(self, now_s: float) -> None:
        """Open the dump valve and start waiting for the release to be confirmed."""
        self._demand = 0.0
        self._vent_since_s = now_s
        self._vent_sent_s = -math.inf
        self._phase = Phase.VENTING
        self._send_vent(now_s)

    def _send_vent(self, now_s: float) -> None:
        try:
            self.driver.vent()
            self._vent_sent_s = now_s
        except PressError as exc:
            if now_s - self._vent_sent_s > 1.0:
                _LOG.error("vent command failed, retrying every cycle: %s", exc)
                self._vent_sent_s = now_s

    def _vent_progress(self, now_s: float):
        """Keep venting; return None while unloading, else a note on how the release ended."""
        reading = self._last
        if reading is None or not reading.vented or self._reading_stale:
            if now_s - self._vent_sent_s >= VENT_RESEND_S:
                self._send_vent(now_s)
        elapsed = now_s - self._vent_since_s
        # Keep the dump valve open long enough for the valve spool to come to rest, so closing
        # it later does not let a still-open valve pressurise the press again.
        if elapsed < 4.0 * self.gains.valve_tau_s:
            return None
        fault = self.supervisor.fault
        if fault is not None and fault.kind is FaultKind.SENSOR_FAULT:
            # The sensor cannot confirm anything: trust the dump valve for a fixed time.
            if elapsed >= self.vent_settle_s:
                return (f"; vented for {self.vent_settle_s:g} s (release not measurable, the "
                        "load cell is not trusted)")
            return None
        if self._released_confirmed(now_s):
            return ""
        if elapsed >= self.vent_timeout_s:
            return (f"; WARNING: release not confirmed by the load cell within "
                    f"{self.vent_timeout_s:g} s of venting")
        return None

    def _released_confirmed(self, now_s: float) -> bool:
        return math.isfinite(self._released_since_s) and \
            now_s - self._released_since_s >= self.release_confirm_s

    def _on_fault(self, fault, now_s: float, pressure_pa: float) -> None:
        self._handled_fault = fault
        _LOG.error("press fault %s: %s", fault.kind.value, fault.message)
        cycle = self._cycle
        ending = ("ABORTED", fault.kind.value, fault.message)
        if cycle is not None:
            cycle.ending = ending
        if fault.release is ReleaseMode.CONTROLLED and cycle is not None and \
                math.isfinite(pressure_pa):
            self._begin_release(cycle, now_s, pressure_pa)
        else:
            self._vent(now_s)
            if cycle is not None:
                cycle.mode = "vent"
                cycle.mode_since_s = now_s

    def _begin_release(self, cycle: _Cycle, now_s: float, pressure_pa: float) -> None:
        cycle.profile = PressProfile.release_from(max(pressure_pa, 0.0), cycle.release_rate_pa_s)
        cycle.t0_s = now_s
        cycle.mode = "release"
        cycle.mode_since_s = now_s
        # Bumpless: the controller continues from where the press is.
        if self._controller is not None:
            self._controller.reference_pa = max(pressure_pa, 0.0)
        if self._streamer is not None:
            self._streamer.reset()

    def _handle_command(self, kind: str, arg, now_s: float) -> None:
        reading = self._last
        if kind == "start":
            self._start_cycle(arg, now_s)
        elif kind == "cancel":
            cycle = self._cycle
            if cycle is not None and cycle.mode in ("approach", "run"):
                cycle.ending = ("CANCELED", "CANCELED", "canceled: released at "
                                f"{cycle.release_rate_pa_s / 1e6:g} MPa/s")
                p = reading.force_n / cycle.contact_area_m2 if reading is not None else math.nan
                self._begin_release(cycle, now_s, p if math.isfinite(p) else 0.0)
        elif kind == "estop":
            fault = self.supervisor.estop(arg, now_s)
            self._handled_fault = fault
            _LOG.error("%s", fault.message)
            if self._cycle is not None:
                self._cycle.ending = ("ABORTED", "ESTOP", fault.message)
                self._cycle.mode = "vent"
                self._cycle.mode_since_s = now_s
            self._vent(now_s)
        elif kind == "r_int":
            if self._cycle is not None:
                self._cycle.pending_r_ohm = arg
        elif kind == "reset":
            self._reset(arg, reading)
        elif kind == "tare":
            samples, reply = arg
            if self._cycle is not None or self._phase is not Phase.IDLE:
                reply.set(error=BusyError("tare only while idle (no cycle, no fault)"))
                return
            try:
                reply.set(self.driver.tare(samples))
            except PressError as exc:
                reply.set(error=exc)
        elif kind == "shutdown":
            if self._cycle is not None:
                self._cycle.ending = ("ABORTED", "NOT_ACTIVE", "press runtime stopped")
                self._cycle.mode = "vent"
                self._cycle.mode_since_s = now_s
                self._vent(now_s)
                self._shutdown_reply = arg
            else:
                # Leave the press with its dump valve open: nothing can pressurise it while
                # no loop watches it (harmless when it is already unloaded).
                self._send_vent(now_s)
                self._stopped = True
                arg.set(True)

    def _reset(self, reply: _Reply, reading) -> None:
        if self._phase is Phase.VENTING or self._cycle is not None:
            reply.set(error=PressError("the press is still releasing; reset after it is "
                                       "released"))
            return
        had_fault = self.supervisor.fault is not None
        device_reset = getattr(self.driver, "reset_fault", None)
        if had_fault and callable(device_reset):
            try:
                device_reset()      # clear a latch in the press itself (e.g. its watchdog)
            except PressError as exc:
                reply.set(error=exc)
                return
        self.supervisor.reset()
        self._phase = Phase.IDLE
        if self._controller is not None:
            force = reading.force_n if reading is not None else math.nan
            self._controller.reset(force / self._area_m2 if math.isfinite(force) else 0.0)
        if self.mode is PressMode.VALVE:
            self._write_valve(0.0)
        if had_fault:
            _LOG.warning("fault reset; press idle, no setpoint applied")
        reply.set(had_fault)

    def _start_cycle(self, cycle: _Cycle, now_s: float) -> None:
        fault = self.supervisor.fault
        refusal = None
        if fault is not None:
            refusal = (fault.kind.value, f"fault {fault.kind.value} latched: {fault.message}")
        elif self.supervisor.zone_leased:
            refusal = ("ZONE_OCCUPIED", "the arm holds the press-zone lease")
        elif self._phase is not Phase.IDLE or self._cycle is not None:
            refusal = ("BUSY", "the press is not idle")
        reading = self._last
        if refusal is None and (reading is None or not math.isfinite(reading.force_n)):
            refusal = ("SENSOR_FAULT", "no valid load-cell reading to start from")
        if refusal is not None:
            cycle.handle._finish(dict(status="ABORTED", error_code=refusal[0],
                                      message=refusal[1], rows=[],
                                      profile=PressProfile(cycle.segments),
                                      contact_area_m2=cycle.contact_area_m2,
                                      timing=self._runner.timing, thickness_start=math.nan,
                                      thickness_end=math.nan))
            self._busy = False
            return
        start_pa = max(0.0, reading.force_n / cycle.contact_area_m2)
        cycle.plan = PressProfile(cycle.segments, start_pressure_pa=start_pa)
        cycle.profile = cycle.plan
        cycle.t0_s = now_s
        cycle.rows = []
        # Below the contact pressure the ram first closes the gap at the approach demand; the
        # profile is laid out again at contact so its first ramp starts where the press is.
        cycle.mode = "approach" if start_pa < self._contact_pa(cycle) and \
            self.mode is PressMode.VALVE else "run"
        cycle.mode_since_s = now_s
        cycle.thickness_start = self._probe(cycle)
        self._area_m2 = cycle.contact_area_m2
        self.supervisor.arm_cycle(cycle.contact_area_m2, cycle.max_pressure_pa,
                                  cycle.peak_target_pa)
        if self.mode is PressMode.VALVE:
            self._controller = ForceController(self.gains, cycle.contact_area_m2, self.rate_hz)
            self._controller.reset(start_pa)
        else:
            self._streamer = SupervisoryStreamer(cycle.contact_area_m2, self.stream_rate_hz)
        self._cycle = cycle

    @staticmethod
    def _probe(cycle: _Cycle) -> float:
        if cycle.thickness_probe is None:
            return math.nan
        try:
            return float(cycle.thickness_probe())
        except Exception:  # noqa: BLE001 - a broken probe must not stop the loop
            _LOG.exception("thickness probe failed")
            return math.nan

    def _advance_cycle(self, cycle: _Cycle, point, now_s: float, dt_s: float,
                       pressure: float, setpoint: float) -> float:
        demand = 0.0
        if cycle.mode == "approach":
            if math.isfinite(pressure) and pressure >= self._contact_pa(cycle):
                cycle.plan = PressProfile(cycle.segments, start_pressure_pa=pressure)
                cycle.profile = cycle.plan
                cycle.t0_s = now_s
                cycle.mode = "run"
                cycle.mode_since_s = now_s
                self._controller.reset(pressure, keep_valve=True)
                point = cycle.plan.sample(0.0)
                setpoint = point.setpoint_pa
                demand = self._control(now_s, dt_s, pressure, setpoint, point)
            elif now_s - cycle.mode_since_s > self.approach_timeout_s:
                fault = self.supervisor.trip(
                    FaultKind.TRACKING_FAULT,
                    f"no contact: pressure stayed below {self._contact_pa(cycle) / 1e6:.2f} MPa "
                    f"for {self.approach_timeout_s:g} s of approach", now_s)
                self._on_fault(fault, now_s, pressure)
            else:
                cycle.t0_s = now_s      # the profile waits at its start until contact
                demand = self._controller.approach(dt_s)
                self._write_valve(demand)
        elif cycle.mode == "vent":
            note = self._vent_progress(now_s)
            if note is not None:
                self._end_cycle(cycle, now_s, note)
        else:
            if point.finished and cycle.mode != "finish":
                cycle.mode = "finish"
                cycle.mode_since_s = now_s
            if cycle.mode == "finish" and self._released_confirmed(now_s):
                self._end_cycle(cycle, now_s)
            elif cycle.mode == "finish" and now_s - cycle.mode_since_s > self.finish_timeout_s:
                # The controlled release did not get there: vent, whatever latched.
                fault = self.supervisor.trip(
                    FaultKind.TRACKING_FAULT,
                    f"pressure {pressure / 1e6:.2f} MPa not released "
                    f"{self.finish_timeout_s:g} s after the profile ended", now_s)
                self._handled_fault = fault
                if cycle.ending is None:
                    cycle.ending = ("ABORTED", fault.kind.value, fault.message)
                self._vent(now_s)
                cycle.mode = "vent"
                cycle.mode_since_s = now_s
            else:
                if cycle.hold_end is not None and cycle.mode == "run" and \
                        point.segment_index == cycle.last_hold_index:
                    self._evaluate_hold_end(cycle, point, now_s)
                demand = self._control(now_s, dt_s, pressure, setpoint, point)
        if self._cycle is not None:
            mode = cycle.mode
            phase = Phase.VENTING if mode == "vent" else point.phase
            self._phase = phase
            r = self._last
            index = point.segment_index if point is not None and \
                mode in ("approach", "run") else -1
            cycle.rows.append((now_s, setpoint, pressure, r.force_n if r else _NAN,
                               r.ram_position_m if r else _NAN, demand, int(phase), index))
        return demand

    @staticmethod
    def _evaluate_hold_end(cycle: _Cycle, point, now_s: float) -> None:
        """Feed the hold-end criterion; when it is met, jump the profile to the hold's end."""
        r_ohm, cycle.pending_r_ohm = cycle.pending_r_ohm, math.nan
        if cycle.hold_end.update(point.time_in_segment_s, r_ohm):
            end_s = cycle.profile.span_bounds(cycle.last_hold_index)[1]
            # The release starts at the hold level, so skipping ahead is bumpless.
            cycle.t0_s -= end_s - (now_s - cycle.t0_s)
            cycle.hold_end_note = f"; hold ended by criterion: {cycle.hold_end.reason}"
            cycle.hold_end = None

    def _control(self, now_s, dt_s, pressure, setpoint, point) -> float:
        if self.mode is PressMode.VALVE:
            target = setpoint
            if point.finished and setpoint <= 0.0:
                # Aim below zero after the last release so the ram actually lifts off and the
                # pressure crosses the released threshold instead of creeping toward it.
                target = -2.0 * self._released_pa()
            demand = self._controller.compute(target, pressure, point.setpoint_rate_pa_s, dt_s)
            self._write_valve(demand)
            return demand
        # The press generates the ramp itself: stream where the present segment ends.
        end_pa = self._cycle.profile.span_bounds(point.segment_index)[3]
        command = self._streamer.compute(now_s, setpoint, point.setpoint_rate_pa_s, end_pa)
        if command is not None:
            try:
                self.driver.command_setpoint(*command)
            except (PressConnectionError, PressProtocolError):
                pass        # the watchdog reports a link that stays down
            except PressError as exc:
                self.supervisor.trip(FaultKind.DEVICE_FAULT, f"press refused the setpoint: "
                                     f"{exc}", now_s)
        return 0.0

    def _end_cycle(self, cycle: _Cycle, now_s: float, note: str = "") -> None:
        status, code, message = cycle.ending or ("SUCCEEDED", "NONE", "cycle complete")
        message += cycle.hold_end_note + note
        if self.mode is PressMode.VALVE and cycle.mode != "vent":
            self._write_valve(0.0)
        self._cycle = None
        self._controller = None
        self._streamer = None
        self._phase = Phase.FAULT if self.supervisor.fault is not None else Phase.IDLE
        cycle.handle._finish(dict(status=status, error_code=code, message=message,
                                  rows=cycle.rows, profile=cycle.plan,
                                  contact_area_m2=cycle.contact_area_m2,
                                  timing=self._runner.timing,
                                  thickness_start=cycle.thickness_start,
                                  thickness_end=self._probe(cycle)))
        self._busy = False
        reply = self._shutdown_reply
        if reply is not None:
            self._shutdown_reply = None
            self._stopped = True
            reply.set(True)
        _LOG.info("cycle %s ended: %s %s", cycle.handle.part_id, status, message)

    def _publish(self, now_s, force, pressure, setpoint, demand, point) -> None:
        # A plain tuple per cycle; the PressSnapshot is built by the reader, off the loop.
        r = self._last
        fault = self.supervisor.fault
        cycle = self._cycle
        self._state.publish((
            now_s, self._phase,
            point.segment_index if point is not None and cycle is not None and
            cycle.mode in ("approach", "run") else -1,
            len(cycle.segments) if cycle is not None else 0,
            pressure, setpoint, force,
            r.ram_position_m if r is not None else math.nan,
            demand,
            point.time_in_segment_s if point is not None else 0.0,
            point.time_remaining_s if point is not None else 0.0,
            self._area_m2,
            r.relief_open if r is not None else False,
            self.supervisor.zone_leased,
            fault.code if fault is not None else 0,
            fault.message if fault is not None else "",
        ))
