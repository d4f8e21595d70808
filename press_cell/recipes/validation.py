"""Check recipes against the library, the hardware and the science before anything is pressed.

``validate_press_recipe`` and ``validate_assembly`` raise ``RecipeError`` listing every problem
(place, key, what was wrong, what is allowed) and return warnings as ``Problem`` objects; they
never print. Numbers in messages are computed from the recipe and the library.

Allowed ranges (lab units, as written in recipes):

* pressures: > 0 and <= min(press capacity / contact area, die or rod rating, recipe
  ``max_pressure_mpa``); a value >= 10000 "MPa" is refused as "looks like Pa";
* ramp and release rates: > 0, finite, and the force rate (rate x area) within the press's
  ``max_force_rate_kn_s``;
* hold per stage: 0-3600 s (HOLD_RANGE_S); tolerance band: 0.1-10 % (TOLERANCE_RANGE_PCT);
* powder mass: 1-10000 mg; foil thickness: 5-2000 um; temperature: -20 degC up to 10 K below
  the foil's melting point, above 35 degC only on a press with heated platens;
* stack press of Li or Na on a cold-pressed (porous) sulfide pellet: refused at or above the
  metal's short pressure (Li 75 MPa: the metal creeps into the pores and shorts the cell, Doux
  et al., Adv. Energy Mater. 2020; Na 24 MPa [est], ``short_pressure_pa`` in
  press_cell/physics/foil.py), warned from 80 % of it (Li: 60 MPa).
"""

import math

from press_cell.physics import foil as foil_physics
from press_cell.recipes.errors import Problem, RecipeError, SourceMark
from press_cell.recipes.schema import COMPONENT_KINDS, PRESS_STEP_KINDS

HOLD_RANGE_S = (0.0, 3600.0)
TOLERANCE_RANGE_PCT = (0.1, 10.0)
MASS_RANGE_MG = (1.0, 10000.0)
FOIL_THICKNESS_RANGE_UM = (5.0, 2000.0)
TEMPERATURE_MIN_C = -20.0
UNHEATED_MAX_C = 35.0
MELTING_MARGIN_K = 10.0
LOOKS_LIKE_PA_MPA = 1.0e4           # no lab press reaches 10 GPa; such a number was typed in Pa
DIAMETER_MATCH_M = 1e-5             # 0.01 mm
# Doux et al., Adv. Energy Mater. 2020: Li on cold-pressed Li6PS5Cl shorts at 75 MPa; warn
# from 60 MPa (80 %). The short pressure of each metal comes from physics/foil.py.
SHORT_WARN_FRACTION = 0.8
IMPEDANCE_FREQ_RANGE_HZ = (1e-3, 1e7)
POINTS_PER_DECADE_RANGE = (1, 100)
AMPLITUDE_RANGE_MV = (1.0, 100.0)
ASR_RANGE_OHM_CM2 = (1e-3, 1e5)
TOTAL_RESISTANCE_RANGE_OHM = (1e-2, 1e8)

_PA_PER_MPA = 1e6


class _Report:
    """Errors and warnings of one validation, each placed by the recipe's marks."""

    def __init__(self, name: str, marks: dict, prefix: str = ""):
        self.name = name
        self.marks = marks
        self.prefix = prefix
        self.errors = []
        self.warnings = []

    def _problem(self, key, message):
        mark = self.marks.get(key) or self.marks.get("")
        where = str(mark) if isinstance(mark, SourceMark) else f"<recipe {self.name}>"
        return Problem(where, f"{self.prefix}{key}", message)

    def error(self, key, message):
        self.errors.append(self._problem(key, message))

    def warn(self, key, message):
        self.warnings.append(self._problem(key, message))

    def finish(self):
        if self.errors:
            raise RecipeError(self.errors)
        return self.warnings


def _finite_positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0.0


def _stage_keys(recipe, index):
    """Return the lab keys (pressure, ramp, hold) of stage ``index``."""
    if index == len(recipe.stages) - 1:
        return "target_pressure_mpa", "ramp_mpa_s", "hold_s"
    return (f"stages[{index}].pressure_mpa", f"stages[{index}].ramp_mpa_s",
            f"stages[{index}].hold_s")


