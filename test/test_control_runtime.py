"""PressRuntime on the SimulatedPress in lockstep: acceptance, faults, cancel, e-stop, refusals.

Every test here runs the real loop thread, controller and supervisor against the physics
simulator (load-cell noise, gain error, leak-down, foil creep, powder compaction).
"""

import math
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from press_cell.control.hold_end import HoldEndCriterion
from press_cell.control.press_runtime import (
    BusyError,
    FaultLatchedError,
    InvalidGoalError,
    NotActiveError,
    OverLimitError,
    PressRuntime,
    RuntimeConfigError,
    ZoneOccupiedError,
)
from press_cell.control.profile import Phase
from press_cell.control.supervisor import SafetyLimits
from press_cell.hardware.press_driver import PressMode
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.physics.compaction import LI6PS5CL, PowderCompact
from press_cell.physics.foil import LITHIUM, SODIUM, AlkaliFoil
from press_cell.recipes.segments import Segment
from press_cell.timebase import MonotonicClock, SimulatedClock

MPA = 1e6
ROD_RADIUS_M = 12.7e-3 / 2          # rod-12.7mm (config/library.yaml)
DIE_AREA_M2 = math.pi * 0.013 ** 2 / 4
RATE_HZ = 500.0


def specimen(kind):
    if kind == "Li":
        return AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    if kind == "Na":
        return AlkaliFoil(SODIUM, 100e-6, ROD_RADIUS_M)
    return PowderCompact(LI6PS5CL, 200e-6, DIE_AREA_M2)


class Cell:
    """A SimulatedPress with a specimen, a lockstep runtime, and ground-truth recording."""

    def __init__(self, kind="Li", seed=0, rate_hz=RATE_HZ, watchdog_s=None, **runtime_kwargs):
        self.clock = SimulatedClock()
        self.spec = specimen(kind)
        self.sim = SimulatedPress(self.clock, specimen=self.spec, seed=seed,
                                  watchdog_s=watchdog_s)
        self.area = self.spec.loaded_area_m2
        self.true_force = []
        self.actions = []           # (condition, action), each run once from inside the loop
        read = self.sim.read

        def recording_read():
            for entry in list(self.actions):
                if entry[0]():
                    self.actions.remove(entry)
                    entry[1]()
            self.true_force.append(self.sim.plant.true_force_n)
            return read()
        self.sim.read = recording_read
        self.rt = PressRuntime(self.sim, self.clock, rate_hz=rate_hz, lockstep=True,
                               realtime=False, **runtime_kwargs)
        self.rt.start()
        self.rt.tare(50)

    def at(self, t_s, action):
        """Run ``action`` from the loop thread once simulated time reaches ``t_s``."""
        self.actions.append((lambda: self.clock.now() >= t_s, action))

    def above(self, pressure_pa, action):
        """Run ``action`` from the loop thread once the true pressure exceeds ``pressure_pa``."""
        self.actions.append((lambda: self.sim.plant.true_force_n > pressure_pa * self.area,
                             action))

    def run(self, segments, timeout_s=60.0, **kwargs):
        handle = self.rt.start_cycle(segments, self.area, **kwargs)
        outcome = handle.wait(timeout_s)
        assert outcome is not None, "cycle did not finish"
        return outcome

    def close(self):
        self.rt.stop()


def profile(target, rate, hold_s, release_rate, tolerance_fraction=0.005):
    return [Segment("ramp", target, rate),
            Segment("hold", target, 0.0, hold_s, tolerance_fraction * target),
            Segment("release", 0.0, release_rate)]


@pytest.fixture
def cells():
    made = []

    def make(*args, **kwargs):
        cell = Cell(*args, **kwargs)
        made.append(cell)
        return cell
    yield make
    for cell in made:
        cell.close()


