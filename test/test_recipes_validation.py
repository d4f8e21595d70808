"""Validation over wide numeric ranges: only RecipeError escapes; accepted recipes obey limits."""

import math
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.recipes import (
    PressRecipe,
    PressStage,
    RecipeError,
    load_library,
    load_recipes,
    pressure_limit_pa,
    recipe_segments,
    validate_press_recipe,
)
from press_cell.recipes.dry_run import dry_run_assembly
from press_cell.recipes.validation import HOLD_RANGE_S, TOLERANCE_RANGE_PCT

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = load_library(ROOT / "config" / "library.yaml")

wild = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-1e3, max_value=1e3),
    st.floats(min_value=1e-9, max_value=1e12),
)
tooling = st.sampled_from(sorted(LIBRARY.tooling_names()) + ["no-such-die"])
diameter_for = {name: getattr(t, "bore_diameter_m", None) or t.diameter_m
                for name, t in list(LIBRARY.dies.items()) + list(LIBRARY.rods.items())}


def _log_span(low, high):
    """Draw between low and high (> 0) on a log grid (integers shrink and spread better)."""
    return st.integers(0, 1000).map(lambda k: low * (high / low) ** (k / 1000))


# Ranges that straddle every limit, so a fair share of the drawn recipes is accepted.
PLAUSIBLE = {"pressure": _log_span(1e6, 1.5e9), "ramp": _log_span(1e4, 1e8),
             "hold": st.floats(-10, 4000), "tolerance": _log_span(5e-4, 0.15),
             "limit": _log_span(1e7, 1e9), "mass": _log_span(1e-7, 2e-2),
             "thickness": _log_span(1e-7, 3e-3), "temperature": st.floats(250, 420)}


@st.composite
def recipes(draw, number=None):
    """Draw a PressRecipe; ``number`` None draws structurally sensible recipes near the limits."""
    def num(kind):
        return draw(number if number is not None else PLAUSIBLE[kind])

    sensible = number is None and draw(st.integers(0, 9)) > 0
    material = draw(st.sampled_from(LIBRARY.material_names() + ["Unobtainium"]))
    if sensible and material in LIBRARY.powders:
        tool = draw(st.sampled_from(sorted(LIBRARY.dies)))
    elif sensible:
        tool = draw(st.sampled_from(sorted(LIBRARY.tooling_names())))
    else:
        tool = draw(tooling)
    is_powder = material in LIBRARY.powders
    mass = num("mass") if (is_powder if sensible else draw(st.booleans())) else None
    thickness = num("thickness") if (not is_powder if sensible else draw(st.booleans())) \
        else None
    presses = list(LIBRARY.presses) + ([] if sensible else ["no-such-press"])
    stages = tuple(PressStage(num("pressure"), num("ramp"), num("hold"))
                   for _ in range(draw(st.integers(1 if sensible else 0, 3))))
    return PressRecipe(
        name="h", material=material, press=draw(st.sampled_from(presses)), tooling=tool,
        contact_diameter_m=diameter_for.get(tool, 0.013),
        stages=stages, tolerance_frac=num("tolerance"), release_pa_s=num("ramp"),
        max_pressure_pa=num("limit") if draw(st.booleans()) else None,
        mass_kg=mass, foil_thickness_m=thickness,
        temperature_k=num("temperature") if draw(st.booleans()) else None)


def _check_accepted(recipe):
    """Assert every limit the validator promises holds for an accepted recipe."""
    press = LIBRARY.presses[recipe.press]
    tool = LIBRARY.tooling(recipe.tooling)
    area_m2 = recipe.contact_area_m2
    limit_pa, _ = pressure_limit_pa(recipe, LIBRARY)
    for stage in recipe.stages:
        assert 0.0 < stage.pressure_pa <= limit_pa
        assert stage.pressure_pa * area_m2 <= min(press.rated_force_n, tool.rated_force_n)
        assert math.isfinite(stage.ramp_pa_s) and stage.ramp_pa_s > 0.0
        assert stage.ramp_pa_s * area_m2 <= press.max_force_rate_n_s
        assert HOLD_RANGE_S[0] <= stage.hold_s <= HOLD_RANGE_S[1]
    if recipe.max_pressure_pa is not None:
        assert recipe.peak_pressure_pa <= recipe.max_pressure_pa
    assert TOLERANCE_RANGE_PCT[0] <= recipe.tolerance_frac * 100 <= TOLERANCE_RANGE_PCT[1]
    assert 0.0 < recipe.release_pa_s * area_m2 <= press.max_force_rate_n_s
    segments = recipe_segments(recipe)
    assert segments[-1].kind == "release" and segments[-1].target_pressure_pa == 0.0
    assert all(math.isfinite(s.duration_s) and s.duration_s >= 0 for s in segments)


@settings(max_examples=300, deadline=None)
@given(recipes(number=wild))
def test_only_recipe_error_escapes_for_wild_numbers(recipe):
    try:
        validate_press_recipe(recipe, LIBRARY)
    except RecipeError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        return
    _check_accepted(recipe)


@settings(max_examples=300, deadline=None)
@given(recipes())
def test_accepted_recipes_always_respect_limits(recipe):
    try:
        validate_press_recipe(recipe, LIBRARY)
    except RecipeError as exc:
        assert exc.problems
        return
    _check_accepted(recipe)


