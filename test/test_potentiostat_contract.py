"""The PotentiostatDriver contract, run against the simulator and the serial driver on a pty."""

import threading

import numpy as np
import pytest

from press_cell.hardware.potentiostat_driver import (
    PotentiostatAbortedError,
    PotentiostatDriver,
    Spectrum,
)
from press_cell.hardware.potentiostat_emulator import PotentiostatEmulator
from press_cell.hardware.potentiostat_methodscript import MethodScriptPotentiostat
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.physics.cell_resistance import CellResistances
from press_cell.timebase import SimulatedClock

CELL = CellResistances(0.5, 21.2, 9.1, 4.2, 4.2 * 1.27e-4, 39.2, 0.8)


def _simulator():
    return SimulatedPotentiostat(lambda: CELL, clock=SimulatedClock(), seed=5)


@pytest.fixture(params=["sim", "methodscript"])
def driver(request):
    emulator = None
    if request.param == "sim":
        backend = _simulator()
    else:
        emulator = PotentiostatEmulator(_simulator()).start()
        backend = MethodScriptPotentiostat(emulator.slave_path)
    backend.connect()
    yield backend
    backend.disconnect()
    if emulator is not None:
        emulator.stop()


@pytest.mark.timeout(10)
def test_driver_is_connected_and_self_checks(driver):
    assert isinstance(driver, PotentiostatDriver) and driver.is_connected
    assert driver.self_check()


@pytest.mark.timeout(10)
def test_sweep_is_descending_log_spaced_and_near_the_cell(driver):
    spectrum = driver.measure_eis(1e5, 1.0, 4, 0.01)
    assert isinstance(spectrum, Spectrum) and len(spectrum) == 21
    assert np.allclose(np.diff(np.log10(spectrum.frequency_hz)), -0.25, atol=1e-5)
    assert spectrum.z_real_ohm[-1] == pytest.approx(CELL.total_ohm, rel=0.02)
    assert np.all(spectrum.z_imag_ohm < 0.05)
    assert spectrum.amplitude_v == 0.01 and not spectrum.any_overload


@pytest.mark.timeout(10)
def test_cancel_before_start_aborts_without_points(driver):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(PotentiostatAbortedError) as info:
        driver.measure_eis(1e5, 1.0, 4, 0.01, cancel_event=cancel)
    assert len(info.value.partial_spectrum) < 21


@pytest.mark.timeout(10)
def test_invalid_sweeps_are_refused_before_anything_runs(driver):
    with pytest.raises(ValueError, match="freq_min_hz"):
        driver.measure_eis(1.0, 1e5, 4, 0.01)
    with pytest.raises(ValueError, match="amplitude_v"):
        driver.measure_impedance_at(1e3, 0.0)
    assert driver.measure_impedance_at(1e-2, 0.01).real == pytest.approx(CELL.total_ohm, rel=0.02)


@pytest.mark.timeout(10)
def test_disconnect_is_idempotent(driver):
    driver.disconnect()
    driver.disconnect()
    assert not driver.is_connected
