"""Alkali-metal foil: SCIENCE.md lines 1-2, thinning, creep drift, contact."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.physics.foil import (
    LITHIUM,
    SODIUM,
    AlkaliFoil,
    FoilError,
    UnknownMetalError,
    alkali_metal,
    flow_pressure_pa,
    free_thinning_limit_m,
)

ROD_RADIUS_M = 5e-3        # 10 mm steel rod


def within_factor(value, reference, factor):
    return reference / factor <= value <= reference * factor


def test_li_creep_rate_matches_masias_2019_raw_points():
    assert within_factor(LITHIUM.creep_rate_s(0.400e6), 1.5e-5, 1.5)
    assert within_factor(LITHIUM.creep_rate_s(0.2e6), 2.0e-7, 2.0)
    assert within_factor(LITHIUM.creep_rate_s(0.6e6), 3.9e-4, 2.0)


def test_flow_stress_li_and_na():
    assert LITHIUM.flow_stress_pa(1.22e-3) == pytest.approx(0.75e6, abs=0.1e6)
    assert SODIUM.flow_stress_pa(1e-3) == pytest.approx(0.24e6, abs=0.05e6)


def test_sodium_creeps_faster_than_lithium_at_equal_stress_and_temperature():
    for stress_pa in (0.2e6, 0.5e6, 1e6, 5e6):
        assert SODIUM.creep_rate_s(stress_pa, 298.15) > 10 * LITHIUM.creep_rate_s(stress_pa,
                                                                                   298.15)
    assert SODIUM.homologous_temperature(298.15) == pytest.approx(0.80, abs=0.01)
    assert LITHIUM.homologous_temperature(298.15) == pytest.approx(0.66, abs=0.01)


@pytest.mark.parametrize("metal", [LITHIUM, SODIUM])
def test_hotter_creeps_faster(metal):
    assert metal.creep_rate_s(0.5e6, 333.15) > 3 * metal.creep_rate_s(0.5e6, 298.15)
    assert metal.flow_stress_pa(1e-3, 333.15) < metal.flow_stress_pa(1e-3, 298.15)


def test_hot_foil_thins_more_during_a_hold():
    cold = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    hot = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    cold.step(25e6, 60.0, 298.15)
    hot.step(25e6, 60.0, 353.15)
    assert hot.thickness_m < 0.9 * cold.thickness_m


def test_temperature_above_melting_is_refused():
    with pytest.raises(FoilError, match="solid"):
        SODIUM.creep_rate_s(1e6, 380.0)


def test_friction_explains_tens_of_mpa():
    # a 100 um Li foil on a 10 mm rod does not flow until ~15 MPa although Li yields < 1 MPa
    p_bar = flow_pressure_pa(LITHIUM, ROD_RADIUS_M, 100e-6, 1e-3)
    assert 10e6 < p_bar < 25e6
    h_star = free_thinning_limit_m(LITHIUM, ROD_RADIUS_M, 25e6, 1e-3)
    assert 30e-6 < h_star < 80e-6
    assert math.isinf(free_thinning_limit_m(LITHIUM, ROD_RADIUS_M, 0.5e6, 1e-3))


def test_foil_thins_near_h_star_then_creeps_during_hold():
    foil = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    foil.step(25e6, 1e-3)
    h_star = free_thinning_limit_m(LITHIUM, ROD_RADIUS_M, 25e6, 1e-3)
    assert foil.thickness_m == pytest.approx(h_star, rel=0.02)
    after_1s = (foil.step(25e6, 1.0), foil.thickness_m)[1]
    foil.step(25e6, 59.0)
    assert foil.thickness_m < after_1s * 0.99        # creep drift continues
    assert foil.thickness_m > 0.5 * h_star           # but it is a drift, not a collapse


def test_foil_below_flow_pressure_keeps_its_thickness():
    foil = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    foil.step(5e6, 60.0)
    assert foil.thickness_m > 0.995 * 100e-6


def test_li_at_25mpa_for_60s_reaches_much_higher_contact_than_at_5mpa():
    low = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    high = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    low.step(5e6, 60.0)
    high.step(25e6, 60.0)
    assert high.contact_fraction > 0.95
    assert low.contact_fraction < 0.5
    assert high.contact_fraction > 2.0 * low.contact_fraction


def test_contact_grows_during_a_hold_by_creep():
    foil = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    foil.step(5e6, 1e-3)
    start = foil.contact_fraction
    foil.step(5e6, 60.0)
    assert foil.contact_fraction > 1.05 * start


def test_contact_is_not_lost_on_unload():
    foil = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    foil.step(25e6, 60.0)
    loaded_contact = foil.contact_fraction
    loaded_thickness = foil.thickness_m
    foil.step(0.0, 10.0)
    assert foil.contact_fraction >= 0.97 * loaded_contact
    assert foil.contact_fraction < loaded_contact          # small elastic recovery only
    assert foil.thickness_m == pytest.approx(loaded_thickness, rel=0.01)


def test_sodium_foil_conforms_at_lower_pressure_than_lithium():
    li = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    na = AlkaliFoil(SODIUM, 100e-6, ROD_RADIUS_M)
    li.step(5e6, 60.0)
    na.step(5e6, 60.0)
    assert na.contact_fraction > li.contact_fraction
    assert na.thickness_m < li.thickness_m


def test_large_time_step_is_safe_and_matches_small_steps():
    big = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    small = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    big.step(25e6, 60.0)
    for _ in range(600):
        small.step(25e6, 0.1)
    assert big.thickness_m == pytest.approx(small.thickness_m, rel=0.02)
    assert big.contact_fraction == pytest.approx(small.contact_fraction, rel=0.02)


def test_metals_found_by_name():
    assert alkali_metal("Lithium") is LITHIUM
    assert alkali_metal("na") is SODIUM
    assert AlkaliFoil(material=SODIUM, thickness_m=1e-4, radius_m=5e-3).material is SODIUM
    with pytest.raises(UnknownMetalError, match="Li"):
        alkali_metal("K")


def test_bad_inputs_refused():
    with pytest.raises(FoilError, match="thickness_m"):
        AlkaliFoil(LITHIUM, 0.0, ROD_RADIUS_M)
    with pytest.raises(FoilError, match="dt_s"):
        AlkaliFoil(LITHIUM, 1e-4, ROD_RADIUS_M).step(1e6, -1.0)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0.0, 70e6), st.floats(0.0, 5.0)), min_size=1, max_size=8))
def test_thickness_and_contact_are_monotonic_over_any_history(history):
    foil = AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)
    last_h, last_f = math.inf, 0.0
    for pressure, dt in history:
        foil.step(pressure, dt)
        h_plastic = foil.thickness_m / (1.0 - pressure / LITHIUM.youngs_modulus_pa)
        assert h_plastic <= last_h * (1 + 1e-12)
        assert 0.0 <= foil.contact_fraction <= 1.0
        # contact only ever drops by the small elastic recovery
        assert foil.contact_fraction >= 0.98 * last_f - 1e-12
        last_h, last_f = h_plastic, max(last_f, foil.contact_fraction)