def test_property_test_reaches_acceptance():
    """Guard the properties above against vacuity: plausible recipes are accepted."""
    book = load_recipes(ROOT / "config" / "recipes.yaml", LIBRARY)
    pellet = book.press["li6ps5cl_370mpa_200mg"]
    _check_accepted(pellet)
    assert validate_press_recipe(replace(pellet, marks={}), LIBRARY) == []


scalar = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**12, 10**12),
    st.booleans(), st.none(), st.text(max_size=8), st.lists(st.integers(), max_size=2))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["target_pressure_mpa", "ramp_mpa_s", "hold_s",
                                        "tolerance_pct", "release_mpa_s", "mass_mg",
                                        "max_pressure_mpa", "temperature_c",
                                        "foil_thickness_um", "die_diameter_mm", "stages"]),
                       scalar, max_size=5))
def test_yaml_with_arbitrary_values_only_raises_recipe_error(tmp_path_factory, overrides):
    recipe = {"material": "Li6PS5Cl", "press": "hydraulic-15t", "die": "die-13mm",
              "mass_mg": 200, "target_pressure_mpa": 370, "ramp_mpa_s": 5, "hold_s": 180,
              "tolerance_pct": 1, "release_mpa_s": 10}
    recipe.update(overrides)
    if "die_diameter_mm" in overrides:
        del recipe["die"]
    path = tmp_path_factory.mktemp("y") / "recipes.yaml"
    path.write_text(yaml.safe_dump({"press_recipes": {"p": recipe}}))
    try:
        book = load_recipes(path, LIBRARY)
    except RecipeError as exc:
        assert all(p.where.startswith(str(path)) for p in exc.problems)
        return
    _check_accepted(book.press["p"])


@pytest.mark.parametrize("pressure_mpa,press,accepted", [
    (300, "manual-2t", False),          # SCIENCE.md: a 2 t press cannot reach 300 MPa on 13 mm
    (147, "manual-2t", True),           # ... its maximum there is 147.7 MPa
    (738, "hydraulic-25t", True),       # 13 mm die rated 10 tf = 738.9 MPa
    (745, "hydraulic-25t", False),
])
def test_press_and_die_limits_on_13_mm(pressure_mpa, press, accepted):
    book = load_recipes(ROOT / "config" / "recipes.yaml", LIBRARY)
    pellet = book.press["li6ps5cl_370mpa_200mg"]
    recipe = replace(pellet, press=press, max_pressure_pa=None, release_pa_s=1e6,
                     stages=(PressStage(pressure_mpa * 1e6, 1e6, 60.0),), marks={})
    if accepted:
        validate_press_recipe(recipe, LIBRARY)
    else:
        with pytest.raises(RecipeError) as info:
            validate_press_recipe(recipe, LIBRARY)
        assert "<recipe li6ps5cl_370mpa_200mg>" in str(info.value)


BOOK = load_recipes(ROOT / "config" / "recipes.yaml", LIBRARY)


@st.composite
def assemblies(draw):
    """Draw variants of the shipped Li cell: the stack pressure plus one wild aspect."""
    from press_cell.recipes import AcceptanceCriteria, ImpedanceSettings

    cell = BOOK.assembly["li_symmetric_cell"]
    steps = list(cell.steps)
    stack = steps[4]
    steps[4] = replace(stack, recipe=replace(stack.recipe, max_pressure_pa=None, stages=(
        PressStage(draw(_log_span(1e6, 1e8)), 0.5e6, 60.0),)))
    aspect = draw(st.sampled_from(["none", "sweep", "anodes", "order", "geometry", "criteria"]))
    diameter_m, acceptance = cell.electrode_diameter_m, cell.acceptance
    if aspect == "sweep":
        steps[5] = replace(steps[5], impedance=ImpedanceSettings(
            draw(wild), draw(wild), draw(st.integers(-5, 200)), draw(wild)))
    elif aspect == "anodes":
        steps[3] = replace(steps[3], count=draw(st.integers(-1, 9)),
                           component=draw(st.sampled_from(["ANODE_ON_ROD", "ANODE"])))
    elif aspect == "order":
        steps = draw(st.permutations(steps))
    elif aspect == "geometry":
        diameter_m = draw(wild)
    elif aspect == "criteria":
        acceptance = AcceptanceCriteria(draw(wild), draw(wild))
    return replace(cell, electrode_diameter_m=diameter_m, steps=tuple(steps),
                   acceptance=acceptance)


@settings(max_examples=150, deadline=None)
@given(assemblies())
def test_assembly_validation_only_raises_recipe_error(assembly):
    from press_cell.recipes import validate_assembly

    try:
        validate_assembly(assembly, LIBRARY)
    except RecipeError as exc:
        assert exc.problems
        return
    stack = assembly.steps_of("stack_press")[0].recipe
    assert stack.peak_pressure_pa < 75e6                    # Doux 2020 short
    assert abs(assembly.electrode_diameter_m - 12.7e-3) < 1e-5
    sweep = assembly.steps_of("impedance")[0].impedance
    assert 0 < sweep.freq_min_hz < sweep.freq_max_hz
    kinds = [s.kind for s in assembly.steps]
    assert kinds.index("stack_press") < kinds.index("impedance")
    # What the validator accepts, the physics model does not short (Doux 2020 guard agrees).
    prediction = dry_run_assembly(assembly, LIBRARY, dt_s=10.0)
    assert not prediction.cell.is_shorted and math.isfinite(prediction.total_resistance_ohm)