def _check_pressure_mpa(report, key, value_pa, what) -> bool:
    """Check a pressure is finite, positive and not a Pa value; return whether it is usable."""
    if not isinstance(value_pa, (int, float)) or not math.isfinite(value_pa):
        report.error(key, f"{what} is {value_pa!r}; a finite pressure > 0 MPa is required")
        return False
    value_mpa = value_pa / _PA_PER_MPA
    if value_mpa >= LOOKS_LIKE_PA_MPA:
        report.error(key, f"{value_mpa:.10g} MPa looks like Pa (that would be "
                          f"{value_mpa / 1e6:.4g} MPa); give the value in MPa, "
                          f"below {LOOKS_LIKE_PA_MPA:g} MPa")
        return False
    if value_mpa <= 0.0:
        report.error(key, f"{what} is {value_mpa:g} MPa; it must be > 0 MPa")
        return False
    return True


def _check_rate(report, key, rate_pa_s, what) -> bool:
    if not _finite_positive(rate_pa_s):
        shown = f"{rate_pa_s / _PA_PER_MPA:g}" if _is_num(rate_pa_s) else repr(rate_pa_s)
        report.error(key, f"{what} is {shown} MPa/s; a finite rate > 0 MPa/s is required")
        return False
    if rate_pa_s / _PA_PER_MPA >= LOOKS_LIKE_PA_MPA:
        report.error(key, f"{rate_pa_s / _PA_PER_MPA:.10g} MPa/s looks like Pa/s; give MPa/s")
        return False
    return True


def _is_num(value) -> bool:
    return isinstance(value, (int, float))


def _in_range(report, key, value, low, high, unit, what) -> bool:
    if not _is_num(value) or not math.isfinite(value) or not low <= value <= high:
        shown = f"{value:g}" if _is_num(value) else repr(value)
        report.error(key, f"{what} is {shown} {unit}; allowed {low:g}-{high:g} {unit}")
        return False
    return True


def _tooling_label(tool, library) -> str:
    if tool in library.dies.values():
        return f"{tool.bore_diameter_m * 1e3:g} mm die"
    return f"{tool.diameter_m * 1e3:g} mm rod"


def _tooling_diameter_m(tool) -> float:
    return getattr(tool, "bore_diameter_m", None) or tool.diameter_m


def pressure_limit_pa(recipe, library):
    """Return ``(limit_pa, reason)``: the lowest of press capacity, tooling rating, recipe limit.

    Capacities are divided by the tooling area. The recipe must name a known press and tooling.
    """
    tool = library.tooling(recipe.tooling)
    press = library.presses[recipe.press]
    area_m2 = math.pi * _tooling_diameter_m(tool) ** 2 / 4.0
    limits = [(press.rated_force_n / area_m2, f"press '{press.name}' capacity"),
              (tool.rated_force_n / area_m2, f"'{tool.name}' rating")]
    if recipe.max_pressure_pa is not None and _finite_positive(recipe.max_pressure_pa):
        limits.append((recipe.max_pressure_pa, "recipe max_pressure_mpa"))
    return min(limits)


def validate_press_recipe(recipe, library) -> list:
    """Validate one press recipe; return warnings, raise RecipeError listing every error."""
    report = _Report(recipe.name, recipe.marks, f"press_recipes.{recipe.name}.")
    _check_names(report, recipe, library)
    stages_ok = _check_stages(report, recipe)
    _check_band_and_release(report, recipe)
    if recipe.max_pressure_pa is not None:
        _check_pressure_mpa(report, "max_pressure_mpa", recipe.max_pressure_pa,
                            "the recipe pressure limit")
    material = library.foils.get(recipe.material) or library.powders.get(recipe.material)
    tool = library.tooling(recipe.tooling)
    press = library.presses.get(recipe.press)
    if material is not None:
        _check_part(report, recipe, library, material, tool)
    if press is not None:
        _check_temperature(report, recipe, library, press)
    if tool is not None and press is not None and stages_ok \
            and _check_contact(report, recipe, tool):
        _check_limits(report, recipe, library, tool, press)
    return report.finish()


def _check_names(report, recipe, library):
    if recipe.material not in library.foils and recipe.material not in library.powders:
        report.error("material", f"unknown material '{recipe.material}'; allowed: "
                                 f"{', '.join(library.material_names())}")
    if recipe.press not in library.presses:
        report.error("press", f"unknown press '{recipe.press}'; allowed: "
                              f"{', '.join(library.presses)}")
    if library.tooling(recipe.tooling) is None:
        report.error("tooling", f"unknown die or rod '{recipe.tooling}'; allowed: "
                                f"{', '.join(library.tooling_names())}")


