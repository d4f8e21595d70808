"""Lin-KK consistency check: valid spectra pass, a drifting cell fails, bad input is refused."""

import numpy as np
import pytest

from press_cell.analysis.kramers_kronig import KramersKronigError, lin_kk
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.physics.cell_resistance import CellResistances
from press_cell.physics.eis import CellImpedanceModel, log_frequency_grid_hz
from press_cell.timebase import SimulatedClock

F = log_frequency_grid_hz(1e6, 0.1, 10)


def resistances(r_int_each_ohm):
    return CellResistances(0.5, 21.2, 9.1, r_int_each_ohm, r_int_each_ohm * 1.27e-4,
                           30.8 + 2 * r_int_each_ohm, 0.8)


def measured(source, clock):
    sim = SimulatedPotentiostat(source, clock=clock, seed=11)
    sim.connect()
    return sim.measure_eis(1e6, 0.1, 10, 0.01)


def test_noiseless_three_arc_spectrum_passes():
    model = CellImpedanceModel(5.0, 1000.0, 2000.0, 2000.0, q_bulk=1.6e-9, alpha_bulk=0.95,
                               q_gb=1e-7, alpha_gb=0.9, q_int=1.3e-5, alpha_int=0.85)
    result = lin_kk(F, model.impedance_ohm(F))
    assert result.passed and result.max_abs_residual_pct < 0.1
    assert result.mu <= 0.85


def test_measured_steady_cell_passes_with_residuals_at_the_noise_level():
    spectrum = measured(lambda: resistances(11.5), SimulatedClock())
    result = lin_kk(spectrum.frequency_hz, spectrum.z_ohm)
    assert result.passed
    assert 0.05 < result.rms_residual_pct < 0.5      # simulator noise is 0.2 % of |Z|


def test_cell_whose_interface_doubles_during_the_sweep_fails():
    clock = SimulatedClock()
    sweep_s = 100.0     # a 1 MHz..0.1 Hz sweep at 10 points/decade takes ~100 s here

    def drifting():
        return resistances(11.5 * (1.0 + clock.now() / sweep_s))

    spectrum = measured(drifting, clock)
    assert spectrum.duration_s == pytest.approx(sweep_s, rel=0.05)
    result = lin_kk(spectrum.frequency_hz, spectrum.z_ohm)
    assert not result.passed
    assert result.max_abs_residual_pct > 2 * result.threshold_pct


@pytest.mark.parametrize("f, z, message", [
    (F[:4], np.ones(4, complex), "at least 5"),
    (F, np.where(np.arange(F.size) == 2, np.nan, 1.0 + 0j), "finite"),
    (-F, np.ones(F.size, complex), "> 0"),
    (F, np.ones(F.size - 1, complex), "equal length"),
])
def test_bad_input_is_refused(f, z, message):
    with pytest.raises(KramersKronigError, match=message):
        lin_kk(f, z)
