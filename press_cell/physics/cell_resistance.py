"""Symmetric-cell resistance: ext + electrolyte (bulk + grain boundary) + two interfaces.

R_cell = R_ext + L / (sigma A_SE) + 2 ASR_int / A_el      (SCIENCE.md "Interface and cell")

The pellet resistance L/(sigma A_SE) comes from ``PowderCompact`` (its present thickness and
percolation conductivity) and is split into bulk and grain-boundary parts by the material's
``grain_boundary_fraction`` [est]. Each interface follows its foil's contact fraction f::

    ASR_int(f) = ASR_0 / f  +  (pi a / (2 sigma_SE f)) (1 - sqrt f)^1.5

the first term the intrinsic (charge-transfer) resistance of the true contact area, the
second the Holm constriction 1/(2 sigma a) of N = f / (pi a^2) spots of radius a per unit
area, with the spot-crowding factor (1 - sqrt f)^1.5 that removes it as the spots merge
[est]. ASR_0 and a are calibrated to the Doux et al. (Adv. Energy Mater. 2020) first-loading
data of Li | Li6PS5Cl (1 mm, cold-pressed at 370 MPa) | Li with 12.7 mm electrodes, each
pressure held 60 s: 5 -> 110, 10 -> 50, 15 -> 40, 20 -> 35, 25 MPa -> 32 Ohm, > 500 Ohm at
1 MPa (test/test_physics_cell_resistance.py checks it). The fit assumes 75 um Li foils
[est] with the ``AlkaliFoil`` defaults; it gives 594, 108, 54, 39, 34, 32 Ohm. Both terms
scale with temperature like the electrolyte conductivity (Arrhenius).

Short-circuit guard: Li (any alkali foil) pressed at or above its ``short_pressure_pa``
(Li: 75 MPa, Doux 2020) against a porous sulfide pellet (relative density below
``dense_limit``, 0.95 [est]) creeps through the pores and shorts the cell; ``is_shorted``
latches and the cell then reads R_ext + ``r_short_ohm``.

``CellResistances`` is the stable contract for the impedance engineer (EIS spectra are built
from it plus capacitances of their choosing): do not rename its fields.

Public API::

    CellResistances                  # frozen dataclass, fields below
    SymmetricCell(electrolyte, electrode_area_m2, foil_a, foil_b, r_ext_ohm=0.5,
                  intrinsic_asr_ohm_m2=..., contact_spot_radius_m=..., dense_limit=0.95,
                  r_short_ohm=0.05)
        .step(stack_pressure_pa, dt_s, temperature_k=298.15), .resistances() -> CellResistances
        .is_shorted, .pressure_pa, .thickness_m, .loaded_area_m2, .compliance_m_per_pa(...)
    short_circuit_risk(foil_metal, electrolyte, stack_pressure_pa, dense_limit=0.95) -> bool
"""

import math
from dataclasses import dataclass

from press_cell.physics.compaction import PowderCompact
from press_cell.physics.foil import AlkaliFoil, AlkaliMetal

ROOM_TEMPERATURE_K = 298.15

# Calibrated to Doux et al., Adv. Energy Mater. 2020 (first loading, see module docstring).
INTRINSIC_ASR_OHM_M2 = 0.82e-4      # 0.82 Ohm cm^2 at full contact [est, fit]
CONTACT_SPOT_RADIUS_M = 0.61e-3     # radius of the contact patches [est, fit]
R_EXT_OHM = 0.5                     # leads, current collectors [est]
DENSE_LIMIT = 0.95                  # above this relative density Li cannot creep through [est]
R_SHORT_OHM = 0.05                  # a Li dendrite short [est]


class CellError(ValueError):
    """A cell input is out of range."""


