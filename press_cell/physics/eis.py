"""Impedance of equivalent-circuit elements and of the symmetric solid-state cell.

Sign convention: Z = Z' + j·Z''; a capacitive element has Z'' < 0. Frequencies are in Hz,
angular frequencies in rad/s, impedances in Ω. Every element function is vectorised over
``frequency_hz`` (any shape numpy accepts) and returns a complex array of the same shape.

The cell model is the brick-layer picture of a polycrystalline electrolyte between two
electrodes (Irvine, Sinclair & West, Adv. Mater. 2, 132-138, 1990):

    Z = R_ext + (R_bulk ‖ CPE_bulk) + (R_gb ‖ CPE_gb) + (2·R_int ‖ CPE_int) [+ tail]

where the two identical electrode interfaces of the symmetric cell are lumped into one arc of
resistance 2·R_int. The optional low-frequency tail is a CPE (blocking / diffusion) or a
semi-infinite Warburg element.
"""

from dataclasses import dataclass

import numpy as np

# Typical capacitances of each process, read off the capacitance table of
# Irvine, Sinclair & West, Adv. Mater. 2 (1990) 132: bulk ~1e-12 F, grain boundary
# 1e-11..1e-8 F, electrode/electrolyte interface 1e-7..1e-5 F (cell constant ~1 cm^-1).
BULK_CAPACITANCE_F = 1e-12          # Irvine, Sinclair & West 1990
GRAIN_BOUNDARY_CAPACITANCE_F = 1e-9  # Irvine, Sinclair & West 1990 (mid of 1e-11..1e-8)
# Interface: upper half of 1e-7..1e-5 F (Irvine, Sinclair & West 1990) because our electrodes
# (12.7 mm, 1.27 cm^2) are larger than the ~1 cm^-1 cell of the table [est].
INTERFACE_CAPACITANCE_F = 5e-6
# CPE exponents of sulfide-electrolyte cells lie in 0.8..0.95 (SCIENCE.md, EIS section) [est]
BULK_CPE_ALPHA = 0.95               # [est] within 0.8..0.95
GRAIN_BOUNDARY_CPE_ALPHA = 0.9      # [est] within 0.8..0.95
INTERFACE_CPE_ALPHA = 0.85          # [est] within 0.8..0.95


class EisModelError(ValueError):
    """An element or cell-model parameter is outside its physical range."""


def angular_frequency_rad_s(frequency_hz) -> np.ndarray:
    """Return ω = 2π·f, rad/s, for frequencies in Hz (must be > 0 and finite)."""
    f = np.asarray(frequency_hz, dtype=float)
    if not np.all(np.isfinite(f)) or np.any(f <= 0.0):
        raise EisModelError("frequencies must be finite and > 0 Hz")
    return 2.0 * np.pi * f


def z_resistor(r_ohm: float, frequency_hz) -> np.ndarray:
    """Return the impedance of a resistor r_ohm (Ω) at every frequency, Ω."""
    omega = angular_frequency_rad_s(frequency_hz)
    return np.full(omega.shape, complex(r_ohm))


def z_capacitor(c_f: float, frequency_hz) -> np.ndarray:
    """Return the impedance 1/(jωC) of a capacitor c_f (F), Ω."""
    if not c_f > 0.0:
        raise EisModelError(f"capacitance must be > 0 F, got {c_f!r}")
    return 1.0 / (1j * angular_frequency_rad_s(frequency_hz) * c_f)


def z_cpe(q_f_s_alpha: float, alpha: float, frequency_hz) -> np.ndarray:
    """Return the impedance 1/(Q·(jω)^α) of a constant-phase element, Ω.

    ``q_f_s_alpha`` is Q in F·s^(α−1); ``alpha`` in (0, 1] (α = 1 is an ideal capacitor).
    """
    if not q_f_s_alpha > 0.0:
        raise EisModelError(f"CPE Q must be > 0 F·s^(a-1), got {q_f_s_alpha!r}")
    if not 0.0 < alpha <= 1.0:
        raise EisModelError(f"CPE exponent must be in (0, 1], got {alpha!r}")
    return 1.0 / (q_f_s_alpha * (1j * angular_frequency_rad_s(frequency_hz)) ** alpha)