# ---------------------------------------------------------------- acceptance (DESIGN §5)
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, target, rate, release", [
    ("Li", 25 * MPA, 1 * MPA, 2 * MPA),         # li_foil recipes: 0.5-1 MPa/s
    ("Na", 25 * MPA, 1 * MPA, 2 * MPA),
    ("Li6PS5Cl", 370 * MPA, 5 * MPA, 10 * MPA),  # li6ps5cl_370mpa_200mg: 5 MPa/s on 13 mm
])
def test_acceptance_ramp_hold_release(cells, kind, target, rate, release):
    cell = cells(kind)
    out = cell.run(profile(target, rate, 60.0, release), part_id=kind, material=kind,
                   thickness_probe=lambda: cell.sim.specimen_thickness_m)
    assert out.status == "SUCCEEDED", out.message
    cert = out.certificate
    assert cert.overshoot_fraction <= 0.005
    assert cert.fraction_in_band >= 0.99           # band = +-0.5 % of the setpoint
    assert cert.settling_time <= 1.0
    assert abs(cert.ramp_rate_error) <= 0.02
    assert cert.hold_duration == pytest.approx(60.0, abs=0.01)
    assert cert.thickness_end < cert.thickness_start       # the foil thinned, the powder densified
    assert cert.loop_timing.lockstep and cert.loop_timing.rate == RATE_HZ
    # The press ends released (ground truth, not the sensor).
    assert cell.sim.plant.true_force_n < 0.02 * target * cell.area
    assert cell.rt.snapshot().phase is Phase.IDLE


@pytest.mark.timeout(60)
def test_lockstep_runs_are_identical(cells):
    traces = []
    for _ in range(2):
        cell = cells("Li", seed=7)
        out = cell.run(profile(25 * MPA, 5 * MPA, 5.0, 10 * MPA))
        traces.append(out.trace)
    a, b = traces
    assert len(a) == len(b) > 1000
    assert np.array_equal(a.pressure_pa, b.pressure_pa)
    assert np.array_equal(a.demand, b.demand)


# ---------------------------------------------------------------- faults
FAULTS = [
    ("sensor_stuck", {}, "SENSOR_FAULT"),
    ("sensor_noise_burst", {}, "SENSOR_FAULT"),
    ("sensor_nan", {}, "SENSOR_FAULT"),
    ("leak", {}, "DEVICE_FAULT"),
    ("relief_trip", {}, "DEVICE_FAULT"),
    ("comms_stall", {"duration_s": 0.3}, "DISCONNECTED"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("fault, params, code", FAULTS, ids=[f[0] for f in FAULTS])
def test_each_injected_fault_latches_a_named_fault_with_pressure_released(cells, fault, params,
                                                                           code):
    # The press's own watchdog (0.1 s) vents it when our commands stop arriving (comms stall).
    cell = cells("Li", watchdog_s=0.1)
    cell.at(8.0, lambda: cell.sim.inject_fault(fault, **params))     # mid-hold
    out = cell.run(profile(25 * MPA, 5 * MPA, 10.0, 10 * MPA))
    assert (out.status, out.error_code) == ("ABORTED", code), out.message
    snap = cell.rt.snapshot()
    assert snap.phase is Phase.FAULT and snap.fault_message
    assert cell.sim.plant.true_force_n < 0.02 * 25 * MPA * cell.area
    with pytest.raises(FaultLatchedError) as refused:
        cell.rt.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), cell.area)
    assert refused.value.code == code


@pytest.mark.timeout(30)
def test_cancel_mid_hold_releases_and_reports_canceled(cells):
    cell = cells("Li")
    cell.at(8.0, cell.rt.cancel)
    out = cell.run(profile(25 * MPA, 5 * MPA, 30.0, 10 * MPA))
    assert (out.status, out.error_code) == ("CANCELED", "CANCELED")
    assert cell.sim.plant.true_force_n < 0.02 * 25 * MPA * cell.area
    assert out.trace.time_s[-1] < 15.0             # did not sit out the 30 s hold
    assert cell.rt.snapshot().phase is Phase.IDLE
    # The press is usable again without a reset.
    assert cell.run(profile(5 * MPA, 2 * MPA, 1.0, 5 * MPA)).status == "SUCCEEDED"


@pytest.mark.timeout(30)
def test_estop_vents_latches_and_reset_never_reapplies_the_setpoint(cells):
    cell = cells("Li6PS5Cl")
    cell.above(200 * MPA, lambda: cell.rt.estop("operator"))
    out = cell.run(profile(370 * MPA, 10 * MPA, 10.0, 20 * MPA))
    assert (out.status, out.error_code) == ("ABORTED", "ESTOP")
    assert "operator" in out.message
    assert cell.sim.read().vented                          # dump valve open
    assert cell.sim.plant.true_force_n < 0.01 * 370 * MPA * cell.area
    assert cell.rt.reset_fault() is True
    snap = cell.rt.snapshot()
    assert snap.phase is Phase.IDLE and snap.fault_code == 0
    assert cell.sim.plant.ram.demand == 0.0                # idle: nothing pressurises
    # The next cycle starts from the measured (released) state, not from the old setpoint.
    again = cell.run(profile(100 * MPA, 20 * MPA, 1.0, 20 * MPA))
    assert again.status == "SUCCEEDED", again.message
    assert again.trace.setpoint_pa[0] < 1 * MPA


