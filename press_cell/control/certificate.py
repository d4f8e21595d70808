"""Press certificate: what one press cycle achieved, computed from its recorded trace.

``PressCertificate`` has exactly the fields of ``msg/PressCertificate.msg`` with SI values
(``started`` is the clock time in s; the node converts it to builtin_interfaces/Time).
Definitions (also in the .msg): hold statistics refer to the principal hold (the longest);
time out of band and fraction in band cover all holds, each against its own tolerance;
overshoot is the largest excursion above the target of an upward ramp, looked for during the
ramp and the segment after it; settling time runs from the end of the ramp before the principal
hold until the pressure stays inside that hold's band (both on the pressure averaged over
``SMOOTHING_WINDOW_S``, so one noise sample is not an excursion); the achieved ramp rate is
a least-squares line through the samples of the first ramp between 10 % and 90 % of its rise.
NaN marks a figure that does not apply.
"""

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from press_cell.control.loop_runner import LoopTiming
from press_cell.control.profile import PressProfile

# Overshoot and settling are judged on the pressure averaged over this window, s: a single
# load-cell noise sample is not a pressure excursion (0.1 % FS class cells have ~3e-5 FS rms
# noise at 500 Hz, press_cell.physics.load_cell) [est]. Band fractions use the raw samples.
SMOOTHING_WINDOW_S = 0.01
# Rows converted per chunk when a trace is built (~0.3 ms of GIL each on this class of CPU).
TRACE_CHUNK_ROWS = 1000


@dataclass(frozen=True)
class PressTrace:
    """The samples of one cycle, one row per control cycle (numpy arrays of equal length)."""

    time_s: np.ndarray          # clock time, s
    setpoint_pa: np.ndarray     # Pa
    pressure_pa: np.ndarray     # measured die pressure, Pa
    force_n: np.ndarray         # N
    ram_position_m: np.ndarray  # m
    demand: np.ndarray          # valve demand, 1
    phase: np.ndarray           # Phase numbers
    segment_index: np.ndarray   # -1 outside the profile

    @classmethod
    def from_rows(cls, rows) -> "PressTrace":
        """Build a trace from ``(t, sp, p, f, x, u, phase, seg)`` tuples.

        Converts in chunks and yields the GIL between them: a real-time control loop in the
        same process must not wait for one long conversion of a minutes-long trace.
        """
        chunks = []
        for start in range(0, len(rows), TRACE_CHUNK_ROWS):
            chunks.append(np.asarray(rows[start:start + TRACE_CHUNK_ROWS], dtype=float))
            time.sleep(0)
        arr = np.concatenate(chunks).reshape(-1, 8) if chunks else np.zeros((0, 8))
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], arr[:, 5],
                   arr[:, 6].astype(int), arr[:, 7].astype(int))

    def __len__(self) -> int:
        """Return the number of samples."""
        return len(self.time_s)


@dataclass(frozen=True)
class PressCertificate:
    """Field-for-field ``msg/PressCertificate.msg`` in SI units."""

    part_id: str = ""
    step_name: str = ""
    recipe_name: str = ""
    recipe_hash: str = ""
    calibration_id: str = ""
    material: str = ""
    started: float = math.nan               # s, clock time of the cycle start
    duration: float = math.nan              # s, whole cycle
    contact_area: float = math.nan          # m^2
    target_pressure: float = math.nan       # Pa, setpoint of the principal hold
    peak_pressure: float = math.nan         # Pa
    peak_force: float = math.nan            # N
    mean_hold_pressure: float = math.nan    # Pa
    min_hold_pressure: float = math.nan     # Pa
    max_hold_pressure: float = math.nan     # Pa
    hold_pressure_std: float = math.nan     # Pa
    hold_duration: float = math.nan         # s, all holds
    overshoot: float = math.nan             # Pa
    overshoot_fraction: float = math.nan    # 1
    settling_time: float = math.nan         # s
    time_out_of_band: float = math.nan      # s, during holds
    fraction_in_band: float = math.nan      # 1, during holds
    ramp_rate_requested: float = math.nan   # Pa/s, first ramp
    ramp_rate_achieved: float = math.nan    # Pa/s
    ramp_rate_error: float = math.nan       # 1
    ram_travel: float = math.nan            # m
    thickness_start: float = math.nan       # m
    thickness_end: float = math.nan         # m
    thickness_change: float = math.nan      # m
    loop_timing: LoopTiming = field(default_factory=LoopTiming)

    def as_dict(self) -> dict:
        """Return the certificate as a plain dict (nested ``loop_timing`` dict)."""
        return asdict(self)


def recipe_hash(segments) -> str:
    """Return the sha256 of the canonical JSON of a segment list (SI values)."""
    canon = [[s.kind, float(s.target_pressure_pa), float(s.rate_pa_s), float(s.duration_s),
              float(s.tolerance_pa)] for s in segments]
    return hashlib.sha256(json.dumps(canon, separators=(",", ":")).encode()).hexdigest()


def _sample_dt(t: np.ndarray) -> np.ndarray:
    """Return the time each sample stands for (its forward interval; last = median), s."""
    if len(t) < 2:
        return np.zeros(len(t))
    dt = np.diff(t)
    return np.append(dt, np.median(dt))


