"""SUPERVISORY mode: the press's own loop and press_cell's streaming meet the tracking figures.

The simulated press runs its own ``InnerForceLoop``; press_cell streams the present segment's
end force and ramp with ``SupervisoryStreamer``. Lockstep runs hold the VALVE-mode figures
(overshoot <= 0.5 %, >= 99 % of the hold within +-0.5 %, settled <= 1 s after the ramp, ramp
rate within 2 %). Over a real serial link (ASCII and Modbus emulators, 16 ms USB latency, real
time) the press starts each segment one or two round trips late and brakes onto the target
by itself, so the pressure enters a +-1 % band ~0.1-0.2 s after the profile's ramp ends: a
5 s hold is >= 95 % in band, with no tracking fault.
"""

import math

import numpy as np
import pytest

from press_cell.control.force_controller import GainsError, SupervisoryStreamer
from press_cell.control.press_runtime import PressRuntime
from press_cell.hardware.press_ascii import AsciiSerialPress
from press_cell.hardware.press_driver import PressMode
from press_cell.hardware.press_emulator import PressEmulator
from press_cell.hardware.press_modbus import ModbusPress
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.physics.compaction import LI6PS5CL, PowderCompact
from press_cell.physics.foil import LITHIUM, SODIUM, AlkaliFoil
from press_cell.physics.press_plant import PressPlant
from press_cell.recipes.segments import Segment
from press_cell.timebase import MonotonicClock, SimulatedClock

MPA = 1e6
ROD_RADIUS_M = 12.7e-3 / 2          # rod-12.7mm (config/library.yaml)
DIE_M = 0.013
DIE_AREA_M2 = math.pi * DIE_M ** 2 / 4


def specimen(kind):
    if kind == "Li":
        return AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    if kind == "Na":
        return AlkaliFoil(SODIUM, 100e-6, ROD_RADIUS_M)
    return PowderCompact(LI6PS5CL, 200e-6, DIE_AREA_M2)


def profile(target, rate, hold_s, release_rate, tolerance_fraction):
    return [Segment("ramp", target, rate),
            Segment("hold", target, 0.0, hold_s, tolerance_fraction * target),
            Segment("release", 0.0, release_rate)]


def run_cycle(runtime, segments, area_m2, timeout_s):
    runtime.start()
    try:
        runtime.tare(50)
        outcome = runtime.start_cycle(segments, area_m2).wait(timeout_s)
    finally:
        runtime.stop()
    assert outcome is not None, "cycle did not finish"
    return outcome


# ---------------------------------------------------------------- lockstep acceptance
@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind, target, rate, release", [
    ("Li", 25 * MPA, 1 * MPA, 2 * MPA),         # li_foil recipes: 0.5-1 MPa/s
    ("Na", 25 * MPA, 1 * MPA, 2 * MPA),
    ("Li6PS5Cl", 370 * MPA, 5 * MPA, 10 * MPA),  # li6ps5cl_370mpa_200mg: 5 MPa/s on 13 mm
])
def test_lockstep_supervisory_press_meets_the_valve_mode_figures(kind, target, rate, release):
    clock = SimulatedClock()
    spec = specimen(kind)
    sim = SimulatedPress(clock, specimen=spec, seed=3)
    runtime = PressRuntime(sim, clock, rate_hz=500.0, lockstep=True, realtime=False,
                           mode=PressMode.SUPERVISORY)
    out = run_cycle(runtime, profile(target, rate, 60.0, release, 0.005),
                    spec.loaded_area_m2, 60.0)
    assert out.status == "SUCCEEDED", out.message
    cert = out.certificate
    assert cert.overshoot_fraction <= 0.005
    assert cert.fraction_in_band >= 0.99           # band = +-0.5 % of the setpoint
    assert cert.settling_time <= 1.0
    assert abs(cert.ramp_rate_error) <= 0.02
    assert cert.hold_duration == pytest.approx(60.0, abs=0.01)
    assert set(np.unique(out.trace.demand)) == {0.0}       # no valve commands in this mode
    assert sim.plant.true_force_n < 0.02 * target * spec.loaded_area_m2