@pytest.mark.timeout(30)
def test_zone_lease_refuses_a_cycle_and_aborts_a_running_one(cells):
    cell = cells("Li")
    cell.rt.set_zone_lease(True)
    with pytest.raises(ZoneOccupiedError):
        cell.rt.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), cell.area)
    cell.rt.set_zone_lease(False)
    cell.at(7.0, lambda: cell.rt.set_zone_lease(True))
    out = cell.run(profile(25 * MPA, 5 * MPA, 10.0, 10 * MPA))
    assert (out.status, out.error_code) == ("ABORTED", "ZONE_OCCUPIED")
    assert cell.sim.plant.true_force_n < 0.02 * 25 * MPA * cell.area


@pytest.mark.timeout(30)
def test_goals_are_refused_with_specific_reasons(cells):
    clock = SimulatedClock()
    idle = PressRuntime(SimulatedPress(clock), clock, lockstep=True, realtime=False)
    with pytest.raises(NotActiveError):
        idle.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), 1e-4)
    with pytest.raises(NotActiveError):
        idle.reset_fault()
    idle.set_zone_lease(True)           # remembered before start, enforced after
    idle.start()
    with pytest.raises(ZoneOccupiedError):
        idle.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), 1e-4)
    idle.stop()
    cell = cells("Li6PS5Cl", limits=SafetyLimits(press_capacity_n=100e3,
                                                 die_rated_force_n=98.07e3))
    with pytest.raises(OverLimitError, match="die"):
        cell.rt.start_cycle(profile(800 * MPA, 5 * MPA, 1.0, 5 * MPA), cell.area)
    with pytest.raises(OverLimitError, match="recipe"):
        cell.rt.start_cycle(profile(370 * MPA, 5 * MPA, 1.0, 5 * MPA), cell.area,
                            max_pressure_pa=300 * MPA)
    with pytest.raises(OverLimitError, match="rate"):
        cell.rt.start_cycle(profile(370 * MPA, 100 * MPA, 1.0, 5 * MPA), cell.area)
    with pytest.raises(InvalidGoalError, match="must keep the level"):
        cell.rt.start_cycle([Segment("ramp", 5 * MPA, 1e6), Segment("hold", 6 * MPA, 0, 1, 1e5),
                             Segment("release", 0.0, 1e6)], cell.area)
    with pytest.raises(InvalidGoalError, match="contact_area"):
        cell.rt.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), 0.0)
    handle = cell.rt.start_cycle(profile(300 * MPA, 5 * MPA, 60.0, 20 * MPA), cell.area)
    with pytest.raises(BusyError):
        cell.rt.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), cell.area)
    with pytest.raises(BusyError):
        cell.rt.tare(10)
    cell.rt.cancel()
    assert handle.wait(30).status == "CANCELED"


@pytest.mark.timeout(30)
def test_stop_makes_the_press_safe(cells):
    cell = cells("Li")
    handle = cell.rt.start_cycle(profile(25 * MPA, 5 * MPA, 600.0, 10 * MPA), cell.area)
    deadline = time.monotonic() + 10
    while cell.rt.snapshot().phase is not Phase.HOLD and not handle.done() and \
            time.monotonic() < deadline:
        time.sleep(0.002)
    cell.rt.stop()
    out = handle.wait(5)
    assert (out.status, out.error_code) == ("ABORTED", "NOT_ACTIVE")
    assert cell.sim.plant.true_force_n < 0.01 * 25 * MPA * cell.area
    assert cell.sim.read().vented                  # left with the dump valve open


