"""Profile segments: the plain ramp / hold / release steps a press recipe expands into.

The control layer's profile generator (press_cell/control/profile.py) consumes these. A recipe
with stages (p1, r1, h1) ... (pn, rn, hn) and release rate r_rel becomes

    ramp(p1, r1), hold(p1, h1), ..., ramp(pn, rn), hold(pn, hn), release(0, r_rel)

Ramps may go down as well as up (a stage below the previous one). Holds of 0 s are left out.
"""

from dataclasses import dataclass

SEGMENT_KINDS = ("ramp", "hold", "release")


@dataclass(frozen=True)
class Segment:
    """One profile segment, SI units.

    ``target_pressure_pa``: pressure at the end of the segment (0 for release).
    ``rate_pa_s``: ramp or release rate, always positive; 0 for a hold.
    ``duration_s``: nominal duration (|delta p| / rate for ramps and release, the hold time
    for holds).
    ``tolerance_pa``: band half-width around ``target_pressure_pa``: a hold must stay inside
    it, a ramp counts as arrived once inside it; for release it is the band of the pressure
    released from.

    Mirrors ``msg/PressSegment.msg``; field names and order are the contract between recipes,
    control and the press node. Plain data: only the kind is checked here; the profile
    generator (press_cell/control/profile.py ``validate_segments``) checks the numbers, and
    ``recipe_segments`` only builds segments from validated recipes. Consumers that treat
    ``duration_s`` / ``tolerance_pa`` as "unused for ramps" may ignore the values filled in.
    """

    kind: str                       # "ramp" | "hold" | "release" (SEGMENT_KINDS)
    target_pressure_pa: float
    rate_pa_s: float = 0.0
    duration_s: float = 0.0
    tolerance_pa: float = 0.0

    def __post_init__(self) -> None:
        """Refuse an unknown segment kind."""
        if self.kind not in SEGMENT_KINDS:
            raise ValueError(
                f"segment kind {self.kind!r} is unknown; allowed kinds are {SEGMENT_KINDS}")


def recipe_segments(recipe, start_pressure_pa: float = 0.0) -> list:
    """Expand a PressRecipe into Segments, starting from ``start_pressure_pa`` (Pa)."""
    segments = []
    pressure_pa = start_pressure_pa
    for stage in recipe.stages:
        band_pa = recipe.tolerance_frac * stage.pressure_pa
        delta_pa = abs(stage.pressure_pa - pressure_pa)
        segments.append(Segment("ramp", stage.pressure_pa, stage.ramp_pa_s,
                                delta_pa / stage.ramp_pa_s, band_pa))
        if stage.hold_s > 0.0:
            segments.append(Segment("hold", stage.pressure_pa, 0.0, stage.hold_s, band_pa))
        pressure_pa = stage.pressure_pa
    segments.append(Segment("release", 0.0, recipe.release_pa_s,
                            pressure_pa / recipe.release_pa_s,
                            recipe.tolerance_frac * pressure_pa))
    return segments


def profile_duration_s(segments) -> float:
    """Return the nominal duration of a segment list, s."""
    return sum(segment.duration_s for segment in segments)