@dataclass(frozen=True)
class CellResistances:
    """Resistances of a symmetric cell at one instant (all in Ohm unless named otherwise).

    ``total_ohm = r_ext_ohm + r_bulk_ohm + r_gb_ohm + 2 * r_int_each_ohm`` when not shorted;
    when shorted, ``total_ohm = r_ext_ohm + r_short_ohm`` and the other parts keep the values
    they would have without the short (for diagnosis).
    """

    r_ext_ohm: float            # leads and current collectors, Ohm
    r_bulk_ohm: float           # electrolyte grain interiors, Ohm
    r_gb_ohm: float             # electrolyte grain boundaries, Ohm
    r_int_each_ohm: float       # one metal|electrolyte interface (mean of the two), Ohm
    asr_int_ohm_m2: float       # area-specific resistance of one interface, Ohm m^2
    total_ohm: float            # what a DC / low-frequency measurement sees, Ohm
    contact_fraction: float     # mean contact fraction of the two interfaces, 0..1
    is_shorted: bool = False    # a metal short bridges the electrolyte
    r_short_ohm: float = math.inf   # resistance of the short, Ohm (inf when not shorted)
    electrode_area_m2: float = math.nan     # electrode (interface) area, m^2
    electrolyte_thickness_m: float = math.nan   # pellet thickness, m


def short_circuit_risk(metal: AlkaliMetal, electrolyte: PowderCompact,
                       stack_pressure_pa: float, dense_limit: float = DENSE_LIMIT) -> bool:
    """Return whether pressing ``metal`` at ``stack_pressure_pa`` shorts through the pellet."""
    return (electrolyte.material.is_sulfide
            and electrolyte.relative_density < dense_limit
            and stack_pressure_pa >= metal.short_pressure_pa)


