"""CellBuildHistory: the cell a lab knows from its press records, replayed through the physics."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.physics.cell_history import CellBuildHistory, CellHistoryError, trace_chunks
from press_cell.recipes import dry_run_assembly, load_library, load_recipes, recipe_segments
from press_cell.recipes.dry_run import ideal_trace

MPA = 1e6
BOOK = load_recipes()
LIBRARY = load_library()


def recipe_trace(recipe, dt_s=0.05):
    """Return (time_s, pressure_pa) samples of a recipe's ideal profile, from 0 Pa at t = 0."""
    pressure_pa, step_s = ideal_trace(recipe_segments(recipe), dt_s)
    return (np.concatenate([[0.0], np.cumsum(step_s)]), np.concatenate([[0.0], pressure_pa]))


def hold_trace(pressure_pa, hold_s=60.0, ramp_s=10.0):
    """Return a ramp-hold-release trace, sampled at 100 Hz."""
    t = np.arange(0.0, 2 * ramp_s + hold_s + 1e-9, 0.01)
    p = np.interp(t, [0, ramp_s, ramp_s + hold_s, 2 * ramp_s + hold_s],
                  [0, pressure_pa, pressure_pa, 0])
    return t, p


def built_parts(history=None):
    """Replay compaction at 370 MPa and two Li pre-presses at 25 MPa (the shipped recipes)."""
    history = history or CellBuildHistory(library=LIBRARY)
    compaction = BOOK.press["li6ps5cl_370mpa_200mg"]
    history.add_cycle("compaction", *recipe_trace(compaction), compaction)
    foil = BOOK.press["li_foil_25mpa"]
    for name in ("prepress_a", "prepress_b"):
        history.add_cycle(name, *recipe_trace(foil), foil)
    return history


@pytest.mark.parametrize("assembly_name", ["li_symmetric_cell", "na_symmetric_cell"])
def test_replay_of_the_shipped_assemblies_matches_their_dry_run(assembly_name):
    assembly = BOOK.assembly[assembly_name]
    history = CellBuildHistory(library=LIBRARY)
    for step in assembly.steps:
        if step.recipe is None:
            continue
        for index in range(step.count):
            name = {"foil_prepress": f"prepress_{'ab'[index]}"}.get(step.kind, step.kind)
            history.add_cycle(name, *recipe_trace(step.recipe), step.recipe)
    predicted = dry_run_assembly(assembly, LIBRARY).cell
    measured = history.resistances()
    assert measured.total_ohm == pytest.approx(predicted.total_ohm, rel=0.01)
    assert measured.asr_int_ohm_m2 == pytest.approx(predicted.asr_int_ohm_m2, rel=0.02)
    assert measured.electrolyte_thickness_m == pytest.approx(
        predicted.electrolyte_thickness_m, rel=0.01)
    assert not measured.is_shorted
    assert history.defaults_used == ()


def test_stack_at_25_mpa_gives_a_lower_interface_than_at_5_mpa():
    asr = {}
    for stack_mpa in (5, 25):
        history = built_parts()
        history.add_cycle("stack_press", *hold_trace(stack_mpa * MPA), material="Li",
                          contact_diameter_m=12.7e-3)
        asr[stack_mpa] = history.resistances().asr_int_ohm_m2
    assert asr[25] < 0.1 * asr[5]
    assert asr[25] * 1e4 == pytest.approx(1.3, rel=0.3)     # ~1.3 ohm cm^2 (Doux 2020)


def test_pressing_the_same_stack_again_keeps_and_improves_the_contact():
    history = built_parts()
    history.add_cycle("stack_press", *hold_trace(5 * MPA), material="Li")
    after_5 = history.resistances()
    history.add_cycle("stack_press", *hold_trace(25 * MPA), material="Li")
    after_25 = history.resistances()
    assert after_25.contact_fraction > after_5.contact_fraction
    assert after_25.total_ohm < 0.5 * after_5.total_ohm


def test_missing_steps_use_the_documented_doux_defaults():
    history = CellBuildHistory()
    for stack_mpa in (1, 5, 10, 15, 20, 25):
        history.add_cycle("stack_press", [0.0, 60.0], [stack_mpa * MPA] * 2)
    assert history.resistances().total_ohm == pytest.approx(32.0, rel=0.15)
    assert any("370 MPa" in text for text in history.defaults_used)
    assert sum("unpressed Li foil 75 um" in text for text in history.defaults_used) == 2


def test_a_compaction_after_a_stack_press_starts_a_new_cell():
    history = built_parts()
    history.add_cycle("stack_press", *hold_trace(25 * MPA), material="Li")
    good = history.resistances().total_ohm
    built_parts(history)        # next cell: new pellet and anodes, not yet stacked
    assert history.resistances().total_ohm > 1e3 * good


def test_live_pressure_improves_a_provisional_cell_that_the_trace_then_replaces():
    history = built_parts()
    history.add_cycle("stack_press", *hold_trace(5 * MPA), material="Li")
    committed = history.resistances().total_ohm
    for _ in range(60):
        history.step_live(25 * MPA, 1.0)
    assert history.resistances().total_ohm < 0.5 * committed
    assert history.stack_pressure_pa == 25 * MPA
    # the trace of that same cycle arrives: the exact replay replaces the live estimate
    history.add_cycle("stack_press", [0.0, 1.0], [0.0, 0.0], material="Li")
    assert history.resistances().total_ohm == pytest.approx(committed, rel=1e-6)


def test_live_pressure_before_any_trace_builds_a_default_cell():
    history = CellBuildHistory()
    history.step_live(25 * MPA, 60.0)
    assert history.resistances().total_ohm < 100.0
    assert history.defaults_used


def test_stack_press_above_the_short_pressure_shorts_the_cell():
    history = built_parts()
    history.add_cycle("stack_press", *hold_trace(80 * MPA), material="Li")
    assert history.resistances().is_shorted


@pytest.mark.parametrize("args, kwargs, word", [
    (("calendering", [0, 1], [0, 0]), {}, "not modelled"),
    (("compaction", [0, 1], [0]), {}, "equal"),
    (("compaction", [1, 0], [0, 0]), {}, "non-decreasing"),
    (("compaction", [0, 1], [0, np.nan]), {}, "finite"),
    (("compaction", [0, 1], [0, 1e6]), {"material": "unobtainium"}, "unobtainium"),
    (("prepress_a", [0, 1], [0, 1e6]), {"material": "K"}, "'K'"),
])
def test_bad_cycles_are_refused_with_a_reason(args, kwargs, word):
    with pytest.raises(CellHistoryError, match=word):
        CellBuildHistory().add_cycle(*args, **kwargs)


@settings(max_examples=60, deadline=None)
@given(dts=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200),
       pressures=st.lists(st.floats(0.0, 5e8), min_size=201, max_size=201),
       max_step=st.floats(0.05, 5.0))
def test_hypothesis_chunks_keep_duration_and_pressure_time_integral(dts, pressures, max_step):
    t = np.concatenate([[0.0], np.cumsum(dts)])
    p = np.asarray(pressures[:t.size])
    chunk_p, chunk_dt = trace_chunks(t, p, max_step)
    assert chunk_dt.sum() == pytest.approx(t[-1] - t[0], abs=1e-9)
    assert (chunk_p * chunk_dt).sum() == pytest.approx(np.trapezoid(p, t), rel=1e-9, abs=1e-3)
    assert (chunk_p >= p.min() - 1e-6).all() and (chunk_p <= p.max() + 1e-6).all()
    assert chunk_p.size <= np.floor((t[-1] - t[0]) / max_step) + 1
