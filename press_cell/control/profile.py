"""Profile generator: a validated list of segments becomes a setpoint trajectory p_sp(t).

The trajectory is laid out once, when the cycle starts, from the *measured* pressure at that
moment (bumpless start: the first ramp begins where the press already is, so the loop sees no
setpoint step). Ramps and releases move the setpoint linearly at their rate; holds keep it
constant for their duration. ``sample(t_s)`` is a pure function of the time since the start, so
the loop can call it every cycle (loop-safe: no allocation beyond the returned point, no locks).

Phases use the numbering of ``msg/PressState.msg`` (``PHASE_*``).
"""

import enum
import math
from dataclasses import dataclass
from typing import NamedTuple

from press_cell.recipes.segments import Segment

# Two pressure levels closer than this are the same level (hold after ramp), Pa.  Chosen far
# below any load-cell resolution (a 100 kN cell at 0.1 % FS on a 13 mm die is ~0.75 MPa) [est].
LEVEL_MATCH_PA = 1.0


class ProfileError(ValueError):
    """A segment list was refused; the message names the segment and the rule it broke."""


class Phase(enum.IntEnum):
    """Press phase, numbered as ``PressState.PHASE_*``."""

    IDLE = 0
    RAMP = 1
    HOLD = 2
    RELEASE = 3
    VENTING = 4
    FAULT = 5
    DISCONNECTED = 6


_KIND_PHASE = {"ramp": Phase.RAMP, "hold": Phase.HOLD, "release": Phase.RELEASE}


