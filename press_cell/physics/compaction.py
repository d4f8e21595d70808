"""Cold compaction of solid-electrolyte powder in a die: density, thickness, conductivity.

Model (SCIENCE.md "Powder compaction"):

* Densification is irreversible: everything follows the maximum pressure seen, P_max.
* Above the transition pressure (150 MPa) Heckel: ln(1/(1 - D)) = K P + A.
* Below it Kawakita: C = a b P / (1 + b P), D = D0 / (1 - C), with a = 0.72,
  b = 0.036 MPa^-1 [est fit]. The fill density D0 is not a free number: it is solved so the two
  laws meet at the transition pressure (D is continuous; its slope has a kink). For Li6PS5Cl
  this gives a loose fill of D0 ~ 0.19, i.e. a 200 mg charge starts ~5 mm tall in a 13 mm die.
* Thickness t = m / (rho_th D A_die); elastic spring-back on unload: the thickness at pressure
  p <= P_max is t(P_max) * (1 + s (1 - p / P_max)), s = 1-3 % [est].
* Conductivity: percolation sigma = sigma_dense ((D - D_c)/(1 - D_c))^t, D_c 0.60, t 0.42 [est],
  zero at or below D_c; Arrhenius in temperature with the material's activation energy.

Usage: ``compact.apply_pressure(p)`` sets the present pressure (and raises P_max);
``step(pressure_pa, dt_s, temperature_k)`` does the same (compaction is rate-independent
here) so the press plant can drive a compact like any other specimen.

Public API::

    PowderMaterial(...)                           # frozen dataclass, see fields
    LI6PS5CL, LI3PS4, NA3PS4, LLZO, LPS_GLASS_75_25, MATERIALS (dict by name)
    powder_material(name) -> PowderMaterial      # case-insensitive; UnknownMaterialError
    relative_density_at(material, pressure_pa) -> float        # loaded, fresh compact
    PowderCompact(material, mass_kg, die_area_m2)
        .apply_pressure(pressure_pa), .step(pressure_pa, dt_s, temperature_k)
        .max_pressure_pa, .pressure_pa, .relative_density, .thickness_m,
        .conductivity_s_m(temperature_k=298.15), .loaded_area_m2,
        .compliance_m_per_pa(pressure_pa, loading)
"""

import math
from dataclasses import dataclass

BOLTZMANN_EV_K = 8.617333262e-5     # CODATA 2018
ROOM_TEMPERATURE_K = 298.15
MPA = 1e6


class CompactionError(ValueError):
    """A compaction input is out of its physical range."""


@dataclass(frozen=True)
class PowderMaterial:
    """Compaction and transport parameters of one electrolyte powder (SI units)."""

    name: str
    theoretical_density_kg_m3: float    # crystal / glass density, kg/m^3
    heckel_k_per_pa: float              # Heckel slope K, 1/Pa
    heckel_a: float                     # Heckel intercept A
    kawakita_a: float                   # Kawakita a
    kawakita_b_per_pa: float            # Kawakita b, 1/Pa
    transition_pa: float                # Kawakita below, Heckel above, Pa
    dense_conductivity_s_m: float       # sigma_dense at 298 K, S/m
    percolation_density: float          # D_c
    percolation_exponent: float         # t
    springback: float                   # elastic spring-back fraction on full unload
    activation_energy_ev: float         # ionic conduction activation energy, eV
    grain_boundary_fraction: float      # share of the pellet resistance in grain boundaries
    is_sulfide: bool                    # soft sulfide: Li can creep through its pores
    note: str = ""                      # what a lab should know (e.g. "needs sintering")

    def __post_init__(self) -> None:
        """Check ranges."""
        if not self.theoretical_density_kg_m3 > 0.0:
            raise CompactionError(f"{self.name}: theoretical density must be > 0 kg/m^3")
        if not 0.0 < self.percolation_density < 1.0:
            raise CompactionError(f"{self.name}: percolation density must be in (0, 1)")
        if not 0.0 <= self.springback < 0.1:
            raise CompactionError(f"{self.name}: spring-back must be in [0, 0.1)")
        if not 0.0 <= self.grain_boundary_fraction < 1.0:
            raise CompactionError(f"{self.name}: grain-boundary fraction must be in [0, 1)")

    def _kawakita_c(self, pressure_pa: float) -> float:
        bp = self.kawakita_b_per_pa * pressure_pa
        return self.kawakita_a * bp / (1.0 + bp)

    def _heckel_density(self, pressure_pa: float) -> float:
        return 1.0 - math.exp(-(self.heckel_k_per_pa * pressure_pa + self.heckel_a))

    @property
    def fill_density(self) -> float:
        """Return the loose-fill relative density D0 that makes D(P) continuous."""
        return self._heckel_density(self.transition_pa) * (
            1.0 - self._kawakita_c(self.transition_pa)
        )

    def relative_density_at(self, pressure_pa: float) -> float:
        """Return the relative density under ``pressure_pa`` (Pa) for a first loading."""
        if pressure_pa <= self.transition_pa:
            return self.fill_density / (1.0 - self._kawakita_c(max(pressure_pa, 0.0)))
        return self._heckel_density(pressure_pa)

    def density_slope_per_pa(self, pressure_pa: float) -> float:
        """Return dD/dP on first loading, 1/Pa."""
        if pressure_pa <= self.transition_pa:
            p = max(pressure_pa, 0.0)
            c = self._kawakita_c(p)
            dc = self.kawakita_a * self.kawakita_b_per_pa / (1.0 + self.kawakita_b_per_pa * p) ** 2
            return self.fill_density * dc / (1.0 - c) ** 2
        return self.heckel_k_per_pa * (1.0 - self._heckel_density(pressure_pa))

    def conductivity_s_m(self, relative_density: float, temperature_k: float) -> float:
        """Return the pellet conductivity at ``relative_density`` and ``temperature_k``, S/m."""
        dc = self.percolation_density
        if relative_density <= dc:
            return 0.0
        x = min(1.0, (relative_density - dc) / (1.0 - dc))
        arrhenius = math.exp(
            -self.activation_energy_ev / BOLTZMANN_EV_K
            * (1.0 / temperature_k - 1.0 / ROOM_TEMPERATURE_K)
        )
        return self.dense_conductivity_s_m * x ** self.percolation_exponent * arrhenius


