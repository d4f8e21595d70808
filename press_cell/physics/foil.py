"""Alkali-metal foil (Li, Na) pressed between flat hard faces: creep, thinning, contact.

Model (SCIENCE.md "Alkali-metal foil"):

* Norton power-law creep eps_dot = A sigma^n (sigma in MPa), published A and n at room
  temperature; other temperatures by Arrhenius scaling
  ``A(T) = A exp(-Q/R (1/T - 1/T_ref))``. Q is tied to the melting point
  (Q ~ 14 R T_m, the self-diffusion activation of the alkali metals: Li ~53 kJ/mol,
  Na ~43 kJ/mol [est]), which is the homologous-temperature argument: Na sits at
  T/T_m 0.80 at room temperature, Li at 0.66.
* Flow stress at a strain rate: sigma_f(eps_dot) = (eps_dot / A)^(1/n).
* Friction-limited thinning (sticking friction, thin-foil upsetting): the mean pressure to
  flow a foil of radius R and thickness h is p_bar = sigma_f (1 + 2R / (3 sqrt3 h)); so free
  thinning stops near h* = 2R / (3 sqrt3 (p / sigma_f - 1)). Above p_bar the foil thins
  instantly to h*; then creep keeps it drifting at eps_dot(p / Phi(h)), Phi = p_bar / sigma_f.
  sigma_f for the instantaneous part is taken at ``reference_strain_rate_s`` (the press
  loading rate, 1e-3 1/s [est]).
* Contact fraction f against a rough counter-face [est]: plastic part min(1, p/H) with
  H = sigma_f(eps_dot_ref) * max(3, Phi(h)). For a thick foil this is SCIENCE.md's
  H ~ 3 sigma_f; for a thin foil on a wide face the metal that fills the counter-face's
  valleys has to flow through the thin layer, so H rises to the friction-hill flow pressure
  p_bar, and the contact is complete once the whole foil flows. This is what makes a
  Li|Li6PS5Cl|Li cell keep improving up to ~20-25 MPa (Doux et al. 2020) although Li yields
  below 1 MPa. Creep part df/dt = (1 - f) eps_dot(sigma_loc) / eps_c with the local stress
  sigma_loc = p sigma_f / (f H), equal to sigma_f(eps_dot_ref) when f is at its plastic
  value.
* Contact is never lost on unload: only a small elastic recovery (``elastic_recovery``,
  2 % of the contact at full unload [est]) is shown by ``contact_fraction``.

``AlkaliFoil.step`` sub-steps internally (strain increment per sub-step <= 0.2 %), so any
``dt_s`` is safe.

Public API::

    AlkaliMetal(...)                      # frozen dataclass; LITHIUM, SODIUM
        .creep_rate_s(stress_pa, temperature_k) -> 1/s
        .flow_stress_pa(strain_rate_s, temperature_k) -> Pa
        .homologous_temperature(temperature_k)
    flow_pressure_pa(metal, radius_m, thickness_m, strain_rate_s, temperature_k) -> Pa
    free_thinning_limit_m(metal, radius_m, pressure_pa, strain_rate_s, temperature_k) -> m
    AlkaliFoil(material, thickness_m, radius_m, reference_strain_rate_s=1e-3,
               critical_strain=0.2, elastic_recovery=0.02, initial_contact=0.0)
        .step(pressure_pa, dt_s, temperature_k=298.15)
        .thickness_m, .contact_fraction, .pressure_pa, .max_pressure_pa, .loaded_area_m2,
        .creep_strain, .flow_pressure_pa(temperature_k), .material (= .metal),
        .compliance_m_per_pa(pressure_pa, loading)
    LITHIUM, SODIUM, METALS (dict by name "Li", "Na")
    alkali_metal(name) -> AlkaliMetal            # "Li"/"lithium"/"Na"/"sodium"; UnknownMetalError
"""

import math
from dataclasses import dataclass

GAS_CONSTANT_J_MOL_K = 8.314462618   # CODATA 2018
ROOM_TEMPERATURE_K = 298.15
MPA = 1e6
SQRT3 = math.sqrt(3.0)
_THREE_SQRT3 = 3.0 * SQRT3          # the constant of the friction-hill formulas below


class FoilError(ValueError):
    """A foil input is out of its physical range."""


