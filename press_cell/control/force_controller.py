"""Die-pressure controllers: closed loop through a proportional valve, or supervisory streaming.

``ForceController`` (``PressMode.VALVE``) is a two-degree-of-freedom PI controller built on
the hydraulic model every lab press shares: the valve demand ``u`` sets the oil flow through a
first-order lag ``valve_tau_s``, and the flow raises the force at ``plant_gain_n_s`` (force
rate at full demand on a stiff load), so die pressure obeys ``dp/dt = G * lag(u)``. Per cycle:

1. Plant gain: ``G`` depends on the specimen (a thinning foil or a densifying powder turns only
   part of the flow into pressure). ``PlantGainEstimator`` learns it online, separately for
   pumping and bleeding, while the setpoint moves; holds freeze it.
2. Reference model: the reference ``p_ref`` follows the setpoint through the valve's own lag,
   and the feed-forward ``setpoint_rate / G`` makes a correctly modelled plant follow ``p_ref``
   exactly, so feedback only corrects model error instead of fighting the valve lag.
3. Hold feed-forward: the press leaks in proportion to its load (``leak_tau_s``), so the
   demand ``p / (leak_tau_s * G)`` is always added.
4. PI on ``e = p_ref - p`` with gains in the pressure-rate domain (``kp_per_s``,
   ``ki_per_s2``), divided by ``G``, so the loop bandwidth does not depend on the specimen. The
   integrator holds demand (creep of the foil, extra leak); what it learnt while the setpoint
   moved is dropped when the setpoint stops. Anti-windup: conditional integration plus
   back-calculation of the clamp excess.
5. Overshoot guard: pressure above the reference by more than the guard band -> no pumping
   beyond the leak make-up and no positive integral; the same cap when the pressure predicted
   one valve lag ahead (measured rate x ``valve_tau_s``) runs ahead of the reference predicted
   the same way (a foil that stops flowing stiffens while the valve is still open); during
   ramps the demand is capped at ``ramp_demand_ratio`` x the stiff-load ramp demand (a foil
   that yields takes flow without building pressure and would otherwise overshoot when it
   stiffens).
6. Output clamp to ``[demand_min, demand_max]`` (validated subset of [-1, 1]).

Default gains: crossover ``kp = 0.5 / valve_tau_s`` rad/s (about 60 deg of phase margin
against the valve lag) and the PI zero a quarter of the crossover [est]. ``reset`` per goal;
every method except the constructors is allocation-free arithmetic and safe in the loop.

``SupervisoryStreamer`` (``PressMode.SUPERVISORY``) is for presses with their own inner loop:
it sends the present segment's end force with the segment's ramp (the press generates the ramp
itself) and decides when to stream (50-200 Hz, DESIGN.md section 5).
"""

import math
from dataclasses import dataclass

_isfinite = math.isfinite

# The reference may ask for this fraction of the valve's reach, leaving the rest to feedback.
REFERENCE_HEADROOM = 0.8


class GainsError(ValueError):
    """A controller gain or clamp is out of its allowed range."""


