"""Dry run: predict what a recipe will do before anything is pressed.

The ideal pressure trace of a recipe (its segments, open loop, no controller or press lag) is
stepped through the physics models of press_cell/physics: ``PowderCompact`` for a compaction,
``AlkaliFoil`` for a foil pre-press, and for an assembly a ``SymmetricCell`` built from the
predicted pellet and pre-pressed foils. Results are predictions of the models (see their
sources and [est] marks), not measurements.

Conventions:

* Powder material constants come from physics/compaction.py ``MATERIALS`` (the library's
  ``physics_material``), with the library's theoretical density (the lab's number) replacing
  the physics default.
* Foils come from physics/foil.py (``LITHIUM``, ``SODIUM``) and are discs of the tooling
  diameter. In an assembly the stack press meets the pellet with a fresh interface: the
  pre-pressed foil keeps its thickness, its contact with the pellet starts at zero.
* Cell resistances are reported at the end of the stack press, after its release (contact
  gained is kept; physics/foil.py); the impedance step measures that cell.
"""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from press_cell.physics import foil as foil_physics
from press_cell.physics.cell_resistance import CellResistances, SymmetricCell
from press_cell.physics.compaction import MATERIALS, PowderCompact
from press_cell.physics.foil import AlkaliFoil
from press_cell.recipes.errors import Problem, RecipeError
from press_cell.recipes.segments import profile_duration_s, recipe_segments
from press_cell.recipes.validation import (
    pressure_limit_pa,
    validate_assembly,
    validate_press_recipe,
)

ROOM_TEMPERATURE_K = 298.15
DEFAULT_DT_S = 1.0


@dataclass(frozen=True)
class PressPrediction:
    """Predicted outcome of one press recipe (SI units; None where it does not apply)."""

    recipe_name: str
    duration_s: float               # nominal profile duration, s
    peak_pressure_pa: float
    peak_force_n: float             # force at the peak pressure, N
    limit_pressure_pa: float        # min(press capacity, tooling rating, recipe limit), Pa
    limit_reason: str
    pellet_thickness_m: float | None = None     # after release (with spring-back), m
    relative_density: float | None = None       # after release
    conductivity_s_m: float | None = None       # pellet ionic conductivity after release, S/m
    foil_thickness_m: float | None = None       # after release, m
    contact_fraction: float | None = None       # foil contact with the counter-face, 0..1
    warnings: tuple = ()                        # Problem, from validation

    def summary(self) -> str:
        """Return one line in lab units (MPa, kN, mm, um, mS/cm) for logs and the CLI."""
        text = (f"{self.recipe_name}: peak {self.peak_pressure_pa / 1e6:g} MPa = "
                f"{self.peak_force_n / 1e3:.1f} kN (limit {self.limit_pressure_pa / 1e6:.0f} MPa, "
                f"{self.limit_reason}), {self.duration_s:.0f} s")
        if self.pellet_thickness_m is not None:
            text += (f"; pellet {self.pellet_thickness_m * 1e3:.3f} mm, D "
                     f"{self.relative_density:.3f}, {self.conductivity_s_m * 10:.2f} mS/cm")
        if self.foil_thickness_m is not None:
            text += (f"; foil {self.foil_thickness_m * 1e6:.1f} um, contact "
                     f"{self.contact_fraction:.2f}")
        return text


@dataclass(frozen=True)
class AssemblyPrediction:
    """Predicted outcome of an assembly recipe."""

    assembly_name: str
    press_duration_s: float         # sum of all press cycles (counts included), s
    steps: tuple                    # PressPrediction per press step, in order
    cell: CellResistances           # after the stack press
    interface_asr_ohm_m2: float     # one interface, Ohm m^2
    total_resistance_ohm: float
    passes: bool                    # meets the recipe's acceptance criteria
    verdict: str                    # why it passes or fails, with numbers
    warnings: tuple = ()

    def summary(self) -> str:
        """Return one line in lab units (ohm, ohm cm^2, s) for logs and the CLI."""
        cell = self.cell
        return (f"{self.assembly_name}: total {self.total_resistance_ohm:.1f} ohm (electrolyte "
                f"{cell.r_bulk_ohm + cell.r_gb_ohm:.1f}, interface "
                f"{self.interface_asr_ohm_m2 * 1e4:.2f} ohm cm^2 each), press time "
                f"{self.press_duration_s:.0f} s; {self.verdict}")


def ideal_trace(segments, dt_s: float = DEFAULT_DT_S):
    """Return ``(pressure_pa, dt_s)`` arrays: the profile sampled at mid-steps of <= ``dt_s``."""
    pressures, steps = [], []
    level = 0.0
    for segment in segments:
        if segment.duration_s <= 0.0:
            level = segment.target_pressure_pa if segment.kind != "hold" else level
            continue
        count = max(1, math.ceil(segment.duration_s / dt_s))
        step = segment.duration_s / count
        fraction = (np.arange(count) + 0.5) / count
        end = level if segment.kind == "hold" else segment.target_pressure_pa
        pressures.append(level + (end - level) * fraction)
        steps.append(np.full(count, step))
        level = end
    if not pressures:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(pressures), np.concatenate(steps)


def _temperature_k(recipe) -> float:
    return recipe.temperature_k if recipe.temperature_k is not None else ROOM_TEMPERATURE_K


def _powder_model(library, name):
    powder = library.powders[name]
    return dataclasses.replace(MATERIALS[powder.physics_material],
                               theoretical_density_kg_m3=powder.theoretical_density_kg_m3)


