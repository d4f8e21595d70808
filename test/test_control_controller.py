"""ForceController and SupervisoryStreamer on a small first-order hydraulic plant."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.control.force_controller import (
    ControllerGains,
    ForceController,
    GainsError,
    SupervisoryStreamer,
)

MPA = 1e6
AREA = 1.0e-4        # m^2
DT = 1e-3            # s


class LagPlant:
    """dp/dt = stiffness_fraction * G * s - p / leak_tau, ds/dt = (u - s) / tau."""

    def __init__(self, gains, stiffness_fraction=1.0, leak_tau_s=math.inf):
        self.g = gains.plant_gain_n_s / AREA * stiffness_fraction
        self.tau = gains.valve_tau_s
        self.leak = leak_tau_s
        self.s = 0.0
        self.p = 0.0

    def step(self, u, dt=DT):
        self.s += (u - self.s) * (1 - math.exp(-dt / self.tau))
        self.p += (self.g * self.s - self.p / self.leak) * dt
        return self.p


def track(ctl, plant, target, rate, hold_s):
    ramp_s = target / rate
    trace = []
    t = 0.0
    while t < ramp_s + hold_s:
        sp = min(target, rate * t)
        sp_rate = rate if t < ramp_s else 0.0
        u = ctl.compute(sp, plant.p, sp_rate, DT)
        trace.append((t, sp, plant.step(u), u))
        t += DT
    return trace


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(plant_gain_n_s=0.0), "plant_gain_n_s"),
    (dict(valve_tau_s=-1.0), "valve_tau_s"),
    (dict(kp_per_s=50.0), "phase margin"),
    (dict(ki_per_s2=-1.0), "ki_per_s2"),
    (dict(demand_min=0.2), "demand clamp"),
    (dict(demand_max=1.5), "demand clamp"),
    (dict(feedforward=3.0), "feedforward"),
    (dict(leak_tau_s=0.0), "leak_tau_s"),
])
def test_gains_are_validated(kwargs, fragment):
    with pytest.raises(GainsError, match=fragment):
        ControllerGains(**kwargs)


def test_default_gains_follow_the_valve_lag():
    g = ControllerGains(valve_tau_s=0.5)
    assert g.kp_per_s == pytest.approx(1.0) and g.ki_per_s2 == pytest.approx(0.25)


@pytest.mark.parametrize("fraction", [1.0, 0.3])
def test_ramp_and_hold_track_even_when_the_specimen_is_softer_than_assumed(fraction):
    gains = ControllerGains()
    ctl = ForceController(gains, AREA)
    plant = LagPlant(gains, stiffness_fraction=fraction, leak_tau_s=200.0)
    trace = track(ctl, plant, 20 * MPA, 2 * MPA, 10.0)
    hold = [p for t, sp, p, u in trace if t > 12.0]
    assert max(p for _, _, p, _ in trace) < 20 * MPA * 1.005
    assert all(abs(p - 20 * MPA) < 0.005 * 20 * MPA for p in hold)
    # the adaptive gain learnt roughly the true plant gain
    assert ctl.estimator.gain_up_pa_s == pytest.approx(plant.g, rel=0.25)


def test_saturated_ramp_recovers_without_windup_overshoot():
    gains = ControllerGains(demand_max=0.05)
    ctl = ForceController(gains, AREA)
    plant = LagPlant(gains)
    # 0.05 x 500 MPa/s = 25 MPa/s achievable; ask for 100 MPa/s.
    trace = track(ctl, plant, 20 * MPA, 100 * MPA, 5.0)
    assert max(u for *_, u in trace) <= 0.05
    assert max(p for _, _, p, _ in trace) < 20 * MPA * 1.02


def test_bad_inputs_hold_the_valve_and_keep_the_integrator():
    ctl = ForceController(ControllerGains(), AREA)
    ctl.compute(10 * MPA, 5 * MPA, 0.0, DT)
    integral = ctl.integral
    assert ctl.compute(10 * MPA, math.nan, 0.0, DT) == 0.0
    assert ctl.compute(10 * MPA, 5 * MPA, 0.0, 0.0) == 0.0
    assert ctl.integral == integral


def test_reset_is_bumpless_from_the_measured_pressure():
    ctl = ForceController(ControllerGains(), AREA)
    ctl.reset(12 * MPA)
    # Setpoint equal to the measurement and not moving: only the leak make-up is demanded.
    u = ctl.compute(12 * MPA, 12 * MPA, 0.0, DT)
    assert 0.0 <= u < 1e-3


@settings(max_examples=200, deadline=None)
@given(sp=st.floats(-1e9, 1e9), p=st.floats(-1e9, 1e9), rate=st.floats(-1e9, 1e9),
       dt=st.floats(1e-5, 0.1), lo=st.floats(-1.0, -0.01), hi=st.floats(0.01, 1.0))
def test_demand_is_always_finite_and_inside_the_clamp(sp, p, rate, dt, lo, hi):
    ctl = ForceController(ControllerGains(demand_min=lo, demand_max=hi), AREA)
    for _ in range(3):
        u = ctl.compute(sp, p, rate, dt)
        assert math.isfinite(u) and lo <= u <= hi


def test_supervisory_streamer_decimates_and_converts_to_force():
    s = SupervisoryStreamer(AREA, stream_rate_hz=100.0, hold_ramp_pa_s=1 * MPA)
    sent = [s.compute(k * DT, 10 * MPA, 2 * MPA) for k in range(100)]
    packets = [x for x in sent if x is not None]
    assert len(packets) == 10
    force, ramp = packets[0]
    assert force == pytest.approx(10 * MPA * AREA) and ramp == pytest.approx(2 * MPA * AREA)
    s.reset()
    assert s.compute(1.0, 5 * MPA, 0.0)[1] == pytest.approx(1 * MPA * AREA)


def test_supervisory_streamer_validates_its_rate():
    with pytest.raises(GainsError, match="stream_rate_hz"):
        SupervisoryStreamer(AREA, stream_rate_hz=5000.0)
