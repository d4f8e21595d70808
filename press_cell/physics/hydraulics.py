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
and drives the same valve with feed-forward + PI, tuned from the valve lag (crossover
0.5 / valve_tau_s rad/s, PI zero a quarter of that: ~50 deg phase margin), gain-scheduled
with the load stiffness.

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


class InnerForceLoop:
    """The press's own force controller (SUPERVISORY mode): ramped reference, FF + PI.

    Like servo-hydraulic controllers that estimate the load stiffness from ram travel, the
    gains are scheduled with the present effective stiffness (``stiffness_n_m``), so a soft
    powder bed and a stiff anvil get the same loop bandwidth. The reference stops advancing
    while it leads the force by more than a following-error window (ramp x 4 valve lags +
    0.5 % of rating), so a slow specimen cannot wind the loop up, and the asked force rate is
    braked to (distance to setpoint + 0.2 % of rating) / (4 valve lags) so a pump-limited
    approach onto a stiffening powder does not overshoot. ``update`` is cheap and
    allocation-free; it is called at the plant's sub-step rate.
    """

    def __init__(self, params: HydraulicParams) -> None:
        self.params = params
        self.crossover_rad_s = 0.5 / params.valve_tau_s
        self.reference_n = 0.0
        self._integral = 0.0

    def reset(self, force_n: float) -> None:
        """Restart the reference at ``force_n`` (N) with a clear integrator (bumpless)."""
        self.reference_n = float(force_n)
        self._integral = 0.0

    def update(self, setpoint_n: float, ramp_n_s: float, measured_n: float, dt_s: float,
               stiffness_n_m: float) -> float:
        """Move the reference toward ``setpoint_n`` at ``ramp_n_s``; return a valve demand."""
        p = self.params
        gain_n_s = max(stiffness_n_m, 1.0) * p.pump_speed_m_s
        window = abs(ramp_n_s) * 4.0 * p.valve_tau_s + 0.005 * p.rated_force_n
        gap = setpoint_n - self.reference_n
        step = math.copysign(min(abs(gap), abs(ramp_n_s) * dt_s), gap)
        if abs(self.reference_n + step - measured_n) > window and abs(
                self.reference_n + step - measured_n) > abs(self.reference_n - measured_n):
            step = 0.0
        self.reference_n += step
        wc = self.crossover_rad_s
        error = self.reference_n - measured_n
        # integral kept as a force rate (N/s) so a stiffness change does not kick the output
        rate_ff = step / dt_s if dt_s > 0.0 else 0.0
        integral_next = self._integral + 0.25 * wc * wc * error * dt_s
        rate = rate_ff + wc * error + integral_next
        # approach braking: never ask for more rate than the valve lag can stop in time
        # (critically damped approach; floor so leak and creep can still be made up)
        brake_n_s = (abs(setpoint_n - measured_n) + 0.002 * p.rated_force_n) / (
            4.0 * p.valve_tau_s)
        braked = abs(rate) > brake_n_s and (rate > 0.0) == (setpoint_n > measured_n)
        if braked:
            rate = math.copysign(brake_n_s, rate)
        unsat = rate / gain_n_s
        if -1.0 < unsat < 1.0 and not braked:   # conditional integration: no wind-up
            self._integral = integral_next
        return min(1.0, max(-1.0, unsat))
