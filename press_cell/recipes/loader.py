"""Load config/recipes.yaml into a RecipeBook: lab units to SI once, every fault placed by line.

File layout (lab units in the keys)::

    press_recipes:
      <name>:
        description: text                       (optional)
        material: <library foil or powder>
        press: <library press>
        die: <library die> | rod: <library rod> | die_diameter_mm: <bore of a library die>
        target_pressure_mpa, ramp_mpa_s, hold_s  the final (target) stage
        stages: [{pressure_mpa, ramp_mpa_s, hold_s}, ...]   (optional, run before the target)
        tolerance_pct, release_mpa_s
        max_pressure_mpa, temperature_c           (optional)
        mass_mg (powders) | foil_thickness_um (foils)
    assemblies:
      <name>:
        description: text
        cell: {electrode_diameter_mm}
        steps:                                  in execution order
          - {kind: compaction | foil_prepress | stack_press, recipe: <press recipe>, count}
          - {kind: place, component: ELECTROLYTE_PELLET | ANODE_ON_ROD | ..., count}
          - {kind: impedance, freq_min_hz, freq_max_hz, points_per_decade, amplitude_mv}
        acceptance: {max_interface_asr_ohm_cm2, max_total_resistance_ohm}
"""

import math
from pathlib import Path

from press_cell.config_files import config_file
from press_cell.recipes.errors import RecipeError
from press_cell.recipes.library import load_library
from press_cell.recipes.schema import (
    COMPONENT_KINDS,
    PRESS_STEP_KINDS,
    STEP_KINDS,
    AcceptanceCriteria,
    AssemblyRecipe,
    AssemblyStep,
    ImpedanceSettings,
    PressRecipe,
    PressStage,
    RecipeBook,
)
from press_cell.recipes.validation import validate_assembly, validate_press_recipe
from press_cell.recipes.yaml_source import (
    MapView,
    ProblemLog,
    compose_file,
    compose_text,
    merge_mapping,
)

OVERRIDES_LABEL = "<overrides>"     # the file name problems in override text are reported under

_MPA = 1e6
_PRESS_KEYS = ("description", "material", "press", "die", "rod", "die_diameter_mm",
               "target_pressure_mpa", "ramp_mpa_s", "hold_s", "stages", "tolerance_pct",
               "release_mpa_s", "max_pressure_mpa", "temperature_c", "mass_mg",
               "foil_thickness_um")
_STAGE_KEYS = ("pressure_mpa", "ramp_mpa_s", "hold_s")
_PRESSURE = "a pressure in MPa, > 0"
_RAMP = "a rate in MPa/s, > 0"
_HOLD = "a hold time in s, 0-3600"


def _number(view, key, what, marks, required=True, scale=1.0, prefix=""):
    """Read a number, remember its mark under ``prefix + key`` and return it scaled to SI."""
    value = view.number(key, what, required)
    if view.has(key):
        marks[prefix + key] = view.mark_of(key)
    return None if value is None else value * scale


def _read_stage(view, index, marks):
    view.check_keys(_STAGE_KEYS)
    prefix = f"stages[{index}]."
    values = (_number(view, "pressure_mpa", _PRESSURE, marks, scale=_MPA, prefix=prefix),
              _number(view, "ramp_mpa_s", _RAMP, marks, scale=_MPA, prefix=prefix),
              _number(view, "hold_s", _HOLD, marks, prefix=prefix))
    return None if None in values else PressStage(*values)


def _read_tooling(view, library, marks):
    """Return ``(tooling name, contact diameter m)``; unknown names are left to validation."""
    key = view.require_one_of(("die", "rod", "die_diameter_mm"))
    if key is None:
        return None, None
    marks["tooling"] = view.mark_of(key)
    if key == "die_diameter_mm":
        diameter_mm = view.number(key, "the bore of a library die in mm")
        if diameter_mm is None:
            return None, None
        die = library.die_by_diameter(diameter_mm * 1e-3)
        if die is None:
            bores = ", ".join(f"{d.bore_diameter_m * 1e3:g}" for d in library.dies.values())
            view.problem(key, f"no library die has a {diameter_mm:g} mm bore; available bores: "
                              f"{bores} mm (or add the die to the library)")
            return None, None
        return die.name, die.bore_diameter_m
    name = view.string(key, f"the name of a library {key}")
    if name is None:
        return None, None
    tool = library.tooling(name)
    if tool is None:
        return name, math.nan
    return name, getattr(tool, "bore_diameter_m", None) or tool.diameter_m


