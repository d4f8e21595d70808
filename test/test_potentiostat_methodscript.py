"""MethodSCRIPT serial driver against the emulator on a pseudo-terminal, faults included."""

import subprocess
import sys
import threading

import numpy as np
import pytest

from press_cell.analysis.circuit_fit import fit_cell_spectrum
from press_cell.hardware.potentiostat_driver import (
    PotentiostatAbortedError,
    PotentiostatConnectionError,
    PotentiostatDeviceError,
    PotentiostatOverloadError,
    PotentiostatProtocolError,
)
from press_cell.hardware.potentiostat_emulator import EmulatorFaults, PotentiostatEmulator
from press_cell.hardware.potentiostat_methodscript import MethodScriptPotentiostat
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.physics.cell_resistance import CellResistances
from press_cell.timebase import SimulatedClock

CELL = CellResistances(0.5, 21.2, 9.1, 11.5, 11.5 * 1.27e-4, 53.8, 0.6)
SHORTED = CellResistances(0.5, 21.2, 9.1, 11.5, 11.5 * 1.27e-4, 0.55, 0.6, is_shorted=True,
                          r_short_ohm=0.05)
SEED = 21


def simulator(cell=CELL):
    return SimulatedPotentiostat(lambda: cell, clock=SimulatedClock(), seed=SEED)


@pytest.fixture
def serve():
    """Start emulators with given faults; yield a factory returning a connected driver."""
    started = []

    def factory(faults=None, cell=CELL, **driver_kwargs):
        faults = faults if faults is not None else EmulatorFaults()
        emulator = PotentiostatEmulator(simulator(cell), faults).start()
        driver = MethodScriptPotentiostat(emulator.slave_path, **driver_kwargs)
        started.append((emulator, driver))
        driver.connect()
        return driver

    yield factory
    for emulator, driver in started:
        driver.disconnect()
        emulator.stop()


@pytest.mark.timeout(10)
def test_self_check_reports_firmware_and_serial(serve):
    driver = serve()
    assert driver.self_check() == \
        "MethodSCRIPT firmware 'press_cell emulator 1.0', serial 'EMU-0001'"


@pytest.mark.timeout(10)
def test_spectrum_over_the_serial_link_equals_the_simulators(serve):
    measured = serve().measure_eis(1e6, 0.1, 10, 0.01)
    reference = simulator()
    reference.connect()
    direct = reference.measure_eis(1e6, 0.1, 10, 0.01)
    assert measured.source == "methodscript" and len(measured) == len(direct) == 71
    assert np.allclose(measured.frequency_hz, direct.frequency_hz, rtol=1e-5)
    # same seed, same points: the only difference left is the 7-hex-digit encoding
    assert np.allclose(measured.z_ohm, direct.z_ohm, rtol=1e-5, atol=1e-9)
    fit = fit_cell_spectrum(measured, r_ext_ohm=0.5)
    assert fit.r_total_ohm == pytest.approx(CELL.total_ohm, rel=0.01)


@pytest.mark.timeout(10)
def test_single_frequency_and_overload_on_a_shorted_cell(serve):
    assert abs(serve().measure_impedance_at(1e-2, 0.01)) == pytest.approx(53.8, rel=0.01)
    with pytest.raises(PotentiostatOverloadError, match="1000 Hz"):
        serve(cell=SHORTED).measure_impedance_at(1e3, 0.01)


@pytest.mark.timeout(10)
def test_overload_status_bits_flag_points_and_the_fit_drops_them(serve):
    spectrum = serve(EmulatorFaults(overload_above_hz=1e5)).measure_eis(1e6, 0.1, 10, 0.01)
    assert np.array_equal(spectrum.overload, spectrum.frequency_hz > 1e5)
    assert spectrum.overload.sum() == 10
    fit = fit_cell_spectrum(spectrum)
    assert fit.n_excluded == 10


@pytest.mark.timeout(10)
def test_instrument_abort_raises_with_the_partial_spectrum(serve):
    driver = serve(EmulatorFaults(abort_after_points=7))
    with pytest.raises(PotentiostatAbortedError, match="7 of 71") as info:
        driver.measure_eis(1e6, 0.1, 10, 0.01)
    assert len(info.value.partial_spectrum) == 7


