"""The physical cell as a lab knows it from its press records: replay press cycles through physics.

A simulated potentiostat in its own process shares no objects with the simulated press; it
learns the cell the way a lab does, from what the press recorded. ``CellBuildHistory`` takes
each finished press cycle (step name, the recipe or the material/mass/foil/contact figures, and
the measured ``time_s``/``pressure_pa`` trace) and replays it through the physics models:

* ``compaction``: a ``PowderCompact`` pellet of the recipe's powder, mass and die bore;
* ``prepress_*`` (also ``foil_prepress*``): an ``AlkaliFoil`` anode per cycle (the last two
  are kept) of the recipe's metal, foil thickness and rod face;
* ``stack_press``: a ``SymmetricCell`` of the pellet and the two anodes, stepped through the
  stack trace. As in ``press_cell.recipes.dry_run``, a pre-pressed foil keeps its thickness
  but meets the pellet with a fresh interface (contact 0). A further stack press with no new
  part in between presses the same cell again (contact gained is kept).

A compaction or pre-press after a stack press starts a new cell.

Defaults when a step was not seen (documented so a lab can tell a measured cell from a
default one; ``defaults_used`` lists them):

* no compaction: 200 mg of Li6PS5Cl (Na3PS4 for a Na cell) cold-pressed at 370 MPa in a
  13 mm die, the Doux et al. (Adv. Energy Mater. 2020) pellet;
* no pre-press: an unpressed foil of the stack recipe's metal and ``foil_thickness_m``
  (75 um when none is given, the foil the cell-resistance model is calibrated with);
* electrode diameter: the stack cycle's contact diameter, else 12.7 mm.

Live pressure: ``step_live(pressure_pa, dt_s)`` steps a provisional copy of the cell (the
committed cell, or one assembled from the parts so far) so single-frequency monitoring during
a hold sees the contact grow; the next finished cycle replaces the provisional copy with the
exact replay of its trace. The press state does not say which part is in the press, so live
pressure always goes to the stack; a compaction's live pressure is discarded when its trace
arrives.

Traces are replayed in chunks of at most ``max_step_s`` (duration-weighted mean pressure per
chunk), so a 1 kHz, 300 s record costs ~600 physics steps; a pellet also sees the trace's
peak pressure (compaction follows the maximum).

Public API::

    step_kind(step_name) -> "compaction" | "prepress" | "stack_press" | None
    CellBuildHistory(library=None, r_ext_ohm=0.5, max_step_s=0.5)
        .add_cycle(step_name, time_s, pressure_pa, recipe=None, *, material=None,
                   mass_kg=None, foil_thickness_m=None, contact_diameter_m=None,
                   contact_area_m2=None, temperature_k=None) -> str   # what was done
        .step_live(stack_pressure_pa, dt_s), .resistances() -> CellResistances,
        .defaults_used, .stack_pressure_pa, .summary()
"""

import copy
import dataclasses
import math
import threading

import numpy as np

from press_cell.physics import foil as foil_physics
from press_cell.physics.cell_resistance import (
    R_EXT_OHM,
    CellError,
    CellResistances,
    SymmetricCell,
)
from press_cell.physics.compaction import (
    MATERIALS,
    CompactionError,
    PowderCompact,
    powder_material,
)
from press_cell.physics.foil import AlkaliFoil, FoilError, alkali_metal

ROOM_TEMPERATURE_K = 298.15
MPA = 1e6
# Default parts (see the module docstring): Doux et al., Adv. Energy Mater. 2020
DEFAULT_POWDER_FOR_METAL = {"Li": "Li6PS5Cl", "Na": "Na3PS4"}   # [est] the usual pairings
DEFAULT_PELLET_MASS_KG = 200e-6
DEFAULT_DIE_DIAMETER_M = 13e-3
DEFAULT_COMPACTION_PA = 370e6
DEFAULT_FOIL_THICKNESS_M = 75e-6    # foil of the cell_resistance calibration [est]
DEFAULT_ELECTRODE_DIAMETER_M = 12.7e-3
DEFAULT_MAX_STEP_S = 0.5            # replay chunk; foil creep changes little in 0.5 s [est]


class CellHistoryError(ValueError):
    """A press cycle cannot be replayed; the message says what was wrong and what is allowed."""


