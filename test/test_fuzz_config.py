"""Bad-input fuzzing of the configuration a lab edits: recipes, cell layout, node params, CLI.

* ``config/recipes.yaml`` with random line edits (delete, duplicate, re-indent, a random or
  wrongly tagged value, a random line, truncation): ``load_recipes`` returns a book or raises
  ``RecipeError`` whose every problem names ``file:line``; a numeric key given a non-number is
  reported on exactly its line.
* ``config/stations.yaml`` with the same edits: ``parse_layout`` returns a layout or raises
  ``StationsConfigError`` naming a line of the file.
* ROS params files (``config/<node>.yaml`` as bringup reads them): ``load_node_parameters``
  returns parameters or raises ``BringupError``.
* ``press-cell assemble --overrides`` with random YAML: exit code 2 and a one-line reason, no
  traceback.

Every input tried is counted (``support.fuzz_counts``, family ``config``).
"""

import contextlib
import io
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.fuzz_counts import record

from press_cell.nodes.bringup import BringupError, load_node_parameters
from press_cell.recipes import RecipeError, load_recipes
from press_cell.recipes.library import load_library
from press_cell.recipes.stations import StationsConfigError, parse_layout

REPO = Path(__file__).resolve().parent.parent
RECIPES_TEXT = (REPO / "config" / "recipes.yaml").read_text(encoding="utf-8")
STATIONS_TEXT = (REPO / "config" / "stations.yaml").read_text(encoding="utf-8")
LIBRARY = load_library()
SETTINGS = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Values a hand edit can leave behind, including explicit tags that do not fit their text.
ODD_VALUES = ["", "~", "abc", "-1", "0", "1e9", ".nan", ".inf", "[1, 2]", "{a: 1}", "'12'",
              "!!float abc", "!!int 0xZZ", "!!bool maybe", "!!timestamp 2020-02-30",
              "!!binary AAAA", "!!str", "*undefined", "&a", "12 mm", "1,5", "true", "\"\\x00\""]


@st.composite
def edited(draw, text):
    """Strategy: ``text`` with one to three random line edits; return (text, edits)."""
    lines = text.splitlines()
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        index = draw(st.integers(0, max(len(lines) - 1, 0)))
        op = draw(st.sampled_from(["delete", "duplicate", "indent", "dedent", "value",
                                   "insert", "truncate"]))
        if not lines:
            lines.append(draw(st.sampled_from(ODD_VALUES)))
            continue
        line = lines[index]
        if op == "delete":
            del lines[index]
        elif op == "duplicate":
            lines.insert(index, line)
        elif op == "indent":
            lines[index] = "  " + line
        elif op == "dedent":
            lines[index] = line[2:]
        elif op == "value" and ":" in line:
            value = draw(st.sampled_from(ODD_VALUES) | st.text(max_size=12))
            lines[index] = line.split(":", 1)[0] + ": " + value
        elif op == "insert":
            lines.insert(index, draw(st.sampled_from(ODD_VALUES) | st.text(max_size=30)))
        elif op == "truncate":
            lines = lines[:index]
        edits.append((op, index))
    return "\n".join(lines) + "\n", edits


LINE_MARK = re.compile(r":(\d+)$")


def check_where(where: str, path: str, n_lines: int):
    """Assert a problem's place is ``path:line`` with a line inside the file."""
    assert where.startswith(path), where
    match = LINE_MARK.search(where)
    assert match, f"problem without a line number: {where}"
    assert 1 <= int(match.group(1)) <= n_lines + 1, where


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """Return a folder for the edited files."""
    return tmp_path_factory.mktemp("fuzz_config")


@SETTINGS
@given(edited(RECIPES_TEXT))
def test_edited_recipes_file_loads_or_names_each_problem_by_line(scratch, case):
    """A hand-edited recipes file loads, or every problem says file:line, key and what is wrong."""
    text, _ = case
    path = scratch / "recipes.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_recipes(path, library=LIBRARY)
    except RecipeError as exc:
        assert exc.problems
        for problem in exc.problems:
            check_where(str(problem.where), str(path), text.count("\n"))
            assert problem.message
        record("config", "recipes.yaml edits", "refused with lines")
        return
    record("config", "recipes.yaml edits", "loaded")


NUMERIC_LINE = re.compile(r"^(\s+)(\w+_(?:mpa|mpa_s|s|pct|mg|um|mm|c)):\s*[-+\d.e]+\s*(#.*)?$")
NUMERIC_LINES = [i for i, line in enumerate(RECIPES_TEXT.splitlines())
                 if NUMERIC_LINE.match(line)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(NUMERIC_LINES),
       st.sampled_from([v for v in ODD_VALUES if v not in ("-1", "0", "1e9", "'12'", "true",
                                                          "~", "", "*undefined", "&a")]))
@example(NUMERIC_LINES[0], "!!float abc")
def test_a_non_number_in_a_numeric_key_is_reported_on_its_line(scratch, index, value):
    """Replacing a number by text, a list or a badly tagged value names that exact line."""
    lines = RECIPES_TEXT.splitlines()
    key = NUMERIC_LINE.match(lines[index]).group(2)
    lines[index] = lines[index].split(":", 1)[0] + ": " + value
    path = scratch / "recipes_numeric.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecipeError) as refused:
        load_recipes(path, library=LIBRARY)
    here = [p for p in refused.value.problems if str(p.where) == f"{path}:{index + 1}"]
    assert here, f"line {index + 1} ({key}: {value}) not named: {refused.value}"
    assert any(key in p.key or p.key == "<syntax>" for p in here), here
    record("config", "recipes.yaml numeric key", "refused on its line")