def _check_stages(report, recipe) -> bool:
    if not recipe.stages:
        report.error("target_pressure_mpa", "no pressure stage; at least the target is required")
        return False
    ok = True
    for index, stage in enumerate(recipe.stages):
        p_key, r_key, h_key = _stage_keys(recipe, index)
        ok &= _check_pressure_mpa(report, p_key, stage.pressure_pa, "the stage pressure")
        ok &= _check_rate(report, r_key, stage.ramp_pa_s, "the ramp rate")
        ok &= _in_range(report, h_key, stage.hold_s, *HOLD_RANGE_S, "s", "the hold time")
    return bool(ok)


def _check_band_and_release(report, recipe):
    _in_range(report, "tolerance_pct", recipe.tolerance_frac * 100.0
              if _is_num(recipe.tolerance_frac) else recipe.tolerance_frac,
              *TOLERANCE_RANGE_PCT, "%", "the tolerance band")
    _check_rate(report, "release_mpa_s", recipe.release_pa_s, "the release rate")


def _check_part(report, recipe, library, material, tool):
    """Check the part fields that belong to the material kind (powder mass, foil thickness)."""
    if recipe.material in library.powders:
        if recipe.mass_kg is None:
            report.error("mass_mg", f"missing; a powder needs its mass, "
                                    f"{MASS_RANGE_MG[0]:g}-{MASS_RANGE_MG[1]:g} mg")
        elif _is_num(recipe.mass_kg):
            mass_mg = recipe.mass_kg * 1e6
            if math.isfinite(mass_mg) and 0.0 < mass_mg < MASS_RANGE_MG[0]:
                report.error("mass_mg", f"{mass_mg:g} mg looks like grams; give milligrams, "
                                        f"{MASS_RANGE_MG[0]:g}-{MASS_RANGE_MG[1]:g} mg")
            else:
                _in_range(report, "mass_mg", mass_mg, *MASS_RANGE_MG, "mg", "the powder mass")
        if recipe.foil_thickness_m is not None:
            report.error("foil_thickness_um", f"'{recipe.material}' is a powder; "
                                              "foil_thickness_um is only for foils (use mass_mg)")
        if tool is not None and tool in library.rods.values():
            report.error("tooling", f"powder '{recipe.material}' is compacted in a die; "
                                    f"allowed dies: {', '.join(library.dies)}")
        return
    if recipe.foil_thickness_m is None:
        report.error("foil_thickness_um", "missing; a foil needs its thickness, "
                     f"{FOIL_THICKNESS_RANGE_UM[0]:g}-{FOIL_THICKNESS_RANGE_UM[1]:g} um")
    elif _is_num(recipe.foil_thickness_m):
        thickness_um = recipe.foil_thickness_m * 1e6
        if math.isfinite(thickness_um) and 0.0 < thickness_um < 1.0:
            report.error("foil_thickness_um", f"{thickness_um:g} um looks like mm; give "
                         f"micrometres, {FOIL_THICKNESS_RANGE_UM[0]:g}-"
                         f"{FOIL_THICKNESS_RANGE_UM[1]:g} um")
        else:
            _in_range(report, "foil_thickness_um", thickness_um, *FOIL_THICKNESS_RANGE_UM, "um",
                      "the foil thickness")
    if recipe.mass_kg is not None:
        report.error("mass_mg", f"'{recipe.material}' is a foil; mass_mg is only for powders "
                                "(use foil_thickness_um)")


def _check_temperature(report, recipe, library, press):
    if recipe.temperature_k is None:
        return
    temperature_c = recipe.temperature_k - 273.15 if _is_num(recipe.temperature_k) else None
    foil = library.foils.get(recipe.material)
    high_c = (foil.melting_point_k - MELTING_MARGIN_K - 273.15) if foil else 300.0
    what = (f"the press temperature (up to {MELTING_MARGIN_K:g} K below the "
            f"{foil.name} melting point)" if foil else "the press temperature")
    if not _in_range(report, "temperature_c", temperature_c, TEMPERATURE_MIN_C, high_c, "degC",
                     what):
        return
    if temperature_c > UNHEATED_MAX_C and not press.heated_platens:
        heated = [p.name for p in library.presses.values() if p.heated_platens]
        report.error("temperature_c", f"{temperature_c:g} degC needs heated platens; press "
                     f"'{press.name}' has none (up to {UNHEATED_MAX_C:g} degC allowed); "
                     f"heated presses: {', '.join(heated) or 'none in the library'}")


