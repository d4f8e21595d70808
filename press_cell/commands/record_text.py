"""Human-readable text of a CellRecord (used by `press-cell assemble` and `press-cell demo`)."""

import math


def _mpa(value_pa):
    return f"{value_pa / 1e6:8.2f} MPa" if math.isfinite(value_pa) else "       n/a"


def certificate_line(cert) -> str:
    """Return one line summarising a PressCertificate message."""
    in_band = cert.fraction_in_band * 100 if math.isfinite(cert.fraction_in_band) else math.nan
    return (f"  {cert.step_name or cert.part_id:12s} target {_mpa(cert.target_pressure)}  "
            f"hold mean {_mpa(cert.mean_hold_pressure)} sd {cert.hold_pressure_std / 1e6:.3f} "
            f"MPa  in band {in_band:5.1f} %  overshoot {cert.overshoot_fraction * 100:.2f} %  "
            f"settle {cert.settling_time:.2f} s  ramp err {cert.ramp_rate_error * 100:+.2f} %  "
            f"peak {cert.peak_force / 1e3:.2f} kN")


def record_text(record, error_code=None, error_msg="") -> str:
    """Return a multi-line summary of a CellRecord message."""
    verdict = "PASS" if record.passed else ("FAIL" if not record.failed_step else "NOT JUDGED")
    lines = [f"{record.cell_id}  recipe {record.recipe_name}  {verdict}  "
             f"({record.duration:.1f} s wall)"]
    lines += [certificate_line(cert) for cert in record.certificates]
    if record.placed_components:
        lines.append("  placed      " + ", ".join(record.placed_components))
    fit = record.fit
    if record.spectrum.frequency:
        lines.append(f"  impedance   {len(record.spectrum.frequency)} points, R_total "
                     f"{fit.r_total:.1f} ohm, R_bulk {fit.r_bulk:.1f} ohm, R_int "
                     f"{fit.r_interface:.2f} ± {fit.r_interface_std:.2f} ohm per interface, "
                     f"ASR {fit.asr_interface_ohm_cm2:.2f} ohm cm^2, KK "
                     f"{'ok' if fit.kk_consistent else 'FAILED'}")
    lines.append(f"  verdict     {record.verdict}")
    if record.failed_step:
        lines.append(f"  failed step {record.failed_step}")
    if error_code and error_msg and error_msg not in record.verdict:
        lines.append(f"  error       {error_code}: {error_msg}")
    if record.bag_path:
        lines.append(f"  bag         {record.bag_path}")
    return "\n".join(lines)
