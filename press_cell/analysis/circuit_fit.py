"""Equivalent-circuit fit of a symmetric-cell impedance spectrum.

Circuit (Irvine, Sinclair & West, Adv. Mater. 2, 1990, brick-layer model):

    R_s + (R_bulk ‖ CPE_bulk) + (R_gb ‖ CPE_gb) + (2·R_int ‖ CPE_int) [+ CPE tail]

Fit: ``scipy.optimize.least_squares`` (trust-region reflective, bounded) on log-parametrised
resistances and CPE coefficients, CPE exponents bounded to [0.4, 1]; residuals are the complex
misfit divided by |Z| (modulus weighting, Boukamp's usual choice). Standard errors come from the
Jacobian: cov = s²·(JᵀJ)⁻¹ with s² = Σr²/(2N − p).

Which arcs a spectrum resolves depends on where their relaxation frequencies fall: for a
sulfide electrolyte at room temperature the bulk (~1e-12 F) and usually the grain-boundary arcs
lie far above 1 MHz, so the spectrum starts at a real-axis intercept that contains R_ext, R_bulk
and R_gb in series. The fit therefore tries 1, 2 and 3 arcs, discards candidates with an arc
outside the swept range, two arcs less than half a decade apart or an ill-determined arc, and
keeps the smallest remaining model whose residual rms is not meaningfully worse than the best.
The lowest-frequency arc is always the electrode interface, and of two arcs the upper one is
called bulk or grain boundary by its effective capacitance
(Hsu & Mansfeld, Corrosion 57, 2001: C = Q^(1/α)·R^((1−α)/α)).
Unresolved arcs are lumped in ``r_series_ohm`` and reported as follows:

* bulk resolved: ``r_ext_ohm`` = R_s, ``r_bulk_ohm`` and ``r_gb_ohm`` fitted;
* bulk not resolved: ``r_bulk_ohm`` = R_s − R_ext (it contains R_gb too when
  ``gb_resolved`` is False), using the ``r_ext_ohm`` the caller knows (lead/fixture
  resistance from a short-circuit calibration); without it ``r_bulk_ohm`` is NaN.

ASR per interface: ASR_int = R_int × electrode area (SCIENCE.md, symmetric cell), reported in
Ω·m² and Ω·cm².
"""

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from press_cell.analysis.kramers_kronig import DEFAULT_MAX_RESIDUAL_PCT, lin_kk
from press_cell.physics.eis import relaxation_frequency_hz, z_cpe, z_r_cpe

MIN_POINTS = 10                  # fewest valid points a fit accepts
MIN_DECADES = 2.0                # narrowest frequency span a fit accepts, decades
ALPHA_BOUNDS = (0.4, 1.0)        # CPE exponent bounds of the fit
LN_R_BOUNDS = (math.log(1e-6), math.log(1e10))     # Ω
LN_Q_BOUNDS = (math.log(1e-16), math.log(10.0))    # F·s^(α−1)
# Effective capacitance separating a bulk arc from a grain-boundary arc: Irvine, Sinclair &
# West 1990 put bulk at ~1e-12 F and grain boundaries at 1e-11..1e-8 F (for a cell constant of
# ~1 cm⁻¹; a 13 mm × 1 mm pellet has ~13 cm, hence the boundary one decade up) [est].
BULK_GB_CAPACITANCE_SPLIT_F = 3e-11
# Model selection: a bigger model must lower the residual rms by more than this factor (plus an
# absolute 0.01 %) to be preferred [est].
MODEL_RMS_TOLERANCE = 1.15
# An arc with its apex up to this factor above the sweep still counts (its shoulder shows) [est]
APEX_ABOVE_RANGE_FACTOR = 10.0
MODEL_RMS_FLOOR_PCT = 0.01
# Warn about a partly visible arc above the sweep when the chosen model misfits by more than
# this rms and a model with that arc halves the misfit [est, ~ instrument noise]
SHOULDER_NOTE_RMS_PCT = 0.1
M2_PER_CM2 = 1e-4


