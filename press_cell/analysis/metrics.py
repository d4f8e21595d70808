"""Per-cycle certificate metrics from a recorded trace.

With a recorded ``PressTrace`` (every loop sample of the cycle, the profile as laid out with its
tolerance bands, and the live certificate) the certificate is recomputed by
``compute_certificate`` from exactly the samples and profile the press used, so it reproduces
the live certificate; ``CycleResult.extra`` then holds the live certificate and any figure that
differs from it (``trace_result``). Identification fields, thicknesses (a probe reading, not in
the samples) and loop timing are taken from the live certificate.

Otherwise, with press_cell telemetry the certificate is computed by the *same code* the press
node runs live (``press_cell.control.certificate.compute_certificate``) on the PressState samples
of the cycle, so the numbers agree with the live certificate within rounding. The profile it
needs is rebuilt from the trace: segment kinds from the phase, levels and rates from the setpoint
(exact, the setpoint is piecewise linear). Tolerance bands are not in PressState: they come from
the caller (``segments``, a recipe book that names the cycle's recipe, or ``tolerance_frac``,
default the recipes' 2 %). Identification fields (part id, step, material, recipe hash,
calibration, thicknesses) come from a recorded CellRecord certificate that started at the same
time, else from the bag's custom metadata (the recipe hash then is the live default: the hash
of the rebuilt profile).

Without press_cell types (FluidPressure/WrenchStamped only) there is no setpoint: the hold is
detected as the plateau of the pressure and the certificate carries only what the pressure
and force show (peak, plateau statistics, achieved ramp rate); the rest is NaN.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from press_cell.analysis.cycles import Cycle, find_cycles
from press_cell.control.certificate import PressCertificate, PressTrace, compute_certificate
from press_cell.control.loop_runner import LoopTiming
from press_cell.control.profile import Phase, PressProfile, ProfileError
from press_cell.recipes.segments import Segment, recipe_segments

if TYPE_CHECKING:
    from press_cell.analysis.run import Run

#: Hold band half-width when the caller gives none: the recipes' default tolerance_pct of 2 %
#: (config/recipes.yaml).
DEFAULT_TOLERANCE_FRAC = 0.02

_KIND = {int(Phase.RAMP): "ramp", int(Phase.HOLD): "hold", int(Phase.RELEASE): "release"}

#: Significant digits kept of rebuilt segment values: removes fit noise (~1e-12 relative), keeps
#: every digit a recipe written in lab units has.
SEGMENT_DIGITS = 9

#: Decimals (s) kept of a rebuilt hold duration: 1 us, far above the rounding of sample times.
HOLD_DURATION_DECIMALS = 6

#: A CellRecord certificate belongs to a cycle when their start times differ by less than this, s.
_MATCH_S = 0.5


class MetricsError(ValueError):
    """A cycle's metrics cannot be computed (e.g. its segments cannot be rebuilt)."""


@dataclass(frozen=True)
class CycleResult:
    """The metrics of one cycle and how they were obtained."""

    cycle: Cycle
    certificate: PressCertificate
    method: str                          # "live certificate code" or "pressure plateau"
    segments: tuple = ()                 # the profile used (rebuilt or given)
    extra: dict = field(default_factory=dict)   # e.g. plateau level, release rate
    notes: tuple = ()                    # what was assumed or missing


