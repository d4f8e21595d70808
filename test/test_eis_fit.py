"""Equivalent-circuit fit: parameter recovery, uncertainty, cross-check, bad spectra."""

import warnings

import numpy as np
import pytest

from press_cell.analysis.circuit_fit import CircuitFitError, fit_cell_spectrum
from press_cell.hardware.potentiostat_driver import Spectrum
from press_cell.physics.eis import CellImpedanceModel, log_frequency_grid_hz

F = log_frequency_grid_hz(1e6, 0.1, 10)
AREA_M2 = np.pi * (12.7e-3) ** 2 / 4
# A resistive electrolyte (cold or glassy) whose three arcs all fall inside 1 MHz..0.1 Hz:
# apexes near 200 kHz, 2 kHz and 5 Hz.
THREE_ARCS = CellImpedanceModel(
    r_ext_ohm=5.0, r_bulk_ohm=1000.0, r_gb_ohm=2000.0, r_int_each_ohm=2000.0,
    q_bulk=1.6e-9, alpha_bulk=0.95, q_gb=1e-7, alpha_gb=0.9, q_int=1.3e-5, alpha_int=0.85)
# Li|Li6PS5Cl|Li at room temperature: bulk and grain-boundary arcs far above 1 MHz.
PRESSED_CELL = CellImpedanceModel(r_ext_ohm=0.5, r_bulk_ohm=21.2, r_gb_ohm=9.1,
                                  r_int_each_ohm=11.5)


def spectrum_of(model, f=F, noise=0.0, seed=0, **kwargs):
    z = model.impedance_ohm(f)
    if noise:
        rng = np.random.default_rng(seed)
        z = z + np.abs(z) * noise * (rng.standard_normal(z.size) + 1j * rng.standard_normal(z.size))
    return Spectrum(f, z.real, z.imag, **kwargs)


def test_noiseless_three_arc_spectrum_recovers_every_parameter_within_2_percent():
    fit = fit_cell_spectrum(spectrum_of(THREE_ARCS), electrode_area_m2=AREA_M2)
    assert fit.bulk_resolved and fit.gb_resolved
    m = THREE_ARCS
    for got, want in [(fit.r_ext_ohm, m.r_ext_ohm), (fit.r_bulk_ohm, m.r_bulk_ohm),
                      (fit.r_gb_ohm, m.r_gb_ohm), (fit.r_int_ohm, m.r_int_each_ohm),
                      (fit.q_bulk, m.q_bulk), (fit.q_gb, m.q_gb), (fit.q_int, m.q_int),
                      (fit.alpha_bulk, m.alpha_bulk), (fit.alpha_gb, m.alpha_gb),
                      (fit.alpha_int, m.alpha_int), (fit.r_total_ohm, m.dc_resistance_ohm)]:
        assert got == pytest.approx(want, rel=0.02)
    assert fit.rms_residual_pct < 0.01 and fit.kk_ok


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_noisy_three_arc_spectrum_is_recovered_within_three_standard_errors(seed):
    fit = fit_cell_spectrum(spectrum_of(THREE_ARCS, noise=0.005, seed=seed))
    m = THREE_ARCS
    for got, std, want in [(fit.r_bulk_ohm, fit.r_bulk_std_ohm, m.r_bulk_ohm),
                           (fit.r_gb_ohm, fit.r_gb_std_ohm, m.r_gb_ohm),
                           (fit.r_int_ohm, fit.r_int_std_ohm, m.r_int_each_ohm),
                           (fit.r_total_ohm, fit.r_total_std_ohm, m.dc_resistance_ohm)]:
        assert 0 < std < 0.05 * want
        assert abs(got - want) < 3 * std
    assert 0.2 < fit.rms_residual_pct < 1.0


def test_unresolved_bulk_is_reported_as_series_minus_known_lead_resistance():
    fit = fit_cell_spectrum(spectrum_of(PRESSED_CELL), electrode_area_m2=AREA_M2,
                            r_ext_ohm=0.5)
    assert not fit.bulk_resolved and not fit.gb_resolved and np.isnan(fit.r_gb_ohm)
    assert fit.r_bulk_ohm == pytest.approx(21.2 + 9.1, rel=0.02)
    assert fit.r_int_ohm == pytest.approx(11.5, rel=0.02)
    assert fit.r_total_ohm == pytest.approx(PRESSED_CELL.dc_resistance_ohm, rel=0.01)
    assert fit.asr_int_ohm_m2 == pytest.approx(11.5 * AREA_M2, rel=0.02)
    assert fit.asr_int_ohm_cm2 == pytest.approx(fit.asr_int_ohm_m2 * 1e4)
    without_r_ext = fit_cell_spectrum(spectrum_of(PRESSED_CELL))
    assert np.isnan(without_r_ext.r_bulk_ohm) and np.isnan(without_r_ext.asr_int_ohm_m2)
    assert without_r_ext.r_series_ohm == pytest.approx(30.8, rel=0.02)


def test_cpe_tail_is_fitted_when_asked_and_keeps_the_interface_right():
    model = CellImpedanceModel(0.5, 21.2, 9.1, 11.5, tail_q_f_s_alpha=0.05, tail_alpha=0.6)
    fit = fit_cell_spectrum(spectrum_of(model), tail=True)
    assert fit.r_int_ohm == pytest.approx(11.5, rel=0.02)
    assert fit.alpha_tail == pytest.approx(0.6, rel=0.02)


