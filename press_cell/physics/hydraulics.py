"""Hydraulic ram of a lab press: valve lag, pump flow limit, leak, relief, dump valve, inner loop.

Model (SCIENCE.md "Actuator"; every number below is [est] unless cited):

* The valve/pump demand ``u`` in [-1, 1] reaches the ram through a first-order lag
  (``valve_tau_s``, 0.2-1 s [est]): ``ds/dt = (u - s) / valve_tau_s``.
* The lagged demand ``s`` sets the oil flow, expressed as the free ram speed it would give:
  ``v_oil = s * pump_speed_m_s`` (s > 0, flow limited by the pump) or
  ``s * bleed_speed_m_s`` (s < 0). Leak-down takes ``F / (K_frame * leak_tau_s)``
  (leak flow proportional to pressure; 1e2-1e4 s [est]), so at zero demand a stiff load
  decays with ``leak_tau_s``; the open dump valve takes ``F / (K_frame * vent_tau_s)``.
* The force follows from the oil column, the frame stiffness and the specimen; that
  composition is in ``press_cell.physics.press_plant``. The relief valve caps the force at
  ``relief_force_n`` (default: the press rating).

``InnerForceLoop`` is the press's OWN controller used in SUPERVISORY mode, like a commercial
press with its own electronics: it ramps a reference toward the setpoint at the commanded rate
(braking at a constant deceleration near it) and drives the same valve with feed-forward +
proportional feedback + a disturbance observer (the integral action), tuned from the valve lag
(crossover 0.5 / valve_tau_s rad/s), gain-scheduled with the load stiffness.

Public API::

    HydraulicParams(rated_force_n, valve_tau_s, pump_speed_m_s, bleed_speed_m_s,
                    frame_stiffness_n_m, leak_tau_s, vent_tau_s, relief_force_n, stroke_m)
    HydraulicRam(params): .set_demand(u), .open_vent(), .close_vent(), .step_valve(dt_s),
                          .oil_speed_m_s(force_n) -> m/s, .valve_state, .vent_open
    InnerForceLoop(params): .reset(force_n),
        .update(setpoint_n, ramp_n_s, measured_n, dt_s, stiffness_n_m) -> demand
"""

import math
from dataclasses import dataclass, field


class HydraulicsConfigError(ValueError):
    """A hydraulic parameter is out of its physical range."""


@dataclass(frozen=True)
class HydraulicParams:
    """Ram, pump and valve characteristics of one press."""

    rated_force_n: float = 100e3        # press capacity, N (10 t lab press) [est default]
    valve_tau_s: float = 0.25           # first-order lag of valve + ram, s [est, SCIENCE 0.2-1 s]
    pump_speed_m_s: float = 0.5e-3      # free ram speed at full demand, m/s [est]
    bleed_speed_m_s: float = 0.5e-3     # free ram retract speed at full negative demand [est]
    frame_stiffness_n_m: float = 1.0e8  # frame + oil + tooling stiffness, N/m [est, 100 kN/mm]
    leak_tau_s: float = 1000.0          # leak-down time constant on a stiff load, s [est 1e2-1e4]
    vent_tau_s: float = 0.05            # dump-valve unload time constant, s [est]
    relief_force_n: float = field(default=float("nan"))  # relief setting, N; NaN -> rated force
    stroke_m: float = 0.05              # usable ram stroke, m [est]

    def __post_init__(self) -> None:
        """Check ranges and fill the relief setting."""
        positive = ("rated_force_n", "valve_tau_s", "pump_speed_m_s", "bleed_speed_m_s",
                    "frame_stiffness_n_m", "leak_tau_s", "vent_tau_s", "stroke_m")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise HydraulicsConfigError(f"{name} must be a finite value > 0, got {value!r}")
        if math.isnan(self.relief_force_n):
            object.__setattr__(self, "relief_force_n", float(self.rated_force_n))
        if not 0.0 < self.relief_force_n <= 1.1 * self.rated_force_n:
            raise HydraulicsConfigError(
                f"relief_force_n must be in (0, 1.1 x rated force = {1.1 * self.rated_force_n} N],"
                f" got {self.relief_force_n!r}"
            )

    @property
    def plant_gain_n_s(self) -> float:
        """Return the force rate at full demand on a rigid load, N/s."""
        return self.frame_stiffness_n_m * self.pump_speed_m_s


