"""Powder compaction: SCIENCE.md line 3, irreversibility, continuity, conductivity."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.physics.compaction import (
    LI6PS5CL,
    LLZO,
    LPS_GLASS_75_25,
    MATERIALS,
    CompactionError,
    PowderCompact,
    UnknownMaterialError,
    powder_material,
    relative_density_at,
)

DIE_13MM_M2 = math.pi * 0.0065 ** 2


def test_li6ps5cl_200mg_13mm_370mpa_density_and_thickness():
    compact = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    compact.apply_pressure(370e6)
    assert compact.relative_density == pytest.approx(0.82, abs=0.03)
    assert compact.thickness_m == pytest.approx(1.00e-3, abs=0.05e-3)
    compact.apply_pressure(0.0)      # ejected: still within the published band
    assert compact.relative_density == pytest.approx(0.82, abs=0.03)
    assert compact.thickness_m == pytest.approx(1.00e-3, abs=0.05e-3)


def test_li6ps5cl_pellet_conducts_2_to_2_5_ms_per_cm():
    compact = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    compact.apply_pressure(370e6)
    compact.apply_pressure(0.0)
    assert 0.20 <= compact.conductivity_s_m() <= 0.26      # S/m = 10 mS/cm


def test_glass_at_360mpa_conducts_3_1e_4_s_per_cm():
    compact = PowderCompact(LPS_GLASS_75_25, 200e-6, DIE_13MM_M2)
    compact.apply_pressure(360e6)
    assert compact.conductivity_s_m() * 1e-2 == pytest.approx(3.1e-4, rel=0.05)


def test_density_is_irreversible_and_follows_the_maximum():
    compact = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    compact.apply_pressure(370e6)
    loaded = compact.relative_density
    compact.apply_pressure(50e6)
    assert compact.relative_density > 0.97 * loaded        # only spring-back is lost
    assert compact.relative_density < loaded
    compact.apply_pressure(370e6)
    assert compact.relative_density == pytest.approx(loaded)
    assert compact.max_pressure_pa == 370e6


def test_springback_is_1_to_3_percent():
    compact = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    compact.apply_pressure(370e6)
    loaded = compact.thickness_m
    compact.apply_pressure(0.0)
    assert 1.01 <= compact.thickness_m / loaded <= 1.03


def test_kawakita_and_heckel_meet_at_the_transition():
    for material in MATERIALS.values():
        below = material.relative_density_at(material.transition_pa * (1 - 1e-9))
        above = material.relative_density_at(material.transition_pa * (1 + 1e-9))
        assert below == pytest.approx(above, abs=1e-6), material.name
        assert 0.1 < material.fill_density < 0.5, material.name


def test_llzo_barely_densifies_and_barely_conducts_cold_pressed():
    compact = PowderCompact(LLZO, 400e-6, DIE_13MM_M2)
    compact.apply_pressure(370e6)
    assert compact.relative_density < 0.70
    assert "sintering" in LLZO.note
    li6 = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    li6.apply_pressure(370e6)
    assert compact.conductivity_s_m() < 0.1 * li6.conductivity_s_m()


def test_materials_listed():
    assert {"Li6PS5Cl", "Li3PS4", "Na3PS4", "LLZO", "75Li2S-25P2S5 glass"} <= set(MATERIALS)


def test_materials_found_by_name_and_unknown_named_in_error():
    assert powder_material("li6ps5cl") is LI6PS5CL
    assert powder_material("LLZO") is LLZO
    with pytest.raises(UnknownMaterialError, match="Li6PS5Cl"):
        powder_material("unobtainium")


def test_conductivity_rises_with_temperature():
    compact = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    compact.apply_pressure(370e6)
    assert compact.conductivity_s_m(333.15) > 1.5 * compact.conductivity_s_m(298.15)


def test_bad_mass_refused():
    with pytest.raises(CompactionError, match="mass"):
        PowderCompact(LI6PS5CL, 0.0, DIE_13MM_M2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 600e6), min_size=1, max_size=12))
def test_density_never_falls_below_what_the_maximum_gave(pressures):
    compact = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    for p in pressures:
        compact.apply_pressure(p)
    fresh = relative_density_at(LI6PS5CL, max(pressures))
    assert compact.relative_density >= fresh / (1 + LI6PS5CL.springback) - 1e-12
    assert compact.relative_density <= fresh + 1e-12


@settings(max_examples=40, deadline=None)
@given(st.floats(0.0, 800e6), st.floats(0.0, 800e6))
def test_density_grows_with_pressure(p1, p2):
    lo, hi = sorted((p1, p2))
    assert relative_density_at(LI6PS5CL, lo) <= relative_density_at(LI6PS5CL, hi) + 1e-12