@dataclass(frozen=True)
class AlkaliMetal:
    """Mechanical parameters of an alkali metal (SI except the Norton A, which is in MPa)."""

    name: str
    creep_a_mpa: float              # Norton A, s^-1 MPa^-n, at reference_temperature_k
    creep_n: float                  # Norton stress exponent
    youngs_modulus_pa: float        # E, Pa
    poisson_ratio: float            # nu
    yield_stress_pa: float          # mid-range yield stress, Pa
    melting_point_k: float          # T_m, K
    activation_energy_j_mol: float  # creep activation energy Q, J/mol
    reference_temperature_k: float  # temperature of the creep fit, K
    short_pressure_pa: float        # stack pressure that pushes it through a porous pellet, Pa

    def __post_init__(self) -> None:
        """Check ranges."""
        if not (self.creep_a_mpa > 0.0 and self.creep_n >= 1.0):
            raise FoilError(f"{self.name}: Norton A must be > 0 and n >= 1")
        if not self.melting_point_k > 0.0:
            raise FoilError(f"{self.name}: melting point must be > 0 K")

    def _check_temperature(self, temperature_k: float) -> None:
        if not 0.0 < temperature_k < self.melting_point_k:
            raise FoilError(
                f"{self.name}: temperature must be in (0, {self.melting_point_k}) K (solid), "
                f"got {temperature_k!r}"
            )

    def creep_a_at(self, temperature_k: float) -> float:
        """Return the Norton A at ``temperature_k`` (Arrhenius scaling), s^-1 MPa^-n."""
        self._check_temperature(temperature_k)
        return self.creep_a_mpa * math.exp(
            -self.activation_energy_j_mol / GAS_CONSTANT_J_MOL_K
            * (1.0 / temperature_k - 1.0 / self.reference_temperature_k)
        )

    def creep_rate_s(self, stress_pa: float, temperature_k: float = ROOM_TEMPERATURE_K) -> float:
        """Return the steady creep strain rate at ``stress_pa`` (Pa), 1/s."""
        if stress_pa <= 0.0:
            return 0.0
        return self.creep_a_at(temperature_k) * (stress_pa / MPA) ** self.creep_n

    def flow_stress_pa(self, strain_rate_s: float,
                       temperature_k: float = ROOM_TEMPERATURE_K) -> float:
        """Return the stress (Pa) at which the metal flows at ``strain_rate_s`` (1/s)."""
        if not strain_rate_s > 0.0:
            raise FoilError(f"strain rate must be > 0 1/s, got {strain_rate_s!r}")
        return MPA * (strain_rate_s / self.creep_a_at(temperature_k)) ** (1.0 / self.creep_n)

    def homologous_temperature(self, temperature_k: float) -> float:
        """Return T / T_m."""
        return temperature_k / self.melting_point_k


# Lithium: Masias, Felten, Garcia-Mendez, Wolfenstine, Sakamoto, J. Mater. Sci. 2019.
LITHIUM = AlkaliMetal(
    name="Li",
    creep_a_mpa=7.73e-3,                    # Masias 2019, s^-1 MPa^-6.56
    creep_n=6.56,                           # Masias 2019
    youngs_modulus_pa=7.82e9,               # Masias 2019
    poisson_ratio=0.381,                    # Masias 2019
    yield_stress_pa=0.77e6,                 # Masias 2019: 0.73-0.81 MPa
    melting_point_k=453.65,                 # CRC Handbook
    activation_energy_j_mol=14.0 * GAS_CONSTANT_J_MOL_K * 453.65,  # [est] ~53 kJ/mol
    reference_temperature_k=ROOM_TEMPERATURE_K,
    short_pressure_pa=75e6,                 # Doux et al., Adv. Energy Mater. 2020
)

# Sodium: Wang et al., Materialia 2020 (E, yield, n); A chosen for sigma_f(1e-3 1/s) = 0.24 MPa.
SODIUM = AlkaliMetal(
    name="Na",
    creep_a_mpa=1.26,                       # [est] SCIENCE.md, s^-1 MPa^-5
    creep_n=5.0,                            # Wang 2020
    youngs_modulus_pa=4.6e9,                # Wang 2020
    poisson_ratio=0.34,                     # [est] handbook value for Na
    yield_stress_pa=0.235e6,                # Wang 2020: 0.19-0.28 MPa
    melting_point_k=370.95,                 # CRC Handbook
    activation_energy_j_mol=14.0 * GAS_CONSTANT_J_MOL_K * 370.95,  # [est] ~43 kJ/mol
    reference_temperature_k=ROOM_TEMPERATURE_K,
    short_pressure_pa=75e6 * 0.24 / 0.75,   # [est] Li threshold scaled by flow stress: 24 MPa
)

METALS = {m.name: m for m in (LITHIUM, SODIUM)}
_METAL_ALIASES = {"li": LITHIUM, "lithium": LITHIUM, "na": SODIUM, "sodium": SODIUM}