class HydraulicRam:
    """Valve state and oil flow of the ram; the plant turns flow into force."""

    def __init__(self, params: HydraulicParams) -> None:
        self.params = params
        self.demand = 0.0
        self.valve_state = 0.0
        self.vent_open = False
        self.extra_leak_tau_s = math.inf    # fault injection: a large leak

    def set_demand(self, demand: float) -> None:
        """Set the valve demand, clamped to [-1, 1]; NaN counts as 0 (hold)."""
        if math.isnan(demand):
            demand = 0.0
        self.demand = min(1.0, max(-1.0, float(demand)))

    def open_vent(self) -> None:
        """Open the dump valve and drop the demand to zero."""
        self.vent_open = True
        self.demand = 0.0

    def close_vent(self) -> None:
        """Close the dump valve."""
        self.vent_open = False

    def step_valve(self, dt_s: float) -> None:
        """Advance the valve lag by ``dt_s`` (exact for a constant demand)."""
        target = 0.0 if self.vent_open else self.demand
        alpha = 1.0 - math.exp(-dt_s / self.params.valve_tau_s)
        self.valve_state += (target - self.valve_state) * alpha

    def oil_speed_m_s(self, force_n: float) -> float:
        """Return the oil flow as free ram speed at load ``force_n`` (N), m/s (down +)."""
        p = self.params
        s = self.valve_state
        speed = s * (p.pump_speed_m_s if s > 0.0 else p.bleed_speed_m_s)
        load = max(force_n, 0.0) / p.frame_stiffness_n_m
        speed -= load / p.leak_tau_s
        if math.isfinite(self.extra_leak_tau_s):
            speed -= load / self.extra_leak_tau_s
        if self.vent_open:
            speed -= load / p.vent_tau_s + p.bleed_speed_m_s
        return speed


# Inner-loop tuning of the simulated press's own controller (SUPERVISORY mode), [est]:
INNER_CROSSOVER_TAU = 0.5           # crossover x valve lag, 1 (~60 deg phase margin) [est]
INNER_APPROACH_TAU = 2.5            # time to brake from the ramp to rest / valve lag, 1 [est]
INNER_HEADROOM = 0.8                # share of the valve reach the reference model may ask [est]
INNER_GUARD_FRACTION = 0.001        # overshoot guard band / force, 1 [est]
INNER_GUARD_MIN_FRACTION = 2e-5     # guard band floor / rated force, 1 [est: 2 N on 100 kN]
INNER_OBSERVER_TAU_S = 0.1          # disturbance-observer filter time constant, s [est]
INNER_OBSERVER_LEAD = 1.0           # disturbance slope look-ahead / valve lag, 1 [est]
INNER_OBSERVER_MIN_FRACTION = 1e-3  # observer runs above this force / rated force, 1 [est]


