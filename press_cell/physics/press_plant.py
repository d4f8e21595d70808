"""The press as a plant: ram + frame + load cell + optional specimen, stepped in time.

Force from the oil column (tangent-stiffness integration, stable for soft powders and stiff
metal alike)::

    K_eff = 1 / (1 / K_frame + c_spec / A)        c_spec = -dh/dp of the specimen
    dF    = K_eff * v_oil * dt                       v_oil from HydraulicRam (pump/bleed/leak/vent)
    dF   -= K_eff_unload * (thinning not explained by c_spec)   # creep, yield crossing

The relief valve caps F at the relief setting. When the force reaches zero while bleeding,
the platen lifts off and a gap opens; pumping closes it before force builds again.

A specimen is anything with the ``PressSpecimen`` shape: ``PowderCompact`` (powder in a die),
``AlkaliFoil`` (foil on a rod face) and ``SymmetricCell`` (a stack) all are. Without one the
press squeezes a rigid anvil.

Two command sources drive the valve: the external demand (``set_valve_demand``, VALVE mode)
or the press's own ``InnerForceLoop`` (``set_force_setpoint``, SUPERVISORY mode). ``vent``
opens the dump valve until the next command.

Public API::

    PressSpecimen                    # Protocol: loaded_area_m2, thickness_m,
                                     #   compliance_m_per_pa(pressure_pa, loading), step(...)
    PlantMode                        # IDLE, VALVE, SUPERVISORY, VENT
    PressPlant(hydraulics=HydraulicParams(), load_cell=LoadCellParams(), seed=0,
               specimen=None, temperature_k=298.15, max_substep_s=2e-3, initial_gap_m=0.0)
        .advance(dt_s), .set_valve_demand(u), .set_force_setpoint(force_n, ramp_n_s),
        .vent(), .hold(), .load_specimen(specimen, initial_gap_m=0.0), .sensor_force_n(),
        .tare(samples), .mode (PlantMode), .temperature_k (settable), .relief_force_n
        true state: .true_force_n, .ram_position_m, .specimen_thickness_m, .pressure_pa,
                    .valve_state, .relief_open (latched; .clear_relief_flag()), .time_s
"""

import enum
import math
from typing import Protocol

import numpy as np

from press_cell.physics.hydraulics import HydraulicParams, HydraulicRam, InnerForceLoop
from press_cell.physics.load_cell import LoadCell, LoadCellParams

ROOM_TEMPERATURE_K = 298.15


# Largest residual force, as a fraction of the rating, at which parts may be changed [est].
UNLOADED_FRACTION = 1e-4


class PlantError(ValueError):
    """A plant input is out of range or the plant cannot do what was asked."""


class PressSpecimen(Protocol):
    """What the plant needs from whatever sits under the ram."""

    @property
    def loaded_area_m2(self) -> float:
        """Return the area the force acts on, m^2."""

    @property
    def thickness_m(self) -> float:
        """Return the present thickness, m."""

    def compliance_m_per_pa(self, pressure_pa: float, loading: bool) -> float:
        """Return -d(thickness)/d(pressure), m/Pa."""

    def step(self, pressure_pa: float, dt_s: float, temperature_k: float) -> None:
        """Hold ``pressure_pa`` for ``dt_s`` at ``temperature_k``."""


class PlantMode(enum.Enum):
    """Who drives the valve."""

    IDLE = "idle"                   # demand 0, valve closed: the press holds (and leaks)
    VALVE = "valve"                 # external demand in [-1, 1]
    SUPERVISORY = "supervisory"     # the press's own inner loop tracks a setpoint
    VENT = "vent"                   # dump valve open


_SUPERVISORY = PlantMode.SUPERVISORY