def _read_press_recipe(name, view, library):
    marks = {"": view.mark}
    view.check_keys(_PRESS_KEYS)
    description = view.string("description", "a one-line description", required=False) or ""
    material = view.string("material", f"a material: {', '.join(library.material_names())}")
    press = view.string("press", f"a press: {', '.join(library.presses)}")
    for key in ("material", "press"):
        marks[key] = view.mark_of(key)
    tooling, diameter_m = _read_tooling(view, library, marks)
    stages = []
    complete = True
    for index, node in view.sequence("stages", "a list of {pressure_mpa, ramp_mpa_s, hold_s}",
                                     required=False) or []:
        stage_view = view.element_mapping("stages", index, node, "a stage mapping")
        stage = _read_stage(stage_view, index, marks) if stage_view else None
        complete &= stage is not None
        stages.append(stage)
    target = (_number(view, "target_pressure_mpa", _PRESSURE, marks, scale=_MPA),
              _number(view, "ramp_mpa_s", _RAMP, marks, scale=_MPA),
              _number(view, "hold_s", _HOLD, marks))
    tolerance_pct = _number(view, "tolerance_pct", "a band in %, 0.1-10", marks)
    release = _number(view, "release_mpa_s", _RAMP, marks, scale=_MPA)
    optional = {
        "max_pressure_pa": _number(view, "max_pressure_mpa", _PRESSURE, marks, False, _MPA),
        "mass_kg": _number(view, "mass_mg", "a powder mass in mg", marks, False, 1e-6),
        "foil_thickness_m": _number(view, "foil_thickness_um", "a foil thickness in um", marks,
                                    False, 1e-6),
        "temperature_k": _number(view, "temperature_c", "a temperature in degC", marks, False),
    }
    if optional["temperature_k"] is not None:
        optional["temperature_k"] += 273.15
    required = (material, press, tooling, diameter_m, tolerance_pct, release) + target
    if None in required or not complete:
        return None
    return PressRecipe(name=name, material=material, press=press, tooling=tooling,
                       contact_diameter_m=diameter_m, stages=tuple(stages) + (PressStage(*target),),
                       tolerance_frac=tolerance_pct / 100.0, release_pa_s=release,
                       description=description, marks=marks, **optional)


def _read_step(view, index, press_recipes, marks):
    key = f"steps[{index}]"
    marks[key] = view.mark
    kind = view.string("kind", f"a step kind: {', '.join(STEP_KINDS)}")
    if kind is None:
        return None
    if kind not in STEP_KINDS:
        view.problem("kind", f"unknown step kind '{kind}'; allowed: {', '.join(STEP_KINDS)}")
        return None
    count = 1
    if view.has("count"):
        count = view.integer("count", "a repeat count, 1-8")
        marks[f"{key}.count"] = view.mark_of("count")
    if kind in PRESS_STEP_KINDS:
        view.check_keys(("kind", "recipe", "count"))
        name = view.string("recipe", "the name of a press recipe in this file")
        marks[f"{key}.recipe"] = view.mark_of("recipe")
        if name is None:
            return None
        if name not in press_recipes:
            view.problem("recipe", f"unknown press recipe '{name}'; allowed: "
                                   f"{', '.join(press_recipes) or 'none defined'}")
            return None
        if press_recipes[name] is None:
            return None         # its own problems are already logged
        return AssemblyStep(kind, recipe_name=name, recipe=press_recipes[name], count=count)
    if kind == "place":
        view.check_keys(("kind", "component", "count"))
        component = view.string("component", f"a component: {', '.join(COMPONENT_KINDS)}")
        marks[f"{key}.component"] = view.mark_of("component")
        return None if component is None else AssemblyStep(kind, component=component, count=count)
    view.check_keys(("kind", "freq_min_hz", "freq_max_hz", "points_per_decade", "amplitude_mv"))
    values = (_number(view, "freq_min_hz", "a frequency in Hz", marks, prefix=key + "."),
              _number(view, "freq_max_hz", "a frequency in Hz", marks, prefix=key + "."),
              view.integer("points_per_decade", "points per decade, 1-100"),
              _number(view, "amplitude_mv", "an amplitude in mV", marks, scale=1e-3,
                      prefix=key + "."))
    marks[f"{key}.points_per_decade"] = view.mark_of("points_per_decade")
    if None in values:
        return None
    return AssemblyStep(kind, impedance=ImpedanceSettings(*values), count=count)


