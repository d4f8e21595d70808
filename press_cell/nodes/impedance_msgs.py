"""Convert impedance core results to press_cell messages (SI at the boundary, Ω·cm² beside Ω·m²).

``Spectrum`` (hardware/potentiostat_driver.py) -> ``ImpedanceSpectrum``;
``CircuitFitResult`` (analysis/circuit_fit.py) -> ``CircuitFit``; one monitored point ->
``ImpedanceSample``. No physics here: every number comes from the core.
"""

import math

from press_cell.analysis.circuit_fit import CircuitFitResult
from press_cell.hardware.potentiostat_driver import Spectrum
from press_cell.msg import CircuitFit, ImpedanceSample, ImpedanceSpectrum

PERCENT = 100.0


def spectrum_to_msg(spectrum: Spectrum, cell_id: str, stack_pressure_pa: float,
                    stamp) -> ImpedanceSpectrum:
    """Return the ImpedanceSpectrum of ``spectrum``; ``stack_pressure_pa`` NaN when unknown."""
    msg = ImpedanceSpectrum(cell_id=cell_id, amplitude=float(spectrum.amplitude_v),
                            stack_pressure=float(stack_pressure_pa),
                            overload=bool(spectrum.any_overload))
    msg.header.stamp = stamp
    msg.frequency = [float(v) for v in spectrum.frequency_hz]
    msg.z_real = [float(v) for v in spectrum.z_real_ohm]
    msg.z_imag = [float(v) for v in spectrum.z_imag_ohm]
    return msg


def fit_model_text(fit: CircuitFitResult) -> str:
    """Return the fitted circuit in words, naming arcs lumped into the series resistance."""
    parts = ["R_ext"]
    parts.append("(R_bulk|CPE)" if fit.bulk_resolved else "R_bulk")
    if fit.gb_resolved:
        parts.append("(R_gb|CPE)")
    parts.append("(2 R_int|CPE)")
    if math.isfinite(fit.q_tail):
        parts.append("CPE_tail")
    text = " + ".join(parts)
    if not fit.gb_resolved:
        text += "; R_gb not resolved (in R_bulk)"
    if not fit.bulk_resolved:
        text += "; bulk arc above the sweep (R_bulk = R_series - R_ext)"
    return text


def fit_to_msg(fit: CircuitFitResult) -> CircuitFit:
    """Return the CircuitFit message of a fit result (relative figures as fractions, not %)."""
    return CircuitFit(
        model=fit_model_text(fit),
        r_ext=fit.r_ext_ohm, r_ext_std=fit.r_ext_std_ohm,
        r_bulk=fit.r_bulk_ohm, r_bulk_std=fit.r_bulk_std_ohm,
        r_grain_boundary=fit.r_gb_ohm, r_grain_boundary_std=fit.r_gb_std_ohm,
        r_interface=fit.r_int_ohm, r_interface_std=fit.r_int_std_ohm,
        r_total=fit.r_total_ohm, electrode_area=fit.electrode_area_m2,
        asr_interface=fit.asr_int_ohm_m2, asr_interface_ohm_cm2=fit.asr_int_ohm_cm2,
        cpe_q=[float(fit.q_bulk), float(fit.q_gb), float(fit.q_int)],
        cpe_alpha=[float(fit.alpha_bulk), float(fit.alpha_gb), float(fit.alpha_int)],
        chi_square=fit.chi_square, rms_residual=fit.rms_residual_pct / PERCENT,
        kk_consistent=bool(fit.kk_ok), kk_residual_max=fit.kk_max_residual_pct / PERCENT)


def sample_to_msg(freq_hz: float, z_ohm: complex, r_interface_ohm: float,
                  stack_pressure_pa: float, stamp) -> ImpedanceSample:
    """Return the ImpedanceSample of one monitored point."""
    msg = ImpedanceSample(frequency=float(freq_hz), z_real=float(z_ohm.real),
                          z_imag=float(z_ohm.imag), modulus=float(abs(z_ohm)),
                          r_interface=float(r_interface_ohm),
                          stack_pressure=float(stack_pressure_pa))
    msg.header.stamp = stamp
    return msg
