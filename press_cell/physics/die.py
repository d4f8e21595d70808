"""Die geometry and rating: force <-> pressure on a round die or rod face.

F = p * pi d^2 / 4 (SCIENCE.md, "Press, die, sensor"). Checks of press capacity, die rating and
recipe target together belong to the recipe validator; this module only gives the math and
the die's own rating.

Public API::

    force_for_pressure_n(pressure_pa, diameter_m) -> float      # N
    pressure_for_force_pa(force_n, diameter_m) -> float         # Pa
    Die(diameter_m, rated_force_n, name)                        # frozen dataclass
        .area_m2, .force_for_pressure_n(p_pa), .pressure_for_force_pa(f_n),
        .rated_pressure_pa
"""

import math
from dataclasses import dataclass

STANDARD_GRAVITY_M_S2 = 9.80665     # CGPM 1901; converts tonne-force to N
TONNE_FORCE_N = 1000.0 * STANDARD_GRAVITY_M_S2


class DieGeometryError(ValueError):
    """A die dimension or rating is not physical."""


def _check_diameter(diameter_m: float) -> None:
    if not (math.isfinite(diameter_m) and diameter_m > 0.0):
        raise DieGeometryError(f"die diameter must be a finite value > 0 m, got {diameter_m!r}")


def face_area_m2(diameter_m: float) -> float:
    """Return the area of a round face of diameter ``diameter_m`` (m), m^2."""
    _check_diameter(diameter_m)
    return math.pi * diameter_m * diameter_m / 4.0


def force_for_pressure_n(pressure_pa: float, diameter_m: float) -> float:
    """Return the force (N) that puts ``pressure_pa`` on a round face of ``diameter_m`` (m)."""
    return pressure_pa * face_area_m2(diameter_m)


def pressure_for_force_pa(force_n: float, diameter_m: float) -> float:
    """Return the pressure (Pa) that ``force_n`` (N) puts on a round face of ``diameter_m``."""
    return force_n / face_area_m2(diameter_m)


@dataclass(frozen=True)
class Die:
    """A round pressing die (or rod face) with the maximum force its maker allows.

    ``rated_force_n`` is the die maker's limit, e.g. a 13 mm die rated 10 tf
    (98.1 kN, ~739 MPa; SCIENCE.md).
    """

    diameter_m: float               # bore diameter, m
    rated_force_n: float            # die rating, N
    name: str = ""                  # free text, e.g. "13 mm KBr-type die"

    def __post_init__(self) -> None:
        """Reject non-physical dimensions."""
        _check_diameter(self.diameter_m)
        if not (math.isfinite(self.rated_force_n) and self.rated_force_n > 0.0):
            raise DieGeometryError(
                f"die rated force must be a finite value > 0 N, got {self.rated_force_n!r}"
            )

    @property
    def area_m2(self) -> float:
        """Return the bore area, m^2."""
        return face_area_m2(self.diameter_m)

    @property
    def rated_pressure_pa(self) -> float:
        """Return the pressure at the die's rated force, Pa."""
        return self.rated_force_n / self.area_m2

    def force_for_pressure_n(self, p_pa: float) -> float:
        """Return the force (N) that puts ``p_pa`` (Pa) on the bore."""
        return p_pa * self.area_m2

    def pressure_for_force_pa(self, f_n: float) -> float:
        """Return the pressure (Pa) that ``f_n`` (N) puts on the bore."""
        return f_n / self.area_m2