def _line(t: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Return slope and intercept of a least-squares line (slope 0 for one sample)."""
    if len(t) < 2:
        return 0.0, float(y[0])
    slope, intercept = np.polyfit(t - t[0], y, 1)
    return float(slope), float(intercept - slope * t[0])


def _round_lab(value_pa: float) -> float:
    """Round a pressure (Pa) or rate (Pa/s) in MPa and convert back as the recipe loader does.

    Recipes are written in MPa and converted once with ``* 1e6``; rounding in those units
    gives back the very float a recipe value becomes (8.2 MPa/s -> 8199999.999999999 Pa/s).
    """
    return _round_sig(value_pa / 1e6) * 1e6


def _shortest_between(a_pa: float, b_pa: float) -> float:
    """Return the value in [a, b] (Pa) with the fewest significant digits in MPa."""
    lo, hi = sorted((a_pa / 1e6, b_pa / 1e6))
    middle = 0.5 * (lo + hi)
    for digits in range(1, SEGMENT_DIGITS + 1):
        candidate = _round_sig(middle, digits)
        if lo <= candidate <= hi:
            return candidate * 1e6
    return middle * 1e6


def _round_sig(value: float, digits: int = SEGMENT_DIGITS) -> float:
    """Round to ``digits`` significant digits (removes the fit's float noise)."""
    return float(f"{value:.{digits}g}")


def segments_from_trace(time_s: np.ndarray, setpoint_pa: np.ndarray, phase: np.ndarray,
                        segment_index: np.ndarray,
                        tolerance_frac: float = DEFAULT_TOLERANCE_FRAC) -> tuple[list, float]:
    """Rebuild the profile segments of one cycle from its samples (``time_s`` from any origin).

    Kinds come from the phase, levels and rates from least-squares lines through the (piecewise
    linear) setpoint, hold durations from where the neighbouring ramp lines meet the hold level;
    values are rounded to ``SEGMENT_DIGITS`` significant digits, so a recipe with round numbers
    is rebuilt exactly (and hashes like the live one). Returns ``(segments, start_pressure_pa)``.
    Raises ``MetricsError`` when a segment has no samples (its level and rate are unknown).
    """
    count = int(segment_index.max()) + 1
    rows = [np.flatnonzero(segment_index == i) for i in range(count)]
    if missing := [i for i, r in enumerate(rows) if len(r) == 0]:
        raise MetricsError(f"segments {missing} have no samples; pass the segments explicitly")
    kinds = []
    for i, r in enumerate(rows):
        phases = [int(x) for x in phase[r] if int(x) in _KIND]
        if not phases:
            raise MetricsError(f"segment {i} has no ramp/hold/release phase samples")
        kinds.append(_KIND[max(set(phases), key=phases.count)])
    fits = [_line(time_s[r], setpoint_pa[r]) for r in rows]
    dt = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 0.0
    start_pa = max(0.0, _round_lab(float(setpoint_pa[rows[0][0]])))

    # Levels: holds keep their setpoint; a ramp ends at the next hold's level, at 0 for the
    # final release, else where its line meets the next line.
    levels = []
    for i, kind in enumerate(kinds):
        slope, intercept = fits[i]
        if kind == "hold":
            target = float(np.median(setpoint_pa[rows[i]]))
        elif i + 1 < count and kinds[i + 1] == "hold":
            target = float(np.median(setpoint_pa[rows[i + 1]]))
        elif kind == "release" and i + 1 == count:
            target = 0.0
        elif i + 1 < count and abs(fits[i + 1][0] - slope) > 1e-9 * max(abs(slope), 1.0):
            t_cross = (fits[i + 1][1] - intercept) / (slope - fits[i + 1][0])
            target = slope * t_cross + intercept
        elif i + 1 < count:
            # Same rate on both sides: the level lies between the last sample of this segment
            # and the first of the next; recipes are written in few digits, so take the
            # shortest MPa value in between.
            target = _shortest_between(float(setpoint_pa[rows[i][-1]]),
                                       float(setpoint_pa[rows[i + 1][0]]))
        else:
            target = float(setpoint_pa[rows[i][-1]])
        levels.append(max(0.0, _round_lab(target)))

    def crossing(i: int, level_pa: float) -> float:
        """Return when the line of ramp/release ``i`` passes ``level_pa``, s."""
        slope, intercept = fits[i]
        return (level_pa - intercept) / slope if slope else float(time_s[rows[i][0]])

    segments = []
    level = start_pa
    for i, kind in enumerate(kinds):
        target = levels[i]
        if kind == "hold":
            begin = crossing(i - 1, target) if i > 0 and kinds[i - 1] != "hold" else float(
                time_s[rows[i][0]])
            if i + 1 < count and kinds[i + 1] != "hold":
                end = crossing(i + 1, target)
            else:
                end = float(time_s[rows[i][-1]]) + dt
            # Keep whole microseconds: removes the rounding of the sample times.
            duration = _round_sig(round(max(end - begin, dt), HOLD_DURATION_DECIMALS))
            segments.append(Segment("hold", target, 0.0, duration, tolerance_frac * target))
        else:
            rate = _round_lab(abs(fits[i][0])) if fits[i][0] else 1.0
            band_from = level if kind == "release" else target
            segments.append(Segment(kind, target, rate, abs(target - level) / rate,
                                    tolerance_frac * band_from))
        level = target
    return segments, start_pa


def _loop_timing(run: Run, receive_end_s: float) -> LoopTiming | None:
    """Return the last ControllerTiming received by ``receive_end_s`` as a ``LoopTiming``.

    Receive times (one recorder clock) align topics whose header stamps may come from
    different clocks.
    """
    timing = run.timing
    if timing is None or not len(timing["time_s"]):
        return None
    k = int(np.searchsorted(timing["receive_time_s"], receive_end_s, side="right")) - 1
    if k < 0:
        return None
    names = {f.name for f in dataclasses.fields(LoopTiming)}
    values = {}
    for column, array in timing.items():
        name = column.removesuffix("_hz").removesuffix("_s")
        if name in names:
            value = array[k]
            values[name] = bool(value) if array.dtype == bool else (
                int(value) if array.dtype.kind in "iu" else float(value))
    return LoopTiming(**values)


def _recorded_meta(run: Run, start_s: float) -> dict:
    """Return identification fields from a CellRecord certificate that started at ``start_s``."""
    for record in run.cell_records:
        for cert in record.certificates:
            started = cert.started.sec + cert.started.nanosec * 1e-9
            if abs(started - start_s) < _MATCH_S:
                return {
                    "part_id": cert.part_id, "step_name": cert.step_name,
                    "recipe_name": cert.recipe_name, "recipe_hash": cert.recipe_hash,
                    "calibration_id": cert.calibration_id, "material": cert.material,
                    "thickness_start": cert.thickness_start, "thickness_end": cert.thickness_end,
                }
    return {}


def press_state_result(run: Run, cycle: Cycle, *, segments=None,
                       tolerance_frac: float = DEFAULT_TOLERANCE_FRAC,
                       recipe_book=None) -> CycleResult:
    """Compute the certificate of a PressState cycle with the live certificate code.

    The profile is, in order of preference: ``segments``; the press recipe of that name in
    ``recipe_book`` (a ``recipes.RecipeBook``; name from the CellRecord certificate, else the
    bag's recipe name); segments rebuilt from the trace with ``tolerance_frac``.
    """
    state = run.press_state
    sl = slice(cycle.first, cycle.stop)
    trace = PressTrace(
        time_s=state["time_s"][sl], setpoint_pa=state["setpoint_pa"][sl],
        pressure_pa=state["pressure_pa"][sl], force_n=state["force_n"][sl],
        ram_position_m=state["ram_position_m"][sl], demand=state["valve_command"][sl],
        phase=state["phase"][sl].astype(int), segment_index=state["segment_index"][sl].astype(int),
    )
    notes = []
    recorded = _recorded_meta(run, cycle.start_s)
    recipe_name = recorded.get("recipe_name") or run.info.recipe_name
    press_recipes = getattr(recipe_book, "press", None) or {}
    if segments is None and recipe_name in press_recipes:
        start_pa = max(0.0, float(trace.setpoint_pa[0]))
        segments = recipe_segments(press_recipes[recipe_name], start_pressure_pa=start_pa)
        notes.append(f"segments from press recipe {recipe_name!r} of the recipe book")
    elif segments is None:
        # Exact relative times: float64 epoch seconds carry ~2.4e-7 s of rounding.
        time_ns = state["time_ns"][sl]
        segments, start_pa = segments_from_trace((time_ns - time_ns[0]) * 1e-9,
                                                 trace.setpoint_pa, trace.phase,
                                                 trace.segment_index, tolerance_frac)
        notes.append(f"segments rebuilt from the setpoint; tolerance {tolerance_frac * 100:g} % "
                     "of each level (PressState carries no tolerance)")
    else:
        start_pa = max(0.0, float(trace.setpoint_pa[0]))
    if not cycle.completed and (segments[-1].kind != "release"
                                or segments[-1].target_pressure_pa != 0.0):
        # An aborted cycle's profile stops part-way; close it with a release so the profile is
        # valid. Figures of the visited segments are unaffected; segments never reached are
        # unknown, so the principal hold is the longest *visited* hold.
        last_rate = max((s.rate_pa_s for s in segments if s.kind != "hold"), default=1e6)
        level = segments[-1].target_pressure_pa
        if level > 0.0:
            segments = [*segments, Segment("release", 0.0, last_rate, level / last_rate,
                                           tolerance_frac * level)]
        notes.append(f"cycle ended by {cycle.ended_by}: certificate over the segments reached")
    try:
        profile = PressProfile(segments, start_pressure_pa=start_pa)
    except ProfileError as exc:
        raise MetricsError(f"cycle {cycle.index}: the profile is not valid ({exc})") from exc
    area = float(np.median(state["contact_area_m2"][sl]))
    meta = recorded
    if not meta:
        info = run.info
        meta = {"recipe_name": info.recipe_name, "calibration_id": info.calibration_id,
                "part_id": info.cell_id}
        notes.append("no CellRecord certificate for this cycle: ids from the bag metadata, "
                     "recipe hash from the profile")
    timing = _loop_timing(run, float(state["receive_time_s"][cycle.stop - 1]))
    if timing is None:
        notes.append("no ControllerTiming recorded: loop timing left empty")
    certificate = compute_certificate(trace, profile, area, loop_timing=timing, **meta)
    return CycleResult(cycle=cycle, certificate=certificate, method="live certificate code",
                       segments=tuple(segments), notes=tuple(notes))


#: A recomputed figure equals the live one when they differ by at most this, relative (float
#: rounding only; a real disagreement is many orders larger).
LIVE_MATCH_RELATIVE = 1e-9

#: A setpoint step follows the ramp line when it matches rate * dt this closely (relative):
#: loose enough for loop times of epoch size (ulp 2.4e-7 s x 10 MPa/s = 2.4 Pa on a 2e4 Pa
#: step), tight enough that the step onto the contact pressure is not taken for a ramp step.
_LINE_MATCH = 1e-3

_ID_FIELDS = ("part_id", "step_name", "recipe_name", "recipe_hash", "calibration_id", "material",
              "thickness_start", "thickness_end")


def trace_start_pressure(trace: PressTrace, segments) -> float:
    """Return the start pressure the press laid its profile out from (Pa), from the samples.

    The press lays the profile out again when the ram reaches contact, from the pressure
    measured then; from that sample on, the setpoint of a first ramp rises exactly at the
    ramp's rate. The start is the setpoint of the first segment-0 sample after which two
    steps follow that line; without such a line (no first ramp, too few samples) the setpoint
    of the first segment-0 sample.
    """
    rows = np.flatnonzero(trace.segment_index == 0)
    if not len(rows):
        return max(0.0, float(trace.setpoint_pa[0])) if len(trace) else 0.0
    sp, t = trace.setpoint_pa, trace.time_s
    first = segments[0] if segments else None
    if first is not None and first.kind != "hold" and first.rate_pa_s > 0.0:
        for a, b, c in zip(rows, rows[1:], rows[2:], strict=False):
            if b != a + 1 or c != b + 1:
                continue
            slope = math.copysign(first.rate_pa_s, first.target_pressure_pa - sp[a])
            step1, step2 = slope * (t[b] - t[a]), slope * (t[c] - t[b])
            if step1 and step2 and abs(sp[b] - sp[a] - step1) <= _LINE_MATCH * abs(step1) and \
                    abs(sp[c] - sp[b] - step2) <= _LINE_MATCH * abs(step2):
                return float(sp[a])
    return max(0.0, float(sp[rows[0]]))


def certificate_differences(recomputed: PressCertificate, live: PressCertificate,
                            relative: float = LIVE_MATCH_RELATIVE) -> dict[str, tuple]:
    """Return ``{field: (recomputed, live)}`` for every numeric figure that differs.

    NaN equals NaN (a figure that does not apply in both); loop timing is not compared.
    """
    out = {}
    for name in PressCertificate.__dataclass_fields__:
        a, b = getattr(recomputed, name), getattr(live, name)
        if isinstance(a, float) and isinstance(b, float):
            if math.isnan(a) and math.isnan(b):
                continue
            if not abs(a - b) <= relative * max(1.0, abs(a), abs(b)):
                out[name] = (a, b)
    return out


def trace_result(run: Run, cycle: Cycle) -> CycleResult:
    """Recompute a traced cycle's certificate and compare it with the live one."""
    recorded = run.traces[cycle.trace_index]
    segments = list(recorded.segments)
    start_pa = trace_start_pressure(recorded.trace, segments)
    try:
        profile = PressProfile(segments, start_pressure_pa=start_pa)
    except ProfileError as exc:
        raise MetricsError(f"cycle {cycle.index}: the recorded profile is not valid "
                           f"({exc})") from exc
    live = recorded.live_certificate
    meta = {name: getattr(live, name) for name in _ID_FIELDS}
    certificate = compute_certificate(recorded.trace, profile, recorded.contact_area_m2,
                                      loop_timing=live.loop_timing, **meta)
    differences = certificate_differences(certificate, live)
    notes = ["certificate recomputed from the full-rate PressTrace with its recorded profile "
             "(tolerance bands as laid out); ids, thicknesses and loop timing from the live "
             "certificate"]
    if differences:
        notes.append("differs from the live certificate in: " + ", ".join(
            f"{k} ({a:.6g} vs live {b:.6g})" for k, (a, b) in differences.items()))
    else:
        notes.append("equals the live certificate")
    extra = {"live_certificate": live.as_dict(), "matches_live": not differences,
             "differences_from_live": {k: {"recomputed": a, "live": b}
                                       for k, (a, b) in differences.items()},
             "start_pressure_pa": start_pa, "samples": len(recorded.trace),
             "loop_rate_hz": recorded.loop_rate_hz}
    return CycleResult(cycle=cycle, certificate=certificate,
                       method="full-rate trace (live certificate code)",
                       segments=tuple(segments), extra=extra, notes=tuple(notes))


def plateau_result(time_s: np.ndarray, pressure_pa: np.ndarray, cycle: Cycle,
                   force_time_s: np.ndarray | None = None, force_n: np.ndarray | None = None,
                   tolerance_frac: float = DEFAULT_TOLERANCE_FRAC) -> CycleResult:
    """Compute what a pressure trace alone shows about a cycle (no setpoint known).

    The plateau level is the median of the samples above 90 % of the peak; the hold runs from
    the first to the last sample within ``tolerance_frac`` of that level.
    """
    t = time_s[cycle.first:cycle.stop]
    p = pressure_pa[cycle.first:cycle.stop]
    peak = float(np.nanmax(p))
    level = float(np.median(p[p >= 0.9 * peak]))
    band = tolerance_frac * level
    inside = np.flatnonzero(np.abs(p - level) <= band)
    values: dict = {"peak_pressure": peak, "started": float(t[0]),
                    "duration": float(t[-1] - t[0])}
    extra = {"plateau_level_pa": level, "band_pa": band}
    if len(inside) >= 2:
        h0, h1 = int(inside[0]), int(inside[-1])
        hold = p[h0:h1 + 1]
        dt = np.diff(t[h0:h1 + 2]) if h1 + 1 < len(t) else np.diff(t[h0:h1 + 1])
        w = np.append(dt, np.median(dt))[: len(hold)] if len(dt) else np.zeros(len(hold))
        out = np.abs(hold - level) > band
        hold_duration = float(w.sum())
        values.update(
            mean_hold_pressure=float(hold.mean()), min_hold_pressure=float(hold.min()),
            max_hold_pressure=float(hold.max()), hold_pressure_std=float(hold.std()),
            hold_duration=hold_duration, time_out_of_band=float(w[out].sum()),
            fraction_in_band=1.0 - float(w[out].sum()) / hold_duration if hold_duration else
            math.nan,
        )
        extra.update(plateau_start_s=float(t[h0]), plateau_end_s=float(t[h1]))
        rise = slice(0, h0 + 1)
        fit = (p[rise] >= 0.1 * level) & (p[rise] <= 0.9 * level)
        if np.count_nonzero(fit) >= 3:
            values["ramp_rate_achieved"] = abs(_line(t[rise][fit], p[rise][fit])[0])
        fall = slice(h1, len(p))
        fit = (p[fall] >= 0.1 * level) & (p[fall] <= 0.9 * level)
        if np.count_nonzero(fit) >= 3:
            extra["release_rate_pa_s"] = abs(_line(t[fall][fit], p[fall][fit])[0])
    if force_n is not None and force_time_s is not None and len(force_n):
        in_cycle = (force_time_s >= t[0]) & (force_time_s <= t[-1])
        if in_cycle.any():
            values["peak_force"] = float(np.nanmax(force_n[in_cycle]))
    certificate = PressCertificate(**values)
    return CycleResult(
        cycle=cycle, certificate=certificate, method="pressure plateau", extra=extra,
        notes=("standard types only: no setpoint, segments, ram position or loop timing; "
               f"plateau band {tolerance_frac * 100:g} % of the plateau level",),
    )


def run_metrics(run: Run, *, tolerance_frac: float = DEFAULT_TOLERANCE_FRAC,
                segments_by_cycle: dict[int, list] | None = None,
                recipe_book=None) -> list[CycleResult]:
    """Return one ``CycleResult`` per cycle of ``run``.

    ``segments_by_cycle`` (cycle index -> segments) and ``recipe_book`` (a
    ``recipes.RecipeBook``, e.g. ``load_recipes("config/recipes.yaml")``) give the exact
    profiles and tolerance bands; see ``press_state_result``.

    A cycle whose metrics cannot be computed is skipped and the reason appended to
    ``run.problems`` (the rest of the run is still analysed).
    """
    results = []
    for cycle in find_cycles(run):
        try:
            if cycle.source == "trace":
                results.append(trace_result(run, cycle))
            elif cycle.source == "press_state":
                given = (segments_by_cycle or {}).get(cycle.index)
                results.append(press_state_result(run, cycle, segments=given,
                                                  tolerance_frac=tolerance_frac,
                                                  recipe_book=recipe_book))
            else:
                wrench = run.wrench
                results.append(plateau_result(
                    run.pressure["time_s"], run.pressure["pressure_pa"], cycle,
                    None if wrench is None else wrench["time_s"],
                    None if wrench is None else wrench["force_n"], tolerance_frac,
                ))
        except (MetricsError, ValueError, np.linalg.LinAlgError) as exc:
            run.problems.append(f"cycle {cycle.index} at {cycle.start_s:.3f} s: no metrics ({exc})")
    return results
