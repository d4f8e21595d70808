"""Load cell: noise level, quantisation, tare, gain error, determinism."""

import numpy as np
import pytest

from press_cell.physics.load_cell import (
    LoadCell,
    LoadCellConfigError,
    LoadCellParams,
    analog_gauge_params,
    strain_gauge_params,
)


def cell(seed=0, **kw):
    return LoadCell(LoadCellParams(**kw), np.random.default_rng(seed))


def test_noise_matches_the_configured_rms():
    lc = cell(full_scale_n=5e3, gain_error=0.0, zero_offset_fraction_fs=0.0)
    readings = np.array([lc.measure_n(2000.0) for _ in range(4000)])
    assert readings.std() == pytest.approx(3e-5 * 5e3, rel=0.1)
    assert readings.mean() == pytest.approx(2000.0, abs=0.05)


def test_default_noise_allows_half_percent_hold_at_2kn_on_a_100kn_cell():
    lc = cell(full_scale_n=100e3)
    lc.tare(0.0, 200)
    readings = np.array([lc.measure_n(2000.0) for _ in range(4000)])
    inside = np.abs(readings - 2000.0 * (1 + lc.params.gain_error)) < 0.005 * 2000.0
    assert inside.mean() > 0.99


def test_tare_removes_the_zero_offset():
    lc = cell(full_scale_n=5e3)
    before = np.mean([lc.measure_n(0.0) for _ in range(200)])
    assert before == pytest.approx(5.0, abs=0.1)           # 0.1 % FS offset
    offset = lc.tare(0.0, 200)
    assert offset == pytest.approx(5.0, abs=0.1)
    after = np.mean([lc.measure_n(0.0) for _ in range(200)])
    assert after == pytest.approx(0.0, abs=0.05)


def test_gain_error_is_a_span_error_tare_cannot_remove():
    lc = cell(full_scale_n=5e3, noise_rms_fraction_fs=0.0, gain_error=0.002)
    lc.tare(0.0, 1)
    assert lc.measure_n(4000.0) == pytest.approx(4008.0, abs=0.01)


def test_quantisation_step_is_visible_at_low_resolution():
    lc = cell(full_scale_n=1000.0, noise_rms_fraction_fs=0.0, adc_bits=10,
              zero_offset_fraction_fs=0.0, gain_error=0.0)
    step = lc.params.resolution_n
    assert step == pytest.approx(2000.0 / 1024)
    assert lc.measure_n(step * 0.4) == 0.0
    assert lc.measure_n(step * 0.6) == pytest.approx(step)


def test_reading_saturates_beyond_overload():
    lc = cell(full_scale_n=5e3, noise_rms_fraction_fs=0.0)
    assert lc.measure_n(1e6) == pytest.approx(7.5e3, rel=1e-3)


def test_equal_seeds_give_equal_readings():
    a, b, c = cell(3), cell(3), cell(4)
    ra = [a.measure_n(1e3) for _ in range(50)]
    assert ra == [b.measure_n(1e3) for _ in range(50)]
    assert ra != [c.measure_n(1e3) for _ in range(50)]


def test_bad_parameters_refused():
    with pytest.raises(LoadCellConfigError, match="full_scale_n"):
        LoadCellParams(full_scale_n=0.0)
    with pytest.raises(LoadCellConfigError, match="adc_bits"):
        LoadCellParams(adc_bits=4)


def test_analog_gauge_is_an_order_worse_than_a_strain_gauge():
    true_n = 50e3
    errors = {}
    for name, params in (("strain", strain_gauge_params(100e3)),
                         ("analog", analog_gauge_params(100e3))):
        lc = LoadCell(params, np.random.default_rng(0))
        readings = np.array([lc.measure_n(true_n) for _ in range(500)])
        errors[name] = np.sqrt(np.mean((readings - true_n) ** 2)) / 100e3
    assert errors["strain"] < 0.005                       # +-0.1-0.5 % FS class
    assert 0.01 < errors["analog"] < 0.03                  # +-1.5-2.5 % FS class