@pytest.mark.timeout(30)
def test_snapshots_follow_the_cycle_without_blocking(cells):
    cell = cells("Li", time_scale=10.0)
    handle = cell.rt.start_cycle(profile(10 * MPA, 5 * MPA, 2.0, 10 * MPA), cell.area)
    seen = []
    while not handle.done():
        seen.append(cell.rt.snapshot())
        time.sleep(0.002)
    assert handle.outcome.status == "SUCCEEDED"
    phases = {s.phase for s in seen}
    assert {Phase.RAMP, Phase.HOLD, Phase.RELEASE} <= phases
    running = [s for s in seen if s.phase is Phase.HOLD]
    assert all(s.segment_count == 3 and s.segment_index == 1 for s in running)
    assert all(abs(s.pressure_pa - 10 * MPA) < 0.1 * MPA for s in running[len(running) // 2:])
    remaining = [s.time_remaining_s for s in running]
    assert remaining == sorted(remaining, reverse=True)
    assert cell.rt.timing().cycles > 0


@pytest.mark.timeout(30)
def test_supervisory_mode_streams_setpoints_to_the_press_loop(cells):
    cell = cells("Li6PS5Cl", mode=PressMode.SUPERVISORY)
    out = cell.run(profile(300 * MPA, 10 * MPA, 5.0, 20 * MPA, tolerance_fraction=0.01))
    assert out.status == "SUCCEEDED", out.message
    assert out.certificate.mean_hold_pressure == pytest.approx(300 * MPA, rel=0.01)
    assert set(np.unique(out.trace.demand)) == {0.0}       # no valve commands in this mode
    assert cell.sim.plant.true_force_n < 0.02 * 300 * MPA * cell.area


# ---------------------------------------------------------------- properties
@pytest.mark.timeout(120)
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(["Li", "Na", "Li6PS5Cl"]),
       target_fraction=st.floats(0.05, 1.0), rate_fraction=st.floats(0.01, 1.0),
       hold_s=st.floats(0.0, 3.0), release_fraction=st.floats(0.02, 1.0),
       second_stage=st.one_of(st.none(), st.floats(0.1, 1.0)), seed=st.integers(0, 1000))
def test_any_recipe_stays_within_limits_never_nan_and_ends_released(
        cells, kind, target_fraction, rate_fraction, hold_s, release_fraction, second_stage,
        seed):
    limit_pa = 50 * MPA if kind != "Li6PS5Cl" else 500 * MPA
    max_rate = 50 * MPA
    cell = cells(kind, seed=seed, rate_hz=200.0)
    target = target_fraction * limit_pa * 0.98
    segs = [Segment("ramp", target, rate_fraction * max_rate * 0.98)]
    if hold_s > 0:
        segs.append(Segment("hold", target, 0.0, hold_s, 0.01 * target))
    if second_stage is not None:
        low = second_stage * target
        segs.append(Segment("ramp", low, rate_fraction * max_rate * 0.98))
    segs.append(Segment("release", 0.0, release_fraction * max_rate))
    out = cell.run(segs, max_pressure_pa=limit_pa, timeout_s=100.0)
    assert out.status in ("SUCCEEDED", "ABORTED")
    if out.status == "ABORTED":     # only the loop's own verdicts, never a crash
        assert out.error_code in ("TRACKING_FAULT", "RATE_LIMIT", "OVERPRESSURE"), out.message
    true_peak_pa = max(cell.true_force) / cell.area
    assert true_peak_pa <= limit_pa * 1.02
    assert np.all(np.isfinite(out.trace.demand)) and np.all(np.abs(out.trace.demand) <= 1.0)
    assert np.all(np.isfinite(out.trace.pressure_pa))
    assert cell.sim.plant.true_force_n <= 0.02 * max(target * cell.area, 1.0)
    assert cell.rt.loop_error is None


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["Li", "Na"])
def test_fast_foil_ramp_through_yield_does_not_overshoot(cells, kind):
    # 2 MPa/s is 4x the recipe rate: the foil yields mid-ramp and stiffens again.
    cell = cells(kind)
    out = cell.run(profile(25 * MPA, 2 * MPA, 5.0, 10 * MPA))
    assert out.status == "SUCCEEDED", out.message
    assert out.certificate.overshoot_fraction <= 0.005
    assert out.certificate.settling_time <= 1.0


@pytest.mark.timeout(30)
def test_real_time_loop_runs_a_cycle_on_the_wall_clock():
    clock = MonotonicClock()
    foil = specimen("Li")
    sim = SimulatedPress(clock, specimen=foil)
    rt = PressRuntime(sim, clock, rate_hz=500.0, lockstep=False)
    rt.start()
    try:
        offset_n = rt.tare(50)
        assert abs(offset_n - 100.0) < 5.0          # the cell's 0.1 % FS zero offset
        t0 = time.monotonic()
        out = rt.start_cycle(profile(3 * MPA, 10 * MPA, 0.3, 10 * MPA), foil.loaded_area_m2) \
            .wait(10.0)
        wall = time.monotonic() - t0
    finally:
        rt.stop()
    assert out.status == "SUCCEEDED", out.message
    assert out.certificate.duration == pytest.approx(wall, rel=0.3)
    timing = out.certificate.loop_timing
    assert not timing.lockstep and timing.dt_mean == pytest.approx(2e-3, rel=0.05)
    assert timing.cycles > 200


