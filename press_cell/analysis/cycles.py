"""Split a recorded run into press cycles and impedance measurements.

With press_cell telemetry a cycle is a run of PressState samples whose ``segment_index`` is
>= 0 (the press is following a profile); a drop of the index starts a new cycle even without
an idle sample between. Without press_cell types (a plain ``ros2 bag record`` of
FluidPressure) a cycle is an excursion of the pressure above a threshold, with hysteresis.
When the bag holds ``PressTrace`` messages (one per cycle, every loop sample), each trace is a
cycle of source ``"trace"``; it takes the place of the telemetry cycle it was received in
(matched on the recorder's receive times) and keeps that cycle's row range, so plots still
find its telemetry.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from press_cell.control.profile import Phase

if TYPE_CHECKING:
    from press_cell.analysis.run import Run

#: A pressure excursion counts as a cycle above this fraction of the run's peak pressure.
PRESSURE_ON_FRACTION = 0.10
#: ... and ends below this fraction (hysteresis against noise at the threshold).
PRESSURE_OFF_FRACTION = 0.05
#: Excursions shorter than this are noise or taps, not press cycles, s [est].
MIN_CYCLE_S = 0.5


@dataclass(frozen=True)
class Cycle:
    """One press cycle; ``first``/``stop`` index the rows of the source columns."""

    index: int
    source: str              # "press_state" or "pressure" (FluidPressure only)
    first: int
    stop: int                # exclusive
    start_s: float           # s since the epoch
    end_s: float             # s, time of the last sample
    peak_pressure_pa: float  # Pa
    segment_count: int       # segments seen (0 for the pressure-only source)
    ended_by: str            # "release", "fault", "end of recording", "new cycle", "aborted"
    trace_index: int | None = None   # index into ``Run.traces`` for source "trace"

    @property
    def duration_s(self) -> float:
        """Return the time from the first to the last sample, s."""
        return self.end_s - self.start_s

    @property
    def completed(self) -> bool:
        """Return True when the cycle ran to its final release (no fault, not cut off)."""
        return self.ended_by == "release"


@dataclass(frozen=True)
class Measurement:
    """An impedance spectrum placed on the run's time line."""

    spectrum_index: int          # index into ``Run.spectra``
    time_s: float
    stack_pressure_pa: float     # Pa (NaN when the spectrum did not carry it)
    cycle_index: int | None      # the last cycle that started before the measurement
    during_cycle: bool           # taken while that cycle was still running


def press_state_cycles(state: dict[str, np.ndarray]) -> list[Cycle]:
    """Find cycles in PressState columns (``segment_index``, ``phase``, ``pressure_pa``)."""
    seg = state["segment_index"].astype(np.int64)
    t = state["time_s"]
    p = state["pressure_pa"]
    phase = state["phase"].astype(np.int64)
    active = seg >= 0
    if not active.any():
        return []
    starts = np.flatnonzero(active & ~np.r_[False, active[:-1]])
    restarts = np.flatnonzero(active[1:] & active[:-1] & (seg[1:] < seg[:-1])) + 1
    starts = np.union1d(starts, restarts)
    stops = np.flatnonzero(active & ~np.r_[active[1:], False]) + 1
    cycles = []
    for index, first in enumerate(starts):
        stop = int(stops[np.searchsorted(stops, first, side="right")])
        following = starts[index + 1] if index + 1 < len(starts) else len(seg)
        stop = int(min(stop, following))
        after = phase[stop] if stop < len(phase) else None
        run_phases = phase[first:stop]
        faulted = np.isin(run_phases, (Phase.VENTING, Phase.FAULT)).any() or after in (
            Phase.VENTING, Phase.FAULT)
        if faulted:
            ended_by = "fault"
        elif stop == len(seg):
            ended_by = "end of recording"
        elif stop == following and stop < len(seg) and active[stop]:
            ended_by = "new cycle"
        elif run_phases[-1] == Phase.RELEASE:
            ended_by = "release"
        else:
            ended_by = "end of recording" if stop == len(seg) else "aborted"
        cycles.append(Cycle(
            index=index, source="press_state", first=int(first), stop=stop,
            start_s=float(t[first]), end_s=float(t[stop - 1]),
            peak_pressure_pa=float(np.nanmax(p[first:stop])),
            segment_count=int(seg[first:stop].max()) + 1, ended_by=ended_by,
        ))
    return cycles