def _read_assembly(name, view, press_recipes):
    marks = {"": view.mark}
    view.check_keys(("description", "cell", "steps", "acceptance"))
    description = view.string("description", "a one-line description", required=False) or ""
    cell = view.mapping("cell", "a 'cell' mapping with electrode_diameter_mm")
    diameter_m = None
    if cell is not None:
        cell.check_keys(("electrode_diameter_mm",))
        diameter_m = _number(cell, "electrode_diameter_mm", "the electrode diameter in mm", marks,
                             scale=1e-3, prefix="cell.")
    steps = []
    complete = True
    entries = view.sequence("steps", "an ordered list of steps")
    marks["steps"] = view.mark_of("steps")
    for index, node in entries or []:
        step_view = view.element_mapping("steps", index, node, "a step mapping")
        step = _read_step(step_view, index, press_recipes, marks) if step_view else None
        complete &= step is not None
        steps.append(step)
    accept = view.mapping("acceptance", "an 'acceptance' mapping")
    criteria = None
    if accept is not None:
        accept.check_keys(("max_interface_asr_ohm_cm2", "max_total_resistance_ohm"))
        asr = _number(accept, "max_interface_asr_ohm_cm2", "an ASR per interface in ohm cm^2",
                      marks, scale=1e-4, prefix="acceptance.")
        total = _number(accept, "max_total_resistance_ohm", "a resistance in ohm", marks,
                        prefix="acceptance.")
        criteria = None if None in (asr, total) else AcceptanceCriteria(asr, total)
    if diameter_m is None or criteria is None or entries is None or not complete:
        return None
    return AssemblyRecipe(name, description, diameter_m, tuple(steps), criteria, marks)


def load_recipes(path=None, library=None, overrides_yaml: str = "") -> RecipeBook:
    """Load, convert and validate a recipes YAML; raise RecipeError listing every problem.

    ``path`` defaults to the shipped ``recipes.yaml`` (``press_cell.config_files``);
    ``library`` defaults to ``library.yaml`` in the same folder as ``path``.
    ``overrides_yaml`` (the AssembleCell goal's ``overrides_yaml``) is YAML text of the same
    shape as the file, deep-merged into it before anything is read, e.g.
    ``{press_recipes: {li_stack_25mpa: {hold_s: 120}}}``; it may change keys of existing
    recipes and assemblies but not invent names. Problems in it are reported as
    ``<overrides>:line``; every override is validated like the file itself.
    """
    if path is None:
        path = config_file("recipes.yaml")
    if library is None:
        library = load_library(Path(path).with_name("library.yaml"))
    log = ProblemLog()
    root, file = compose_file(path, log)
    if root is not None and overrides_yaml.strip():
        overrides, _ = compose_text(overrides_yaml, OVERRIDES_LABEL, log)
        if overrides is not None:
            merge_mapping(root.node, overrides.node, log, OVERRIDES_LABEL)
            root = MapView(root.node, file, "", log)
    press_recipes, assemblies = {}, {}
    if root is not None:
        root.check_keys(("press_recipes", "assemblies"))
        for name, view in root.items("press_recipes", "a 'press_recipes' section"):
            press_recipes[name] = _read_press_recipe(name, view, library)
        for name, view in root.items("assemblies", "an 'assemblies' section", required=False):
            if name in press_recipes:
                view.log.add(view.mark, f"assemblies.{name}", "name already used by a press "
                             "recipe; recipe names must be unique across the file")
            assemblies[name] = _read_assembly(name, view, press_recipes)
    problems = list(dict.fromkeys(log.problems))     # a re-read merged root repeats a few
    warnings = []
    for recipe in press_recipes.values():
        if recipe is not None:
            problems, warnings = _collect(validate_press_recipe, (recipe, library), problems,
                                          warnings)
    for assembly in assemblies.values():
        if assembly is not None:
            problems, warnings = _collect(validate_assembly, (assembly, library, False),
                                          problems, warnings)
    if problems:
        raise RecipeError(problems)
    return RecipeBook(press=press_recipes, assembly=assemblies, warnings=tuple(warnings))


def _collect(check, args, problems, warnings):
    try:
        return problems, warnings + list(check(*args))
    except RecipeError as exc:
        return problems + list(exc.problems), warnings