class CircuitFitError(ValueError):
    """The spectrum cannot be fitted; the message names the defect and what is required."""


@dataclass(frozen=True)
class CircuitFitResult:
    """Fitted circuit parameters (SI), their standard errors and the fit quality."""

    r_ext_ohm: float                 # external/lead resistance, Ω (NaN when unknown)
    r_ext_std_ohm: float
    r_bulk_ohm: float                # electrolyte bulk, Ω (includes R_gb if gb not resolved)
    r_bulk_std_ohm: float
    r_gb_ohm: float                  # grain boundaries, Ω (NaN when not resolved)
    r_gb_std_ohm: float
    r_int_ohm: float                 # ONE electrode interface, Ω (the arc is 2·R_int)
    r_int_std_ohm: float
    r_series_ohm: float              # high-frequency real-axis resistance R_s, Ω
    r_series_std_ohm: float
    r_total_ohm: float               # DC resistance without the tail, Ω
    r_total_std_ohm: float
    q_bulk: float                    # CPE Q, F·s^(α−1) (NaN when the arc is not resolved)
    alpha_bulk: float
    q_gb: float
    alpha_gb: float
    q_int: float
    alpha_int: float
    q_tail: float                    # NaN without a tail
    alpha_tail: float
    bulk_resolved: bool
    gb_resolved: bool
    chi_square: float                # Σ of modulus-weighted squared residuals
    rms_residual_pct: float          # rms of the relative residuals, %
    kk_ok: bool                      # Lin-KK test passed
    kk_max_residual_pct: float
    n_points: int                    # points used
    n_excluded: int                  # overloaded/underloaded points dropped before the fit
    electrode_area_m2: float         # NaN when not given
    asr_int_ohm_m2: float            # per interface, Ω·m² (NaN without an area)
    asr_int_std_ohm_m2: float
    asr_int_ohm_cm2: float           # per interface, Ω·cm²
    asr_int_std_ohm_cm2: float
    notes: tuple = ()                # warnings about the fit, human-readable


@dataclass
class _ArcFit:
    """One candidate model's least-squares outcome."""

    n_arcs: int
    params: np.ndarray
    cov: np.ndarray
    rms_pct: float
    chi_square: float
    tail: bool


def validate_spectrum(frequency_hz, z_ohm) -> None:
    """Raise ``CircuitFitError`` unless the spectrum is fit for a circuit fit."""
    f = np.asarray(frequency_hz, dtype=float)
    z = np.asarray(z_ohm, dtype=complex)
    if f.ndim != 1 or f.shape != z.shape:
        raise CircuitFitError("frequencies and impedances must be 1-D arrays of equal length")
    if f.size < MIN_POINTS:
        raise CircuitFitError(f"too few points: {f.size}, a fit needs at least {MIN_POINTS}")
    if not np.all(np.isfinite(f)):
        raise CircuitFitError("frequencies contain NaN or inf")
    if not np.all(np.isfinite(z)):
        bad = int(np.count_nonzero(~np.isfinite(z)))
        raise CircuitFitError(f"impedance contains NaN or inf at {bad} point(s)")
    if np.any(f <= 0):
        raise CircuitFitError("frequencies must be > 0 Hz")
    steps = np.diff(f)
    if np.any(steps == 0):
        raise CircuitFitError("duplicate frequencies; each frequency may appear once")
    if not (np.all(steps < 0) or np.all(steps > 0)):
        raise CircuitFitError("frequencies must be sorted (strictly ascending or descending)")
    decades = math.log10(f.max() / f.min())
    if decades < MIN_DECADES:
        raise CircuitFitError(
            f"frequency range too narrow: {decades:.2f} decades, at least {MIN_DECADES} needed")
    if np.any(np.abs(z) == 0):
        raise CircuitFitError("impedance of exactly 0 ohm: the cell is shorted or not connected")