class InnerForceLoop:
    """The press's own force controller (SUPERVISORY mode): ramp generator, feed-forward + PI.

    Modelled on a decent commercial servo-hydraulic force controller [est]:

    * Ramp generator: ``reference_n`` moves toward the setpoint at the commanded ramp and,
      near it, brakes at a constant deceleration to rest in ``INNER_APPROACH_TAU x
      valve_tau_s`` (the slow-down near the target: the oil still in flight lands on the
      target instead of past it; the reference arrives half that time after a plain ramp
      would). Its rate is kept within ``INNER_HEADROOM`` of the valve's reach.
    * Feed-forward: the reference rate plus ``valve_tau_s`` x its change (the inverse of the
      valve lag) and the leak make-up, divided by the plant gain ``stiffness_n_m x
      pump_speed_m_s``; the press knows its load stiffness from ram travel, so the loop
      bandwidth does not depend on the specimen (gain scheduling).
    * PI on ``reference_n - measured_n``: proportional in the force-rate domain (crossover
      ``INNER_CROSSOVER_TAU / valve_tau_s`` rad/s, ~60 deg phase margin against the valve
      lag), integral action by a disturbance observer: the force rate the modelled valve
      flow should have made minus the rate seen, low-passed with ``INNER_OBSERVER_TAU_S``
      and extrapolated one valve lag ahead, is fed back as demand. It holds what creep,
      compaction and an extra leak take, and catches a foil that starts to yield within a
      valve lag instead of a slow integrator's seconds.
    * Anti-windup: the observer runs on the clamped (modelled) valve opening, so saturation
      or a relief event cannot wind it up; below ``INNER_OBSERVER_MIN_FRACTION`` of the
      rating (gap still open) it does not learn.
    * Overshoot guard: force above the reference by more than the guard band, or predicted
      to be one valve lag ahead -> no pumping beyond the leak make-up.

    Measured on the simulator (rigid anvil, 20 kN at 6.6 kN/s and 50 kN at 20 kN/s):
    overshoot <= 0.02 %, ramp lag <= 0.004 s, inside +-0.5 % 0.17-0.19 s after the ramp ends.
    ``update`` is cheap and allocation-free; it is called at the plant's sub-step rate.
    """

    def __init__(self, params: HydraulicParams) -> None:
        self.params = params
        self.crossover_rad_s = INNER_CROSSOVER_TAU / params.valve_tau_s
        self._leak_demand_per_n = 1.0 / (params.frame_stiffness_n_m * params.leak_tau_s
                                         * params.pump_speed_m_s)
        self._alpha_dt_s = math.nan
        self._alpha = 0.0
        self._approach_s = INNER_APPROACH_TAU * params.valve_tau_s
        self.reset(0.0)

    def reset(self, force_n: float) -> None:
        """Restart the reference at ``force_n`` (N) with a clear observer (bumpless)."""
        self.reference_n = float(force_n)
        self._reference_rate_n_s = 0.0
        self._valve_model = 0.0
        self._last_measured_n = math.nan
        self._last_gain_n_s = 0.0
        self.disturbance_n_s = 0.0
        self._measured_rate_n_s = 0.0
        self._filtered_rate_n_s = 0.0
        self._disturbance_slope_n_s2 = 0.0

    def update(self, setpoint_n: float, ramp_n_s: float, measured_n: float, dt_s: float,
               stiffness_n_m: float) -> float:
        """Move the reference toward ``setpoint_n`` at ``ramp_n_s``; return a valve demand."""
        p = self.params
        if not dt_s > 0.0:
            return 0.0
        if dt_s != self._alpha_dt_s:
            self._alpha_dt_s = dt_s
            self._alpha = 1.0 - math.exp(-dt_s / p.valve_tau_s)
        stiffness = max(stiffness_n_m, 1.0)
        gain_up = stiffness * p.pump_speed_m_s
        gain_down = stiffness * p.bleed_speed_m_s
        # ramp generator: the commanded ramp, then a constant-deceleration approach to the
        # setpoint (the slow-down near the target), the rate kept within the valve's reach
        gap = setpoint_n - self.reference_n
        # constant deceleration ramp / approach time over the last part: lands in finite time
        braking_n_s = math.sqrt(2.0 * abs(ramp_n_s) * abs(gap) / self._approach_s)
        step = math.copysign(min(abs(gap), min(abs(ramp_n_s), braking_n_s) * dt_s), gap)
        rate = min(INNER_HEADROOM * gain_up, max(-INNER_HEADROOM * gain_down, step / dt_s))
        accel = (rate - self._reference_rate_n_s) / dt_s
        self._reference_rate_n_s = rate
        self.reference_n += rate * dt_s
        error = self.reference_n - measured_n
        rate_cmd = rate + p.valve_tau_s * accel + self.crossover_rad_s * error
        gain = gain_up if rate_cmd >= 0.0 else gain_down
        leak = max(measured_n, 0.0) * self._leak_demand_per_n
        # disturbance observer: force rate the modelled valve flow should have made minus the
        # rate seen (creep of the specimen, a leak beyond the nominal one)
        if measured_n > INNER_OBSERVER_MIN_FRACTION * p.rated_force_n and \
                math.isfinite(self._last_measured_n):
            seen = (measured_n - self._last_measured_n) / dt_s
            flow = self._valve_model - leak if self._valve_model >= 0.0 else \
                self._valve_model * p.bleed_speed_m_s / p.pump_speed_m_s - leak
            lost = self._last_gain_n_s * flow - seen
            beta = min(1.0, dt_s / INNER_OBSERVER_TAU_S)
            before = self.disturbance_n_s
            self.disturbance_n_s += (lost - self.disturbance_n_s) * beta
            self._disturbance_slope_n_s2 += ((self.disturbance_n_s - before) / dt_s
                                             - self._disturbance_slope_n_s2) * beta
            self._measured_rate_n_s += (seen - self._measured_rate_n_s) * beta
            # the reference rate through the same filter, so the two compare without lag
            self._filtered_rate_n_s += (rate - self._filtered_rate_n_s) * beta
        self._last_measured_n = measured_n
        self._last_gain_n_s = gain_up
        # disturbance expected once the valve has moved (one valve lag ahead)
        disturbance = self.disturbance_n_s + INNER_OBSERVER_LEAD * p.valve_tau_s * \
            self._disturbance_slope_n_s2
        unsat = rate_cmd / gain + leak + disturbance / gain_up
        guard_n = INNER_GUARD_FRACTION * abs(self.reference_n) + INNER_GUARD_MIN_FRACTION * \
            p.rated_force_n
        # predicted one valve lag ahead, once the reference brakes: the oil in flight must not
        # carry the force past it (a foil that stops flowing stiffens while the valve is
        # still open); not during the ramp, where catching up on a lag looks the same
        ahead_n = (measured_n + p.valve_tau_s * self._measured_rate_n_s) - (
            self.reference_n + p.valve_tau_s * self._filtered_rate_n_s)
        if error < -guard_n and unsat > leak:
            unsat = min(leak, rate_cmd / gain)
        elif ahead_n > guard_n and unsat > leak and braking_n_s < abs(ramp_n_s):
            unsat = leak
        demand = min(1.0, max(-1.0, unsat))
        self._valve_model += (demand - self._valve_model) * self._alpha
        return demand