class UnknownMetalError(FoilError):
    """No alkali metal of that name is known."""


def alkali_metal(name: str) -> AlkaliMetal:
    """Return the metal called ``name`` ("Li", "lithium", "Na", "sodium"; any case)."""
    try:
        return _METAL_ALIASES[name.strip().lower()]
    except KeyError:
        raise UnknownMetalError(
            f"unknown alkali metal {name!r}; known: Li (lithium), Na (sodium)") from None


def constraint_factor(radius_m: float, thickness_m: float) -> float:
    """Return Phi = p_bar / sigma_f = 1 + 2R / (3 sqrt3 h) for sticking friction."""
    return 1.0 + 2.0 * radius_m / (_THREE_SQRT3 * thickness_m)


def flow_pressure_pa(metal: AlkaliMetal, radius_m: float, thickness_m: float,
                     strain_rate_s: float, temperature_k: float = ROOM_TEMPERATURE_K) -> float:
    """Return the mean pressure (Pa) that makes a foil flow at ``strain_rate_s``."""
    return metal.flow_stress_pa(strain_rate_s, temperature_k) * constraint_factor(
        radius_m, thickness_m)


def free_thinning_limit_m(metal: AlkaliMetal, radius_m: float, pressure_pa: float,
                          strain_rate_s: float,
                          temperature_k: float = ROOM_TEMPERATURE_K) -> float:
    """Return h* (m), the thickness where free thinning stops at ``pressure_pa``; inf if none."""
    ratio = pressure_pa / metal.flow_stress_pa(strain_rate_s, temperature_k)
    if ratio <= 1.0:
        return math.inf
    return 2.0 * radius_m / (_THREE_SQRT3 * (ratio - 1.0))