def _model(params: np.ndarray, n_arcs: int, tail: bool, f: np.ndarray) -> np.ndarray:
    """Return Z of R_s + n_arcs (R‖CPE) [+ CPE tail] for log-parameters ``params``."""
    z = np.full(f.shape, math.exp(params[0]), dtype=complex)
    for k in range(n_arcs):
        ln_r, ln_q, alpha = params[1 + 3 * k: 4 + 3 * k]
        z = z + z_r_cpe(math.exp(ln_r), math.exp(ln_q), alpha, f)
    if tail:
        z = z + z_cpe(math.exp(params[-2]), params[-1], f)
    return z


def _model_jacobian(params: np.ndarray, n_arcs: int, tail: bool, f: np.ndarray) -> np.ndarray:
    """Return dZ/dparams (complex, one column per parameter) of ``_model``."""
    jw_log = np.log(2.0 * np.pi * f) + 0.5j * math.pi          # ln(jω)
    jw = np.exp(jw_log)
    columns = [np.full(f.shape, math.exp(params[0]), dtype=complex)]
    for k in range(n_arcs):
        ln_r, ln_q, alpha = params[1 + 3 * k: 4 + 3 * k]
        r = math.exp(ln_r)
        u = r * math.exp(ln_q) * jw ** alpha
        denominator = (1.0 + u) ** 2
        columns += [r / denominator, -r * u / denominator, -r * u * jw_log / denominator]
    if tail:
        z_t = 1.0 / (math.exp(params[-2]) * jw ** params[-1])
        columns += [-z_t, -z_t * jw_log]
    return np.column_stack(columns)


