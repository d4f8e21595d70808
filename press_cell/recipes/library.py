"""Material and tooling library: foils, powders, dies, rods and presses (config/library.yaml).

A lab edits the YAML; ``load_library`` converts its lab units to SI once and refuses the file
with a ``LibraryError`` whose problems name file, line, key, the fault and the allowed values.
"""

import math
from dataclasses import dataclass

from press_cell.config_files import config_file
from press_cell.physics.compaction import MATERIALS as PHYSICS_POWDERS
from press_cell.recipes.errors import LibraryError
from press_cell.recipes.yaml_source import ProblemLog, compose_file

HARDWARE_KINDS = ("sim", "serial_ascii", "serial_modbus")
PRESS_MODES = ("valve", "supervisory")          # values of hardware.press_driver.PressMode
POWDER_FAMILIES = ("sulfide", "oxide")
PHYSICS_FOILS = ("LITHIUM", "SODIUM")           # material constants in physics/foil.py
ION_KINDS = ("Li", "Na")

_G_CM3_TO_KG_M3 = 1000.0
_MM_TO_M = 1e-3
_KN_TO_N = 1e3
_C_TO_K = 273.15


@dataclass(frozen=True)
class FoilMaterial:
    """An alkali-metal foil."""

    name: str
    physics_material: str           # constant name in press_cell/physics/foil.py
    density_kg_m3: float
    melting_point_k: float


@dataclass(frozen=True)
class PowderMaterial:
    """A solid-electrolyte powder."""

    name: str
    physics_material: str           # key of MATERIALS in press_cell/physics/compaction.py
    family: str                     # "sulfide" | "oxide"
    conducts: str                   # mobile ion, "Li" | "Na"
    theoretical_density_kg_m3: float
    density_source: str


@dataclass(frozen=True)
class Die:
    """A pellet die; force is applied over the bore."""

    name: str
    bore_diameter_m: float
    rated_force_n: float

    @property
    def area_m2(self) -> float:
        """Return the bore area, m^2."""
        return math.pi * self.bore_diameter_m ** 2 / 4.0

    @property
    def rated_pressure_pa(self) -> float:
        """Return the bore pressure at the rated force, Pa."""
        return self.rated_force_n / self.area_m2


@dataclass(frozen=True)
class Rod:
    """A steel rod: current collector and plunger; the foil is pressed on its face."""

    name: str
    diameter_m: float
    rated_force_n: float

    @property
    def area_m2(self) -> float:
        """Return the face area, m^2."""
        return math.pi * self.diameter_m ** 2 / 4.0


@dataclass(frozen=True)
class Press:
    """A lab press."""

    name: str
    rated_force_n: float            # capacity, N
    max_force_rate_n_s: float       # fastest force ramp, N/s
    hardware: str                   # "sim" | "serial_ascii" | "serial_modbus"
    modes: tuple                    # subset of PRESS_MODES
    heated_platens: bool


@dataclass(frozen=True)
class Library:
    """Every named material, die, rod and press a recipe may refer to."""

    foils: dict
    powders: dict
    dies: dict
    rods: dict
    presses: dict

    def material_names(self) -> list:
        """Return every material name, foils first."""
        return list(self.foils) + list(self.powders)

    def tooling_names(self) -> list:
        """Return every die and rod name."""
        return list(self.dies) + list(self.rods)

    def tooling(self, name: str):
        """Return the Die or Rod called ``name``, or None."""
        return self.dies.get(name) or self.rods.get(name)

    def die_by_diameter(self, diameter_m: float):
        """Return the die whose bore is within 0.01 mm of ``diameter_m``, or None."""
        for die in self.dies.values():
            if abs(die.bore_diameter_m - diameter_m) <= 1e-5:
                return die
        return None


def _ranged(view, key, what, low, high, unit):
    """Read a number and check it lies in [low, high]; return it or None."""
    value = view.number(key, f"{what}, {low:g}-{high:g} {unit}")
    if value is not None and not low <= value <= high:
        view.problem(key, f"{value:g} {unit} is outside the allowed {low:g}-{high:g} {unit}")
        return None
    return value


def _choice(view, key, what, allowed):
    value = view.string(key, f"{what}, one of {', '.join(allowed)}")
    if value is not None and value not in allowed:
        view.problem(key, f"'{value}' is not allowed; use one of {', '.join(allowed)}")
        return None
    return value


def _source(view, key):
    view.string(key, "a citation (authors, year, journal) or '[est]'")


def _read_foil(name, view):
    view.check_keys(("physics_material", "density_g_cm3", "density_source", "melting_point_c",
                     "melting_point_source"))
    physics = _choice(view, "physics_material", "the physics/foil.py material", PHYSICS_FOILS)
    density = _ranged(view, "density_g_cm3", "density", 0.1, 25.0, "g/cm^3")
    melting = _ranged(view, "melting_point_c", "melting point", -50.0, 2000.0, "degC")
    _source(view, "density_source")
    _source(view, "melting_point_source")
    if None in (physics, density, melting):
        return None
    return FoilMaterial(name, physics, density * _G_CM3_TO_KG_M3, melting + _C_TO_K)


