"""Kramers-Kronig consistency check of an impedance spectrum (Lin-KK).

Method after Schönleber, Klotz & Ivers-Tiffée, Electrochim. Acta 131 (2014) 20-27: fit a chain
of M Voigt elements (R_k ‖ C_k with fixed time constants τ_k, log-spaced between 1/(2π f_max)
and 1/(2π f_min)) plus a series resistance (and optionally a series capacitance/inductance) to
the data by *linear* least squares, weighted by 1/|Z|. Such a chain is KK-consistent by
construction, so relative residuals much larger than the noise mean the data are not (drift,
non-linearity, instability). M is raised until the over-fit measure
μ = 1 − Σ|R_k<0| / Σ|R_k≥0| drops below ``mu_criterion`` (0.85 in the paper); the search starts
at about two elements per decade rather than at 3, because μ also dips at very small M.

Own implementation; the residual definition Δ = (Z − Ẑ)/|Z| follows the paper.
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_MU_CRITERION = 0.85          # Schönleber et al. 2014
DEFAULT_MAX_RESIDUAL_PCT = 2.0       # pass/fail threshold on max |Δ|, % [est: ~5x typical noise]


class KramersKronigError(ValueError):
    """The spectrum cannot be tested (too few points, non-finite values, bad frequencies)."""


@dataclass(frozen=True)
class KramersKronigResult:
    """Outcome of a Lin-KK test; residuals are fractions of |Z| at each frequency."""

    passed: bool
    n_elements: int                  # number of Voigt elements M used
    mu: float                        # over-fit measure at the chosen M
    residual_real: np.ndarray        # (Z' − Ẑ')/|Z| per point
    residual_imag: np.ndarray        # (Z'' − Ẑ'')/|Z| per point
    max_abs_residual_pct: float      # max over both parts, %
    rms_residual_pct: float          # rms over both parts, %
    threshold_pct: float             # pass/fail threshold applied to max_abs_residual_pct, %
    z_fit_ohm: np.ndarray            # the KK-consistent fit, Ω


def _design_matrix(omega: np.ndarray, tau: np.ndarray, add_capacitance: bool,
                   add_inductance: bool) -> np.ndarray:
    """Return the complex columns: R0, Voigt elements, [1/(jωC)], [jωL]."""
    columns = [np.ones_like(omega, dtype=complex)]
    columns.extend(1.0 / (1.0 + 1j * omega * t) for t in tau)
    if add_capacitance:
        columns.append(1.0 / (1j * omega))      # coefficient is 1/C
    if add_inductance:
        columns.append(1j * omega)              # coefficient is L
    return np.column_stack(columns)


def _solve(a_complex: np.ndarray, z: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Return the real coefficients fitting real and imaginary parts jointly."""
    a = np.vstack([a_complex.real * weight[:, None], a_complex.imag * weight[:, None]])
    b = np.concatenate([z.real * weight, z.imag * weight])
    coefficients, *_ = np.linalg.lstsq(a, b, rcond=None)
    return coefficients


def lin_kk(frequency_hz, z_ohm, mu_criterion: float = DEFAULT_MU_CRITERION,
           max_residual_pct: float = DEFAULT_MAX_RESIDUAL_PCT, add_capacitance: bool = True,
           add_inductance: bool = False, max_elements: int | None = None) -> KramersKronigResult:
    """Test ``z_ohm`` (complex, Ω) measured at ``frequency_hz`` (Hz) for KK consistency."""
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z_ohm, dtype=complex)
    if f.ndim != 1 or f.shape != z.shape:
        raise KramersKronigError("frequency_hz and z_ohm must be 1-D and of equal length")
    if f.size < 5:
        raise KramersKronigError(f"need at least 5 points for a KK test, got {f.size}")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(z))):
        raise KramersKronigError("frequencies and impedances must be finite")
    if np.any(f <= 0):
        raise KramersKronigError("frequencies must be > 0 Hz")
    if not 0.0 < mu_criterion < 1.0:
        raise KramersKronigError(f"mu_criterion must be in (0, 1), got {mu_criterion!r}")
    omega = 2.0 * np.pi * f
    weight = 1.0 / np.abs(z)
    tau_min, tau_max = 1.0 / omega.max(), 1.0 / omega.min()
    n_extra = 1 + int(add_capacitance) + int(add_inductance)
    m_limit = max_elements if max_elements is not None else 2 * f.size - n_extra - 1
    m_limit = max(3, min(m_limit, 2 * f.size - n_extra - 1))
    # μ can dip below the criterion at a handful of elements that do not yet describe the data
    # at all (seen on three-arc spectra); start at ~2 elements per decade [est].
    decades = float(np.log10(f.max() / f.min()))
    m_start = min(max(3, int(np.ceil(2.0 * decades)) + 1), m_limit)
    chosen = None
    for m in range(m_start, m_limit + 1):
        tau = np.logspace(np.log10(tau_min), np.log10(tau_max), m)
        a = _design_matrix(omega, tau, add_capacitance, add_inductance)
        coefficients = _solve(a, z, weight)
        r_k = coefficients[1:1 + m]
        positive = np.abs(r_k[r_k >= 0]).sum()
        mu = 1.0 - np.abs(r_k[r_k < 0]).sum() / positive if positive > 0 else 0.0
        chosen = (m, mu, a @ coefficients)
        if mu <= mu_criterion:
            break
    m, mu, z_fit = chosen
    residual_real = (z.real - z_fit.real) / np.abs(z)
    residual_imag = (z.imag - z_fit.imag) / np.abs(z)
    both = np.concatenate([residual_real, residual_imag])
    max_pct = float(np.max(np.abs(both)) * 100.0)
    return KramersKronigResult(
        passed=bool(max_pct <= max_residual_pct), n_elements=m, mu=float(mu),
        residual_real=residual_real, residual_imag=residual_imag,
        max_abs_residual_pct=max_pct, rms_residual_pct=float(np.sqrt(np.mean(both ** 2)) * 100),
        threshold_pct=float(max_residual_pct), z_fit_ohm=z_fit)