class PressPlant:
    """Hydraulic press + load cell + specimen; integrates with a bounded internal sub-step."""

    def __init__(self, hydraulics: HydraulicParams | None = None,
                 load_cell: LoadCellParams | None = None, seed: int = 0,
                 specimen: PressSpecimen | None = None,
                 temperature_k: float = ROOM_TEMPERATURE_K,
                 max_substep_s: float = 2e-3, initial_gap_m: float = 0.0) -> None:
        if not 0.0 < max_substep_s <= 0.02:
            raise PlantError(f"max_substep_s must be in (0, 0.02] s, got {max_substep_s!r}")
        if not temperature_k > 0.0:
            raise PlantError(f"temperature_k must be > 0 K, got {temperature_k!r}")
        self.hydraulics = hydraulics or HydraulicParams()
        self.ram = HydraulicRam(self.hydraulics)
        self.load_cell = LoadCell(load_cell or LoadCellParams(
            full_scale_n=self.hydraulics.rated_force_n), np.random.default_rng(seed))
        self.inner_loop = InnerForceLoop(self.hydraulics)
        self.max_substep_s = float(max_substep_s)
        self.temperature_k = float(temperature_k)
        self.mode = PlantMode.IDLE
        self.setpoint_n = 0.0
        self.ramp_n_s = 0.0
        self.relief_force_n = self.hydraulics.relief_force_n
        self.time_s = 0.0
        self._force_n = 0.0
        self._relief_flag = False
        self.specimen: PressSpecimen | None = None
        self.load_specimen(specimen, initial_gap_m)

    # ---- configuration -------------------------------------------------------------------
    def load_specimen(self, specimen: PressSpecimen | None, initial_gap_m: float = 0.0) -> None:
        """Put ``specimen`` (or nothing) under the ram; the press must be unloaded.

        "Unloaded" is at most ``UNLOADED_FRACTION`` of the rating: a released press keeps a few
        newtons of elastic residue on its part (released means below ~0.1 MPa on the die, about
        13 N on 13 mm), which opening the press to change parts removes.
        """
        if self._force_n > UNLOADED_FRACTION * self.hydraulics.rated_force_n:
            raise PlantError(
                f"cannot change the specimen under load ({self._force_n:.1f} N > "
                f"{UNLOADED_FRACTION * self.hydraulics.rated_force_n:.1f} N); vent first"
            )
        if not initial_gap_m >= 0.0:
            raise PlantError(f"initial_gap_m must be >= 0 m, got {initial_gap_m!r}")
        self.specimen = specimen
        self._force_n = 0.0
        self._gap_m = float(initial_gap_m)      # platen to specimen top, m
        self._initial_gap_m = float(initial_gap_m)
        self._mount_thickness_m = specimen.thickness_m if specimen is not None else 0.0

    # ---- commands ------------------------------------------------------------------------
    def set_valve_demand(self, demand: float) -> None:
        """Drive the valve directly with ``demand`` in [-1, 1] (VALVE mode); closes the vent."""
        self.ram.close_vent()
        self.ram.set_demand(demand)
        self.mode = PlantMode.VALVE

    def set_force_setpoint(self, force_n: float, ramp_n_s: float) -> None:
        """Let the inner loop move to ``force_n`` (N) at ``ramp_n_s`` (N/s); closes the vent."""
        if not (math.isfinite(force_n) and math.isfinite(ramp_n_s) and ramp_n_s > 0.0):
            raise PlantError(
                f"setpoint needs a finite force and a ramp > 0 N/s, got {force_n!r}, {ramp_n_s!r}"
            )
        if self.mode is not PlantMode.SUPERVISORY:
            self.inner_loop.reset(self._force_n)
        self.ram.close_vent()
        self.setpoint_n = min(max(0.0, float(force_n)), self.hydraulics.rated_force_n)
        self.ramp_n_s = float(ramp_n_s)
        self.mode = PlantMode.SUPERVISORY

    def vent(self) -> None:
        """Open the dump valve until the next command."""
        self.ram.open_vent()
        self.mode = PlantMode.VENT

    def hold(self) -> None:
        """Close the valve and stop driving it (IDLE): the press holds and leaks down."""
        self.ram.close_vent()
        self.ram.set_demand(0.0)
        self.mode = PlantMode.IDLE

    # ---- true state ----------------------------------------------------------------------
    @property
    def true_force_n(self) -> float:
        """Return the true ram force, N."""
        return self._force_n

    @property
    def pressure_pa(self) -> float:
        """Return the true pressure on the specimen, Pa (NaN without a specimen)."""
        if self.specimen is None:
            return math.nan
        return self._force_n / self.specimen.loaded_area_m2

    @property
    def specimen_thickness_m(self) -> float:
        """Return the true specimen thickness, m (NaN without a specimen)."""
        return self.specimen.thickness_m if self.specimen is not None else math.nan

    @property
    def ram_position_m(self) -> float:
        """Return the ram travel from home, m (down positive): gap closed + thinning + frame."""
        return (self._contact_travel_m() - self._gap_m
                + self._force_n / self.hydraulics.frame_stiffness_n_m)

    def _contact_travel_m(self) -> float:
        thinning = 0.0
        if self.specimen is not None:
            thinning = self._mount_thickness_m - self.specimen.thickness_m
        return self._initial_gap_m + thinning

    @property
    def valve_state(self) -> float:
        """Return the lagged valve opening in [-1, 1]."""
        return self.ram.valve_state

    @property
    def relief_open(self) -> bool:
        """Return whether the relief valve opened since the flag was last cleared."""
        return self._relief_flag

    def clear_relief_flag(self) -> None:
        """Reset the latched relief flag."""
        self._relief_flag = False

    # ---- sensor --------------------------------------------------------------------------
    def sensor_force_n(self) -> float:
        """Return one load-cell reading of the true force, N."""
        return self.load_cell.measure_n(self._force_n)

    def tare(self, samples: int = 50) -> float:
        """Tare the load cell at the present load; return the offset removed, N."""
        return self.load_cell.tare(self._force_n, samples)

    # ---- integration ---------------------------------------------------------------------
    def advance(self, dt_s: float) -> None:
        """Integrate the plant forward by ``dt_s`` seconds in bounded sub-steps."""
        if not dt_s >= 0.0:
            raise PlantError(f"dt_s must be >= 0 s, got {dt_s!r}")
        n = max(1, math.ceil(dt_s / self.max_substep_s - 1e-9)) if dt_s > 0.0 else 0
        if n == 1:
            self._substep(dt_s)     # dt_s / 1: the usual case, a loop tick within one sub-step
            return
        for _ in range(n):
            self._substep(dt_s / n)

    def _stiffness_n_m(self, loading: bool) -> float:
        k_frame = self.hydraulics.frame_stiffness_n_m
        spec = self.specimen
        if spec is None:
            return k_frame
        area = spec.loaded_area_m2
        return 1.0 / (1.0 / k_frame
                      + spec.compliance_m_per_pa(self._force_n / area, loading) / area)

    def _substep(self, dt: float) -> None:
        force = self._force_n
        ram = self.ram
        if self.mode is _SUPERVISORY:
            loading = self.setpoint_n >= force
            ram.set_demand(self.inner_loop.update(
                self.setpoint_n, self.ramp_n_s, force, dt, self._stiffness_n_m(loading)))
        ram.step_valve(dt)
        travel = ram.oil_speed_m_s(force) * dt
        if travel < 0.0 and force <= 0.0:
            self._open_gap(-travel)
            travel = 0.0
        elif travel > 0.0 and self._gap_m > 0.0:
            closing = min(travel, self._gap_m)
            self._gap_m -= closing
            travel -= closing
        k_frame = self.hydraulics.frame_stiffness_n_m
        spec = self.specimen
        if spec is None:
            new_force = force + k_frame * travel
        else:
            area = spec.loaded_area_m2
            pressure = force / area
            c_load = spec.compliance_m_per_pa(pressure, travel > 0.0) / area
            k_eff = 1.0 / (1.0 / k_frame + c_load)
            new_force = force + k_eff * travel
            if new_force < 0.0:
                self._open_gap(-new_force / k_eff)
                new_force = 0.0
            h_before = spec.thickness_m
            spec.step(new_force / area, dt, self.temperature_k)
            thinning = h_before - spec.thickness_m
            unexplained = thinning - c_load * (new_force - force)
            if unexplained > 0.0:
                c_unload = spec.compliance_m_per_pa(new_force / area, False) / area
                new_force -= unexplained / (1.0 / k_frame + c_unload)
        if not new_force > 0.0:     # max(0.0, new_force), written out
            new_force = 0.0
        if new_force >= self.relief_force_n:
            new_force = self.relief_force_n
            self._relief_flag = True
        self._force_n = new_force
        self.time_s += dt

    def _open_gap(self, distance_m: float) -> None:
        # the ram retracts at most to its home position
        self._gap_m = min(self._gap_m + distance_m, self._contact_travel_m())