def z_warburg(sigma_ohm_s_half: float, frequency_hz) -> np.ndarray:
    """Return the semi-infinite Warburg impedance σ·(1 − j)/√ω, Ω (σ in Ω·s^-1/2)."""
    if not sigma_ohm_s_half > 0.0:
        raise EisModelError(f"Warburg coefficient must be > 0 Ω·s^-1/2, got {sigma_ohm_s_half!r}")
    omega = angular_frequency_rad_s(frequency_hz)
    return sigma_ohm_s_half * (1.0 - 1j) / np.sqrt(omega)


def z_parallel(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """Return the impedance of two elements in parallel, z1·z2/(z1 + z2), Ω."""
    return z1 * z2 / (z1 + z2)


def z_r_cpe(r_ohm: float, q_f_s_alpha: float, alpha: float, frequency_hz) -> np.ndarray:
    """Return R ‖ CPE, written in the closed form R/(1 + R·Q·(jω)^α) (no 0/0 at R = 0), Ω."""
    if not r_ohm >= 0.0:
        raise EisModelError(f"resistance must be >= 0 Ω, got {r_ohm!r}")
    z_c = z_cpe(q_f_s_alpha, alpha, frequency_hz)
    return r_ohm / (1.0 + r_ohm / z_c)


def relaxation_frequency_hz(r_ohm: float, q_f_s_alpha: float, alpha: float) -> float:
    """Return the apex frequency of an R‖CPE arc, 1/(2π·(R·Q)^(1/α)), Hz."""
    return 1.0 / (2.0 * np.pi * (r_ohm * q_f_s_alpha) ** (1.0 / alpha))


@dataclass(frozen=True)
class CellImpedanceModel:
    """Equivalent circuit of a symmetric cell; see the module docstring for the topology.

    ``r_int_each_ohm`` is the resistance of ONE electrode interface; the model uses 2·R_int.
    Set ``tail_q_f_s_alpha`` (with ``tail_alpha``) for a CPE tail or ``warburg_sigma_ohm_s_half``
    for a Warburg tail; both 0 means no tail (Li|SE|Li is non-blocking).
    """

    r_ext_ohm: float
    r_bulk_ohm: float
    r_gb_ohm: float
    r_int_each_ohm: float
    q_bulk: float = BULK_CAPACITANCE_F           # F·s^(α−1)
    alpha_bulk: float = BULK_CPE_ALPHA
    q_gb: float = GRAIN_BOUNDARY_CAPACITANCE_F   # F·s^(α−1)
    alpha_gb: float = GRAIN_BOUNDARY_CPE_ALPHA
    q_int: float = INTERFACE_CAPACITANCE_F       # F·s^(α−1)
    alpha_int: float = INTERFACE_CPE_ALPHA
    tail_q_f_s_alpha: float = 0.0                # F·s^(α−1); 0 = no CPE tail
    tail_alpha: float = 0.5
    warburg_sigma_ohm_s_half: float = 0.0        # Ω·s^-1/2; 0 = no Warburg tail

    def __post_init__(self) -> None:
        for name in ("r_ext_ohm", "r_bulk_ohm", "r_gb_ohm", "r_int_each_ohm"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0.0):
                raise EisModelError(f"{name} must be finite and >= 0 Ω, got {value!r}")
        for name in ("q_bulk", "q_gb", "q_int"):
            if not getattr(self, name) > 0.0:
                raise EisModelError(f"{name} must be > 0 F·s^(a-1), got {getattr(self, name)!r}")
        for name in ("alpha_bulk", "alpha_gb", "alpha_int", "tail_alpha"):
            if not 0.0 < getattr(self, name) <= 1.0:
                raise EisModelError(f"{name} must be in (0, 1], got {getattr(self, name)!r}")
        if self.tail_q_f_s_alpha < 0.0 or self.warburg_sigma_ohm_s_half < 0.0:
            raise EisModelError("tail parameters must be >= 0 (0 disables the tail)")

    @property
    def dc_resistance_ohm(self) -> float:
        """Return the DC resistance without the tail, R_ext + R_bulk + R_gb + 2·R_int, Ω."""
        return self.r_ext_ohm + self.r_bulk_ohm + self.r_gb_ohm + 2.0 * self.r_int_each_ohm

    def impedance_ohm(self, frequency_hz) -> np.ndarray:
        """Return the complex cell impedance at each frequency (Hz), Ω."""
        f = np.asarray(frequency_hz, dtype=float)
        z = (
            z_resistor(self.r_ext_ohm, f)
            + z_r_cpe(self.r_bulk_ohm, self.q_bulk, self.alpha_bulk, f)
            + z_r_cpe(self.r_gb_ohm, self.q_gb, self.alpha_gb, f)
            + z_r_cpe(2.0 * self.r_int_each_ohm, self.q_int, self.alpha_int, f)
        )
        if self.tail_q_f_s_alpha > 0.0:
            z = z + z_cpe(self.tail_q_f_s_alpha, self.tail_alpha, f)
        if self.warburg_sigma_ohm_s_half > 0.0:
            z = z + z_warburg(self.warburg_sigma_ohm_s_half, f)
        return z


def log_frequency_grid_hz(freq_max_hz: float, freq_min_hz: float,
                          points_per_decade: int) -> np.ndarray:
    """Return a descending log-spaced sweep from freq_max_hz to freq_min_hz, both included, Hz."""
    if not (np.isfinite(freq_max_hz) and np.isfinite(freq_min_hz)):
        raise EisModelError("sweep limits must be finite")
    if not 0.0 < freq_min_hz < freq_max_hz:
        raise EisModelError(
            f"need 0 < freq_min_hz < freq_max_hz, got {freq_min_hz!r} and {freq_max_hz!r}")
    if int(points_per_decade) != points_per_decade or points_per_decade < 1:
        raise EisModelError(f"points_per_decade must be an integer >= 1, got {points_per_decade!r}")
    decades = np.log10(freq_max_hz / freq_min_hz)
    n_points = max(2, int(round(decades * points_per_decade)) + 1)
    return np.logspace(np.log10(freq_max_hz), np.log10(freq_min_hz), n_points)


def cell_model_from_resistances(resistances, **cpe_parameters) -> CellImpedanceModel:
    """Return the cell model for a resistance breakdown plus optional CPE/tail overrides.

    ``resistances`` is anything with ``r_ext_ohm``, ``r_bulk_ohm``, ``r_gb_ohm`` and
    ``r_int_each_ohm`` (e.g. ``press_cell.physics.cell_resistance.CellResistances``);
    ``cpe_parameters`` are ``CellImpedanceModel`` fields such as ``q_int`` or ``alpha_int``.
    A shorted cell (``is_shorted`` true) is a plain resistor R_ext + ``r_short_ohm``.
    """
    if getattr(resistances, "is_shorted", False):
        return CellImpedanceModel(
            r_ext_ohm=float(resistances.r_ext_ohm) + float(resistances.r_short_ohm),
            r_bulk_ohm=0.0, r_gb_ohm=0.0, r_int_each_ohm=0.0, **cpe_parameters)
    return CellImpedanceModel(
        r_ext_ohm=float(resistances.r_ext_ohm), r_bulk_ohm=float(resistances.r_bulk_ohm),
        r_gb_ohm=float(resistances.r_gb_ohm), r_int_each_ohm=float(resistances.r_int_each_ohm),
        **cpe_parameters)
