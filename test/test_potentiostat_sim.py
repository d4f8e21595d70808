"""SimulatedPotentiostat: spectra from the cell state, simulated time, noise, cancel, overload."""

import threading
import time

import numpy as np
import pytest

from press_cell.hardware.potentiostat_driver import (
    PotentiostatAbortedError,
    PotentiostatConnectionError,
    PotentiostatOverloadError,
)
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.physics.cell_resistance import CellResistances
from press_cell.physics.eis import cell_model_from_resistances
from press_cell.timebase import SimulatedClock

HEALTHY = CellResistances(0.5, 21.2, 9.1, 11.5, 11.5 * 1.27e-4, 53.8, 0.6)
SHORTED = CellResistances(0.5, 21.2, 9.1, 11.5, 11.5 * 1.27e-4, 0.55, 0.6, is_shorted=True,
                          r_short_ohm=0.05)


def connected(source=lambda: HEALTHY, **kwargs):
    kwargs.setdefault("clock", SimulatedClock())
    sim = SimulatedPotentiostat(source, **kwargs)
    sim.connect()
    return sim


def test_spectrum_follows_the_cell_model_within_the_noise():
    sim = connected(relative_noise=0.002, seed=3)
    spectrum = sim.measure_eis(1e6, 0.1, 10, 0.01)
    truth = cell_model_from_resistances(HEALTHY).impedance_ohm(spectrum.frequency_hz)
    relative = np.abs(spectrum.z_ohm - truth) / np.abs(truth)
    assert spectrum.frequency_hz.size == 71 and spectrum.source == "sim"
    assert 0.001 < np.sqrt(np.mean(relative ** 2)) < 0.004
    assert not spectrum.any_overload


def test_same_seed_gives_the_same_spectrum_and_another_seed_does_not():
    a = connected(seed=1).measure_eis(1e5, 1.0, 5, 0.01)
    b = connected(seed=1).measure_eis(1e5, 1.0, 5, 0.01)
    c = connected(seed=2).measure_eis(1e5, 1.0, 5, 0.01)
    assert np.array_equal(a.z_ohm, b.z_ohm)
    assert not np.allclose(a.z_ohm, c.z_ohm, rtol=1e-6)


@pytest.mark.timeout(10)
def test_sweep_takes_simulated_time_but_little_wall_time():
    clock = SimulatedClock()
    sim = connected(clock=clock)
    wall_start = time.monotonic()
    spectrum = sim.measure_eis(1e6, 0.1, 10, 0.01)
    expected_s = sum(sim.point_duration_s(f) for f in spectrum.frequency_hz)
    assert clock.now() == pytest.approx(expected_s)
    assert spectrum.duration_s == pytest.approx(expected_s)
    assert expected_s > 90.0                       # the 0.1 Hz end dominates: ~100 s
    assert time.monotonic() - wall_start < 2.0


@pytest.mark.timeout(10)
def test_wait_mode_runs_in_lockstep_with_another_clock_owner_and_can_be_cancelled():
    clock = SimulatedClock()
    sim = connected(clock=clock, clock_mode="wait")
    stop = threading.Event()

    def loop_runner():          # stands in for the control loop that owns the clock
        while not stop.is_set():
            clock.advance(0.5)
            time.sleep(0.001)

    runner = threading.Thread(target=loop_runner, daemon=True)
    runner.start()
    cancel = threading.Event()
    done = []

    def progress(n_done, n_total, freq_hz):
        done.append(freq_hz)
        if n_done == 4:
            cancel.set()

    try:
        with pytest.raises(PotentiostatAbortedError, match="4 of 11") as info:
            sim.measure_eis(1e3, 1e-2, 2, 0.01, progress_cb=progress, cancel_event=cancel)
    finally:
        stop.set()
        runner.join()
    partial = info.value.partial_spectrum
    assert len(partial) == 4 and np.allclose(partial.frequency_hz, done)


def test_progress_callback_counts_every_point():
    calls = []
    connected().measure_eis(1e4, 1.0, 3, 0.01, progress_cb=lambda *a: calls.append(a))
    assert [c[0] for c in calls] == list(range(1, 14)) and all(c[1] == 13 for c in calls)


def test_a_cell_that_changes_during_the_sweep_is_read_at_every_point():
    clock = SimulatedClock()
    reads = []

    def source():
        reads.append(clock.now())
        return HEALTHY

    connected(source, clock=clock).measure_eis(1e4, 1.0, 3, 0.01)
    assert len(reads) == 13 and reads == sorted(reads) and reads[-1] > reads[0]


def test_shorted_cell_overloads_the_current_range():
    sim = connected(lambda: SHORTED)
    with pytest.raises(PotentiostatOverloadError, match="overload at 1000 Hz"):
        sim.measure_impedance_at(1000.0, 0.01)          # 10 mV / 0.55 Ω = 18 mA > 5 mA
    spectrum = sim.measure_eis(1e4, 1.0, 2, 0.01)
    assert spectrum.overload.all()
    assert len(spectrum.valid_points()) == 0


def test_single_frequency_measurement_matches_the_model():
    z = connected(relative_noise=0.0, noise_floor_ohm=0.0).measure_impedance_at(1e-3, 0.01)
    assert z.real == pytest.approx(HEALTHY.total_ohm, rel=1e-3)


def test_requests_are_validated_and_need_a_connection():
    sim = SimulatedPotentiostat(lambda: HEALTHY, clock=SimulatedClock())
    with pytest.raises(PotentiostatConnectionError, match="not connected"):
        sim.measure_eis(1e6, 0.1, 10, 0.01)
    sim.connect()
    assert "SimulatedPotentiostat" in sim.self_check()
    with pytest.raises(ValueError, match="freq_min_hz"):
        sim.measure_eis(0.1, 1e6, 10, 0.01)
    with pytest.raises(ValueError, match="amplitude_v"):
        sim.measure_eis(1e6, 0.1, 10, 5.0)
    with pytest.raises(ValueError, match="points_per_decade"):
        sim.measure_eis(1e6, 0.1, 0, 0.01)
    with pytest.raises(TypeError, match="resistance_source"):
        SimulatedPotentiostat(42)
    sim.disconnect()
    assert not sim.is_connected
