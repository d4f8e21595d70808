"""Press recipes expand into ramp/hold/release segments; recipe_hash is stable and sensitive."""

from dataclasses import replace
from pathlib import Path

import pytest

from press_cell.recipes import PressStage, load_library, load_recipes, recipe_hash
from press_cell.recipes.segments import Segment, profile_duration_s, recipe_segments

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = load_library(ROOT / "config" / "library.yaml")
BOOK = load_recipes(ROOT / "config" / "recipes.yaml", LIBRARY)


def test_single_stage_recipe_is_ramp_hold_release():
    pellet = BOOK.press["li6ps5cl_370mpa_200mg"]
    assert recipe_segments(pellet) == [
        Segment("ramp", 370e6, 5e6, 74.0, 3.7e6),
        Segment("hold", 370e6, 0.0, 180.0, 3.7e6),
        Segment("release", 0.0, 10e6, 37.0, 3.7e6),
    ]
    assert profile_duration_s(recipe_segments(pellet)) == pytest.approx(291.0)


def test_staged_recipe_runs_each_stage_then_the_target():
    staged = BOOK.press["li6ps5cl_staged_300_500"]
    segments = recipe_segments(staged)
    assert [s.kind for s in segments] == ["ramp", "hold"] * 3 + ["release"]
    assert [s.target_pressure_pa for s in segments[::2]] == [300e6, 400e6, 500e6, 0.0]
    assert segments[2].duration_s == pytest.approx(100e6 / 5e6)     # ramp from 300 to 400
    assert segments[-1].duration_s == pytest.approx(500e6 / 10e6)


def test_downward_stage_and_zero_hold():
    recipe = replace(BOOK.press["li_foil_25mpa"],
                     stages=(PressStage(30e6, 1e6, 0.0), PressStage(20e6, 2e6, 10.0)))
    segments = recipe_segments(recipe)
    assert [s.kind for s in segments] == ["ramp", "ramp", "hold", "release"]
    assert segments[1].duration_s == pytest.approx(5.0)
    assert segments[1].rate_pa_s == 2e6


def test_segments_feed_the_control_profile_generator():
    from press_cell.control.profile import PressProfile

    for recipe in BOOK.press.values():
        profile = PressProfile(recipe_segments(recipe))
        assert profile.total_duration_s == pytest.approx(
            profile_duration_s(recipe_segments(recipe)))


def test_hash_is_stable_across_loads_and_ignores_description_and_lines(tmp_path):
    text = (ROOT / "config" / "recipes.yaml").read_text()
    again = load_recipes(ROOT / "config" / "recipes.yaml", LIBRARY)
    for name, recipe in BOOK.press.items():
        assert recipe_hash(recipe) == recipe_hash(again.press[name])
    moved = "# a comment that shifts every line\n\n" + text.replace(
        "Low end of the compaction range", "Lower end of the range")
    path = tmp_path / "recipes.yaml"
    path.write_text(moved)
    (tmp_path / "library.yaml").write_text((ROOT / "config" / "library.yaml").read_text())
    shifted = load_recipes(path)
    for name in BOOK.press:
        assert recipe_hash(shifted.press[name]) == recipe_hash(BOOK.press[name])
    for name in BOOK.assembly:
        assert recipe_hash(shifted.assembly[name]) == recipe_hash(BOOK.assembly[name])
    assert len(recipe_hash(BOOK.press["li_foil_25mpa"])) == 64


@pytest.mark.parametrize("change", [
    {"tolerance_frac": 0.011},
    {"release_pa_s": 10.5e6},
    {"press": "hydraulic-25t"},
    {"mass_kg": 201e-6},
    {"max_pressure_pa": None},
    {"stages": (PressStage(370e6, 5e6, 181.0),)},
    {"stages": (PressStage(370.001e6, 5e6, 180.0),)},
    {"name": "other"},
])
def test_hash_changes_with_any_process_parameter(change):
    pellet = BOOK.press["li6ps5cl_370mpa_200mg"]
    assert recipe_hash(replace(pellet, **change)) != recipe_hash(pellet)


def test_assembly_hash_follows_its_press_recipes():
    cell = BOOK.assembly["li_symmetric_cell"]
    steps = list(cell.steps)
    stack = steps[4]
    steps[4] = replace(stack, recipe=replace(stack.recipe, tolerance_frac=0.03))
    assert recipe_hash(replace(cell, steps=tuple(steps))) != recipe_hash(cell)
    assert recipe_hash(cell) != recipe_hash(BOOK.assembly["na_symmetric_cell"])


def test_segment_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="allowed kinds"):
        Segment("dwell", 1e6)
