"""Recipe data model, SI units inside (converted once from the lab units of the YAML).

A *press recipe* is one press cycle: ramp to each stage pressure, hold within a tolerance band,
then release. An *assembly recipe* is a whole symmetric cell for the coordinator: compaction,
foil pre-press, placements, stack press, impedance, acceptance criteria.

``marks`` maps the lab-unit key path (``target_pressure_mpa``, ``stages[1].hold_s``) to where it
was written, so validation can name the line; recipes built in code leave it empty.
"""

import math
from dataclasses import dataclass, field

from press_cell.recipes.stations import ComponentKind

# What the arm can place: the names of stations.ComponentKind (PlaceComponent action).
COMPONENT_KINDS = tuple(kind.value for kind in ComponentKind)
PRESS_STEP_KINDS = ("compaction", "foil_prepress", "stack_press")
STEP_KINDS = PRESS_STEP_KINDS + ("place", "impedance")


@dataclass(frozen=True)
class PressStage:
    """Ramp to ``pressure_pa`` at ``ramp_pa_s``, then hold it for ``hold_s``."""

    pressure_pa: float
    ramp_pa_s: float
    hold_s: float


@dataclass(frozen=True)
class PressRecipe:
    """One press cycle on one part (powder in a die, foil on a rod, or a cell stack)."""

    name: str
    material: str                   # library material name (foil or powder)
    press: str                      # library press name
    tooling: str                    # library die or rod name
    contact_diameter_m: float       # die bore or rod face the pressure acts on, m
    stages: tuple                   # PressStage, in order; the last one is the target
    tolerance_frac: float           # hold band half-width as a fraction of the stage pressure
    release_pa_s: float             # controlled unload rate, Pa/s
    max_pressure_pa: float | None = None    # recipe limit, Pa (None: press and tooling only)
    mass_kg: float | None = None            # powder mass, kg (powders)
    foil_thickness_m: float | None = None   # foil thickness before pressing, m (foils)
    temperature_k: float | None = None      # press temperature, K (None: room temperature)
    description: str = ""
    marks: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def target_pressure_pa(self) -> float:
        """Return the pressure of the last stage, Pa."""
        return self.stages[-1].pressure_pa

    @property
    def peak_pressure_pa(self) -> float:
        """Return the highest stage pressure, Pa."""
        return max(stage.pressure_pa for stage in self.stages)

    @property
    def contact_area_m2(self) -> float:
        """Return the area the pressure acts on, m^2."""
        return math.pi * self.contact_diameter_m ** 2 / 4.0

    @property
    def peak_force_n(self) -> float:
        """Return the force at the peak pressure, N (F = p * pi d^2 / 4)."""
        return self.peak_pressure_pa * self.contact_area_m2


@dataclass(frozen=True)
class ImpedanceSettings:
    """An EIS sweep."""

    freq_min_hz: float
    freq_max_hz: float
    points_per_decade: int
    amplitude_v: float


@dataclass(frozen=True)
class AcceptanceCriteria:
    """Pass/fail limits for the assembled cell, per its geometry."""

    max_interface_asr_ohm_m2: float     # area-specific resistance of ONE interface, ohm m^2
    max_total_resistance_ohm: float     # whole-cell resistance, ohm


@dataclass(frozen=True)
class AssemblyStep:
    """One coordinator step.

    ``kind`` is one of STEP_KINDS. Press steps carry ``recipe`` (and ``recipe_name``); ``place``
    carries ``component``; ``impedance`` carries ``impedance``; ``count`` repeats the step
    (two anodes for a symmetric cell).
    """

    kind: str
    recipe_name: str = ""
    recipe: PressRecipe | None = None
    component: str = ""
    impedance: ImpedanceSettings | None = None
    count: int = 1


@dataclass(frozen=True)
class AssemblyRecipe:
    """A whole cell: ordered steps, cell geometry and acceptance criteria."""

    name: str
    description: str
    electrode_diameter_m: float
    steps: tuple                    # AssemblyStep, in execution order
    acceptance: AcceptanceCriteria
    marks: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    @property
    def electrode_area_m2(self) -> float:
        """Return the electrode area, m^2."""
        return math.pi * self.electrode_diameter_m ** 2 / 4.0

    def steps_of(self, kind: str) -> list:
        """Return the steps of ``kind`` in order."""
        return [step for step in self.steps if step.kind == kind]


@dataclass(frozen=True)
class RecipeBook:
    """Every named recipe of a file, with the warnings validation returned."""

    press: dict                     # name -> PressRecipe
    assembly: dict                  # name -> AssemblyRecipe
    warnings: tuple = ()            # Problem, one per science or margin warning