def _check_contact(report, recipe, tool) -> bool:
    diameter_m = _tooling_diameter_m(tool)
    if not _finite_positive(recipe.contact_diameter_m) or \
            abs(recipe.contact_diameter_m - diameter_m) > DIAMETER_MATCH_M:
        shown = (f"{recipe.contact_diameter_m * 1e3:g} mm" if _is_num(recipe.contact_diameter_m)
                 else repr(recipe.contact_diameter_m))
        report.error("tooling", f"contact diameter {shown} does not match '{tool.name}' "
                                f"({diameter_m * 1e3:g} mm); it must equal the tooling diameter")
        return False
    return True


def _check_limits(report, recipe, library, tool, press):
    """Check every stage against press capacity, tooling rating, recipe limit and press speed."""
    area_m2 = recipe.contact_area_m2
    label = _tooling_label(tool, library)
    limit_pa, limit_reason = pressure_limit_pa(recipe, library)
    for index, stage in enumerate(recipe.stages):
        p_key, r_key, _ = _stage_keys(recipe, index)
        p_mpa = stage.pressure_pa / _PA_PER_MPA
        force_kn = stage.pressure_pa * area_m2 / 1e3
        if stage.pressure_pa * area_m2 > press.rated_force_n:
            report.error(p_key, f"{p_mpa:g} MPa on a {label} needs {force_kn:.1f} kN; press "
                         f"'{press.name}' is rated {press.rated_force_n / 1e3:.1f} kN (at most "
                         f"{press.rated_force_n / area_m2 / _PA_PER_MPA:.0f} MPa on this "
                         "tooling)")
        if stage.pressure_pa * area_m2 > tool.rated_force_n:
            report.error(p_key, f"{p_mpa:g} MPa on a {label} needs {force_kn:.1f} kN; "
                         f"'{tool.name}' is rated {tool.rated_force_n / 1e3:.1f} kN "
                         f"({tool.rated_force_n / area_m2 / _PA_PER_MPA:.0f} MPa)")
        if recipe.max_pressure_pa is not None and _finite_positive(recipe.max_pressure_pa) \
                and stage.pressure_pa > recipe.max_pressure_pa:
            report.error(p_key, f"{p_mpa:g} MPa exceeds the recipe's max_pressure_mpa "
                                f"{recipe.max_pressure_pa / _PA_PER_MPA:g} MPa")
        elif stage.pressure_pa <= limit_pa < stage.pressure_pa * (1.0 + recipe.tolerance_frac):
            report.warn(p_key, f"the upper edge of the {recipe.tolerance_frac * 100:g} % band "
                               f"({p_mpa * (1 + recipe.tolerance_frac):.4g} MPa) is above the "
                               f"{limit_reason} ({limit_pa / _PA_PER_MPA:.4g} MPa); an overshoot "
                               "inside the band will trip the safety limit")
        _check_force_rate(report, r_key, stage.ramp_pa_s, area_m2, label, press, "ramp")
    _check_force_rate(report, "release_mpa_s", recipe.release_pa_s, area_m2, label, press,
                      "release")


def _check_force_rate(report, key, rate_pa_s, area_m2, label, press, what):
    if not _finite_positive(rate_pa_s):
        return
    force_rate_n_s = rate_pa_s * area_m2
    if force_rate_n_s > press.max_force_rate_n_s:
        report.error(key, f"{what} {rate_pa_s / _PA_PER_MPA:g} MPa/s on a {label} is "
                     f"{force_rate_n_s / 1e3:.3g} kN/s; press '{press.name}' ramps at most "
                     f"{press.max_force_rate_n_s / 1e3:g} kN/s "
                     f"({press.max_force_rate_n_s / area_m2 / _PA_PER_MPA:.3g} MPa/s here)")


def validate_assembly(assembly, library, check_press_recipes: bool = True) -> list:
    """Validate an assembly recipe; return warnings, raise RecipeError listing every error.

    With ``check_press_recipes`` its press recipes are validated too (the loader, which has
    validated each one already, passes False).
    """
    report = _Report(assembly.name, assembly.marks, f"assemblies.{assembly.name}.")
    errors = []
    for index, step in enumerate(assembly.steps):
        if step.recipe is not None and check_press_recipes:
            try:
                report.warnings.extend(validate_press_recipe(step.recipe, library))
            except RecipeError as exc:
                errors.extend(exc.problems)
        _check_step_kind(report, index, step, library)
    _check_order(report, assembly)
    _check_geometry(report, assembly, library)
    _check_stack(report, assembly, library)
    _check_impedance_and_acceptance(report, assembly)
    report.errors = errors + report.errors
    return report.finish()