HECKEL_K_PER_PA = 4.8e-3 / MPA          # fit to Sakuda et al., Sci. Rep. 2013 (75Li2S-25P2S5)
KAWAKITA_A = 0.72                       # [est fit] SCIENCE.md
KAWAKITA_B_PER_PA = 0.036 / MPA         # [est fit] SCIENCE.md
TRANSITION_PA = 150.0 * MPA             # Heckel above ~150 MPa (SCIENCE.md)
PERCOLATION_D_C = 0.60                  # [est] SCIENCE.md
PERCOLATION_T = 0.42                    # [est] SCIENCE.md


def _percolation_factor(density: float) -> float:
    return ((density - PERCOLATION_D_C) / (1.0 - PERCOLATION_D_C)) ** PERCOLATION_T


def _heckel_a_for(density: float, pressure_pa: float, k_per_pa: float = HECKEL_K_PER_PA) -> float:
    return math.log(1.0 / (1.0 - density)) - k_per_pa * pressure_pa


# Li6PS5Cl: D(370 MPa) = 0.82 (Doux et al., Adv. Energy Mater. 2020); rho_th 1.86 g/cm^3
# (SCIENCE.md); pellet at 370 MPa 2.0-2.5 mS/cm (Doux 2020): sigma_dense set so that a pellet
# pressed at 370 MPa and held at a 25 MPa stack pressure (D ~0.805 after spring-back) conducts
# 2.5 mS/cm, giving ~30 Ohm bulk for 1 mm on 13 mm (SCIENCE.md anchor).
LI6PS5CL = PowderMaterial(
    name="Li6PS5Cl",
    theoretical_density_kg_m3=1860.0,               # SCIENCE.md
    heckel_k_per_pa=HECKEL_K_PER_PA,                # Sakuda 2013 fit, reused for sulfides
    heckel_a=_heckel_a_for(0.82, 370.0 * MPA),      # Doux 2020: D(370 MPa) = 0.82
    kawakita_a=KAWAKITA_A,
    kawakita_b_per_pa=KAWAKITA_B_PER_PA,
    transition_pa=TRANSITION_PA,
    dense_conductivity_s_m=0.25 / _percolation_factor(0.8045),  # 2.5 mS/cm at D 0.805 (Doux)
    percolation_density=PERCOLATION_D_C,
    percolation_exponent=PERCOLATION_T,
    springback=0.02,                                # [est] 1-3 %
    activation_energy_ev=0.38,                      # [est] argyrodite range 0.3-0.4 eV
    grain_boundary_fraction=0.3,                    # [est] cold-pressed sulfide
    is_sulfide=True,
)

