"""Die math: SCIENCE.md line 5 (force for pressure) and die ratings."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.physics.die import (
    TONNE_FORCE_N,
    Die,
    DieGeometryError,
    force_for_pressure_n,
    pressure_for_force_pa,
)


def test_13mm_die_at_370mpa_needs_49_1_kn():
    force = force_for_pressure_n(370e6, 13e-3)
    assert force == pytest.approx(49.1e3, rel=0.005)
    assert force / TONNE_FORCE_N == pytest.approx(5.01, abs=0.01)


def test_10mm_die_at_500mpa_needs_39_3_kn():
    assert Die(10e-3, 100e3).force_for_pressure_n(500e6) == pytest.approx(39.3e3, rel=0.005)


def test_2_tonne_press_tops_out_near_148_mpa_on_13mm():
    p_max = pressure_for_force_pa(2.0 * TONNE_FORCE_N, 13e-3)
    assert p_max == pytest.approx(148e6, rel=0.01)
    assert p_max < 300e6


def test_13mm_die_rated_10_tf_is_about_739_mpa():
    die = Die(13e-3, 10.0 * TONNE_FORCE_N, "13 mm")
    assert die.rated_pressure_pa == pytest.approx(739e6, rel=0.01)
    assert die.area_m2 == pytest.approx(math.pi * 0.0065 ** 2)


@pytest.mark.parametrize("diameter", [0.0, -1e-3, math.nan, math.inf])
def test_bad_diameter_is_refused_with_reason(diameter):
    with pytest.raises(DieGeometryError, match="diameter"):
        Die(diameter, 1e3)


def test_bad_rating_is_refused():
    with pytest.raises(DieGeometryError, match="rated force"):
        Die(13e-3, 0.0)


@settings(max_examples=50, deadline=None)
@given(st.floats(1e-3, 0.1), st.floats(1e3, 1e9))
def test_force_and_pressure_round_trip(diameter_m, pressure_pa):
    die = Die(diameter_m, 1e6)
    assert die.pressure_for_force_pa(die.force_for_pressure_n(pressure_pa)) == pytest.approx(
        pressure_pa, rel=1e-12)
