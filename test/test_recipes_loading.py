"""Recipes and library load from YAML; every class of bad input is refused at its line."""

import math
import re
from pathlib import Path

import pytest

from press_cell.recipes import (
    LibraryError,
    RecipeError,
    load_library,
    load_recipes,
    pressure_limit_pa,
    recipe_hash,
)

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = load_library(ROOT / "config" / "library.yaml")

# Line numbers matter: each test edits one line and expects the problem on that line.
PELLET = """\
press_recipes:
  pellet:
    material: Li6PS5Cl
    press: hydraulic-15t
    die: die-13mm
    mass_mg: 200
    target_pressure_mpa: 370
    ramp_mpa_s: 5
    hold_s: 180
    tolerance_pct: 1
    release_mpa_s: 10
"""
LINE = {"material": 3, "press": 4, "die": 5, "mass_mg": 6, "target_pressure_mpa": 7,
        "ramp_mpa_s": 8, "hold_s": 9, "tolerance_pct": 10, "release_mpa_s": 11}


def _write(tmp_path, text, name="recipes.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _with(key, value, text=PELLET):
    """Return PELLET with ``key``'s value replaced (the key stays on its line)."""
    return re.sub(rf"(?m)^(\s+){re.escape(key)}: .*$", rf"\g<1>{key}: {value}", text, count=1)


def _problems(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(RecipeError) as info:
        load_recipes(path, LIBRARY)
    return path, info.value.problems


def _one_at(tmp_path, text, line, key):
    """Load ``text``, expect a problem on ``line`` about ``key``; return its message."""
    path, problems = _problems(tmp_path, text)
    hits = [p for p in problems if p.where == f"{path}:{line}" and p.key.endswith(key)]
    assert hits, f"no problem at line {line} for {key}: {[str(p) for p in problems]}"
    return hits[0].message


def test_shipped_library_loads_with_the_required_tooling():
    assert set(LIBRARY.foils) == {"Li", "Na"}
    assert {"Li6PS5Cl", "Li3PS4", "Na3PS4", "LLZO", "75Li2S-25P2S5"} <= set(LIBRARY.powders)
    bores_mm = sorted(round(d.bore_diameter_m * 1e3, 2) for d in LIBRARY.dies.values())
    assert bores_mm == [6.0, 8.0, 10.0, 12.7, 13.0, 15.0]
    die13 = LIBRARY.dies["die-13mm"]
    assert die13.rated_pressure_pa / 1e6 == pytest.approx(739, abs=1.0)
    assert LIBRARY.presses["manual-2t"].rated_force_n == pytest.approx(19.6e3)
    assert {p.hardware for p in LIBRARY.presses.values()} <= {"sim", "serial_ascii",
                                                               "serial_modbus"}
    assert LIBRARY.foils["Li"].physics_material == "LITHIUM"
    assert LIBRARY.foils["Na"].physics_material == "SODIUM"


def test_shipped_recipes_load_and_validate():
    book = load_recipes(ROOT / "config" / "recipes.yaml")
    for name in ("li_foil_25mpa", "li_foil_71mpa", "na_foil_25mpa", "li6ps5cl_370mpa_200mg"):
        assert name in book.press
    assert {"li_symmetric_cell", "na_symmetric_cell"} <= set(book.assembly)
    targets = sorted(r.target_pressure_pa / 1e6 for r in book.press.values()
                     if r.material == "Li6PS5Cl")
    assert targets[0] <= 300 and targets[-1] >= 500
    assert "75 MPa" in book.press["li_foil_71mpa"].description
    pellet = book.press["li6ps5cl_370mpa_200mg"]
    assert pellet.mass_kg == pytest.approx(200e-6)
    assert pellet.contact_diameter_m == pytest.approx(13e-3)
    assert pellet.peak_force_n == pytest.approx(49.1e3, rel=0.005)
    for recipe in book.press.values():
        assert recipe.peak_pressure_pa <= pressure_limit_pa(recipe, LIBRARY)[0]
    cell = book.assembly["li_symmetric_cell"]
    assert [s.kind for s in cell.steps] == ["compaction", "foil_prepress", "place", "place",
                                            "stack_press", "impedance"]
    assert cell.acceptance.max_total_resistance_ohm >= 32.0     # Doux 2020 at 25 MPa
    assert cell.steps_of("stack_press")[0].recipe.target_pressure_pa < 75e6


def test_lab_units_convert_once_to_si(tmp_path):
    text = _with("temperature_c", "25", PELLET + "    temperature_c: 25\n")
    recipe = load_recipes(_write(tmp_path, text), LIBRARY).press["pellet"]
    assert recipe.target_pressure_pa == 370e6
    assert recipe.stages[-1].ramp_pa_s == 5e6
    assert recipe.tolerance_frac == pytest.approx(0.01)
    assert recipe.temperature_k == pytest.approx(298.15)


def test_missing_key_is_named_at_the_recipe_line(tmp_path):
    text = PELLET.replace("    hold_s: 180\n", "")
    message = _one_at(tmp_path, text, 2, "pellet.hold_s")
    assert "missing" in message and "0-3600" in message


@pytest.mark.parametrize("key,value,expected", [
    ("hold_s", "long", "expected a number"),
    ("hold_s", "[1, 2]", "expected a number"),
    ("target_pressure_mpa", "true", "expected a number"),
    ("ramp_mpa_s", '"5"', "expected a number"),
    ("material", "{a: 1}", "expected text"),
])
def test_wrong_type_is_refused_at_its_line(tmp_path, key, value, expected):
    message = _one_at(tmp_path, _with(key, value), LINE[key], key)
    assert expected in message


@pytest.mark.parametrize("key,value,allowed", [
    ("hold_s", "-5", "allowed 0-3600 s"),
    ("hold_s", "4000", "allowed 0-3600 s"),
    ("target_pressure_mpa", ".nan", "finite"),
    ("target_pressure_mpa", "-370", "> 0 MPa"),
    ("ramp_mpa_s", ".inf", "finite"),
    ("ramp_mpa_s", "0", "> 0 MPa/s"),
    ("release_mpa_s", "-10", "> 0 MPa/s"),
    ("tolerance_pct", "20", "allowed 0.1-10 %"),
    ("tolerance_pct", "0.01", "allowed 0.1-10 %"),
    ("mass_mg", "-200", "1-10000 mg"),
])
def test_out_of_range_numbers_name_line_and_allowed_range(tmp_path, key, value, allowed):
    assert allowed in _one_at(tmp_path, _with(key, value), LINE[key], key)


def test_pressure_given_in_pa_is_called_out(tmp_path):
    message = _one_at(tmp_path, _with("target_pressure_mpa", "370000000"), 7,
                      "target_pressure_mpa")
    assert "looks like Pa" in message and "370 MPa" in message


def test_yaml_1_1_exponent_without_dot_still_reads_as_number(tmp_path):
    message = _one_at(tmp_path, _with("target_pressure_mpa", "3.7e8"), 7, "target_pressure_mpa")
    assert "looks like Pa" in message


def test_mass_in_grams_is_called_out(tmp_path):
    assert "looks like grams" in _one_at(tmp_path, _with("mass_mg", "0.2"), 6, "mass_mg")


@pytest.mark.parametrize("key,value,listed", [
    ("material", "Li6PS5Br", "Li6PS5Cl"),
    ("press", "hydraulic-50t", "manual-2t, hydraulic-15t, hydraulic-25t"),
    ("die", "die-11mm", "die-13mm"),
])
def test_unknown_names_list_the_allowed_names(tmp_path, key, value, listed):
    line = LINE[key]
    message = _one_at(tmp_path, _with(key, value), line, key if key != "die" else "tooling")
    assert f"'{value}'" in message and listed in message


def test_die_diameter_must_match_a_library_die(tmp_path):
    ok = load_recipes(_write(tmp_path, _with("die", "x").replace("die: x",
                                                                 "die_diameter_mm: 13")), LIBRARY)
    assert ok.press["pellet"].tooling == "die-13mm"
    text = PELLET.replace("die: die-13mm", "die_diameter_mm: 11")
    message = _one_at(tmp_path, text, 5, "die_diameter_mm")
    assert "11 mm" in message and "6, 8, 10, 12.7, 13, 15" in message


def test_over_press_capacity_gives_computed_numbers(tmp_path):
    text = _with("target_pressure_mpa", "300", _with("press", "manual-2t"))
    message = _one_at(tmp_path, text, 7, "target_pressure_mpa")
    assert message.startswith("300 MPa on a 13 mm die needs 39.8 kN; press 'manual-2t' is "
                              "rated 19.6 kN")
    assert "148 MPa" in message


def test_over_die_rating_is_refused(tmp_path):
    text = _with("target_pressure_mpa", "800", _with("press", "hydraulic-25t"))
    message = _one_at(tmp_path, text, 7, "target_pressure_mpa")
    assert "106.2 kN" in message and "'die-13mm' is rated 98.1 kN" in message


def test_recipe_limit_and_press_ramp_speed_are_enforced(tmp_path):
    text = PELLET + "    max_pressure_mpa: 350\n"
    assert "350 MPa" in _one_at(tmp_path, text, 7, "target_pressure_mpa")
    message = _one_at(tmp_path, _with("ramp_mpa_s", "50"), 8, "ramp_mpa_s")
    assert "6.64 kN/s" in message and "at most 5 kN/s" in message


def test_temperature_needs_heated_platens_and_stays_below_melting(tmp_path):
    foil = (PELLET.replace("Li6PS5Cl", "Li").replace("die: die-13mm", "rod: rod-12.7mm")
            .replace("mass_mg: 200", "foil_thickness_um: 100")
            .replace("target_pressure_mpa: 370", "target_pressure_mpa: 25")
            .replace("ramp_mpa_s: 5", "ramp_mpa_s: 1"))
    hot = foil + "    temperature_c: 60\n"
    assert "heated platens" in _one_at(tmp_path, hot, 12, "temperature_c")
    melting = _with("press", "hydraulic-25t", foil) + "    temperature_c: 175\n"
    assert "melting point" in _one_at(tmp_path, melting, 12, "temperature_c")
    book = load_recipes(_write(tmp_path, _with("press", "hydraulic-25t", foil)
                               + "    temperature_c: 60\n"), LIBRARY)
    assert book.press["pellet"].temperature_k == pytest.approx(333.15)


def test_typo_and_duplicate_keys_are_refused(tmp_path):
    typo = PELLET.replace("tolerance_pct", "tolerence_pct")
    message = _one_at(tmp_path, typo, 10, "tolerence_pct")
    assert "did you mean 'tolerance_pct'" in message
    duplicate = PELLET + "    hold_s: 60\n"
    assert "line 9" in _one_at(tmp_path, duplicate, 12, "hold_s")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path, problems = _problems(tmp_path, PELLET.replace("hold_s: 180", "hold_s: [180"))
    assert problems[0].where.startswith(f"{path}:")
    assert "not valid YAML" in problems[0].message


def test_every_problem_in_a_file_is_reported_at_once(tmp_path):
    text = _with("hold_s", "-1", _with("tolerance_pct", "50", _with("press", "nope")))
    _, problems = _problems(tmp_path, text)
    lines = {p.where.rsplit(":", 1)[1] for p in problems}
    assert {"4", "9", "10"} <= lines


STACK = """\
  stack:
    material: Li
    press: hydraulic-15t
    die: die-13mm
    foil_thickness_um: 100
    target_pressure_mpa: {stack}
    ramp_mpa_s: 1
    hold_s: 60
    tolerance_pct: 2
    release_mpa_s: 1
  foil:
    material: Li
    press: hydraulic-15t
    rod: rod-12.7mm
    foil_thickness_um: 100
    target_pressure_mpa: 25
    ramp_mpa_s: 1
    hold_s: 60
    tolerance_pct: 2
    release_mpa_s: 1
assemblies:
  cell:
    cell: {{electrode_diameter_mm: 12.7}}
    steps:
      - {{kind: compaction, recipe: pellet}}
      - {{kind: foil_prepress, recipe: foil, count: 2}}
      - {{kind: place, component: ELECTROLYTE_PELLET}}
      - {{kind: place, component: ANODE_ON_ROD, count: 2}}
      - {{kind: stack_press, recipe: stack}}
      - {{kind: impedance, freq_min_hz: 0.1, freq_max_hz: 1.0e+6, points_per_decade: 10,
         amplitude_mv: 10}}
    acceptance: {{max_interface_asr_ohm_cm2: 5, max_total_resistance_ohm: 40}}
"""
ASSEMBLY = PELLET + STACK
STACK_STEP_LINE = ASSEMBLY.format(stack=25).splitlines().index(
    "      - {kind: stack_press, recipe: stack}") + 1


def test_li_stack_at_75_mpa_on_sulfide_is_refused_citing_doux(tmp_path):
    message = _one_at(tmp_path, ASSEMBLY.format(stack=75), STACK_STEP_LINE, "steps[4].recipe")
    assert "shorts the cell" in message and "Doux" in message and "below 75 MPa" in message


def test_li_stack_near_the_short_is_warned_not_refused(tmp_path):
    book = load_recipes(_write(tmp_path, ASSEMBLY.format(stack=65)), LIBRARY)
    assert any("close to the short" in w.message and w.where.endswith(f":{STACK_STEP_LINE}")
               for w in book.warnings)
    quiet = load_recipes(_write(tmp_path, ASSEMBLY.format(stack=25), "b.yaml"), LIBRARY)
    assert not any("short" in w.message for w in quiet.warnings)


def test_assembly_checks_ion_match_counts_and_geometry(tmp_path):
    wrong_ion = ASSEMBLY.format(stack=25).replace("material: Li6PS5Cl", "material: Na3PS4")
    _, problems = _problems(tmp_path, wrong_ion)
    assert any("Na-ion conductor" in p.message for p in problems)
    one_anode = ASSEMBLY.format(stack=25).replace("component: ANODE_ON_ROD, count: 2",
                                                  "component: ANODE_ON_ROD")
    _, problems = _problems(tmp_path, one_anode)
    assert any("counts must match" in p.message for p in problems)
    wide = ASSEMBLY.format(stack=25).replace("electrode_diameter_mm: 12.7",
                                             "electrode_diameter_mm: 10")
    _, problems = _problems(tmp_path, wide)
    assert any("rod-12.7mm" in p.message and p.key.endswith("electrode_diameter_mm")
               for p in problems)


def test_assembly_refers_to_known_recipes_and_step_kinds(tmp_path):
    text = ASSEMBLY.format(stack=25).replace("recipe: stack}", "recipe: stak}")
    message = _one_at(tmp_path, text, STACK_STEP_LINE, "steps[4].recipe")
    assert "unknown press recipe 'stak'" in message and "pellet, stack, foil" in message
    text = ASSEMBLY.format(stack=25).replace("kind: place, component: ELECTROLYTE_PELLET",
                                             "kind: plaec, component: ELECTROLYTE_PELLET")
    assert "place" in _one_at(tmp_path, text, STACK_STEP_LINE - 2, "kind")


def test_impedance_sweep_must_run_downwards_in_range(tmp_path):
    text = ASSEMBLY.format(stack=25).replace("freq_min_hz: 0.1", "freq_min_hz: 2.0e+6")
    _, problems = _problems(tmp_path, text)
    assert any("min < max" in p.message for p in problems)


def test_broken_library_is_refused_with_lines(tmp_path):
    text = (ROOT / "config" / "library.yaml").read_text()
    broken = text.replace("rated_force_kn: 19.6", "rated_force_kn: -19.6", 1)
    broken = broken.replace("modes: [supervisory]", "modes: [turbo]", 1)
    path = _write(tmp_path, broken, "library.yaml")
    with pytest.raises(LibraryError) as info:
        load_library(path)
    messages = {p.where: p.message for p in info.value.problems}
    force_line = broken.splitlines().index("    rated_force_kn: -19.6        # 2 tf") + 1
    assert "allowed 0.1-5000 kN" in messages[f"{path}:{force_line}"]
    assert any("'turbo'" in m and "valve, supervisory" in m for m in messages.values())


def test_contact_area_matches_die_and_force_formula():
    book = load_recipes(ROOT / "config" / "recipes.yaml")
    foil = book.press["li_foil_25mpa"]
    assert foil.contact_area_m2 == pytest.approx(math.pi * 0.0127 ** 2 / 4)
    assert foil.peak_force_n == pytest.approx(25e6 * math.pi * 0.0127 ** 2 / 4)


def test_overrides_change_a_recipe_and_are_validated_at_their_own_lines():
    path = ROOT / "config" / "recipes.yaml"
    base = load_recipes(path, LIBRARY)
    book = load_recipes(path, LIBRARY, overrides_yaml=(
        "press_recipes:\n"
        "  li_stack_25mpa: {hold_s: 120, target_pressure_mpa: 20}\n"
        "assemblies:\n"
        "  li_symmetric_cell:\n"
        "    acceptance: {max_total_resistance_ohm: 45}\n"))
    stack = book.assembly["li_symmetric_cell"].steps_of("stack_press")[0].recipe
    assert stack.stages[-1].pressure_pa == 20e6 and stack.stages[-1].hold_s == 120.0
    assert stack.stages[-1].ramp_pa_s == 0.5e6                  # kept from the file
    assert book.assembly["li_symmetric_cell"].acceptance.max_total_resistance_ohm == 45.0
    assert str(stack.marks["hold_s"]) == "<overrides>:2"
    assert recipe_hash(stack) != recipe_hash(base.press["li_stack_25mpa"])
    with pytest.raises(RecipeError) as info:
        load_recipes(path, LIBRARY, overrides_yaml=(
            "press_recipes:\n  li_stak: {hold_s: 1}\n"
            "  li_stack_25mpa: {target_pressure_mpa: 80}\n"))
    where = {p.where: p.message for p in info.value.problems}
    assert "li_stack_25mpa" in where["<overrides>:2"]           # allowed names listed
    assert "exceeds the recipe's max_pressure_mpa 50 MPa" in where["<overrides>:3"]
    assert any("shorts the cell" in m for m in where.values())


def test_missing_or_empty_files_are_recipe_errors(tmp_path):
    with pytest.raises(RecipeError, match="cannot read the file"):
        load_recipes(tmp_path / "nope.yaml", LIBRARY)
    with pytest.raises(LibraryError, match="cannot read the file"):
        load_recipes(_write(tmp_path, PELLET))          # no library.yaml beside it
    with pytest.raises(RecipeError, match="the file is empty"):
        load_recipes(_write(tmp_path, "# nothing\n", "empty.yaml"), LIBRARY)