def step_kind(step_name: str) -> str | None:
    """Return the kind of press step named ``step_name``, or None for a step it does not model."""
    name = step_name.strip().lower()
    if name.startswith("compaction"):
        return "compaction"
    if name.startswith(("prepress", "foil_prepress")):
        return "prepress"
    if name.startswith("stack_press"):
        return "stack_press"
    return None


def trace_chunks(time_s, pressure_pa, max_step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(pressure_pa, dt_s)`` per chunk of <= ``max_step_s`` of a sampled trace.

    Each sample interval carries its trapezoid mean pressure; chunks carry the duration-weighted
    mean of their intervals. Raises ``CellHistoryError`` for unequal lengths, non-finite values
    or time going backwards.
    """
    t = np.asarray(time_s, dtype=float)
    p = np.asarray(pressure_pa, dtype=float)
    if t.ndim != 1 or t.shape != p.shape or t.size == 0:
        raise CellHistoryError(f"time_s and pressure_pa must be 1-D of equal non-zero length, "
                               f"got shapes {t.shape} and {p.shape}")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise CellHistoryError("time_s and pressure_pa must be finite (s, Pa)")
    dt = np.diff(t)
    if (dt < 0.0).any():
        raise CellHistoryError("time_s must be non-decreasing")
    if dt.size == 0:
        return np.zeros(0), np.zeros(0)
    mean_p = 0.5 * (p[:-1] + p[1:])
    chunk = np.floor((t[:-1] - t[0]) / max_step_s).astype(np.int64)
    _, starts = np.unique(chunk, return_index=True)
    duration = np.add.reduceat(dt, starts)
    impulse = np.add.reduceat(mean_p * dt, starts)
    safe = np.where(duration > 0.0, duration, 1.0)
    return np.where(duration > 0.0, impulse / safe, mean_p[starts]), duration


class CellBuildHistory:
    """Replay press cycles into the pellet, anodes and stacked cell; report its resistances.

    Thread-safe: cycles and live pressure may arrive on one thread while a potentiostat
    simulator reads ``resistances`` on another.
    """

    def __init__(self, library=None, r_ext_ohm: float = R_EXT_OHM,
                 max_step_s: float = DEFAULT_MAX_STEP_S) -> None:
        if not (math.isfinite(max_step_s) and max_step_s > 0.0):
            raise CellHistoryError(f"max_step_s must be finite and > 0 s, got {max_step_s!r}")
        if not (math.isfinite(r_ext_ohm) and r_ext_ohm >= 0.0):
            raise CellHistoryError(f"r_ext_ohm must be finite and >= 0 ohm, got {r_ext_ohm!r}")
        self._library = library
        self.r_ext_ohm = float(r_ext_ohm)
        self.max_step_s = float(max_step_s)
        self._lock = threading.RLock()
        self._pellet: PowderCompact | None = None
        self._anodes: list[AlkaliFoil] = []
        self._cell: SymmetricCell | None = None
        self._provisional: SymmetricCell | None = None
        self._parts_changed = False     # a part arrived after the committed cell was built
        self._electrode_diameter_m = DEFAULT_ELECTRODE_DIAMETER_M
        self._metal_name = "Li"
        self._foil_thickness_m = DEFAULT_FOIL_THICKNESS_M
        self.defaults_used: tuple = ()
        self.cycles_replayed = 0

    # ---------------------------------------------------------------- material lookup
    def _powder(self, name: str):
        library = self._library
        if library is not None and name in library.powders:
            entry = library.powders[name]
            return dataclasses.replace(MATERIALS[entry.physics_material],
                                       theoretical_density_kg_m3=entry.theoretical_density_kg_m3)
        try:
            return powder_material(name)
        except CompactionError as exc:
            raise CellHistoryError(f"compaction of {name!r}: {exc}") from None

    def _metal(self, name: str):
        library = self._library
        if library is not None and name in library.foils:
            return getattr(foil_physics, library.foils[name].physics_material)
        try:
            return alkali_metal(name)
        except FoilError as exc:
            raise CellHistoryError(f"foil of {name!r}: {exc}") from None

    # ---------------------------------------------------------------- cycles
    def add_cycle(self, step_name: str, time_s, pressure_pa, recipe=None, *,
                  material: str | None = None, mass_kg: float | None = None,
                  foil_thickness_m: float | None = None,
                  contact_diameter_m: float | None = None,
                  contact_area_m2: float | None = None,
                  temperature_k: float | None = None) -> str:
        """Replay one finished press cycle; return a one-line description of what it made.

        ``time_s`` (s) and ``pressure_pa`` (Pa, on the contact face) are the cycle's samples.
        ``recipe`` (a ``PressRecipe``) supplies material, mass_kg, foil_thickness_m,
        contact_diameter_m and temperature_k; explicit keyword values win. Raises
        ``CellHistoryError`` for a step it does not model or a part it cannot build.
        """
        kind = step_kind(step_name)
        if kind is None:
            raise CellHistoryError(f"step {step_name!r} is not modelled; known steps: "
                                   "compaction, prepress_* (or foil_prepress*), stack_press")
        explicit = {"material": material, "mass_kg": mass_kg,
                    "foil_thickness_m": foil_thickness_m,
                    "contact_diameter_m": contact_diameter_m, "temperature_k": temperature_k}
        fields = {name: value if value is not None else getattr(recipe, name, None)
                  for name, value in explicit.items()}
        if fields["contact_diameter_m"] is None and contact_area_m2 is not None \
                and contact_area_m2 > 0.0:
            fields["contact_diameter_m"] = math.sqrt(4.0 * contact_area_m2 / math.pi)
        chunks = trace_chunks(time_s, pressure_pa, self.max_step_s)
        peak_pa = float(np.max(pressure_pa))
        final_pa = float(np.asarray(pressure_pa, dtype=float)[-1])
        temperature = fields["temperature_k"] or ROOM_TEMPERATURE_K
        with self._lock:
            self._provisional = None
            try:
                if kind == "compaction":
                    text = self._compaction(fields, chunks, peak_pa, final_pa, temperature)
                elif kind == "prepress":
                    text = self._prepress(fields, chunks, final_pa, temperature)
                else:
                    text = self._stack_press(fields, chunks, final_pa, temperature)
            except (CellError, CompactionError, FoilError) as exc:
                raise CellHistoryError(f"{step_name}: {exc}") from None
            self.cycles_replayed += 1
            return f"{step_name}: {text}"

    def _start_new_cell_if_done(self) -> None:
        """Drop the parts of a finished cell: the next compaction/pre-press is a new cell."""
        if self._cell is not None:
            self._cell = None
            self._pellet = None
            self._anodes = []
            self.defaults_used = ()

    def _compaction(self, fields, chunks, peak_pa, final_pa, temperature_k) -> str:
        self._start_new_cell_if_done()
        name = fields["material"] or DEFAULT_POWDER_FOR_METAL.get(self._metal_name, "Li6PS5Cl")
        mass_kg = fields["mass_kg"] or DEFAULT_PELLET_MASS_KG
        diameter_m = fields["contact_diameter_m"] or DEFAULT_DIE_DIAMETER_M
        pellet = PowderCompact(self._powder(name), mass_kg, math.pi * diameter_m ** 2 / 4.0)
        for p, dt in zip(*chunks, strict=True):
            pellet.step(float(p), float(dt), temperature_k)
        pellet.step(peak_pa, 0.0, temperature_k)
        pellet.step(final_pa, 0.0, temperature_k)
        self._pellet = pellet
        return (f"{name} pellet {mass_kg * 1e6:.0f} mg, peak {peak_pa / MPA:.0f} MPa: "
                f"{pellet.thickness_m * 1e3:.3f} mm, relative density "
                f"{pellet.relative_density:.3f}")

    def _prepress(self, fields, chunks, final_pa, temperature_k) -> str:
        self._start_new_cell_if_done()
        self._metal_name = fields["material"] or self._metal_name
        thickness_m = fields["foil_thickness_m"] or DEFAULT_FOIL_THICKNESS_M
        diameter_m = fields["contact_diameter_m"] or DEFAULT_ELECTRODE_DIAMETER_M
        foil = AlkaliFoil(self._metal(self._metal_name), thickness_m, diameter_m / 2.0)
        for p, dt in zip(*chunks, strict=True):
            foil.step(float(p), float(dt), temperature_k)
        foil.step(final_pa, 0.0, temperature_k)
        self._anodes = (self._anodes + [foil])[-2:]
        self._parts_changed = True
        return (f"{self._metal_name} foil {thickness_m * 1e6:.0f} -> "
                f"{foil.thickness_m * 1e6:.1f} um (anode {len(self._anodes)} of 2)")

    def _stack_press(self, fields, chunks, final_pa, temperature_k) -> str:
        if fields["material"]:
            self._metal_name = fields["material"]
        if fields["foil_thickness_m"]:
            self._foil_thickness_m = fields["foil_thickness_m"]
        if fields["contact_diameter_m"]:
            self._electrode_diameter_m = fields["contact_diameter_m"]
        if self._cell is None or self._parts_changed:
            self._cell, self.defaults_used = self._assemble()
            self._parts_changed = False
        cell = self._cell
        for p, dt in zip(*chunks, strict=True):
            cell.step(float(p), float(dt), temperature_k)
        cell.step(final_pa, 0.0, temperature_k)
        r = cell.resistances()
        return (f"stack of {self._metal_name}, total {r.total_ohm:.1f} ohm, interface "
                f"{r.asr_int_ohm_m2 * 1e4:.2f} ohm cm^2 each"
                + (" (SHORTED)" if r.is_shorted else ""))

    def _assemble(self) -> tuple[SymmetricCell, tuple]:
        """Return a fresh cell from the parts seen so far and the defaults it needed."""
        defaults = []
        metal = self._metal(self._metal_name)
        pellet = self._pellet
        if pellet is None:
            powder = DEFAULT_POWDER_FOR_METAL.get(metal.name, "Li6PS5Cl")
            pellet = PowderCompact(self._powder(powder), DEFAULT_PELLET_MASS_KG,
                                   math.pi * DEFAULT_DIE_DIAMETER_M ** 2 / 4.0)
            pellet.apply_pressure(DEFAULT_COMPACTION_PA)
            pellet.apply_pressure(0.0)
            defaults.append(f"pellet: {powder} {DEFAULT_PELLET_MASS_KG * 1e6:.0f} mg at "
                            f"{DEFAULT_COMPACTION_PA / MPA:.0f} MPa")
        radius_m = self._electrode_diameter_m / 2.0
        foils = [AlkaliFoil(anode.metal, anode.thickness_m, radius_m) for anode in self._anodes]
        while len(foils) < 2:
            foils.append(AlkaliFoil(metal, self._foil_thickness_m, radius_m))
            defaults.append(f"anode: unpressed {metal.name} foil "
                            f"{self._foil_thickness_m * 1e6:.0f} um")
        cell = SymmetricCell(copy.deepcopy(pellet), math.pi * radius_m ** 2, foils[0], foils[1],
                             r_ext_ohm=self.r_ext_ohm)
        return cell, tuple(defaults)

    # ---------------------------------------------------------------- live state
    def step_live(self, stack_pressure_pa: float, dt_s: float,
                  temperature_k: float = ROOM_TEMPERATURE_K) -> None:
        """Hold ``stack_pressure_pa`` (Pa) for ``dt_s`` (s) on the provisional cell."""
        if not (math.isfinite(stack_pressure_pa) and math.isfinite(dt_s) and dt_s >= 0.0):
            raise CellHistoryError(f"need a finite pressure (Pa) and dt_s >= 0, got "
                                   f"{stack_pressure_pa!r}, {dt_s!r}")
        with self._lock:
            if self._provisional is None:
                if self._cell is not None and not self._parts_changed:
                    self._provisional = copy.deepcopy(self._cell)
                else:
                    self._provisional, self.defaults_used = self._assemble()
            self._provisional.step(stack_pressure_pa, dt_s, temperature_k)

    @property
    def stack_pressure_pa(self) -> float:
        """Return the stack pressure the cell last saw, Pa (0 before any stack press)."""
        with self._lock:
            cell = self._provisional or self._cell
            return cell.pressure_pa if cell is not None else 0.0

    def resistances(self) -> CellResistances:
        """Return the present cell's resistances (provisional, committed or as assembled)."""
        with self._lock:
            cell = self._provisional or self._cell
            if cell is None or (cell is self._cell and self._parts_changed):
                cell, _ = self._assemble()
            return cell.resistances()

    def summary(self) -> str:
        """Return one line: what the cell is made of and what it measures now (lab units)."""
        with self._lock:
            r = self.resistances()
            parts = [f"{self.cycles_replayed} cycle(s) replayed",
                     f"stack {self.stack_pressure_pa / MPA:.3g} MPa",
                     f"total {r.total_ohm:.1f} ohm",
                     f"interface {r.asr_int_ohm_m2 * 1e4:.2f} ohm cm^2"]
            if self.defaults_used:
                parts.append("defaults: " + "; ".join(self.defaults_used))
            return ", ".join(parts)