def _smoothed(t: np.ndarray, p: np.ndarray, window_s: float = SMOOTHING_WINDOW_S) -> np.ndarray:
    """Return ``p`` averaged over a centred window of ``window_s`` (s) for excursion figures."""
    if len(t) < 3:
        return p
    n = int(round(window_s / float(np.median(np.diff(t)))))
    if n < 2:
        return p
    kernel = np.ones(n) / n
    padded = np.pad(p, (n // 2, n - 1 - n // 2), mode="edge")
    return np.convolve(padded, kernel, mode="valid")


def compute_certificate(trace: PressTrace, profile: PressProfile, contact_area_m2: float,
                        loop_timing: LoopTiming = None, **meta) -> PressCertificate:
    """Compute the certificate of one cycle from its trace and the profile it followed.

    ``meta`` fills the identification fields (part_id, step_name, recipe_name, recipe_hash,
    calibration_id, material, thickness_start, thickness_end); ``recipe_hash`` defaults to the
    hash of the profile's segments.
    """
    t = trace.time_s
    p = trace.pressure_pa
    seg_idx = trace.segment_index
    p_smooth = _smoothed(t, p)
    if len(t) == 0:
        return PressCertificate(contact_area=contact_area_m2,
                                loop_timing=loop_timing or LoopTiming(), **meta)
    t0 = t[0]
    w = _sample_dt(t)
    segments = profile.segments
    values = {}

    holds = [i for i, s in enumerate(segments) if s.kind == "hold"]
    in_any_hold = np.zeros(len(t), dtype=bool)
    out_of_band = np.zeros(len(t), dtype=bool)
    for i in holds:
        mask = seg_idx == i
        in_any_hold |= mask
        out_of_band |= mask & (np.abs(p - segments[i].target_pressure_pa)
                               > segments[i].tolerance_pa)
    if holds:
        principal = max(holds, key=lambda i: (segments[i].duration_s, -i))
        target = segments[principal].target_pressure_pa
        tol = segments[principal].tolerance_pa
        mask = seg_idx == principal
        hold_p = p[mask]
        values["target_pressure"] = target
        values["hold_duration"] = float(np.sum(w[in_any_hold]))
        values["time_out_of_band"] = float(np.sum(w[out_of_band]))
        if values["hold_duration"] > 0.0:
            values["fraction_in_band"] = 1.0 - values["time_out_of_band"] / values["hold_duration"]
        if hold_p.size:
            values.update(mean_hold_pressure=float(hold_p.mean()),
                          min_hold_pressure=float(hold_p.min()),
                          max_hold_pressure=float(hold_p.max()),
                          hold_pressure_std=float(hold_p.std()))
            # Settling: from the end of the ramp before the hold (= hold start) until the last
            # out-of-band sample of the hold; 0 when it never left the band.
            hold_t = t[mask]
            bad = np.abs(p_smooth[mask] - target) > tol
            if not bad.any():
                values["settling_time"] = 0.0
            elif bad[-1]:
                values["settling_time"] = math.nan
            else:
                last_bad = np.nonzero(bad)[0][-1]
                values["settling_time"] = float(hold_t[last_bad + 1] - hold_t[0])

    # Overshoot above the target of every upward ramp, from its end through the next segment.
    best = (0.0, 0.0)
    for i, seg in enumerate(segments):
        _, _, start_pa, end_pa = profile.span_bounds(i)
        if seg.kind != "ramp" or end_pa <= start_pa:
            continue
        mask = (seg_idx == i + 1) if i + 1 < len(segments) else np.zeros(len(t), dtype=bool)
        mask |= seg_idx == i
        if mask.any():
            excess = float(p_smooth[mask].max() - seg.target_pressure_pa)
            if excess > best[0]:
                best = (excess, excess / seg.target_pressure_pa)
    ramps = [i for i, s in enumerate(segments) if s.kind == "ramp"]
    if ramps:
        values["overshoot"], values["overshoot_fraction"] = best
        first = ramps[0]
        requested = segments[first].rate_pa_s
        _, _, start_pa, end_pa = profile.span_bounds(first)
        values["ramp_rate_requested"] = requested
        rise = end_pa - start_pa
        window = (seg_idx == first) | (seg_idx == first + 1)
        lo, hi = sorted((start_pa + 0.1 * rise, start_pa + 0.9 * rise))
        fit = window & (p >= lo) & (p <= hi)
        if rise != 0.0 and np.count_nonzero(fit) >= 3:
            slope = float(np.polyfit(t[fit] - t0, p[fit], 1)[0])
            values["ramp_rate_achieved"] = abs(slope)
            values["ramp_rate_error"] = (abs(slope) - requested) / requested

    x = trace.ram_position_m
    thickness_start = meta.pop("thickness_start", math.nan)
    thickness_end = meta.pop("thickness_end", math.nan)
    meta.setdefault("recipe_hash", recipe_hash(segments))
    return PressCertificate(
        started=float(t0),
        duration=float(t[-1] - t0 + w[-1]),
        contact_area=float(contact_area_m2),
        peak_pressure=float(np.nanmax(p)),
        peak_force=float(np.nanmax(trace.force_n)),
        ram_travel=float(x[-1] - x[0]),
        thickness_start=float(thickness_start),
        thickness_end=float(thickness_end),
        thickness_change=float(thickness_end - thickness_start),
        loop_timing=loop_timing or LoopTiming(),
        **values,
        **meta,
    )
