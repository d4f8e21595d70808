"""Report of a recorded run: a text table, CSV and JSON of the per-cycle metrics, PNG plots.

Plots (matplotlib, Agg canvas, no display needed): pressure and setpoint against time with the
tolerance band of each hold; ram travel; resistance against stack pressure (each spectrum
fitted with ``circuit_fit.fit_cell_spectrum``); Nyquist plot of every spectrum. A plot whose
data are not in the bag is not drawn and the report says so.
Long traces are drawn as a min/max envelope per pixel column, so peaks are never lost.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from press_cell.analysis.circuit_fit import CircuitFitError, fit_cell_spectrum
from press_cell.analysis.cycles import find_measurements
from press_cell.analysis.metrics import CycleResult
from press_cell.analysis.run import Run
from press_cell.hardware.potentiostat_driver import Spectrum as DriverSpectrum

logger = logging.getLogger(__name__)

#: Points per drawn trace; longer traces are reduced to a min/max envelope.
MAX_PLOT_POINTS = 4000
_MPA = 1e-6


@dataclass
class ReportFiles:
    """Paths of what ``write_report`` produced, and what it had to leave out."""

    csv: Path
    json: Path
    table: Path
    plots: dict[str, Path] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)   # plot name -> reason


def _envelope(t: np.ndarray, y: np.ndarray, points: int = MAX_PLOT_POINTS):
    """Reduce a long trace to a min/max envelope of about ``points`` points."""
    if len(t) <= points:
        return t, y
    bucket = int(math.ceil(len(t) / (points // 2)))
    usable = len(t) // bucket * bucket
    tb = t[:usable].reshape(-1, bucket)
    yb = y[:usable].reshape(-1, bucket)
    lo_i = np.argmin(yb, axis=1)
    hi_i = np.argmax(yb, axis=1)
    rows = np.arange(len(yb))
    first = np.minimum(lo_i, hi_i)
    second = np.maximum(lo_i, hi_i)
    t_out = np.column_stack([tb[rows, first], tb[rows, second]]).ravel()
    y_out = np.column_stack([yb[rows, first], yb[rows, second]]).ravel()
    return t_out, y_out


def certificate_row(result: CycleResult) -> dict:
    """Flatten one result into a CSV/JSON row (loop timing as ``loop_timing.<name>``)."""
    cert = asdict(result.certificate)
    timing = cert.pop("loop_timing")
    row = {"cycle": result.cycle.index, "method": result.method,
           "ended_by": result.cycle.ended_by, **cert}
    row.update({f"loop_timing.{k}": v for k, v in timing.items()})
    return row


def format_table(results: list[CycleResult]) -> str:
    """Return a fixed-width text table of the cycles (lab units: MPa, %, s, um)."""
    header = (f"{'cycle':>5} {'start s':>9} {'dur s':>7} {'target':>8} {'peak':>8} "
              f"{'mean':>8} {'std kPa':>8} {'ovs %':>6} {'settle':>7} {'in band':>7} "
              f"{'ramp err':>8} {'travel':>8}  ended by")
    units = (f"{'':>5} {'':>9} {'':>7} {'MPa':>8} {'MPa':>8} {'MPa':>8} {'':>8} {'':>6} "
             f"{'s':>7} {'%':>7} {'%':>8} {'um':>8}")
    lines = [header, units]
    t0 = results[0].cycle.start_s if results else 0.0

    def num(value: float, scale: float = 1.0, fmt: str = ".3f") -> str:
        return "-" if value is None or not math.isfinite(value) else format(value * scale, fmt)

    for r in results:
        c = r.certificate
        lines.append(
            f"{r.cycle.index:>5} {r.cycle.start_s - t0:>9.2f} {num(c.duration, 1, '.2f'):>7} "
            f"{num(c.target_pressure, _MPA):>8} {num(c.peak_pressure, _MPA):>8} "
            f"{num(c.mean_hold_pressure, _MPA):>8} {num(c.hold_pressure_std, 1e-3, '.1f'):>8} "
            f"{num(c.overshoot_fraction, 100, '.2f'):>6} {num(c.settling_time, 1, '.3f'):>7} "
            f"{num(c.fraction_in_band, 100, '.2f'):>7} {num(c.ramp_rate_error, 100, '.2f'):>8} "
            f"{num(c.ram_travel, 1e6, '.1f'):>8}  {r.cycle.ended_by}"
        )
    return "\n".join(lines)


def _json_safe(value):
    """Replace NaN/inf by None and numpy scalars by Python numbers, recursively."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _new_figure(width_in: float = 9.0, height_in: float = 4.5):
    fig = Figure(figsize=(width_in, height_in), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _plot_pressure(run: Run, results: list[CycleResult], path: Path) -> str | None:
    """Draw pressure (+ setpoint and hold bands); return a reason when nothing to draw."""
    state, pressure = run.press_state, run.pressure
    traces = [rt for rt in run.traces if len(rt.trace)] if run.traces else []
    if traces:      # every loop sample of each cycle: nothing lost to decimation or discovery
        t = np.concatenate([rt.trace.time_s for rt in traces])
        p = np.concatenate([rt.trace.pressure_pa for rt in traces])
        sp = np.concatenate([rt.trace.setpoint_pa for rt in traces])
    elif state is not None and len(state["time_s"]):
        t, p, sp = state["time_s"], state["pressure_pa"], state["setpoint_pa"]
    elif pressure is not None and len(pressure["time_s"]):
        t, p, sp = pressure["time_s"], pressure["pressure_pa"], None
    else:
        return "no pressure telemetry in the bag"
    t0 = t[0]
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(*_envelope(t - t0, p * _MPA), lw=0.8, label="measured pressure")
    if sp is not None:
        ax.plot(*_envelope(t - t0, sp * _MPA), lw=0.8, ls="--", label="setpoint")
    band_labelled = False
    bands = [b for rt in traces for b in _trace_hold_bands(rt)] if traces else \
        [b for r in results for b in _hold_bands(run, r)]
    for lo, hi, level, band in bands:
        ax.fill_between([lo - t0, hi - t0], (level - band) * _MPA, (level + band) * _MPA,
                        color="tab:green", alpha=0.25,
                        label=None if band_labelled else "tolerance band")
        band_labelled = True
    clock = "press loop clock" if traces else "epoch"
    ax.set_xlabel(f"time since {t0:.3f} s ({clock}) [s]")
    ax.set_ylabel("die pressure [MPa]")
    ax.set_title(f"{run.path.name}: pressure")
    fig.legend(loc="outside lower center", ncols=3)
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return None


def _trace_hold_bands(recorded):
    """Yield ``(t_start, t_end, level_pa, band_pa)`` for each hold of a recorded PressTrace."""
    trace = recorded.trace
    for i, segment in enumerate(recorded.segments):
        in_segment = trace.segment_index == i
        if segment.kind == "hold" and in_segment.any():
            ts = trace.time_s[in_segment]
            yield ts[0], ts[-1], segment.target_pressure_pa, segment.tolerance_pa


def _hold_bands(run: Run, result: CycleResult):
    """Yield ``(t_start, t_end, level_pa, band_pa)`` for each hold of a cycle."""
    cycle = result.cycle
    if result.segments and run.press_state is not None:
        state = run.press_state
        seg = state["segment_index"][cycle.first:cycle.stop]
        t = state["time_s"][cycle.first:cycle.stop]
        for i, segment in enumerate(result.segments):
            if segment.kind == "hold" and (seg == i).any():
                ts = t[seg == i]
                yield ts[0], ts[-1], segment.target_pressure_pa, segment.tolerance_pa
    elif "plateau_start_s" in result.extra:
        e = result.extra
        yield e["plateau_start_s"], e["plateau_end_s"], e["plateau_level_pa"], e["band_pa"]


def _plot_ram(run: Run, path: Path) -> str | None:
    state = run.press_state
    if state is None or not len(state["time_s"]):
        return "no PressState: ram position is not in standard messages"
    t = state["time_s"]
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.plot(*_envelope(t - t[0], state["ram_position_m"] * 1e3), lw=0.8)
    ax.set_xlabel("time [s]")
    ax.set_ylabel("ram position [mm] (down positive)")
    ax.set_title(f"{run.path.name}: ram travel")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return None


def _low_frequency_resistance(spectrum) -> float:
    """Return Z' at the lowest measured frequency, ohm (the cell's DC resistance estimate)."""
    if not len(spectrum.frequency_hz):
        return math.nan
    return float(spectrum.z_real_ohm[int(np.argmin(spectrum.frequency_hz))])


def spectrum_fits(run: Run) -> list[dict]:
    """Fit every recorded spectrum with ``circuit_fit.fit_cell_spectrum``; one dict each.

    A spectrum that cannot be fitted gets ``{"error": reason}``; the report goes on.
    """
    out = []
    for spectrum in run.spectra:
        try:
            fit = fit_cell_spectrum(DriverSpectrum(
                frequency_hz=spectrum.frequency_hz, z_real_ohm=spectrum.z_real_ohm,
                z_imag_ohm=spectrum.z_imag_ohm, amplitude_v=spectrum.amplitude_v))
        except (CircuitFitError, ValueError) as exc:
            out.append({"error": str(exc)})
            continue
        out.append({"r_total_ohm": fit.r_total_ohm, "r_total_std_ohm": fit.r_total_std_ohm,
                    "r_series_ohm": fit.r_series_ohm, "r_int_ohm": fit.r_int_ohm,
                    "r_int_std_ohm": fit.r_int_std_ohm, "rms_residual_pct": fit.rms_residual_pct,
                    "kk_ok": fit.kk_ok, "notes": list(fit.notes)})
    return out


def _plot_r_vs_pressure(run: Run, fits: list[dict], path: Path) -> str | None:
    points = [(s.stack_pressure_pa, fit.get("r_total_ohm", _low_frequency_resistance(s)))
              for s, fit in zip(run.spectra, fits, strict=True)
              if math.isfinite(s.stack_pressure_pa)]
    monitor = run.monitor
    has_monitor = monitor is not None and len(monitor["time_s"]) > 0
    if not points and not has_monitor:
        return "no impedance spectra or monitor samples with a stack pressure"
    fig = _new_figure(6.0, 4.5)
    ax = fig.add_subplot()
    if points:
        x, y = np.array(points).T
        ax.plot(x * _MPA, y, "o-", label="spectrum: fitted R_total (else Z' at f_min)")
    if has_monitor:
        ax.plot(monitor["stack_pressure_pa"] * _MPA, monitor["r_interface_ohm"], "s",
                ms=4, label="monitor: R_interface")
    ax.set_xlabel("stack pressure [MPa]")
    ax.set_ylabel("resistance [ohm]")
    ax.set_title(f"{run.path.name}: resistance vs stack pressure")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return None


def _plot_nyquist(run: Run, path: Path) -> str | None:
    if not run.spectra:
        return "no impedance spectra in the bag"
    fig = _new_figure(6.0, 5.0)
    ax = fig.add_subplot()
    for i, s in enumerate(run.spectra):
        label = f"#{i}" + (f" at {s.stack_pressure_pa * _MPA:.1f} MPa"
                           if math.isfinite(s.stack_pressure_pa) else "")
        ax.plot(s.z_real_ohm, -s.z_imag_ohm, ".-", ms=3, label=label)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("Z' [ohm]")
    ax.set_ylabel("-Z'' [ohm]")
    ax.set_title(f"{run.path.name}: Nyquist")
    if len(run.spectra) <= 12:
        ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.savefig(path)
    return None


def write_report(run: Run, out_dir: str | Path,
                 results: list[CycleResult] | None = None) -> ReportFiles:
    """Write ``cycles.csv``, ``report.json``, ``table.txt`` and the PNG plots to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = run.cycle_results() if results is None else results
    rows = [certificate_row(r) for r in results]
    files = ReportFiles(csv=out / "cycles.csv", json=out / "report.json",
                        table=out / "table.txt")
    with files.csv.open("w", newline="") as stream:
        columns = list(rows[0]) if rows else ["cycle"]
        writer = csv.DictWriter(stream, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    files.table.write_text(format_table(results) + "\n")
    fits = spectrum_fits(run)
    plotters = {
        "pressure": lambda p: _plot_pressure(run, results, p),
        "ram_travel": lambda p: _plot_ram(run, p),
        "r_vs_stack_pressure": lambda p: _plot_r_vs_pressure(run, fits, p),
        "nyquist": lambda p: _plot_nyquist(run, p),
    }
    for name, plot in plotters.items():
        path = out / f"{name}.png"
        reason = plot(path)
        if reason is None:
            files.plots[name] = path
        else:
            files.skipped[name] = reason
    measurements = find_measurements(run, [r.cycle for r in results])
    document = {
        "bag": str(run.path),
        "storage": run.storage,
        "recording": asdict(run.info),
        "problems": run.problems,
        "topics": {name: {"type": t.msgtype, "messages": t.message_count}
                   for name, t in run.topics.items()},
        "cycles": [
            {**row, "cycle_info": asdict(r.cycle), "notes": list(r.notes), "extra": r.extra,
             "segments": [asdict(s) for s in r.segments]}
            for row, r in zip(rows, results, strict=True)
        ],
        "measurements": [{**asdict(m), "fit": fits[m.spectrum_index]} for m in measurements],
        "plots": {k: str(v) for k, v in files.plots.items()},
        "plots_skipped": files.skipped,
    }
    files.json.write_text(json.dumps(_json_safe(document), indent=2))
    logger.info("report for %s written to %s", run.path, out)
    return files