# 75Li2S-25P2S5 glass: K from Sakuda et al., Sci. Rep. 2013; D(360 MPa) ~0.90 [est, read from
# Sakuda 2013]; 3.1e-4 S/cm at 360 MPa (SCIENCE.md / Sakuda 2013); rho_th 1.9 g/cm^3 [est].
LPS_GLASS_75_25 = PowderMaterial(
    name="75Li2S-25P2S5 glass",
    theoretical_density_kg_m3=1900.0,               # [est]
    heckel_k_per_pa=HECKEL_K_PER_PA,                # Sakuda 2013
    heckel_a=_heckel_a_for(0.90, 360.0 * MPA),      # [est] D(360 MPa) ~0.90
    kawakita_a=KAWAKITA_A,
    kawakita_b_per_pa=KAWAKITA_B_PER_PA,
    transition_pa=TRANSITION_PA,
    dense_conductivity_s_m=3.1e-2 / _percolation_factor(0.90),  # 3.1e-4 S/cm at 360 MPa
    percolation_density=PERCOLATION_D_C,
    percolation_exponent=PERCOLATION_T,
    springback=0.02,                                # [est]
    activation_energy_ev=0.37,                      # [est] Li2S-P2S5 glasses ~0.35-0.4 eV
    grain_boundary_fraction=0.1,                    # [est] glass: few grain boundaries
    is_sulfide=True,
)

# beta-Li3PS4: ~0.16 mS/cm (Liu et al., J. Am. Chem. Soc. 2013); rho_th 1.87 g/cm^3 [est];
# compaction assumed like the other sulfides [est]: D(370 MPa) 0.85.
LI3PS4 = PowderMaterial(
    name="Li3PS4",
    theoretical_density_kg_m3=1870.0,               # [est]
    heckel_k_per_pa=HECKEL_K_PER_PA,                # Sakuda 2013, reused [est]
    heckel_a=_heckel_a_for(0.85, 370.0 * MPA),      # [est]
    kawakita_a=KAWAKITA_A,
    kawakita_b_per_pa=KAWAKITA_B_PER_PA,
    transition_pa=TRANSITION_PA,
    dense_conductivity_s_m=1.6e-2 / _percolation_factor(0.85),  # Liu 2013: 1.6e-4 S/cm
    percolation_density=PERCOLATION_D_C,
    percolation_exponent=PERCOLATION_T,
    springback=0.02,                                # [est]
    activation_energy_ev=0.36,                      # Liu 2013 report ~0.36 eV
    grain_boundary_fraction=0.3,                    # [est]
    is_sulfide=True,
)

# Na3PS4 (cubic, glass-ceramic): 2e-4 S/cm (Hayashi et al., Nat. Commun. 2012);
# rho_th 2.2 g/cm^3 [est]; compaction like the Li sulfides [est]: D(370 MPa) 0.85.
NA3PS4 = PowderMaterial(
    name="Na3PS4",
    theoretical_density_kg_m3=2200.0,               # [est]
    heckel_k_per_pa=HECKEL_K_PER_PA,                # [est] sulfide-like
    heckel_a=_heckel_a_for(0.85, 370.0 * MPA),      # [est]
    kawakita_a=KAWAKITA_A,
    kawakita_b_per_pa=KAWAKITA_B_PER_PA,
    transition_pa=TRANSITION_PA,
    dense_conductivity_s_m=2.0e-2 / _percolation_factor(0.85),  # Hayashi 2012: 2e-4 S/cm
    percolation_density=PERCOLATION_D_C,
    percolation_exponent=PERCOLATION_T,
    springback=0.02,                                # [est]
    activation_energy_ev=0.28,                      # Hayashi 2012 report ~0.28 eV
    grain_boundary_fraction=0.3,                    # [est]
    is_sulfide=True,
)

# Li7La3Zr2O12 (cubic LLZO): a hard oxide. Cold pressing reaches only ~60-65 % of theoretical
# density, at the percolation threshold, so a cold-pressed LLZO pellet barely conducts: it
# needs sintering (> 1000 C) to reach the 3e-4 S/cm of dense LLZO (Murugan et al., Angew. Chem.
# 2007). rho_th 5.1 g/cm^3 (Murugan 2007). Heckel K 1.0e-3 MPa^-1 [est, hard ceramic],
# D(370 MPa) 0.62 [est].
LLZO = PowderMaterial(
    name="LLZO",
    theoretical_density_kg_m3=5100.0,               # Murugan 2007
    heckel_k_per_pa=1.0e-3 / MPA,                   # [est] hard oxide
    heckel_a=_heckel_a_for(0.62, 370.0 * MPA, 1.0e-3 / MPA),  # [est]
    kawakita_a=0.50,                                # [est] stiffer powder bed
    kawakita_b_per_pa=0.02 / MPA,                   # [est]
    transition_pa=TRANSITION_PA,
    dense_conductivity_s_m=3.0e-2,                  # Murugan 2007: 3e-4 S/cm sintered
    percolation_density=PERCOLATION_D_C,
    percolation_exponent=PERCOLATION_T,
    springback=0.03,                                # [est] oxides spring back more
    activation_energy_ev=0.34,                      # Murugan 2007 ~0.34 eV
    grain_boundary_fraction=0.9,                    # [est] unsintered: grain boundaries rule
    is_sulfide=False,
    note="does not densify much by cold pressing (D ~0.6 at 370 MPa); needs sintering",
)