@SETTINGS
@given(edited(STATIONS_TEXT))
def test_edited_stations_file_parses_or_names_a_line(case):
    """A hand-edited cell layout parses, or StationsConfigError names file:line and the key."""
    text, _ = case
    try:
        parse_layout(text, "stations.yaml")
    except StationsConfigError as exc:
        assert exc.source == "stations.yaml" and exc.key
        assert 0 <= exc.line <= text.count("\n") + 1, exc
        assert str(exc).startswith(f"stations.yaml:{exc.line}: ")
        record("config", "stations.yaml edits", "refused with a line")
        return
    record("config", "stations.yaml edits", "parsed")


# ROS params files. Values are those a ROS parameter can hold (homogeneous lists).
_PARAM_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=8)
    | st.lists(st.integers(-2**31, 2**31)) | st.lists(st.floats(allow_nan=False))
    | st.lists(st.text(max_size=5), min_size=1) | st.lists(st.booleans(), min_size=1),
    lambda children: st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=3),
    max_leaves=8)
_KEYS = st.sampled_from(["/**/press", "/**", "press", "/cell1/press", "/**/arm", "/*/press",
                         "**", "", "/**/press/extra"]) | st.text(max_size=10)
PARAMS_DOCS = (st.dictionaries(_KEYS, st.fixed_dictionaries({"ros__parameters": _PARAM_VALUES})
                               | _PARAM_VALUES, max_size=3)
               .map(lambda d: yaml.safe_dump(d, allow_unicode=True))
               | edited((REPO / "config" / "press.yaml").read_text()).map(lambda c: c[0])
               | st.text(max_size=60))


@SETTINGS
@given(PARAMS_DOCS, st.sampled_from(["", "/cell1", "/a/b"]))
def test_params_file_gives_parameters_or_a_bringup_error(scratch, text, namespace):
    """A malformed node params file is a BringupError naming the file, never another error."""
    path = scratch / "press.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        params = load_node_parameters(path, "press", namespace)
    except BringupError as exc:
        assert str(path) in str(exc)
        record("config", "node params files", "BringupError")
        return
    assert all(p.name for p in params)
    record("config", "node params files", "parameters" if params else "no match")


@pytest.mark.parametrize("value", [
    "sim_filled_slots: [1, 'a']",       # a list ROS cannot hold
    "when: 2020-01-01",                 # a YAML date
    "hold: !!float abc",                # a tag that does not fit its text
    "nested: [{a: 1}]",                 # a list of mappings
])
def test_params_file_value_a_ros_parameter_cannot_hold_is_a_bringup_error(scratch, value):
    """Such a value is refused as a BringupError naming the file (was a raw TypeError etc.)."""
    path = scratch / "press_bad_value.yaml"
    path.write_text(f"/**/press:\n  ros__parameters:\n    {value}\n")
    with pytest.raises(BringupError, match="press_bad_value.yaml"):
        load_node_parameters(path, "press", "")


def test_params_file_ros_parameters_not_a_mapping_is_a_bringup_error(scratch):
    """``ros__parameters: true`` is refused as a BringupError (was an AttributeError)."""
    path = scratch / "press_not_mapping.yaml"
    path.write_text("/**/press:\n  ros__parameters: true\n")
    with pytest.raises(BringupError):
        load_node_parameters(path, "press", "")


def test_params_file_bool_tag_on_a_non_bool_is_a_bringup_error(scratch):
    """``!!bool maybe`` is refused as a BringupError naming the file (was PyYAML's KeyError)."""
    path = scratch / "press_bool_tag.yaml"
    path.write_text("/**/press:\n  ros__parameters:\n    autostart: !!bool maybe\n")
    with pytest.raises(BringupError, match="does not fit its YAML tag") as refused:
        load_node_parameters(path, "press", "")
    assert str(path) in str(refused.value)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80) | st.sampled_from(ODD_VALUES).map(
    lambda v: f"press_recipes:\n  li_foil_25mpa:\n    hold_s: {v}\n"))
def test_cli_assemble_refuses_bad_overrides_with_exit_2_and_a_reason(overrides):
    """`press-cell assemble --overrides` with bad YAML exits 2 with a reason, no traceback."""
    from press_cell.cli import main

    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        code = main(["assemble", "--recipe", "no_such_cell_fuzz", "--overrides", overrides])
    text = stderr.getvalue()
    assert code == 2, (code, text)
    assert text.startswith("press-cell assemble: ") and "Traceback" not in text, text
    record("config", "press-cell assemble --overrides",
           "refused: recipe file" if "recipe file refused" in text else "refused: unknown recipe")


@pytest.mark.parametrize("char", ["\x1b", "\x00", "\x7f"])
def test_a_control_character_is_reported_on_its_line(scratch, char):
    """ESC, NUL or DEL pasted into a recipes or layout file is refused naming its line."""
    lines = RECIPES_TEXT.splitlines()
    lines[40] += char
    path = scratch / "recipes_ctrl.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(RecipeError) as refused:
        load_recipes(path, library=LIBRARY)
    assert [str(p.where) for p in refused.value.problems] == [f"{path}:41"]
    assert "is not allowed" in str(refused.value)
    lines = STATIONS_TEXT.splitlines()
    lines[12] += char
    with pytest.raises(StationsConfigError) as bad_layout:
        parse_layout("\n".join(lines) + "\n", "stations.yaml")
    assert bad_layout.value.line == 13
    record("config", "control characters", "refused on its line", 2)