class AlkaliFoil:
    """A disc of alkali foil pressed on a flat face; tracks thickness and contact fraction."""

    MAX_STRAIN_PER_SUBSTEP = 2e-3

    def __init__(self, material: AlkaliMetal, thickness_m: float, radius_m: float,
                 reference_strain_rate_s: float = 1e-3,
                 critical_strain: float = 0.2,
                 elastic_recovery: float = 0.02,
                 initial_contact: float = 0.0) -> None:
        for name, value in (("thickness_m", thickness_m), ("radius_m", radius_m),
                            ("reference_strain_rate_s", reference_strain_rate_s),
                            ("critical_strain", critical_strain)):
            if not (math.isfinite(value) and value > 0.0):
                raise FoilError(f"{name} must be a finite value > 0, got {value!r}")
        if not 0.0 <= elastic_recovery < 0.5:
            raise FoilError(f"elastic_recovery must be in [0, 0.5), got {elastic_recovery!r}")
        if not 0.0 <= initial_contact <= 1.0:
            raise FoilError(f"initial_contact must be in [0, 1], got {initial_contact!r}")
        self.metal = material           # also reachable as .material
        self.radius_m = float(radius_m)
        self.initial_thickness_m = float(thickness_m)
        self.reference_strain_rate_s = float(reference_strain_rate_s)  # [est] loading rate
        self.critical_strain = float(critical_strain)    # eps_c [est], calibrated to Doux 2020
        self.elastic_recovery = float(elastic_recovery)  # [est]
        self._h = float(thickness_m)
        self._f = float(initial_contact)
        self.pressure_pa = 0.0
        self.max_pressure_pa = 0.0
        self.creep_strain = 0.0
        self.temperature_k = ROOM_TEMPERATURE_K
        self._creep_key = None          # (metal, temperature, reference rate) of the cache
        self._creep_a_t = math.nan      # Norton A at that temperature
        self._sigma_ref_pa = math.nan   # flow stress at the reference strain rate, Pa

    @property
    def material(self) -> AlkaliMetal:
        """Return the metal's parameter object (``LITHIUM``, ``SODIUM``)."""
        return self.metal

    @property
    def loaded_area_m2(self) -> float:
        """Return the face area the press force acts on, m^2."""
        return math.pi * self.radius_m ** 2

    @property
    def thickness_m(self) -> float:
        """Return the present thickness (plastic + elastic), m."""
        return self._h * (1.0 - self.pressure_pa / self.metal.youngs_modulus_pa)

    @property
    def contact_fraction(self) -> float:
        """Return the fraction of the face in intimate contact (kept after unload)."""
        if self.max_pressure_pa <= 0.0:
            return self._f
        unload = 1.0 - min(1.0, self.pressure_pa / self.max_pressure_pa)
        return self._f * (1.0 - self.elastic_recovery * unload)

    def flow_pressure_pa(self, temperature_k: float = ROOM_TEMPERATURE_K) -> float:
        """Return the pressure (Pa) at which this foil flows at the reference strain rate."""
        return self._creep_constants(temperature_k)[1] * constraint_factor(self.radius_m,
                                                                           self._h)

    def _creep_constants(self, temperature_k: float) -> tuple:
        """Return (Norton A, flow stress at the reference rate in Pa) at ``temperature_k``.

        Both are pure functions of the metal, the temperature and the reference rate (an
        Arrhenius exponential and a power each): cached, recomputed when one of them changes.
        """
        key = (self.metal, temperature_k, self.reference_strain_rate_s)
        if key != self._creep_key:
            metal = self.metal
            self._creep_a_t = metal.creep_a_at(temperature_k)      # checks the temperature
            self._sigma_ref_pa = metal.flow_stress_pa(self.reference_strain_rate_s,
                                                      temperature_k)
            self._creep_key = key
        return self._creep_a_t, self._sigma_ref_pa

    def _contact_constraint(self) -> float:
        """Return H / sigma_f: 3 for a thick foil, Phi(h) once friction dominates."""
        return max(3.0, constraint_factor(self.radius_m, self._h))

    def compliance_m_per_pa(self, pressure_pa: float, loading: bool) -> float:
        """Return -d(thickness)/d(pressure) at ``pressure_pa`` (Pa), m/Pa."""
        h = self._h
        elastic = h / self.metal.youngs_modulus_pa
        if not loading:
            return elastic
        sigma = self._creep_constants(self.temperature_k)[1]
        if pressure_pa < sigma * constraint_factor(self.radius_m, h):    # below flow pressure
            return elastic
        excess = pressure_pa - sigma
        floor = 1e-3 * sigma
        return elastic + h / (floor if floor > excess else excess)

    def step(self, pressure_pa: float, dt_s: float,
             temperature_k: float = ROOM_TEMPERATURE_K) -> None:
        """Hold ``pressure_pa`` (Pa) on the foil for ``dt_s`` (s) at ``temperature_k`` (K)."""
        if math.isnan(pressure_pa) or dt_s < 0.0:
            raise FoilError(f"need a pressure in Pa and dt_s >= 0, got {pressure_pa!r}, {dt_s!r}")
        a_t, sigma_ref = self._creep_constants(temperature_k)
        n = self.metal.creep_n
        self.temperature_k = temperature_k
        p = float(pressure_pa)
        if not p > 0.0:     # max(0.0, p) written out, as below: this runs every plant sub-step
            p = 0.0
        self.pressure_pa = p
        if p > self.max_pressure_pa:
            self.max_pressure_pa = p
        if p <= 0.0:
            return
        two_r = 2.0 * self.radius_m
        h = self._h
        # instantaneous friction-limited thinning (free_thinning_limit_m)
        ratio = p / sigma_ref
        if ratio > 1.0:
            h_star = two_r / (_THREE_SQRT3 * (ratio - 1.0))
            if h_star < h:
                h = h_star
        # instantaneous plastic contact (H / sigma_f = _contact_constraint())
        phi = 1.0 + two_r / (_THREE_SQRT3 * h)
        f_plastic = p / (sigma_ref * (phi if phi > 3.0 else 3.0))
        f_plastic = f_plastic if f_plastic < 1.0 else 1.0
        f = self._f
        if f_plastic > f:
            f = f_plastic
        critical = self.critical_strain
        max_strain = self.MAX_STRAIN_PER_SUBSTEP
        creep_strain = self.creep_strain
        exp = math.exp
        remaining = float(dt_s)
        # min/max written out below as ``b if b < a else a`` (what min(a, b) returns)
        while remaining > 0.0:
            phi = 1.0 + two_r / (_THREE_SQRT3 * h)      # constraint_factor(radius, h)
            eps_h = a_t * (p / phi / MPA) ** n
            eps_f = 0.0
            if f < 1.0:
                sigma_loc = p / ((1e-9 if 1e-9 > f else f) * (phi if phi > 3.0 else 3.0))
                eps_f = a_t * (sigma_loc / MPA) ** n
            rate = eps_f / critical
            if not rate > eps_h:
                rate = eps_h
            dt = remaining if rate * remaining <= max_strain else max_strain / rate
            h *= exp(-eps_h * dt)
            creep_strain += eps_h * dt
            if f < 1.0:
                f_next = f + (1.0 - f) * eps_f * dt / critical
                f = f_next if f_next < 1.0 else 1.0
            remaining -= dt
        self._h = h
        self._f = f
        self.creep_strain = creep_strain