def _read_powder(name, view):
    view.check_keys(("physics_material", "family", "conducts", "theoretical_density_g_cm3",
                     "density_source"))
    physics = _choice(view, "physics_material", "the physics/compaction.py material",
                      tuple(PHYSICS_POWDERS))
    family = _choice(view, "family", "the electrolyte family", POWDER_FAMILIES)
    conducts = _choice(view, "conducts", "the mobile ion", ION_KINDS)
    density = _ranged(view, "theoretical_density_g_cm3", "theoretical density", 0.5, 25.0,
                      "g/cm^3")
    source = view.string("density_source", "a citation (authors, year, journal) or '[est]'")
    if None in (physics, family, conducts, density, source):
        return None
    return PowderMaterial(name, physics, family, conducts, density * _G_CM3_TO_KG_M3, source)


def _read_die(name, view):
    view.check_keys(("bore_diameter_mm", "rated_force_kn", "rating_source"))
    bore = _ranged(view, "bore_diameter_mm", "bore diameter", 1.0, 100.0, "mm")
    force = _ranged(view, "rated_force_kn", "rated force", 0.1, 5000.0, "kN")
    _source(view, "rating_source")
    if None in (bore, force):
        return None
    return Die(name, bore * _MM_TO_M, force * _KN_TO_N)


def _read_rod(name, view):
    view.check_keys(("diameter_mm", "rated_force_kn", "rating_source"))
    diameter = _ranged(view, "diameter_mm", "rod diameter", 1.0, 100.0, "mm")
    force = _ranged(view, "rated_force_kn", "rated force", 0.1, 5000.0, "kN")
    _source(view, "rating_source")
    if None in (diameter, force):
        return None
    return Rod(name, diameter * _MM_TO_M, force * _KN_TO_N)


def _read_press(name, view):
    view.check_keys(("rated_force_kn", "max_force_rate_kn_s", "rate_source", "hardware", "modes",
                     "heated_platens"))
    force = _ranged(view, "rated_force_kn", "rated force", 0.1, 5000.0, "kN")
    rate = _ranged(view, "max_force_rate_kn_s", "force ramp limit", 0.01, 1000.0, "kN/s")
    _source(view, "rate_source")
    hardware = _choice(view, "hardware", "the press interface", HARDWARE_KINDS)
    heated = view.boolean("heated_platens", "whether the platens heat (default false)", False)
    modes = []
    entries = view.sequence("modes", f"a list of control modes from {', '.join(PRESS_MODES)}")
    for index, node in entries or []:
        mode = view.element_string("modes", index, node, "a control mode")
        if mode is not None and mode not in PRESS_MODES:
            view.log.add(view.mark_of("modes"), f"{view.key_path('modes')}[{index}]",
                         f"'{mode}' is not a control mode; use {', '.join(PRESS_MODES)}")
        elif mode is not None:
            modes.append(mode)
    if entries is not None and not entries:
        view.problem("modes", f"the list is empty; give at least one of {', '.join(PRESS_MODES)}")
    if None in (force, rate, hardware) or not modes:
        return None
    return Press(name, force * _KN_TO_N, rate * _KN_TO_N, hardware, tuple(modes), heated)


def load_library(path=None) -> Library:
    """Load and validate the library YAML at ``path``; raise LibraryError listing every fault.

    ``path`` defaults to the shipped ``library.yaml`` (``press_cell.config_files``).
    """
    if path is None:
        path = config_file("library.yaml")
    log = ProblemLog()
    root, _ = compose_file(path, log)
    sections = {"foils": {}, "powders": {}, "dies": {}, "rods": {}, "presses": {}}
    if root is not None:
        root.check_keys(("materials", "dies", "rods", "presses"))
        materials = root.mapping("materials", "a 'materials' section with foils and powders")
        readers = []
        if materials is not None:
            materials.check_keys(("foils", "powders"))
            readers += [("foils", materials, _read_foil), ("powders", materials, _read_powder)]
        readers += [("dies", root, _read_die), ("rods", root, _read_rod),
                    ("presses", root, _read_press)]
        for section, parent, reader in readers:
            for name, view in parent.items(section, f"a '{section}' section of named entries"):
                item = reader(name, view)
                if item is not None:
                    sections[section][name] = item
        _check_unique_names(root, sections, log)
    log.raise_if_any(LibraryError)
    return Library(**sections)


def _check_unique_names(root, sections, log):
    """Refuse a name used by two kinds (a recipe names its die, rod or material by name)."""
    seen = {}
    for section in ("foils", "powders", "dies", "rods"):
        for name in sections[section]:
            if name in seen:
                log.add(root.mark, f"{section}.{name}",
                        f"name already used in '{seen[name]}'; material, die and rod names "
                        "must be unique across the library")
            seen[name] = section