def _metal(library, name):
    return getattr(foil_physics, library.foils[name].physics_material)


def _run(specimen, recipe, dt_s):
    """Step ``specimen`` (anything with ``step(p, dt, T)``) through the recipe's trace."""
    temperature_k = _temperature_k(recipe)
    for pressure_pa, step_s in zip(*ideal_trace(recipe_segments(recipe), dt_s), strict=True):
        specimen.step(float(pressure_pa), float(step_s), temperature_k)
    specimen.step(0.0, 0.0, temperature_k)


def _base(recipe, library, warnings):
    limit_pa, reason = pressure_limit_pa(recipe, library)
    return dict(recipe_name=recipe.name, duration_s=profile_duration_s(recipe_segments(recipe)),
                peak_pressure_pa=recipe.peak_pressure_pa, peak_force_n=recipe.peak_force_n,
                limit_pressure_pa=limit_pa, limit_reason=reason, warnings=tuple(warnings))


def _compact(recipe, library, dt_s):
    compact = PowderCompact(_powder_model(library, recipe.material), recipe.mass_kg,
                            recipe.contact_area_m2)
    _run(compact, recipe, dt_s)
    return compact


def _foil(recipe, library, dt_s):
    foil = AlkaliFoil(_metal(library, recipe.material), recipe.foil_thickness_m,
                      recipe.contact_diameter_m / 2.0)
    _run(foil, recipe, dt_s)
    return foil


def dry_run_press(recipe, library, dt_s: float = DEFAULT_DT_S) -> PressPrediction:
    """Validate a press recipe (RecipeError if refused) and predict its outcome."""
    warnings = validate_press_recipe(recipe, library)
    base = _base(recipe, library, warnings)
    if recipe.material in library.powders:
        compact = _compact(recipe, library, dt_s)
        return PressPrediction(**base, pellet_thickness_m=compact.thickness_m,
                               relative_density=compact.relative_density,
                               conductivity_s_m=compact.conductivity_s_m(_temperature_k(recipe)))
    foil = _foil(recipe, library, dt_s)
    return PressPrediction(**base, foil_thickness_m=foil.thickness_m,
                           contact_fraction=foil.contact_fraction)


def dry_run_assembly(assembly, library, dt_s: float = DEFAULT_DT_S) -> AssemblyPrediction:
    """Validate an assembly (RecipeError if refused) and predict the cell it makes."""
    warnings = list(validate_assembly(assembly, library))
    predictions, duration_s = [], 0.0
    compaction = assembly.steps_of("compaction")[0]
    compact = _compact(compaction.recipe, library, dt_s)
    predictions.append(dry_run_press(compaction.recipe, library, dt_s))
    prepressed = []
    for step in assembly.steps_of("foil_prepress"):
        prediction = dry_run_press(step.recipe, library, dt_s)
        predictions.append(prediction)
        prepressed += [(step.recipe, prediction.foil_thickness_m)] * step.count
    if len(prepressed) != 2:
        raise RecipeError([Problem(f"<assembly {assembly.name}>", "steps", "the dry run models "
                                   f"symmetric cells: it needs 2 pre-pressed foils, got "
                                   f"{len(prepressed)}")])
    stack_step = assembly.steps_of("stack_press")[0]
    stack = stack_step.recipe
    foils = [AlkaliFoil(_metal(library, recipe.material), thickness_m,
                        assembly.electrode_diameter_m / 2.0)
             for recipe, thickness_m in prepressed]
    cell = SymmetricCell(compact, assembly.electrode_area_m2, foils[0], foils[1])
    _run(cell, stack, dt_s)
    predictions.append(PressPrediction(**_base(stack, library, ()),
                                       foil_thickness_m=foils[0].thickness_m,
                                       contact_fraction=foils[0].contact_fraction))
    for step in assembly.steps:
        if step.recipe is not None:
            duration_s += step.count * profile_duration_s(recipe_segments(step.recipe))
    resistances = cell.resistances()
    passes, verdict = _judge(assembly.acceptance, resistances)
    return AssemblyPrediction(assembly.name, duration_s, tuple(predictions), resistances,
                              resistances.asr_int_ohm_m2, resistances.total_ohm, passes, verdict,
                              tuple(warnings))


def _judge(criteria, resistances):
    """Return ``(passes, verdict)`` of predicted resistances against the criteria."""
    asr_cm2 = resistances.asr_int_ohm_m2 * 1e4
    limit_asr_cm2 = criteria.max_interface_asr_ohm_m2 * 1e4
    reasons = []
    if resistances.is_shorted:
        reasons.append("the cell is shorted")
    if not asr_cm2 <= limit_asr_cm2:
        reasons.append(f"interface ASR {asr_cm2:.3g} ohm cm^2 > {limit_asr_cm2:g}")
    if not resistances.total_ohm <= criteria.max_total_resistance_ohm:
        reasons.append(f"total {resistances.total_ohm:.3g} ohm > "
                       f"{criteria.max_total_resistance_ohm:g}")
    if reasons:
        return False, "fails: " + "; ".join(reasons)
    return True, (f"passes: total {resistances.total_ohm:.3g} ohm <= "
                  f"{criteria.max_total_resistance_ohm:g}, interface ASR {asr_cm2:.3g} ohm cm^2 "
                  f"<= {limit_asr_cm2:g}")