def _initial_guess(f: np.ndarray, z: np.ndarray, n_arcs: int, tail: bool) -> np.ndarray:
    """Return starting log-parameters from the intercepts and arc apexes of the data."""
    order = np.argsort(f)[::-1]                 # descending frequency
    f_d, z_d = f[order], z[order]
    r_hf = max(float(z_d.real[0]), 1e-3 * float(np.abs(z_d).max()), 1e-6)
    minus_im = -z_d.imag
    if tail:
        # the arc/tail junction: the last local minimum of −Z'' before the low-frequency end
        low = int(np.argmin(minus_im[len(minus_im) // 2:])) + len(minus_im) // 2
        r_lf = float(z_d.real[low])
    else:
        r_lf = float(z_d.real[-1])
    r_arcs = max(r_lf - r_hf, 1e-3 * r_hf)
    # apex candidates: local maxima of −Z'' (descending frequency), else log-spread guesses
    peaks = [i for i in range(1, len(minus_im) - 1)
             if minus_im[i] > 0 and minus_im[i] >= max(minus_im[i - 1], minus_im[i + 1])]
    peaks = sorted(peaks, key=lambda i: minus_im[i], reverse=True)[:n_arcs]
    peak_f = [float(f_d[i]) for i in peaks]
    spread = np.logspace(math.log10(f.max()), math.log10(f.min()), n_arcs + 2)[1:-1]
    for candidate in spread:
        if len(peak_f) == n_arcs:
            break
        peak_f.append(float(candidate) * (1.0 + 1e-3 * len(peak_f)))
    peak_f = sorted(peak_f, reverse=True)
    shares = np.ones(n_arcs) / n_arcs
    params = [math.log(r_hf)]
    alpha = 0.9
    for k, apex_hz in enumerate(peak_f[:n_arcs]):
        r_k = r_arcs * shares[k]
        q_k = 1.0 / (r_k * (2.0 * math.pi * apex_hz) ** alpha)
        params += [math.log(r_k), math.log(q_k), alpha]
    if tail:
        omega_min = 2.0 * math.pi * f.min()
        im_tail = max(float(minus_im[-1]), 1e-3 * r_hf)
        params += [math.log(1.0 / (im_tail * omega_min ** 0.7)), 0.7]
    return np.clip(np.array(params), *_bounds(n_arcs, tail))


def _bounds(n_arcs: int, tail: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (lower, upper) bounds of the log-parameters."""
    lower = [LN_R_BOUNDS[0]] + [LN_R_BOUNDS[0], LN_Q_BOUNDS[0], ALPHA_BOUNDS[0]] * n_arcs
    upper = [LN_R_BOUNDS[1]] + [LN_R_BOUNDS[1], LN_Q_BOUNDS[1], ALPHA_BOUNDS[1]] * n_arcs
    if tail:
        lower += [LN_Q_BOUNDS[0], ALPHA_BOUNDS[0]]
        upper += [LN_Q_BOUNDS[1], ALPHA_BOUNDS[1]]
    return np.array(lower), np.array(upper)


def _fit(f: np.ndarray, z: np.ndarray, n_arcs: int, tail: bool) -> _ArcFit:
    """Fit one candidate model and return its parameters, covariance and quality."""
    weight = 1.0 / np.abs(z)

    def residuals(params: np.ndarray) -> np.ndarray:
        diff = (_model(params, n_arcs, tail, f) - z) * weight
        return np.concatenate([diff.real, diff.imag])

    def jacobian(params: np.ndarray) -> np.ndarray:
        d = _model_jacobian(params, n_arcs, tail, f) * weight[:, None]
        return np.vstack([d.real, d.imag])

    x0 = _initial_guess(f, z, n_arcs, tail)
    lower, upper = _bounds(n_arcs, tail)
    x0 = np.minimum(np.maximum(x0, lower + 1e-9), upper - 1e-9)
    sol = least_squares(residuals, x0, jac=jacobian, bounds=(lower, upper), method="trf",
                        x_scale="jac", xtol=1e-9, ftol=1e-10, gtol=1e-9, max_nfev=600)
    r = sol.fun
    dof = max(r.size - sol.x.size, 1)
    s2 = float(r @ r) / dof
    jtj = sol.jac.T @ sol.jac
    cov = np.linalg.pinv(jtj) * s2
    # sort arcs by descending relaxation frequency so index 0 is the highest-frequency arc
    params = sol.x.copy()
    arcs = [(params[1 + 3 * k: 4 + 3 * k], k) for k in range(n_arcs)]
    apex = [relaxation_frequency_hz(math.exp(a[0]), math.exp(a[1]), a[2]) for a, _ in arcs]
    order = sorted(range(n_arcs), key=lambda k: apex[k], reverse=True)
    index = [0] + [1 + 3 * k + i for k in order for i in range(3)]
    if tail:
        index += [params.size - 2, params.size - 1]
    params = params[index]
    cov = cov[np.ix_(index, index)]
    return _ArcFit(n_arcs, params, cov, float(np.sqrt(np.mean(r ** 2)) * 100.0),
                   float(r @ r), tail)


def _arc_problem(fit: _ArcFit, f: np.ndarray) -> str:
    """Return why a candidate's arcs are not all distinct, measured processes ("" if they are).

    An arc counts when its resistance has a relative standard error below 50 %, its apex lies
    within the swept range (a factor 3 of margin below, ``APEX_ABOVE_RANGE_FACTOR`` above: the
    low-frequency shoulder of a higher arc still fixes its resistance) and neighbouring apexes
    are at least half a decade apart (two arcs at one apex are one distorted arc) [est].
    """
    apex_hz = []
    for k in range(fit.n_arcs):
        ln_r, ln_q, alpha = fit.params[1 + 3 * k: 4 + 3 * k]
        apex_hz.append(relaxation_frequency_hz(math.exp(ln_r), math.exp(ln_q), alpha))
        if math.sqrt(max(fit.cov[1 + 3 * k, 1 + 3 * k], 0.0)) > 0.5:
            return "ill-determined"
    if min(apex_hz) < f.min() / 3.0:
        return "below range"
    if max(apex_hz) > APEX_ABOVE_RANGE_FACTOR * f.max():
        return f"above range:{max(apex_hz):.3g}"
    pairs = zip(apex_hz[:-1], apex_hz[1:], strict=True)
    return "" if all(hi / lo >= math.sqrt(10.0) for hi, lo in pairs) else "overlapping"


def _effective_capacitance_f(r_ohm: float, q: float, alpha: float) -> float:
    """Return Q^(1/α)·R^((1−α)/α), the capacitance of an R‖CPE arc, F (Hsu & Mansfeld 2001)."""
    return q ** (1.0 / alpha) * r_ohm ** ((1.0 - alpha) / alpha)


def _std_of_sum(cov: np.ndarray, indices: list[int], values: list[float]) -> float:
    """Return the std of Σ values[i] where each value is exp of the parameter at indices[i]."""
    if not indices:
        return 0.0
    g = np.zeros(cov.shape[0])
    for i, v in zip(indices, values, strict=True):
        g[i] = v
    return float(math.sqrt(max(g @ cov @ g, 0.0)))


def fit_cell_spectrum(spectrum, electrode_area_m2: float | None = None,
                      r_ext_ohm: float | None = None, tail: bool = False,
                      max_arcs: int = 3,
                      kk_max_residual_pct: float = DEFAULT_MAX_RESIDUAL_PCT) -> CircuitFitResult:
    """Fit the symmetric-cell circuit to ``spectrum`` and return parameters with errors.

    ``spectrum`` is a ``press_cell.hardware.potentiostat_driver.Spectrum`` (overloaded points are
    dropped). ``electrode_area_m2`` (m²) gives the ASR; ``r_ext_ohm`` (Ω) is the known lead
    resistance used when the bulk arc lies above the measured range; ``tail`` adds a CPE
    tail; ``max_arcs`` (1..3) caps the number of R‖CPE arcs tried.
    """
    if electrode_area_m2 is not None and not (math.isfinite(electrode_area_m2)
                                              and electrode_area_m2 > 0):
        raise CircuitFitError(f"electrode_area_m2 must be > 0 m², got {electrode_area_m2!r}")
    if r_ext_ohm is not None and not (math.isfinite(r_ext_ohm) and r_ext_ohm >= 0):
        raise CircuitFitError(f"r_ext_ohm must be >= 0 ohm, got {r_ext_ohm!r}")
    if max_arcs not in (1, 2, 3):
        raise CircuitFitError(f"max_arcs must be 1, 2 or 3, got {max_arcs!r}")
    n_total = len(spectrum)
    valid = spectrum.valid_points()
    f, z = valid.frequency_hz, valid.z_ohm
    if len(valid) < n_total and len(valid) < MIN_POINTS:
        raise CircuitFitError(
            f"only {len(valid)} of {n_total} points are free of overload; at least {MIN_POINTS} "
            "are needed (choose a current range / amplitude that fits the cell)")
    validate_spectrum(f, z)

    candidates = [_fit(f, z, n, tail) for n in range(1, max_arcs + 1)]
    problems = {fit.n_arcs: _arc_problem(fit, f) if fit.n_arcs > 1 else ""
                for fit in candidates}
    fits = [fit for fit in candidates if not problems[fit.n_arcs]]
    best_rms = min(fit.rms_pct for fit in fits)
    chosen = next(fit for fit in fits
                  if fit.rms_pct <= MODEL_RMS_TOLERANCE * best_rms + MODEL_RMS_FLOOR_PCT)
    notes = []
    for fit in candidates:
        if problems[fit.n_arcs].startswith("above range") \
                and chosen.rms_pct > SHOULDER_NOTE_RMS_PCT and fit.rms_pct < 0.5 * chosen.rms_pct:
            apex = problems[fit.n_arcs].split(":")[1]
            notes.append(
                f"an arc above the sweep (apex ~{apex} Hz) is partly visible and left out; "
                "interface values may be biased by a few %: extend freq_max if you can")
            break
    return _result(chosen, f, z, n_total - len(valid), electrode_area_m2, r_ext_ohm,
                   kk_max_residual_pct, tuple(notes))


def _result(fit: _ArcFit, f: np.ndarray, z: np.ndarray, n_excluded: int,
            electrode_area_m2: float | None, r_ext_known: float | None,
            kk_max_residual_pct: float, notes: tuple = ()) -> CircuitFitResult:
    """Translate a chosen candidate into the labelled result."""
    p, cov = fit.params, fit.cov
    std_ln = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    nan = float("nan")
    arcs = []
    for k in range(fit.n_arcs):
        base = 1 + 3 * k
        arcs.append(dict(r=math.exp(p[base]), r_std=math.exp(p[base]) * std_ln[base],
                         q=math.exp(p[base + 1]), alpha=float(p[base + 2]), index=base))
    interface = arcs[-1]
    upper = arcs[:-1]
    labels = {"int": interface}
    if len(upper) == 2:
        labels["bulk"], labels["gb"] = upper
    elif len(upper) == 1:
        arc = upper[0]
        c_eff = _effective_capacitance_f(arc["r"], arc["q"], arc["alpha"])
        labels["bulk" if c_eff < BULK_GB_CAPACITANCE_SPLIT_F else "gb"] = arc
    r_s, r_s_std = math.exp(p[0]), math.exp(p[0]) * std_ln[0]
    bulk, gb = labels.get("bulk"), labels.get("gb")
    if bulk is not None:
        r_ext, r_ext_std = r_s, r_s_std
        r_bulk, r_bulk_std = bulk["r"], bulk["r_std"]
    else:
        r_ext = r_ext_known if r_ext_known is not None else nan
        r_ext_std = 0.0 if r_ext_known is not None else nan
        r_bulk = r_s - r_ext if r_ext_known is not None else nan
        r_bulk_std = r_s_std if r_ext_known is not None else nan
    r_gb, r_gb_std = (gb["r"], gb["r_std"]) if gb is not None else (nan, nan)
    indices = [0] + [a["index"] for a in arcs]
    values = [r_s] + [a["r"] for a in arcs]
    r_total = float(sum(values))
    r_total_std = _std_of_sum(cov, indices, values)
    r_int, r_int_std = interface["r"] / 2.0, interface["r_std"] / 2.0
    area = float(electrode_area_m2) if electrode_area_m2 is not None else nan
    kk = lin_kk(f, z, max_residual_pct=kk_max_residual_pct)
    return CircuitFitResult(
        r_ext_ohm=float(r_ext), r_ext_std_ohm=float(r_ext_std),
        r_bulk_ohm=float(r_bulk), r_bulk_std_ohm=float(r_bulk_std),
        r_gb_ohm=float(r_gb), r_gb_std_ohm=float(r_gb_std),
        r_int_ohm=r_int, r_int_std_ohm=r_int_std,
        r_series_ohm=r_s, r_series_std_ohm=r_s_std,
        r_total_ohm=r_total, r_total_std_ohm=r_total_std,
        q_bulk=bulk["q"] if bulk else nan, alpha_bulk=bulk["alpha"] if bulk else nan,
        q_gb=gb["q"] if gb else nan, alpha_gb=gb["alpha"] if gb else nan,
        q_int=interface["q"], alpha_int=interface["alpha"],
        q_tail=math.exp(p[-2]) if fit.tail else nan, alpha_tail=float(p[-1]) if fit.tail else nan,
        bulk_resolved=bulk is not None, gb_resolved=gb is not None,
        chi_square=fit.chi_square, rms_residual_pct=fit.rms_pct,
        kk_ok=kk.passed, kk_max_residual_pct=kk.max_abs_residual_pct,
        n_points=int(f.size), n_excluded=int(n_excluded), electrode_area_m2=area,
        asr_int_ohm_m2=r_int * area, asr_int_std_ohm_m2=r_int_std * area,
        asr_int_ohm_cm2=r_int * area / M2_PER_CM2,
        asr_int_std_ohm_cm2=r_int_std * area / M2_PER_CM2, notes=notes)