@pytest.mark.timeout(30)
def test_hold_end_criterion_ends_the_last_hold_when_the_interface_is_good(cells):
    cell = cells("Li")
    # Interface resistance as a monitor would report it: 12 ohm, dropping to 4 ohm at 12 s.
    cell.actions.append((lambda: cell.clock.now() >= 12.0,
                         lambda: cell.rt.report_interface_resistance(4.0)))
    cell.at(8.0, lambda: cell.rt.report_interface_resistance(12.0))
    criterion = HoldEndCriterion(enabled=True, r_interface_below_ohm=5.0, min_hold_s=1.0,
                                 max_hold_s=30.0)
    out = cell.run(profile(25 * MPA, 5 * MPA, 60.0, 10 * MPA), hold_end=criterion)
    assert out.status == "SUCCEEDED" and "r_interface 4 ohm < 5 ohm" in out.message
    # ramp ~5 s after the approach, so the hold ran about 7 s of its 30 s maximum
    assert 5.0 < out.certificate.hold_duration < 9.0


@pytest.mark.timeout(30)
def test_hold_end_criterion_stops_at_max_hold_and_needs_a_hold(cells):
    cell = cells("Li")
    criterion = HoldEndCriterion(enabled=True, r_interface_below_ohm=5.0, max_hold_s=3.0)
    out = cell.run(profile(25 * MPA, 5 * MPA, 60.0, 10 * MPA), hold_end=criterion)
    assert out.status == "SUCCEEDED"
    assert out.certificate.hold_duration == pytest.approx(3.0, abs=0.01)
    with pytest.raises(InvalidGoalError, match="no hold"):
        cell.rt.start_cycle([Segment("ramp", 5 * MPA, 1e6), Segment("release", 0.0, 1e6)],
                            cell.area, hold_end=criterion)


def test_runtime_settings_are_validated():
    clock = SimulatedClock()
    with pytest.raises(RuntimeConfigError, match="released_fraction"):
        PressRuntime(SimulatedPress(clock), clock, lockstep=True, released_fraction=2.0)
    with pytest.raises(RuntimeConfigError, match="vent_timeout_s"):
        PressRuntime(SimulatedPress(clock), clock, lockstep=True, vent_timeout_s=0.0)


@pytest.mark.timeout(120)
def test_idle_sensor_noise_with_the_zone_lease_held_does_not_trip_the_interlock():
    """The arm's lease at idle: load-cell noise on a small rod face is not 'pressurised'."""
    from press_cell.physics.load_cell import LoadCellParams

    clock = SimulatedClock()
    # A 15 t press with a full-scale 147 kN cell: ~4.4 N rms, ~35 kPa rms on a 12.7 mm rod,
    # so raw samples cross the 0.1 MPa released threshold every few hundred samples.
    sim = SimulatedPress(clock, rated_force_n=147.1e3,
                         load_cell=LoadCellParams(full_scale_n=147.1e3), seed=3)
    rod_area = math.pi * ROD_RADIUS_M ** 2
    rt = PressRuntime(sim, clock, rate_hz=RATE_HZ, lockstep=True, time_scale=200.0,
                      realtime=False, released_fraction=1e-6, released_min_pa=0.1e6,
                      idle_contact_area_m2=rod_area)
    rt.start()
    try:
        rt.tare(50)
        rt.set_zone_lease(True)
        started = clock.now()
        deadline = time.monotonic() + 90.0     # ~0.5 s on a quiet machine; CI may be loaded
        while clock.now() - started < 60.0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert clock.now() - started >= 60.0, "the paced loop did not run 60 s of press time"
        assert rt.supervisor.fault is None, f"idle noise tripped {rt.supervisor.fault}"
        rt.set_zone_lease(False)
        out = rt.start_cycle(profile(5 * MPA, 1 * MPA, 1.0, 1 * MPA), rod_area).wait(20.0)
        assert out is not None and out.success, "the press still works after the arm's visit"
    finally:
        rt.stop()