def _check_step_kind(report, index, step, library):
    """Check a step's recipe material and tooling fit what the step does."""
    key = f"steps[{index}]"
    if step.kind == "place":
        if step.component not in COMPONENT_KINDS:
            report.error(f"{key}.component", f"unknown component '{step.component}'; allowed: "
                                             f"{', '.join(COMPONENT_KINDS)}")
    if not isinstance(step.count, int) or not 1 <= step.count <= 8:
        report.error(f"{key}.count", f"count is {step.count!r}; allowed 1-8")
    if step.kind not in PRESS_STEP_KINDS or step.recipe is None:
        return
    recipe = step.recipe
    is_powder = recipe.material in library.powders
    is_foil = recipe.material in library.foils
    on_rod = recipe.tooling in library.rods
    wanted = {"compaction": (is_powder and not on_rod, "a powder in a die"),
              "foil_prepress": (is_foil and on_rod, "a foil on a rod"),
              "stack_press": (is_foil, "the anode foil material (pressure on its rod or die)")}
    ok, what = wanted[step.kind]
    if not ok and (is_powder or is_foil) and library.tooling(recipe.tooling) is not None:
        report.error(f"{key}.recipe", f"recipe '{step.recipe_name}' presses "
                     f"'{recipe.material}' on '{recipe.tooling}'; a {step.kind} step needs {what}")


def _check_order(report, assembly):
    kinds = [step.kind for step in assembly.steps]
    for required in ("compaction", "foil_prepress", "stack_press", "impedance"):
        if required not in kinds:
            report.error("steps", f"no '{required}' step; an assembly needs compaction, "
                                  "foil_prepress, place, stack_press and impedance steps")
    if "stack_press" not in kinds:
        return
    stack_at = kinds.index("stack_press")
    for index, kind in enumerate(kinds):
        if kind in ("compaction", "foil_prepress", "place") and index > stack_at:
            report.error(f"steps[{index}]", f"'{kind}' comes after the stack press "
                                            f"(steps[{stack_at}]); it must come before")
        if kind == "impedance" and index < stack_at:
            report.error(f"steps[{index}]", "impedance before the stack press measures no cell; "
                                            "put it after the stack press")
    placed = {step.component: 0 for step in assembly.steps_of("place")}
    for step in assembly.steps_of("place"):
        placed[step.component] += step.count
    anodes = sum(step.count for step in assembly.steps_of("foil_prepress"))
    if placed.get("ANODE_ON_ROD", 0) != anodes:
        report.error("steps", f"{anodes} anode(s) pre-pressed but {placed.get('ANODE_ON_ROD', 0)}"
                              " ANODE_ON_ROD placed; the counts must match")
    if placed.get("ELECTROLYTE_PELLET", 0) != 1:
        report.error("steps", "exactly one ELECTROLYTE_PELLET placement is required, got "
                              f"{placed.get('ELECTROLYTE_PELLET', 0)}")


def _check_geometry(report, assembly, library):
    d_m = assembly.electrode_diameter_m
    if not _finite_positive(d_m) or not 1e-3 <= d_m <= 0.1:
        shown = f"{d_m * 1e3:g}" if _is_num(d_m) else repr(d_m)
        report.error("cell.electrode_diameter_mm", f"electrode diameter is {shown} mm; "
                                                   "allowed 1-100 mm")
        return
    for step in assembly.steps_of("foil_prepress") + assembly.steps_of("stack_press"):
        rod = library.rods.get(step.recipe.tooling) if step.recipe else None
        if rod is not None and abs(rod.diameter_m - d_m) > DIAMETER_MATCH_M:
            report.error("cell.electrode_diameter_mm", f"electrode {d_m * 1e3:g} mm but recipe "
                         f"'{step.recipe_name}' presses on '{rod.name}' "
                         f"({rod.diameter_m * 1e3:g} mm); they must be equal")
    dies = {step.recipe.tooling for step in assembly.steps
            if step.kind in ("compaction", "stack_press") and step.recipe is not None
            and step.recipe.tooling in library.dies}
    if len(dies) > 1:
        report.error("steps", f"compaction and stack press use different dies ({', '.join(dies)});"
                              " the pellet stays in one die, use the same die for both")
    for name in dies:
        if library.dies[name].bore_diameter_m + DIAMETER_MATCH_M < d_m:
            report.error("cell.electrode_diameter_mm", f"electrode {d_m * 1e3:g} mm is larger "
                         f"than the pellet from '{name}'; it must fit on the pellet")


