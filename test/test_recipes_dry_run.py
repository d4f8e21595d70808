"""Dry run: open-loop prediction of force, pellet, foil and cell resistance from the recipes."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from press_cell.recipes import (
    PressStage,
    RecipeError,
    load_library,
    load_recipes,
    validate_assembly,
)
from press_cell.recipes.dry_run import dry_run_assembly, dry_run_press, ideal_trace
from press_cell.recipes.segments import profile_duration_s, recipe_segments

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = load_library(ROOT / "config" / "library.yaml")
BOOK = load_recipes(ROOT / "config" / "recipes.yaml", LIBRARY)
PELLET = BOOK.press["li6ps5cl_370mpa_200mg"]


def _with_stack(assembly, pressure_mpa, hold_s=300.0):
    steps = list(assembly.steps)
    index = [s.kind for s in steps].index("stack_press")
    stack = steps[index]
    steps[index] = replace(stack, recipe=replace(
        stack.recipe, max_pressure_pa=None,
        stages=(PressStage(pressure_mpa * 1e6, 0.5e6, hold_s),)))
    return replace(assembly, steps=tuple(steps))


def test_13_mm_at_370_mpa_needs_49_1_kn_and_gives_a_1_mm_pellet():
    prediction = dry_run_press(PELLET, LIBRARY)
    assert prediction.peak_force_n == pytest.approx(49.1e3, rel=0.005)
    assert prediction.pellet_thickness_m == pytest.approx(1.00e-3, abs=0.05e-3)
    assert prediction.relative_density == pytest.approx(0.82, abs=0.03)
    assert 0.20 <= prediction.conductivity_s_m <= 0.25        # 2.0-2.5 mS/cm (Doux 2020)
    assert prediction.duration_s == pytest.approx(74 + 180 + 37)


def test_10_mm_at_500_mpa_needs_39_3_kn():
    recipe = replace(PELLET, tooling="die-10mm", contact_diameter_m=10e-3, max_pressure_pa=None,
                     stages=(PressStage(500e6, 5e6, 60.0),), marks={})
    assert dry_run_press(recipe, LIBRARY).peak_force_n == pytest.approx(39.3e3, rel=0.005)


def test_compaction_range_densifies_with_pressure():
    names = ["li6ps5cl_300mpa_200mg", "li6ps5cl_370mpa_200mg", "li6ps5cl_400mpa_200mg",
             "li6ps5cl_500mpa_200mg"]
    results = [dry_run_press(BOOK.press[n], LIBRARY) for n in names]
    thickness = [r.pellet_thickness_m for r in results]
    density = [r.relative_density for r in results]
    assert thickness == sorted(thickness, reverse=True) and density == sorted(density)
    staged = dry_run_press(BOOK.press["li6ps5cl_staged_300_500"], LIBRARY)
    assert staged.pellet_thickness_m == pytest.approx(results[-1].pellet_thickness_m)
    assert staged.duration_s > results[-1].duration_s


def test_foil_prepress_flattens_and_conforms_na_faster_than_li():
    li = dry_run_press(BOOK.press["li_foil_25mpa"], LIBRARY)
    na = dry_run_press(BOOK.press["na_foil_25mpa"], LIBRARY)
    li_71 = dry_run_press(BOOK.press["li_foil_71mpa"], LIBRARY)
    assert li.foil_thickness_m < 100e-6 and li.contact_fraction > 0.9
    assert na.foil_thickness_m < li.foil_thickness_m      # Na is softer (Wang 2020)
    assert li_71.foil_thickness_m < li.foil_thickness_m
    assert li.peak_force_n == pytest.approx(25e6 * np.pi * 0.00635 ** 2)


def test_li_symmetric_cell_predicts_doux_resistance_and_passes():
    prediction = dry_run_assembly(BOOK.assembly["li_symmetric_cell"], LIBRARY)
    cell = prediction.cell
    assert cell.total_ohm == pytest.approx(32.0, rel=0.15)                 # Doux 2020, 25 MPa
    assert cell.r_bulk_ohm + cell.r_gb_ohm == pytest.approx(30.0, rel=0.15)
    assert not cell.is_shorted
    assert prediction.passes, prediction.verdict
    assert prediction.interface_asr_ohm_m2 * 1e4 < 5.0
    assert [p.recipe_name for p in prediction.steps] == [
        "li6ps5cl_370mpa_200mg", "li_foil_25mpa", "li_stack_25mpa"]
    single = sum(profile_duration_s(recipe_segments(BOOK.press[n]))
                 for n in ("li6ps5cl_370mpa_200mg", "li_stack_25mpa"))
    double = 2 * profile_duration_s(recipe_segments(BOOK.press["li_foil_25mpa"]))
    assert prediction.press_duration_s == pytest.approx(single + double)


def test_acceptance_rejects_a_cell_stacked_at_too_low_pressure():
    prediction = dry_run_assembly(_with_stack(BOOK.assembly["li_symmetric_cell"], 5.0, 60.0),
                                  LIBRARY)
    assert prediction.total_resistance_ohm > 70.0          # Doux 2020: ~110 Ohm at 5 MPa
    assert not prediction.passes and "total" in prediction.verdict


def test_na_symmetric_cell_passes_its_own_criteria():
    prediction = dry_run_assembly(BOOK.assembly["na_symmetric_cell"], LIBRARY)
    assert prediction.passes, prediction.verdict
    assert prediction.cell.r_bulk_ohm > 100.0              # Na3PS4 conducts ~10x less


def test_na_stack_above_its_short_pressure_is_refused():
    with pytest.raises(RecipeError) as info:
        validate_assembly(_with_stack(BOOK.assembly["na_symmetric_cell"], 25.0), LIBRARY)
    assert any("shorts the cell" in p.message for p in info.value.problems)
    with pytest.raises(RecipeError):
        dry_run_assembly(_with_stack(BOOK.assembly["li_symmetric_cell"], 80.0), LIBRARY)


def test_dry_run_refuses_an_invalid_recipe():
    with pytest.raises(RecipeError):
        dry_run_press(replace(PELLET, press="manual-2t", marks={}), LIBRARY)


def test_ideal_trace_covers_the_profile():
    segments = recipe_segments(BOOK.press["li6ps5cl_staged_300_500"])
    pressures_pa, steps_s = ideal_trace(segments, dt_s=0.7)
    assert steps_s.sum() == pytest.approx(profile_duration_s(segments))
    assert steps_s.max() <= 0.7 + 1e-12
    assert pressures_pa.min() >= 0.0 and pressures_pa.max() <= 500e6
    assert np.count_nonzero(pressures_pa == 500e6) > 0     # the final hold is sampled


def test_summaries_speak_lab_units():
    line = dry_run_press(PELLET, LIBRARY).summary()
    assert "370 MPa = 49.1 kN" in line and "pellet 1.0" in line
    cell = dry_run_assembly(BOOK.assembly["li_symmetric_cell"], LIBRARY).summary()
    assert cell.startswith("li_symmetric_cell: total 3") and "passes" in cell