def validate_segments(segments, max_pressure_pa: float = math.inf,
                      start_level_pa: float = 0.0) -> tuple:
    """Check a profile and return it as a tuple; raise ``ProfileError`` naming the first problem.

    Rules: at least one segment, every entry a ``Segment`` with finite numbers; ramps and
    releases have ``rate_pa_s > 0``; no target is negative or above ``max_pressure_pa``; a hold
    has ``duration_s > 0``, ``tolerance_pa > 0`` and holds exactly the level the previous segment
    ended at (a ramp is needed to change level, so a profile cannot start with a hold); a release
    ends below the level before it; the profile ends with a release to 0 Pa so every cycle ends
    unloaded. ``start_level_pa`` is the level the profile is designed to start from (Pa).
    """
    segs = tuple(segments)
    if not segs:
        raise ProfileError("the profile is empty; it needs at least a ramp and a release to 0 Pa")
    level_pa = float(start_level_pa)
    for i, seg in enumerate(segs):
        where = f"segment {i} ({getattr(seg, 'kind', type(seg).__name__)})"
        if not isinstance(seg, Segment):
            raise ProfileError(f"{where}: expected a Segment, got {type(seg).__name__}")
        if seg.kind not in _KIND_PHASE:
            raise ProfileError(f"{where}: kind must be one of {tuple(_KIND_PHASE)}")
        for name in ("target_pressure_pa", "rate_pa_s", "duration_s", "tolerance_pa"):
            value = getattr(seg, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ProfileError(f"{where}: {name}={value!r} must be a finite number")
        if seg.target_pressure_pa < 0.0:
            raise ProfileError(
                f"{where}: target_pressure_pa={seg.target_pressure_pa:g} is negative; "
                "allowed is 0 or more")
        if seg.target_pressure_pa > max_pressure_pa:
            raise ProfileError(
                f"{where}: target_pressure_pa={seg.target_pressure_pa:g} exceeds the pressure "
                f"limit {max_pressure_pa:g} Pa (min of press capacity, die rating, recipe limit)")
        if seg.kind in ("ramp", "release") and not seg.rate_pa_s > 0.0:
            raise ProfileError(f"{where}: rate_pa_s={seg.rate_pa_s:g} must be > 0")
        if seg.kind == "hold":
            if i == 0:
                raise ProfileError(f"{where}: a profile cannot start with a hold; ramp first")
            if not seg.duration_s > 0.0:
                raise ProfileError(f"{where}: duration_s={seg.duration_s:g} must be > 0")
            if not seg.tolerance_pa > 0.0:
                raise ProfileError(f"{where}: tolerance_pa={seg.tolerance_pa:g} must be > 0")
            if abs(seg.target_pressure_pa - level_pa) > LEVEL_MATCH_PA:
                raise ProfileError(
                    f"{where}: holds {seg.target_pressure_pa:g} Pa but the previous segment "
                    f"ends at {level_pa:g} Pa; a hold must keep the level it starts at")
        if seg.kind == "release" and not seg.target_pressure_pa < level_pa - LEVEL_MATCH_PA:
            raise ProfileError(
                f"{where}: releases to {seg.target_pressure_pa:g} Pa, which is not below the "
                f"previous level {level_pa:g} Pa")
        level_pa = seg.target_pressure_pa
    last = segs[-1]
    if last.kind != "release" or last.target_pressure_pa != 0.0:
        raise ProfileError(
            f"segment {len(segs) - 1} ({last.kind}): the profile must end with a release to "
            "0 Pa so the press ends unloaded")
    return segs


class ProfilePoint(NamedTuple):
    """Where the profile is at one instant (a NamedTuple: cheap to build every cycle)."""

    setpoint_pa: float          # Pa
    setpoint_rate_pa_s: float   # Pa/s, slope of the setpoint (0 in holds)
    phase: Phase
    segment_index: int          # index into the profile; len(segments) - 1 stays after the end
    segment_count: int
    time_in_segment_s: float    # s
    time_remaining_s: float     # s, until the end of the last release
    finished: bool              # the setpoint trajectory is complete


@dataclass(frozen=True)
class _Span:
    start_s: float
    duration_s: float
    start_pa: float
    end_pa: float
    rate_pa_s: float            # signed
    phase: Phase


class PressProfile:
    """A setpoint trajectory laid out from validated segments and a measured start pressure."""

    def __init__(self, segments, start_pressure_pa: float = 0.0,
                 max_pressure_pa: float = math.inf, design_start_pa: float = 0.0) -> None:
        """Validate ``segments`` and lay them out starting at ``start_pressure_pa`` (measured, Pa).

        ``design_start_pa`` is the level the segments were written to start from (0 for a
        recipe). Raises ``ProfileError`` for an invalid profile or a non-finite start pressure.
        """
        self.segments = validate_segments(segments, max_pressure_pa, design_start_pa)
        if not math.isfinite(start_pressure_pa):
            raise ProfileError(f"start pressure {start_pressure_pa!r} Pa is not finite")
        level = max(0.0, float(start_pressure_pa))
        t_s = 0.0
        spans = []
        for seg in self.segments:
            if seg.kind == "hold":
                span = _Span(t_s, seg.duration_s, level, level, 0.0, Phase.HOLD)
            else:
                delta = seg.target_pressure_pa - level
                # A ramp whose target the press already sits at takes no time.
                duration = abs(delta) / seg.rate_pa_s
                rate = math.copysign(seg.rate_pa_s, delta) if duration > 0.0 else 0.0
                span = _Span(t_s, duration, level, seg.target_pressure_pa, rate,
                             _KIND_PHASE[seg.kind])
            spans.append(span)
            t_s += span.duration_s
            level = span.end_pa
        self._spans = tuple(spans)
        self._cursor = 0
        self.total_duration_s = t_s
        self.start_pressure_pa = max(0.0, float(start_pressure_pa))

    @classmethod
    def release_from(cls, pressure_pa: float, rate_pa_s: float) -> "PressProfile":
        """Return a profile releasing from ``pressure_pa`` (Pa) to 0 at ``rate_pa_s`` (Pa/s)."""
        level = max(float(pressure_pa), 2.0 * LEVEL_MATCH_PA)
        return cls([Segment("release", 0.0, rate_pa_s=rate_pa_s)], start_pressure_pa=level,
                   design_start_pa=level)

    def span_bounds(self, index: int) -> tuple:
        """Return ``(start_s, end_s, start_pa, end_pa)`` of segment ``index`` as laid out."""
        span = self._spans[index]
        return span.start_s, span.start_s + span.duration_s, span.start_pa, span.end_pa

    def sample(self, t_s: float) -> ProfilePoint:
        """Return the setpoint at ``t_s`` seconds after the cycle start (loop-safe).

        O(1) when time moves forward (the search starts at the last segment found).
        """
        spans = self._spans
        count = len(spans)
        if not t_s > 0.0:       # max(0.0, t_s), written out: this runs every loop cycle
            t_s = 0.0
        first = self._cursor if t_s >= spans[self._cursor].start_s else 0
        for index in range(first, count):
            span = spans[index]
            end_s = span.start_s + span.duration_s
            if t_s < end_s:
                self._cursor = index
                tau = t_s - span.start_s
                # positional: setpoint, rate, phase, index, count, time in segment,
                # time remaining, finished
                return ProfilePoint(span.start_pa + span.rate_pa_s * tau, span.rate_pa_s,
                                    span.phase, index, count, tau,
                                    self.total_duration_s - t_s, False)
        last = spans[-1]
        return ProfilePoint(last.end_pa, 0.0, last.phase, count - 1, count,
                            t_s - last.start_s, 0.0, True)