class SymmetricCell:
    """Metal | electrolyte pellet | metal, pressed by the stack pressure on the electrodes."""

    def __init__(self, electrolyte: PowderCompact, electrode_area_m2: float,
                 foil_a: AlkaliFoil, foil_b: AlkaliFoil, r_ext_ohm: float = R_EXT_OHM,
                 intrinsic_asr_ohm_m2: float = INTRINSIC_ASR_OHM_M2,
                 contact_spot_radius_m: float = CONTACT_SPOT_RADIUS_M,
                 dense_limit: float = DENSE_LIMIT, r_short_ohm: float = R_SHORT_OHM) -> None:
        for name, value in (("electrode_area_m2", electrode_area_m2),
                            ("intrinsic_asr_ohm_m2", intrinsic_asr_ohm_m2),
                            ("contact_spot_radius_m", contact_spot_radius_m),
                            ("r_short_ohm", r_short_ohm)):
            if not (math.isfinite(value) and value > 0.0):
                raise CellError(f"{name} must be a finite value > 0, got {value!r}")
        if not r_ext_ohm >= 0.0:
            raise CellError(f"r_ext_ohm must be >= 0 Ohm, got {r_ext_ohm!r}")
        if electrode_area_m2 > electrolyte.die_area_m2 * (1.0 + 1e-9):
            raise CellError(
                f"electrodes ({electrode_area_m2:.3e} m^2) cannot be larger than the pellet "
                f"({electrolyte.die_area_m2:.3e} m^2)"
            )
        self.electrolyte = electrolyte
        self.electrode_area_m2 = float(electrode_area_m2)
        self.foil_a = foil_a
        self.foil_b = foil_b
        self.r_ext_ohm = float(r_ext_ohm)
        self.intrinsic_asr_ohm_m2 = float(intrinsic_asr_ohm_m2)
        self.contact_spot_radius_m = float(contact_spot_radius_m)
        self.dense_limit = float(dense_limit)
        self.r_short_ohm = float(r_short_ohm)
        self.pressure_pa = 0.0
        self.temperature_k = ROOM_TEMPERATURE_K
        self.is_shorted = False

    # ---- PressSpecimen -------------------------------------------------------------------
    @property
    def loaded_area_m2(self) -> float:
        """Return the electrode area the stack pressure is defined on, m^2."""
        return self.electrode_area_m2

    @property
    def thickness_m(self) -> float:
        """Return the stack thickness (foil + pellet + foil), m."""
        return self.foil_a.thickness_m + self.electrolyte.thickness_m + self.foil_b.thickness_m

    def compliance_m_per_pa(self, pressure_pa: float, loading: bool) -> float:
        """Return -d(stack thickness)/d(stack pressure), m/Pa."""
        ratio = self.electrode_area_m2 / self.electrolyte.die_area_m2
        return (self.foil_a.compliance_m_per_pa(pressure_pa, loading)
                + self.foil_b.compliance_m_per_pa(pressure_pa, loading)
                + ratio * self.electrolyte.compliance_m_per_pa(pressure_pa * ratio, loading))

    def step(self, stack_pressure_pa: float, dt_s: float,
             temperature_k: float = ROOM_TEMPERATURE_K) -> None:
        """Hold ``stack_pressure_pa`` (Pa, on the electrodes) for ``dt_s`` at ``temperature_k``."""
        if math.isnan(stack_pressure_pa) or dt_s < 0.0:
            raise CellError(f"need a pressure in Pa and dt_s >= 0, got "
                            f"{stack_pressure_pa!r}, {dt_s!r}")
        p = max(0.0, float(stack_pressure_pa))
        self.pressure_pa = p
        self.temperature_k = float(temperature_k)
        ratio = self.electrode_area_m2 / self.electrolyte.die_area_m2
        self.electrolyte.step(p * ratio, dt_s, temperature_k)
        self.foil_a.step(p, dt_s, temperature_k)
        self.foil_b.step(p, dt_s, temperature_k)
        if not self.is_shorted and any(
                short_circuit_risk(f.metal, self.electrolyte, p, self.dense_limit)
                for f in (self.foil_a, self.foil_b)):
            self.is_shorted = True

    # ---- resistances ---------------------------------------------------------------------
    def interface_asr_ohm_m2(self, contact_fraction: float, temperature_k: float) -> float:
        """Return the ASR of one interface at ``contact_fraction`` (0..1), Ohm m^2."""
        material = self.electrolyte.material
        sigma = material.conductivity_s_m(self.electrolyte.relative_density, temperature_k)
        sigma_room = material.conductivity_s_m(self.electrolyte.relative_density,
                                               ROOM_TEMPERATURE_K)
        if sigma <= 0.0:
            return math.inf
        f = min(1.0, max(contact_fraction, 1e-6))
        intrinsic = self.intrinsic_asr_ohm_m2 * (sigma_room / sigma) / f
        holm = math.pi * self.contact_spot_radius_m / (2.0 * sigma * f) * (
            1.0 - math.sqrt(f)) ** 1.5
        return intrinsic + holm

    def resistances(self) -> CellResistances:
        """Return the present resistances (see ``CellResistances``)."""
        t_k = self.temperature_k
        pellet = self.electrolyte
        sigma = pellet.conductivity_s_m(t_k)
        r_pellet = math.inf if sigma <= 0.0 else pellet.thickness_m / (sigma * pellet.die_area_m2)
        gb = pellet.material.grain_boundary_fraction
        asr_a = self.interface_asr_ohm_m2(self.foil_a.contact_fraction, t_k)
        asr_b = self.interface_asr_ohm_m2(self.foil_b.contact_fraction, t_k)
        asr = 0.5 * (asr_a + asr_b)
        r_int = asr / self.electrode_area_m2
        total = self.r_ext_ohm + r_pellet + 2.0 * r_int
        if self.is_shorted:
            total = self.r_ext_ohm + self.r_short_ohm
        return CellResistances(
            r_ext_ohm=self.r_ext_ohm,
            r_bulk_ohm=r_pellet * (1.0 - gb),
            r_gb_ohm=r_pellet * gb,
            r_int_each_ohm=r_int,
            asr_int_ohm_m2=asr,
            total_ohm=total,
            contact_fraction=0.5 * (self.foil_a.contact_fraction + self.foil_b.contact_fraction),
            is_shorted=self.is_shorted,
            r_short_ohm=self.r_short_ohm if self.is_shorted else math.inf,
            electrode_area_m2=self.electrode_area_m2,
            electrolyte_thickness_m=pellet.thickness_m,
        )