# ---------------------------------------------------------------- the press's own loop
@pytest.mark.parametrize("target_n, ramp_n_s", [(20e3, 6.6e3), (50e3, 20e3)])
def test_inner_loop_follows_a_fast_ramp_on_a_stiff_frame_and_lands_without_overshoot(
        target_n, ramp_n_s):
    plant = PressPlant(seed=1)          # rigid anvil: 100 kN/mm frame
    plant.set_force_setpoint(target_n, ramp_n_s)
    dt_s = 1e-3
    ramp_s = target_n / ramp_n_s
    t_s = np.arange(1, int((ramp_s + 3.0) / dt_s) + 1) * dt_s
    force = np.empty_like(t_s)
    for i in range(len(t_s)):
        plant.advance(dt_s)
        force[i] = plant.true_force_n
    ideal = np.minimum(t_s * ramp_n_s, target_n)
    # The valve lag delays the start; the loop then catches up and follows the ramp until
    # the press brakes onto the target (from ~0.3 s before the ramp's end).
    late = (t_s > 0.5 * ramp_s) & (t_s < ramp_s - 0.4)
    assert np.max(np.abs(ideal[late] - force[late])) < 0.03 * ramp_n_s     # lag < 30 ms
    assert force.max() <= 1.001 * target_n
    settled = t_s >= ramp_s + 0.5
    assert np.all(np.abs(force[settled] - target_n) <= 0.005 * target_n)


def test_inner_loop_makes_up_a_creeping_foil_within_the_band():
    foil = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    area = foil.loaded_area_m2
    plant = PressPlant(specimen=foil, seed=1)
    plant.set_force_setpoint(25 * MPA * area, 1 * MPA * area)
    pressures = []
    for _ in range(int(40.0 / 0.01)):
        plant.advance(0.01)
        pressures.append(plant.pressure_pa)
    hold = np.array(pressures[int(27.0 / 0.01):])     # from 2 s after the ramp's end
    assert np.all(np.abs(hold - 25 * MPA) <= 0.005 * 25 * MPA)
    assert foil.thickness_m < 100e-6                 # the foil crept all along


# ---------------------------------------------------------------- streaming
def test_streamer_sends_the_segment_end_with_its_ramp_and_keeps_the_ramp_in_holds():
    area = 1e-4
    streamer = SupervisoryStreamer(area, stream_rate_hz=100.0, hold_ramp_pa_s=1e6)
    force, ramp = streamer.compute(0.0, 3e6, 5e6, 10e6)
    assert force == pytest.approx(10e6 * area) and ramp == pytest.approx(5e6 * area)
    assert streamer.compute(0.005, 3.025e6, 5e6, 10e6) is None       # between stream ticks
    force, ramp = streamer.compute(0.02, 10e6, 0.0, 10e6)            # hold: keep the pace
    assert force == pytest.approx(10e6 * area) and ramp == pytest.approx(5e6 * area)
    force, ramp = streamer.compute(0.03, 9e6, -10e6, 0.0)            # release to zero
    assert force == 0.0 and ramp == pytest.approx(10e6 * area)
    force, _ = streamer.compute(0.04, 8e6, -10e6)                    # no segment end given
    assert force == pytest.approx(8e6 * area)
    streamer.reset()
    assert streamer.compute(0.04, 5e6, 0.0, 5e6)[1] == pytest.approx(1e6 * area)
    with pytest.raises(GainsError, match="stream_rate_hz"):
        SupervisoryStreamer(area, stream_rate_hz=0.5)


# ---------------------------------------------------------------- serial, real time
@pytest.mark.timeout(60)
@pytest.mark.parametrize("protocol", ["ascii", "modbus"])
def test_serial_supervisory_press_over_a_16_ms_link_holds_within_1_percent(protocol):
    emulator = PressEmulator(protocol, latency_ms=16.0).start()
    driver_class = AsciiSerialPress if protocol == "ascii" else ModbusPress
    press = driver_class(emulator.port, die_diameter_m=DIE_M)
    try:
        runtime = PressRuntime(press, MonotonicClock(), rate_hz=100.0,
                               mode=PressMode.SUPERVISORY)
        out = run_cycle(runtime, profile(10 * MPA, 2.5 * MPA, 5.0, 10 * MPA, 0.01),
                        DIE_AREA_M2, 40.0)
    finally:
        press.disconnect()
        emulator.close()
    assert out.status == "SUCCEEDED", out.message          # no TRACKING_FAULT
    cert = out.certificate
    assert cert.fraction_in_band >= 0.95                   # band = +-1 % of the setpoint
    assert cert.settling_time <= 0.5
    assert cert.overshoot_fraction <= 0.01
    assert abs(cert.ramp_rate_error) <= 0.05
    assert cert.mean_hold_pressure == pytest.approx(10 * MPA, rel=0.005)