def _impedance_py_fit(circuit, guess, spectrum):
    from impedance.models.circuits import CustomCircuit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = CustomCircuit(circuit, initial_guess=guess)
        model.fit(spectrum.frequency_hz, spectrum.z_ohm, weight_by_modulus=True)
    return model.parameters_


@pytest.mark.parametrize("seed", [4, 5])
def test_agrees_with_impedance_py_on_a_pressed_cell_spectrum(seed):
    spectrum = spectrum_of(PRESSED_CELL, noise=0.002, seed=seed)
    ours = fit_cell_spectrum(spectrum)
    r0, r1, q1, a1 = _impedance_py_fit("R0-p(R1,CPE1)", [25.0, 30.0, 1e-5, 0.8], spectrum)
    assert ours.r_series_ohm == pytest.approx(r0, rel=0.02)
    assert 2 * ours.r_int_ohm == pytest.approx(r1, rel=0.02)
    assert ours.q_int == pytest.approx(q1, rel=0.05)
    assert ours.alpha_int == pytest.approx(a1, rel=0.02)


def test_agrees_with_impedance_py_on_a_two_arc_spectrum():
    model = CellImpedanceModel(0.0, 0.0, 2000.0, 2000.0, q_gb=1e-7, alpha_gb=0.9,
                               q_int=1.3e-5, alpha_int=0.85)
    spectrum = spectrum_of(CellImpedanceModel(**{**model.__dict__, "r_ext_ohm": 50.0}),
                           noise=0.002, seed=6)
    ours = fit_cell_spectrum(spectrum)
    params = _impedance_py_fit("R0-p(R1,CPE1)-p(R2,CPE2)",
                               [40.0, 1500.0, 2e-7, 0.8, 5000.0, 1e-5, 0.8], spectrum)
    assert ours.gb_resolved
    assert ours.r_gb_ohm == pytest.approx(params[1], rel=0.03)
    assert 2 * ours.r_int_ohm == pytest.approx(params[4], rel=0.03)
    assert ours.r_series_ohm == pytest.approx(params[0], rel=0.05)


def test_overloaded_points_are_dropped_and_counted():
    overload = np.zeros(F.size, bool)
    overload[:5] = True
    z = PRESSED_CELL.impedance_ohm(F)
    z[:5] = 1e6   # garbage values an overloaded range reports
    fit = fit_cell_spectrum(Spectrum(F, z.real, z.imag, overload=overload))
    assert fit.n_excluded == 5 and fit.n_points == F.size - 5
    assert fit.r_total_ohm == pytest.approx(PRESSED_CELL.dc_resistance_ohm, rel=0.01)


def _with(f=F, z=None):
    z = PRESSED_CELL.impedance_ohm(F) if z is None else z
    return Spectrum(f, z.real, z.imag)


@pytest.mark.parametrize("spectrum, message", [
    (_with(F[:6], PRESSED_CELL.impedance_ohm(F[:6])), "too few points"),
    (_with(z=np.where(np.arange(F.size) == 3, np.nan, PRESSED_CELL.impedance_ohm(F))), "NaN"),
    (_with(z=np.where(np.arange(F.size) == 3, np.inf, PRESSED_CELL.impedance_ohm(F))), "NaN"),
    (_with(f=np.where(np.arange(F.size) == 70, 0.0, F)), "> 0 Hz"),
    (_with(f=np.where(np.arange(F.size) == 10, F[11], F)), "duplicate"),
    (_with(f=F[np.r_[0:30, 31, 30, 32:71]]), "sorted"),
    (_with(f=np.logspace(3, 2, 71), z=PRESSED_CELL.impedance_ohm(np.logspace(3, 2, 71))),
     "too narrow"),
])
def test_bad_spectra_are_refused_with_a_reason(spectrum, message):
    with pytest.raises(CircuitFitError, match=message):
        fit_cell_spectrum(spectrum)


def test_fully_overloaded_spectrum_is_refused():
    z = PRESSED_CELL.impedance_ohm(F)
    spectrum = Spectrum(F, z.real, z.imag, overload=np.ones(F.size, bool))
    with pytest.raises(CircuitFitError, match="overload"):
        fit_cell_spectrum(spectrum)


def test_bad_arguments_are_refused():
    with pytest.raises(CircuitFitError, match="electrode_area_m2"):
        fit_cell_spectrum(spectrum_of(PRESSED_CELL), electrode_area_m2=0.0)
    with pytest.raises(CircuitFitError, match="max_arcs"):
        fit_cell_spectrum(spectrum_of(PRESSED_CELL), max_arcs=4)


def test_partly_visible_arc_above_the_sweep_is_flagged_but_the_total_stays_right():
    # grain-boundary apex ~20 MHz: only its low-frequency shoulder shows below 1 MHz
    model = CellImpedanceModel(0.5, 150.0, 60.0, 20.0, q_gb=1e-9, alpha_gb=0.9)
    fit = fit_cell_spectrum(spectrum_of(model), r_ext_ohm=0.5)
    assert any("extend freq_max" in note for note in fit.notes)
    assert fit.r_total_ohm == pytest.approx(model.dc_resistance_ohm, rel=0.01)
    assert not fit_cell_spectrum(spectrum_of(PRESSED_CELL)).notes
