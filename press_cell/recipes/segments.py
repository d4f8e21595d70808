"""One segment of a press profile in SI units: ramp to a pressure, hold it, or release.

This mirrors ``msg/PressSegment.msg``. The shape (field names and order) is the contract between
recipes, the control layer and the press node; the full profile rules (ordering, limits) are
checked by ``press_cell.control.profile.validate_segments``.
"""

from dataclasses import dataclass

SEGMENT_KINDS = ("ramp", "hold", "release")


@dataclass(frozen=True)
class Segment:
    """A ramp, hold or release step of a press profile.

    ``target_pressure_pa``: pressure reached at the end of a ramp or release, or held by a hold.
    ``rate_pa_s``: ramp or release rate (> 0); unused for holds.
    ``duration_s``: hold duration; unused for ramps and releases.
    ``tolerance_pa``: half-width of the hold tolerance band; unused for ramps and releases.
    """

    kind: str                   # 'ramp' | 'hold' | 'release'
    target_pressure_pa: float   # Pa
    rate_pa_s: float = 0.0      # Pa/s
    duration_s: float = 0.0     # s
    tolerance_pa: float = 0.0   # Pa

    def __post_init__(self) -> None:
        """Refuse an unknown segment kind."""
        if self.kind not in SEGMENT_KINDS:
            raise ValueError(
                f"segment kind {self.kind!r} is unknown; allowed kinds are {SEGMENT_KINDS}")