@dataclass(frozen=True)
class ControllerGains:
    """Gains of ``ForceController``; pressure-domain gains are independent of the contact area."""

    plant_gain_n_s: float = 5.0e4       # force rate at full demand on a stiff load, N/s; identify
    #                                     per press (step test) [est default: 100 kN/mm frame x
    #                                     0.5 mm/s pump, press_cell.physics.hydraulics defaults]
    valve_tau_s: float = 0.25           # valve + ram lag, s [est, SCIENCE.md 0.2-1 s]
    leak_tau_s: float = 1000.0          # leak-down time constant, s (inf = no leak FF) [est]
    kp_per_s: float = math.nan          # Pa/s of rate per Pa of error; NaN -> 0.5 / valve_tau_s
    ki_per_s2: float = math.nan         # Pa/s of rate per Pa*s of error; NaN -> kp^2 / 4
    kaw_per_s: float = math.nan         # back-calculation gain, 1/s; NaN -> kp
    feedforward: float = 1.0            # fraction of the setpoint rate fed forward, 1
    estimator_window_s: float = 0.1     # plant-gain regression window, s [est]
    estimator_forget_s: float = 0.5     # plant-gain forgetting time, s [est]
    estimator_min_fraction: float = 1e-2    # lowest plant gain / rigid-load gain, 1 [est]
    guard_band_fraction: float = 0.005  # overshoot guard band / setpoint, 1 [est: the hold band]
    guard_min_pa: float = 0.05e6        # overshoot guard band floor, Pa [est: ~2 sigma of a
    #                                     100 kN cell's noise on a 12.7 mm face]
    ramp_demand_ratio: float = 60.0     # ramp demand cap / stiff-load ramp demand, 1 [est: a
    #                                     yielding Li foil needs ~5x, loose powder ~30x]
    approach_demand: float = 0.02       # pumping demand while closing the gap to contact, 1
    #                                     [est: 10 um/s on the default 0.5 mm/s pump, so touching
    #                                     a stiff part raises ~1 kN/s until the loop takes over]
    demand_min: float = -1.0            # output clamp, 1
    demand_max: float = 1.0             # output clamp, 1

    def __post_init__(self) -> None:
        """Fill defaults derived from the valve lag and validate every field."""
        def positive(name):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0.0):
                raise GainsError(f"{name}={value!r} must be a finite number > 0")
        positive("plant_gain_n_s")
        positive("valve_tau_s")
        if not (self.leak_tau_s > 0.0):
            raise GainsError(f"leak_tau_s={self.leak_tau_s!r} must be > 0 (inf disables the "
                             "leak feed-forward)")
        if math.isnan(self.kp_per_s):
            object.__setattr__(self, "kp_per_s", 0.5 / self.valve_tau_s)
        if math.isnan(self.ki_per_s2):
            object.__setattr__(self, "ki_per_s2", self.kp_per_s ** 2 / 4.0)
        if math.isnan(self.kaw_per_s):
            object.__setattr__(self, "kaw_per_s", self.kp_per_s)
        positive("kp_per_s")
        for name in ("ki_per_s2", "kaw_per_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise GainsError(f"{name}={value!r} must be a finite number >= 0")
        if self.kp_per_s * self.valve_tau_s > 2.0:
            raise GainsError(
                f"kp_per_s={self.kp_per_s:g} with valve_tau_s={self.valve_tau_s:g} s leaves "
                "almost no phase margin; allowed is kp_per_s * valve_tau_s <= 2")
        if not 0.0 <= self.feedforward <= 1.5:
            raise GainsError(f"feedforward={self.feedforward!r} must be in [0, 1.5]")
        for name in ("estimator_window_s", "estimator_forget_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 < value <= 10.0):
                raise GainsError(f"{name}={value!r} must be in (0, 10] s")
        if not 0.0 < self.estimator_min_fraction < 1.0:
            raise GainsError(f"estimator_min_fraction={self.estimator_min_fraction!r} must be "
                             "in (0, 1)")
        if not (math.isfinite(self.ramp_demand_ratio) and self.ramp_demand_ratio >= 1.0):
            raise GainsError(f"ramp_demand_ratio={self.ramp_demand_ratio!r} must be >= 1")
        if not 0.0 < self.approach_demand <= 0.5:
            raise GainsError(f"approach_demand={self.approach_demand!r} must be in (0, 0.5]")
        if not (-1.0 <= self.demand_min < 0.0 < self.demand_max <= 1.0):
            raise GainsError(
                f"demand clamp [{self.demand_min!r}, {self.demand_max!r}] must satisfy "
                "-1 <= demand_min < 0 < demand_max <= 1")


class PlantGainEstimator:
    """Running estimate of the pressure rate per unit valve flow (Pa/s per unit demand).

    The specimen sets how much of the oil flow turns into pressure: a stiff pellet near its
    final density converts almost all of it, a foil that is still thinning or a powder that is
    still densifying only part. The estimator regresses the pressure change over a window on the
    integral of the modelled valve opening over the same window, ``dp = G * int(s dt)``, with
    exponential forgetting, separately for pumping (``int s dt > 0``) and bleeding, because
    loading a compacting powder is soft while unloading it is elastic and stiff. Samples are
    weighted by the squared excitation, so a quiet hold leaves the estimate where the ramp put
    it. The estimate is clamped to [``min_fraction``, 2] x the rigid-load gain. Loop-safe.
    """

    def __init__(self, rigid_gain_pa_s: float, window: int, forget_time_s: float,
                 min_fraction: float, min_excitation: float = 5e-4) -> None:
        """Start at the rigid-load gain (Pa/s); ``window`` in samples, forgetting time in s.

        ``min_excitation`` is the mean valve opening over the window below which nothing is
        learnt.
        """
        self.rigid_gain_pa_s = rigid_gain_pa_s
        self.min_excitation = min_excitation
        self.window = max(2, int(window))
        self.forget_time_s = forget_time_s
        self.min_gain_pa_s = min_fraction * rigid_gain_pa_s
        self.max_gain_pa_s = 2.0 * rigid_gain_pa_s
        self.reset()

    def reset(self) -> None:
        """Forget the history; both estimates back to the rigid-load gain (loop-safe)."""
        self._p = [0.0] * self.window
        self._s = [0.0] * self.window
        self._count = 0
        self._flow = 0.0
        self._lam_dt_s = math.nan
        self._lam = 1.0
        self.measured_rate_pa_s = 0.0
        # Prior weight: as much as 5 ms of full-demand pumping, so real data dominates fast.
        prior = (5e-3) ** 2
        self._num = [prior * self.rigid_gain_pa_s, prior * self.rigid_gain_pa_s]
        self._den = [prior, prior]
        self.gain_up_pa_s = self.rigid_gain_pa_s
        self.gain_down_pa_s = self.rigid_gain_pa_s

    def update(self, pressure_pa: float, valve_state: float, leak_rate_pa_s: float,
               dt_s: float, learn: bool) -> None:
        """Add one sample: measured pressure (Pa), modelled valve opening, known leak (Pa/s).

        With ``learn`` false (holds) the history is kept but the estimates stay frozen.
        """
        # Flow integral with the known leak folded in, in "demand seconds".
        flow = self._flow + (valve_state * dt_s - leak_rate_pa_s * dt_s / self.rigid_gain_pa_s)
        self._flow = flow
        window = self.window
        count = self._count
        i = count % window
        old_p, old_s = self._p[i], self._s[i]
        self._p[i], self._s[i] = pressure_pa, flow
        count += 1
        self._count = count
        if count <= window:
            return
        dp = pressure_pa - old_p
        ds = flow - old_s
        self.measured_rate_pa_s = dp / (window * dt_s)
        # Learn only while the setpoint moves and the valve is open enough for the pressure
        # change to stand out of the sensor noise; in a hold the regression would fit noise.
        if not learn or abs(ds) < self.min_excitation * window * dt_s:
            return
        k = 0 if ds > 0.0 else 1
        if dt_s != self._lam_dt_s:
            self._lam_dt_s = dt_s
            self._lam = math.exp(-dt_s / self.forget_time_s)
        lam = self._lam
        num, den = self._num, self._den
        num[k] = lam * num[k] + ds * dp
        den[k] = lam * den[k] + ds * ds
        # Keep a trickle of the prior so the ratio stays defined after long quiet spells.
        gain = num[k] / den[k] if den[k] > 0.0 else self.rigid_gain_pa_s
        gain = min(self.max_gain_pa_s, max(self.min_gain_pa_s, gain))
        if k == 0:
            self.gain_up_pa_s = gain
        else:
            self.gain_down_pa_s = gain


class ForceController:
    """Two-degree-of-freedom PI die-pressure controller driving a proportional valve."""

    def __init__(self, gains: ControllerGains, contact_area_m2: float, rate_hz: float = 1000.0
                 ) -> None:
        """Build the controller for one contact area (m^2) and loop rate (Hz); not loop-safe."""
        if not (math.isfinite(contact_area_m2) and contact_area_m2 > 0.0):
            raise GainsError(f"contact_area_m2={contact_area_m2!r} must be a finite value > 0")
        if not (math.isfinite(rate_hz) and rate_hz > 0.0):
            raise GainsError(f"rate_hz={rate_hz!r} must be a finite value > 0")
        self.gains = gains
        self.contact_area_m2 = float(contact_area_m2)
        # Pressure rate at full demand on a stiff load, Pa/s.
        self.plant_gain_pa_s = gains.plant_gain_n_s / self.contact_area_m2
        self.estimator = PlantGainEstimator(
            self.plant_gain_pa_s, window=round(gains.estimator_window_s * rate_hz),
            forget_time_s=gains.estimator_forget_s, min_fraction=gains.estimator_min_fraction)
        self.reset(0.0)

    def reset(self, measured_pa: float = 0.0, keep_valve: bool = False) -> None:
        """Start a new goal from the measured pressure (bumpless): clear integrator and model.

        ``keep_valve`` keeps the modelled valve opening (handing over from the approach, when
        the valve is still open). Loop-safe.
        """
        self.reference_pa = float(measured_pa) if math.isfinite(measured_pa) else 0.0
        self.integral = 0.0
        self._alpha_dt_s = math.nan
        self._alpha = 0.0
        self._reference_rate_pa_s = 0.0
        self._segment_integral = 0.0
        self._last_rate_pa_s = 0.0
        if not keep_valve:
            self.valve_state = 0.0
            self.demand = 0.0
        self.saturated = False
        self.guarding = False
        self.estimator.reset()

    def approach(self, dt_s: float) -> float:
        """Return the constant approach demand used until the ram touches the part (loop-safe).

        Nothing is integrated or learnt: with a gap, pressure does not respond to flow.
        """
        demand = min(self.gains.approach_demand, self.gains.demand_max)
        if dt_s > 0.0:
            self.valve_state += (demand - self.valve_state) * (
                1.0 - math.exp(-dt_s / self.gains.valve_tau_s))
        self.demand = demand
        return demand

    @property
    def disturbance_rate_pa_s(self) -> float:
        """Return the integrator's estimate of unmodelled pressure loss (creep, leak), Pa/s."""
        return self.integral * self.estimator.gain_up_pa_s

    def hold_demand(self, measured_pa: float) -> float:
        """Return the demand needed just to hold ``measured_pa`` (leak FF + integral), 1."""
        leak = max(measured_pa, 0.0) / self.gains.leak_tau_s if math.isfinite(measured_pa) else 0.0
        return leak / self.estimator.gain_up_pa_s + self.integral

    def compute(self, setpoint_pa: float, measured_pa: float, setpoint_rate_pa_s: float,
                dt_s: float) -> float:
        """Return the valve demand in [demand_min, demand_max] for this cycle (loop-safe).

        ``setpoint_pa`` and ``measured_pa`` are die pressures (Pa), ``setpoint_rate_pa_s`` the
        slope of the setpoint (Pa/s), ``dt_s`` the measured time since the last call (s). A
        non-finite measurement or a non-positive dt returns 0 (hold the valve) without touching
        the integrator; the safety supervisor is responsible for acting on a bad sensor.
        """
        g = self.gains
        if not (_isfinite(measured_pa) and _isfinite(setpoint_pa) and dt_s > 0.0):
            self.demand = 0.0
            return 0.0
        # Gains and state are read into locals once (this runs every loop cycle); min/max
        # are written out as ``b if b < a else a``, which is what min(a, b) returns.
        rate = setpoint_rate_pa_s if _isfinite(setpoint_rate_pa_s) else 0.0
        if rate != self._last_rate_pa_s:
            # Segment boundary. What the integrator learnt while the setpoint was moving made up
            # for feed-forward error (a gain estimate still catching up); once the setpoint
            # stops, that correction would push the pressure past the target, so drop it.
            if self._last_rate_pa_s != 0.0:
                self.integral = self._segment_integral
            self._segment_integral = self.integral
            self._last_rate_pa_s = rate
        if dt_s != self._alpha_dt_s:        # the loop's dt rarely changes: cache the lag factor
            self._alpha_dt_s = dt_s
            self._alpha = 1.0 - math.exp(-dt_s / g.valve_tau_s)
        alpha = self._alpha
        tau = g.valve_tau_s
        leak_ff = (0.0 if 0.0 > measured_pa else measured_pa) / g.leak_tau_s
        est = self.estimator
        est.update(measured_pa, self.valve_state, leak_ff, dt_s, rate != 0.0)
        gain_up = est.gain_up_pa_s
        gain_down = est.gain_down_pa_s
        # Reference: the setpoint through the valve lag, its slope limited to what the valve
        # can deliver (so a saturated ramp does not leave oil in flight past the target).
        reference = self.reference_pa
        ref_rate = (setpoint_pa - reference) / tau
        low = REFERENCE_HEADROOM * g.demand_min * gain_down
        ref_rate = ref_rate if ref_rate > low else low
        high = REFERENCE_HEADROOM * g.demand_max * gain_up
        ref_rate = ref_rate if ref_rate < high else high
        ref_accel = (ref_rate - self._reference_rate_pa_s) / dt_s
        self._reference_rate_pa_s = ref_rate
        reference += ref_rate * dt_s
        self.reference_pa = reference
        error = reference - measured_pa
        # Inverse of the valve lag: the flow that makes the plant follow the reference.
        feedforward = ref_rate + tau * ref_accel
        rate_cmd = g.feedforward * feedforward + leak_ff + g.kp_per_s * error
        gain = gain_up if rate_cmd >= 0.0 else gain_down
        integral = self.integral
        unsat = rate_cmd / gain + integral
        # Overshoot guard: once the pressure is above the reference by more than the guard
        # band, no pumping beyond the leak make-up, whatever the integrator or a stale gain
        # estimate say (a foil that finished flowing stiffens within milliseconds).
        guard_pa = g.guard_band_fraction * abs(setpoint_pa) + g.guard_min_pa
        hold_ff = leak_ff / gain_up
        guarding = error < -guard_pa and unsat > hold_ff
        self.guarding = guarding
        # Predicted: where pressure and reference will be once the oil in flight has arrived.
        ahead_pa = (measured_pa + tau * est.measured_rate_pa_s) - (reference + tau * ref_rate)
        predicted = ahead_pa > guard_pa and unsat > hold_ff
        if guarding:
            # Drop the pumping the integrator had built so the P term can bring it back.
            integral = 0.0 if 0.0 < integral else integral
            unsat = rate_cmd / gain
            unsat = unsat if unsat < hold_ff else hold_ff
        elif predicted:
            unsat = hold_ff
        if rate != 0.0:
            # While the setpoint moves, never pump harder than ``ramp_demand_ratio`` times what
            # the ramp needs on a stiff load: a foil that yields takes flow without building
            # pressure, and a valve opened wide for it overshoots when the foil stiffens.
            cap = g.ramp_demand_ratio * abs(rate) / self.plant_gain_pa_s
            cap = g.approach_demand if g.approach_demand > cap else cap
            unsat = cap if cap < unsat else unsat
        demand = unsat if unsat > g.demand_min else g.demand_min
        demand = demand if demand < g.demand_max else g.demand_max
        saturated = demand != unsat
        self.saturated = saturated
        # The integrator holds demand, not rate: when the gain estimate moves (a foil starts
        # to flow) what it has learnt keeps its effect on the valve instead of being rescaled.
        # Conditional integration plus back-calculation of the clamp excess.
        if not (saturated and (unsat - demand) * error > 0.0) and \
                not (predicted and error > 0.0):
            integral += g.ki_per_s2 * error * dt_s / gain
        integral += g.kaw_per_s * (demand - unsat) * dt_s
        self.integral = integral
        self.valve_state += (demand - self.valve_state) * alpha
        self.demand = demand
        return demand


class SupervisoryStreamer:
    """Stream force setpoint + ramp to a press with its own loop (``PressMode.SUPERVISORY``).

    A press's own loop generates the ramp itself (``press_cell.physics.hydraulics.
    InnerForceLoop``, like commercial controllers), so while the profile moves the streamer
    sends the END of the present segment with the segment's rate: the press ramps exactly at
    the asked rate from the moment the command lands and slows down on its own near the
    target. Streaming the moving setpoint instead makes the press chase a target that is
    always a few milliseconds away: it approaches each one with its near-target slow-down and
    lags the ramp by that approach time (0.25 s on the simulated press, measured), and over a
    serial link every stream tick becomes a round trip and the link latency adds jitter.
    In holds the hold level is sent with the last segment's ramp (so a press that is still
    arriving keeps its pace), or ``hold_ramp_pa_s`` when nothing moved yet. Repeating the same
    command at the stream rate changes nothing at the press and feeds its comms watchdog.
    """

    def __init__(self, contact_area_m2: float, stream_rate_hz: float = 100.0,
                 hold_ramp_pa_s: float = 1.0e6) -> None:
        """Configure area (m^2), stream rate (Hz, 1-1000) and the ramp used during holds (Pa/s)."""
        if not (math.isfinite(contact_area_m2) and contact_area_m2 > 0.0):
            raise GainsError(f"contact_area_m2={contact_area_m2!r} must be a finite value > 0")
        if not (1.0 <= stream_rate_hz <= 1000.0):
            raise GainsError(f"stream_rate_hz={stream_rate_hz!r} must be in [1, 1000] Hz")
        if not (math.isfinite(hold_ramp_pa_s) and hold_ramp_pa_s > 0.0):
            raise GainsError(f"hold_ramp_pa_s={hold_ramp_pa_s!r} must be a finite value > 0")
        self.contact_area_m2 = float(contact_area_m2)
        self.period_s = 1.0 / stream_rate_hz
        self.hold_ramp_pa_s = float(hold_ramp_pa_s)
        self.reset()

    def reset(self) -> None:
        """Forget the last streamed time and ramp so the next call streams at once (loop-safe)."""
        self._last_sent_s = -math.inf
        self._ramp_pa_s = self.hold_ramp_pa_s

    def compute(self, now_s: float, setpoint_pa: float, setpoint_rate_pa_s: float,
                segment_end_pa: float = math.nan):
        """Return ``(force_n, ramp_n_s)`` to send now, or None between stream ticks (loop-safe).

        ``segment_end_pa`` is where the present segment ends (Pa); while the setpoint moves it
        is sent instead of the setpoint itself. Without it (NaN) the moving setpoint is sent.
        """
        if now_s - self._last_sent_s < self.period_s - 1e-9:
            return None
        self._last_sent_s = now_s
        target = setpoint_pa
        if setpoint_rate_pa_s:
            self._ramp_pa_s = abs(setpoint_rate_pa_s)
            if math.isfinite(segment_end_pa):
                target = segment_end_pa
        force_n = max(0.0, target) * self.contact_area_m2
        return force_n, self._ramp_pa_s * self.contact_area_m2