def _check_stack(report, assembly, library):
    """Apply the ion-match and Li/Na-on-porous-sulfide rules to the stack press."""
    powders = [library.powders.get(step.recipe.material) for step in assembly.steps_of("compaction")
               if step.recipe is not None]
    powders = [p for p in powders if p is not None]
    foils = {step.recipe.material for step in assembly.steps
             if step.recipe is not None and step.recipe.material in library.foils}
    for powder in powders:
        for foil in foils:
            if foil != powder.conducts:
                report.error("steps", f"'{foil}' electrodes on '{powder.name}', a "
                             f"{powder.conducts}-ion conductor; the foil must be {powder.conducts}")
    sulfide = [p.name for p in powders if p.family == "sulfide"]
    for index, step in enumerate(assembly.steps):
        if step.kind != "stack_press" or step.recipe is None or not sulfide:
            continue
        if step.recipe.material not in library.foils or not step.recipe.stages:
            continue
        metal = getattr(foil_physics, library.foils[step.recipe.material].physics_material)
        peak_mpa = step.recipe.peak_pressure_pa / _PA_PER_MPA
        short_mpa = metal.short_pressure_pa / _PA_PER_MPA
        if not math.isfinite(peak_mpa):
            continue
        source = ("Doux et al., Adv. Energy Mater. 2020" if step.recipe.material == "Li"
                  else "[est] scaled from Li by flow stress, press_cell/physics/foil.py")
        science = (f"{step.recipe.material} creeps into the pores of cold-pressed "
                   f"{sulfide[0]} and shorts the cell at {short_mpa:.3g} MPa ({source})")
        if peak_mpa >= short_mpa:
            report.error(f"steps[{index}].recipe", f"stack press '{step.recipe_name}' reaches "
                         f"{peak_mpa:g} MPa: {science}; allowed below {short_mpa:.3g} MPa")
        elif peak_mpa >= SHORT_WARN_FRACTION * short_mpa:
            report.warn(f"steps[{index}].recipe", f"stack press '{step.recipe_name}' reaches "
                        f"{peak_mpa:g} MPa, close to the short: {science}")


def _check_impedance_and_acceptance(report, assembly):
    for index, step in enumerate(assembly.steps):
        settings = step.impedance
        if step.kind != "impedance" or settings is None:
            continue
        key = f"steps[{index}]"
        low_ok = _in_range(report, f"{key}.freq_min_hz", settings.freq_min_hz,
                           *IMPEDANCE_FREQ_RANGE_HZ, "Hz", "the lowest frequency")
        high_ok = _in_range(report, f"{key}.freq_max_hz", settings.freq_max_hz,
                            *IMPEDANCE_FREQ_RANGE_HZ, "Hz", "the highest frequency")
        if low_ok and high_ok and settings.freq_min_hz >= settings.freq_max_hz:
            report.error(f"{key}.freq_min_hz", f"{settings.freq_min_hz:g} Hz is not below "
                         f"freq_max_hz {settings.freq_max_hz:g} Hz; the sweep needs min < max")
        _in_range(report, f"{key}.points_per_decade", settings.points_per_decade,
                  *POINTS_PER_DECADE_RANGE, "", "points per decade")
        _in_range(report, f"{key}.amplitude_mv", settings.amplitude_v * 1e3
                  if _is_num(settings.amplitude_v) else settings.amplitude_v,
                  *AMPLITUDE_RANGE_MV, "mV", "the excitation amplitude")
    criteria = assembly.acceptance
    _in_range(report, "acceptance.max_interface_asr_ohm_cm2",
              criteria.max_interface_asr_ohm_m2 * 1e4
              if _is_num(criteria.max_interface_asr_ohm_m2) else criteria.max_interface_asr_ohm_m2,
              *ASR_RANGE_OHM_CM2, "ohm cm^2", "the interface ASR limit")
    _in_range(report, "acceptance.max_total_resistance_ohm", criteria.max_total_resistance_ohm,
              *TOTAL_RESISTANCE_RANGE_OHM, "ohm", "the total resistance limit")