@pytest.mark.timeout(10)
def test_garbage_lines_are_skipped_and_counted_up_to_the_limit(serve):
    spectrum = serve(EmulatorFaults(garbage_every_points=20)).measure_eis(1e6, 0.1, 10, 0.01)
    assert len(spectrum) == 71 and spectrum.skipped_lines == 3
    assert "skipped 3" in spectrum.notes[0]
    strict = serve(EmulatorFaults(garbage_every_points=2), max_skipped_lines=5)
    with pytest.raises(PotentiostatProtocolError, match="6 unparseable lines"):
        strict.measure_eis(1e6, 0.1, 10, 0.01)
    assert len(strict.measure_eis(1e3, 1.0, 1, 0.01)) == 4       # resynchronised after the abort


@pytest.mark.timeout(10)
def test_corrupt_package_is_a_protocol_error_and_the_link_recovers(serve):
    driver = serve(EmulatorFaults(corrupt_packet_index=3))
    with pytest.raises(PotentiostatProtocolError, match="malformed variable"):
        driver.measure_eis(1e6, 0.1, 10, 0.01)
    assert len(driver.measure_eis(1e3, 1e2, 2, 0.01)) == 3     # points 0..2 are intact


@pytest.mark.timeout(10)
def test_device_error_code_is_raised_with_its_code(serve):
    with pytest.raises(PotentiostatDeviceError, match="0x2001") as info:
        serve(EmulatorFaults(error_code=0x2001)).measure_eis(1e6, 0.1, 10, 0.01)
    assert info.value.code == 0x2001


@pytest.mark.timeout(10)
def test_silent_instrument_times_out_with_a_connection_error(serve):
    driver = serve(EmulatorFaults(silent=True), timeout_s=0.3)
    with pytest.raises(PotentiostatConnectionError, match="no reply"):
        driver.self_check()


@pytest.mark.timeout(10)
def test_cancel_sends_abort_and_the_next_sweep_works(serve):
    driver = serve()
    cancel = threading.Event()

    def progress(n_done, n_total, freq_hz):
        if n_done == 5:
            cancel.set()

    with pytest.raises(PotentiostatAbortedError, match="cancelled") as info:
        driver.measure_eis(1e6, 0.1, 10, 0.01, progress_cb=progress, cancel_event=cancel)
    assert 5 <= len(info.value.partial_spectrum) < 71
    after = driver.measure_eis(1e3, 1e1, 2, 0.01)
    assert len(after) == 5 and after.skipped_lines == 0


@pytest.mark.timeout(5)
def test_missing_port_is_a_connection_error():
    driver = MethodScriptPotentiostat("/dev/does-not-exist-potentiostat")
    with pytest.raises(PotentiostatConnectionError, match="does-not-exist"):
        driver.connect()
    with pytest.raises(PotentiostatConnectionError, match="not connected"):
        driver.measure_eis(1e6, 0.1, 10, 0.01)


@pytest.mark.timeout(20)
def test_emulator_runs_as_a_program_with_fault_flags():
    process = subprocess.Popen(
        [sys.executable, "-m", "press_cell.hardware.potentiostat_emulator", "--abort-after", "3",
         "--r-int-ohm", "20"], stdout=subprocess.PIPE, text=True)
    try:
        path = process.stdout.readline().strip()
        assert path.startswith("/dev/")
        driver = MethodScriptPotentiostat(path)
        driver.connect()
        try:
            assert "emulator" in driver.firmware_version()
            with pytest.raises(PotentiostatAbortedError, match="3 of"):
                driver.measure_eis(1e6, 0.1, 10, 0.01)
        finally:
            driver.disconnect()
    finally:
        process.terminate()
        process.wait(timeout=5)


@pytest.mark.timeout(20)
def test_emulator_help_lists_the_fault_flags():
    out = subprocess.run([sys.executable, "-m", "press_cell.hardware.potentiostat_emulator",
                          "--help"], capture_output=True, text=True, timeout=15)
    assert out.returncode == 0
    for flag in ("--overload-above-hz", "--abort-after", "--garbage-every", "--error-code"):
        assert flag in out.stdout
