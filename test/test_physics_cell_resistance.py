"""Symmetric-cell resistance: SCIENCE.md line 4 (Doux 2020 anchor) and the short guard."""

import dataclasses
import math

import pytest

from press_cell.physics.cell_resistance import (
    CellError,
    CellResistances,
    SymmetricCell,
    short_circuit_risk,
)
from press_cell.physics.compaction import LI6PS5CL, LLZO, PowderCompact
from press_cell.physics.foil import LITHIUM, AlkaliFoil

DIE_13MM_M2 = math.pi * 0.0065 ** 2
ELECTRODE_RADIUS_M = 12.7e-3 / 2


def doux_cell(metal=LITHIUM, material=LI6PS5CL, mass_kg=200e-6, foil_m=75e-6):
    pellet = PowderCompact(material, mass_kg, DIE_13MM_M2)
    pellet.apply_pressure(370e6)
    pellet.apply_pressure(0.0)
    return SymmetricCell(pellet, math.pi * ELECTRODE_RADIUS_M ** 2,
                         AlkaliFoil(metal, foil_m, ELECTRODE_RADIUS_M),
                         AlkaliFoil(metal, foil_m, ELECTRODE_RADIUS_M))


def test_first_loading_matches_doux_2020_within_15_percent():
    cell = doux_cell()
    cell.step(1e6, 60.0)
    assert cell.resistances().total_ohm > 500.0
    for stack_mpa, expected_ohm in ((5, 110.0), (10, 50.0), (15, 40.0), (20, 35.0), (25, 32.0)):
        cell.step(stack_mpa * 1e6, 60.0)
        assert cell.resistances().total_ohm == pytest.approx(expected_ohm, rel=0.15), stack_mpa


def test_at_25mpa_most_of_the_resistance_is_electrolyte_bulk():
    cell = doux_cell()
    for stack_mpa in (1, 5, 10, 15, 20, 25):
        cell.step(stack_mpa * 1e6, 60.0)
    r = cell.resistances()
    assert r.r_bulk_ohm + r.r_gb_ohm == pytest.approx(30.0, rel=0.1)
    assert r.total_ohm == pytest.approx(
        r.r_ext_ohm + r.r_bulk_ohm + r.r_gb_ohm + 2 * r.r_int_each_ohm)
    assert r.asr_int_ohm_m2 == pytest.approx(r.r_int_each_ohm * r.electrode_area_m2)
    assert r.asr_int_ohm_m2 < 2e-4          # < 2 Ohm cm^2 per interface
    assert r.contact_fraction > 0.95
    assert r.electrolyte_thickness_m == pytest.approx(1.0e-3, abs=0.05e-3)


def test_resistance_stays_low_after_unload():
    cell = doux_cell()
    cell.step(25e6, 60.0)
    loaded = cell.resistances().total_ohm
    cell.step(0.0, 60.0)
    assert cell.resistances().total_ohm < 1.3 * loaded


def test_li_at_75mpa_on_porous_sulfide_shorts_and_latches():
    cell = doux_cell()
    cell.step(70e6, 1.0)
    assert not cell.is_shorted
    cell.step(75e6, 1.0)
    assert cell.is_shorted
    cell.step(0.0, 1.0)
    r = cell.resistances()
    assert r.is_shorted
    assert r.total_ohm < 1.0
    assert short_circuit_risk(LITHIUM, cell.electrolyte, 75e6)


def test_no_short_through_a_non_sulfide_pellet():
    cell = doux_cell(material=LLZO, mass_kg=400e-6)
    cell.step(80e6, 1.0)
    assert not cell.is_shorted


def test_warm_cell_has_lower_resistance():
    cold = doux_cell()
    warm = doux_cell()
    cold.step(25e6, 60.0, 298.15)
    warm.step(25e6, 60.0, 333.15)
    assert warm.resistances().total_ohm < 0.8 * cold.resistances().total_ohm


def test_cell_resistances_is_a_frozen_contract():
    names = {f.name for f in dataclasses.fields(CellResistances)}
    assert {"r_ext_ohm", "r_bulk_ohm", "r_gb_ohm", "r_int_each_ohm", "asr_int_ohm_m2",
            "total_ohm", "contact_fraction", "is_shorted"} <= names
    r = doux_cell().resistances()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.total_ohm = 1.0


def test_electrodes_larger_than_pellet_refused():
    pellet = PowderCompact(LI6PS5CL, 200e-6, DIE_13MM_M2)
    foil = AlkaliFoil(LITHIUM, 75e-6, 8e-3)
    with pytest.raises(CellError, match="larger than the pellet"):
        SymmetricCell(pellet, math.pi * 8e-3 ** 2, foil, foil)
