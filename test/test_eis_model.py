"""Element and cell impedances of press_cell.physics.eis."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.physics.cell_resistance import CellResistances
from press_cell.physics.eis import (
    CellImpedanceModel,
    EisModelError,
    cell_model_from_resistances,
    log_frequency_grid_hz,
    relaxation_frequency_hz,
    z_capacitor,
    z_cpe,
    z_parallel,
    z_r_cpe,
    z_resistor,
    z_warburg,
)

F = np.logspace(6, -1, 29)


def test_resistor_is_real_and_frequency_independent():
    z = z_resistor(12.5, F)
    assert np.allclose(z, 12.5) and z.shape == F.shape


def test_capacitor_lags_by_90_degrees_and_halves_per_doubling():
    z = z_capacitor(1e-6, np.array([1e3, 2e3]))
    assert np.allclose(np.angle(z, deg=True), -90.0)
    assert abs(z[0]) == pytest.approx(1 / (2 * np.pi * 1e3 * 1e-6))
    assert abs(z[1]) == pytest.approx(abs(z[0]) / 2)


@settings(max_examples=40, deadline=None)
@given(alpha=st.floats(0.3, 1.0), q=st.floats(1e-12, 1e-3))
def test_cpe_phase_is_minus_alpha_times_90_degrees(alpha, q):
    z = z_cpe(q, alpha, F)
    assert np.allclose(np.angle(z, deg=True), -90.0 * alpha)


def test_warburg_has_45_degree_phase_and_inverse_sqrt_modulus():
    z = z_warburg(3.0, np.array([1.0, 4.0]))
    assert np.allclose(np.angle(z, deg=True), -45.0)
    assert abs(z[0]) / abs(z[1]) == pytest.approx(2.0)


def test_r_cpe_matches_generic_parallel_and_has_right_limits():
    z = z_r_cpe(100.0, 1e-6, 0.9, F)
    assert np.allclose(z, z_parallel(z_resistor(100.0, F), z_cpe(1e-6, 0.9, F)))
    assert complex(z_r_cpe(100.0, 1e-6, 0.9, 1e-6)).real == pytest.approx(100.0, rel=1e-3)
    assert abs(z_r_cpe(100.0, 1e-6, 0.9, 1e9)) < 1.0
    assert np.all(z_r_cpe(0.0, 1e-6, 0.9, F) == 0)


def test_arc_apex_is_at_the_relaxation_frequency():
    f_apex = relaxation_frequency_hz(50.0, 2e-6, 0.85)
    f = np.logspace(np.log10(f_apex) - 2, np.log10(f_apex) + 2, 4001)
    z = z_r_cpe(50.0, 2e-6, 0.85, f)
    assert f[np.argmax(-z.imag)] == pytest.approx(f_apex, rel=0.01)


def test_cell_model_limits_are_r_ext_at_high_and_dc_sum_at_low_frequency():
    model = CellImpedanceModel(r_ext_ohm=0.5, r_bulk_ohm=20.0, r_gb_ohm=9.0, r_int_each_ohm=4.0)
    assert model.dc_resistance_ohm == pytest.approx(37.5)
    z_lo = model.impedance_ohm(1e-6)
    assert z_lo.real == pytest.approx(37.5, rel=1e-3)
    assert model.impedance_ohm(1e14).real == pytest.approx(0.5, abs=0.05)


def test_tails_make_the_low_frequency_end_capacitive():
    cpe_tail = CellImpedanceModel(1, 10, 5, 5, tail_q_f_s_alpha=1e-3, tail_alpha=0.7)
    warburg = CellImpedanceModel(1, 10, 5, 5, warburg_sigma_ohm_s_half=20.0)
    for model in (cpe_tail, warburg):
        z = model.impedance_ohm(np.array([1e-2, 1e-3]))
        assert -z[1].imag > -z[0].imag > 0


@pytest.mark.parametrize("kwargs, word", [
    (dict(r_bulk_ohm=-1.0), "r_bulk_ohm"),
    (dict(r_int_each_ohm=float("nan")), "r_int_each_ohm"),
    (dict(alpha_int=1.2), "alpha_int"),
    (dict(q_gb=0.0), "q_gb"),
])
def test_cell_model_rejects_unphysical_parameters(kwargs, word):
    base = dict(r_ext_ohm=0.5, r_bulk_ohm=20.0, r_gb_ohm=9.0, r_int_each_ohm=4.0)
    with pytest.raises(EisModelError, match=word):
        CellImpedanceModel(**{**base, **kwargs})


def test_elements_reject_non_positive_frequencies():
    with pytest.raises(EisModelError, match="> 0"):
        z_cpe(1e-6, 0.9, np.array([10.0, 0.0]))


def test_model_from_cell_resistances_and_a_short():
    healthy = CellResistances(0.5, 21.0, 9.0, 1.0, 1.27e-4, 32.5, 0.9)
    model = cell_model_from_resistances(healthy, q_int=1e-5)
    assert model.dc_resistance_ohm == pytest.approx(32.5)
    assert model.q_int == 1e-5
    shorted = CellResistances(0.5, 21.0, 9.0, 1.0, 1.27e-4, 0.55, 0.9, is_shorted=True,
                              r_short_ohm=0.05)
    z = cell_model_from_resistances(shorted).impedance_ohm(F)
    assert np.allclose(z, 0.55)


def test_frequency_grid_is_descending_with_both_ends():
    f = log_frequency_grid_hz(1e6, 0.1, 10)
    assert f.size == 71 and f[0] == pytest.approx(1e6) and f[-1] == pytest.approx(0.1)
    assert np.all(np.diff(f) < 0)
    with pytest.raises(EisModelError):
        log_frequency_grid_hz(0.1, 1e6, 10)