MATERIALS = {m.name: m for m in (LI6PS5CL, LI3PS4, NA3PS4, LLZO, LPS_GLASS_75_25)}
_ALIASES = {"lpscl": LI6PS5CL, "argyrodite": LI6PS5CL, "lps": LI3PS4, "li7la3zr2o12": LLZO,
            "75li2s-25p2s5": LPS_GLASS_75_25, "75li2s·25p2s5": LPS_GLASS_75_25,
            "lps glass": LPS_GLASS_75_25}


class UnknownMaterialError(CompactionError):
    """No powder material of that name is known."""


def powder_material(name: str) -> PowderMaterial:
    """Return the powder material called ``name`` (case-insensitive; a few aliases)."""
    key = name.strip().lower()
    for material in MATERIALS.values():
        if material.name.lower() == key:
            return material
    if key in _ALIASES:
        return _ALIASES[key]
    raise UnknownMaterialError(
        f"unknown electrolyte powder {name!r}; known: {sorted(MATERIALS)}"
    )


def relative_density_at(material: PowderMaterial, pressure_pa: float) -> float:
    """Return the loaded relative density of a fresh compact pressed to ``pressure_pa`` (Pa)."""
    return material.relative_density_at(pressure_pa)


class PowderCompact:
    """A powder charge in a die; remembers the maximum pressure it has seen."""

    def __init__(self, material: PowderMaterial, mass_kg: float, die_area_m2: float) -> None:
        if not (math.isfinite(mass_kg) and mass_kg > 0.0):
            raise CompactionError(f"powder mass must be > 0 kg, got {mass_kg!r}")
        if not (math.isfinite(die_area_m2) and die_area_m2 > 0.0):
            raise CompactionError(f"die area must be > 0 m^2, got {die_area_m2!r}")
        self.material = material
        self.mass_kg = float(mass_kg)
        self.die_area_m2 = float(die_area_m2)
        self.max_pressure_pa = 0.0
        self.pressure_pa = 0.0

    @property
    def loaded_area_m2(self) -> float:
        """Return the area the press force acts on (the die bore), m^2."""
        return self.die_area_m2

    def apply_pressure(self, pressure_pa: float) -> None:
        """Set the present die pressure (Pa); densifies if it exceeds the maximum seen."""
        if math.isnan(pressure_pa):
            raise CompactionError("pressure is NaN; expected a finite value in Pa")
        self.pressure_pa = max(0.0, float(pressure_pa))
        self.max_pressure_pa = max(self.max_pressure_pa, self.pressure_pa)

    def step(self, pressure_pa: float, dt_s: float, temperature_k: float) -> None:
        """Apply ``pressure_pa`` for ``dt_s``; compaction is rate-independent here."""
        self.apply_pressure(pressure_pa)

    def _thickness_at(self, pressure_pa: float, max_pressure_pa: float) -> float:
        m = self.material
        loaded = self.mass_kg / (
            m.theoretical_density_kg_m3 * m.relative_density_at(max_pressure_pa) * self.die_area_m2
        )
        if max_pressure_pa <= 0.0:
            return loaded
        return loaded * (1.0 + m.springback * (1.0 - pressure_pa / max_pressure_pa))

    @property
    def thickness_m(self) -> float:
        """Return the compact thickness at the present pressure (with spring-back), m."""
        return self._thickness_at(self.pressure_pa, self.max_pressure_pa)

    @property
    def relative_density(self) -> float:
        """Return the present relative density (includes elastic spring-back)."""
        m = self.material
        return self.mass_kg / (m.theoretical_density_kg_m3 * self.die_area_m2 * self.thickness_m)

    def conductivity_s_m(self, temperature_k: float = ROOM_TEMPERATURE_K) -> float:
        """Return the pellet ionic conductivity at the present density, S/m."""
        return self.material.conductivity_s_m(self.relative_density, temperature_k)

    def compliance_m_per_pa(self, pressure_pa: float, loading: bool) -> float:
        """Return -d(thickness)/d(pressure) at ``pressure_pa`` (Pa), m/Pa.

        ``loading`` selects the virgin curve when the pressure is at its maximum; otherwise
        the elastic spring-back line applies.
        """
        m = self.material
        p_max = self.max_pressure_pa
        if loading and pressure_pa >= p_max:
            d = m.relative_density_at(pressure_pa)
            t = self._thickness_at(pressure_pa, pressure_pa)
            return t * m.density_slope_per_pa(pressure_pa) / d
        if p_max <= 0.0:
            return 0.0
        return self._thickness_at(p_max, p_max) * m.springback / p_max