def pressure_cycles(time_s: np.ndarray, pressure_pa: np.ndarray,
                    on_pa: float | None = None, off_pa: float | None = None,
                    min_duration_s: float = MIN_CYCLE_S) -> list[Cycle]:
    """Find cycles as excursions of ``pressure_pa`` above ``on_pa`` until below ``off_pa``.

    Defaults: ``on_pa`` = 10 % and ``off_pa`` = 5 % of the run's peak. A cycle is widened to
    the samples where the pressure starts rising from and returns to its base level.
    """
    if len(pressure_pa) == 0 or not np.isfinite(pressure_pa).any():
        return []
    peak = float(np.nanmax(pressure_pa))
    if peak <= 0.0:
        return []
    on_pa = PRESSURE_ON_FRACTION * peak if on_pa is None else on_pa
    off_pa = PRESSURE_OFF_FRACTION * peak if off_pa is None else off_pa
    p = np.nan_to_num(pressure_pa, nan=0.0)
    above_on = np.flatnonzero(p > on_pa)
    below_off = np.flatnonzero(p < off_pa)
    cycles: list[Cycle] = []
    pos = 0
    while True:
        k = np.searchsorted(above_on, pos)
        if k >= len(above_on):
            break
        rise = int(above_on[k])
        j = np.searchsorted(below_off, rise)
        fall = int(below_off[j]) if j < len(below_off) else len(p)
        back = np.searchsorted(below_off, rise) - 1
        first = int(below_off[back]) if back >= 0 and below_off[back] >= pos else pos
        stop = min(fall + 1, len(p))
        if time_s[stop - 1] - time_s[first] >= min_duration_s:
            cycles.append(Cycle(
                index=len(cycles), source="pressure", first=first, stop=stop,
                start_s=float(time_s[first]), end_s=float(time_s[stop - 1]),
                peak_pressure_pa=float(p[first:stop].max()), segment_count=0,
                ended_by="release" if fall < len(p) else "end of recording",
            ))
        pos = stop
    return cycles


def _telemetry_cycles(run: Run) -> tuple[list[Cycle], np.ndarray | None]:
    """Return cycles from PressState, else FluidPressure, and their source's receive times."""
    if run.press_state is not None and len(run.press_state["time_s"]):
        return press_state_cycles(run.press_state), run.press_state["receive_time_s"]
    if run.pressure is not None and len(run.pressure["time_s"]):
        return (pressure_cycles(run.pressure["time_s"], run.pressure["pressure_pa"]),
                run.pressure["receive_time_s"])
    return [], None


def _trace_ended_by(recorded) -> str:
    """Tell how a traced cycle ended: "fault", "release" (profile completed) or "aborted"."""
    trace, segments = recorded.trace, recorded.segments
    if np.isin(trace.phase, (Phase.VENTING, Phase.FAULT)).any():
        return "fault"
    if segments and segments[-1].kind == "release" and \
            int(trace.segment_index.max()) == len(segments) - 1:
        return "release"
    return "aborted"


def find_cycles(run: Run) -> list[Cycle]:
    """Return the run's cycles: traces first, else PressState, else FluidPressure."""
    cycles, receive_s = _telemetry_cycles(run)
    traces = [(j, tr) for j, tr in enumerate(getattr(run, "traces", ())) if len(tr.trace)]
    if not traces:
        return cycles
    # A trace arrives at the end of its cycle: it belongs to the last telemetry cycle that
    # started (by receive time) before it.
    first_receive = np.array([receive_s[c.first] for c in cycles]) if cycles else np.empty(0)
    replaced: dict[int, tuple[int, object]] = {}
    out = []
    for j, recorded in traces:
        k = int(np.searchsorted(first_receive, recorded.receive_time_s, side="right")) - 1
        if k >= 0 and k not in replaced:
            replaced[k] = (j, recorded)
            continue
        duration_s = float(recorded.trace.time_s[-1] - recorded.trace.time_s[0])
        out.append(Cycle(
            index=-1, source="trace", first=0, stop=0,
            start_s=recorded.receive_time_s - duration_s, end_s=recorded.receive_time_s,
            peak_pressure_pa=float(np.nanmax(recorded.trace.pressure_pa)),
            segment_count=len(recorded.segments), ended_by=_trace_ended_by(recorded),
            trace_index=j))
    for k, cycle in enumerate(cycles):
        if k in replaced:
            j, recorded = replaced[k]
            cycle = Cycle(
                index=-1, source="trace", first=cycle.first, stop=cycle.stop,
                start_s=cycle.start_s, end_s=cycle.end_s,
                peak_pressure_pa=float(np.nanmax(recorded.trace.pressure_pa)),
                segment_count=len(recorded.segments), ended_by=_trace_ended_by(recorded),
                trace_index=j)
        out.append(cycle)
    out.sort(key=lambda c: c.start_s)
    return [dataclasses.replace(c, index=i) for i, c in enumerate(out)]


def find_measurements(run: Run, cycles: list[Cycle]) -> list[Measurement]:
    """Place each impedance spectrum after the cycle that started last before it."""
    starts = np.array([c.start_s for c in cycles])
    out = []
    for i, spectrum in enumerate(run.spectra):
        k = int(np.searchsorted(starts, spectrum.time_s, side="right")) - 1
        cycle = cycles[k] if k >= 0 else None
        out.append(Measurement(
            spectrum_index=i, time_s=spectrum.time_s,
            stack_pressure_pa=spectrum.stack_pressure_pa,
            cycle_index=None if cycle is None else cycle.index,
            during_cycle=cycle is not None and spectrum.time_s <= cycle.end_s,
        ))
    return out
