"""Resolve and check a PressCycle goal before the press node accepts it (no rclpy, no physics).

A goal names either a recipe of the node's recipe file or an explicit list of segments, plus
the contact area (die diameter or area), a material of the library, a part id and an optional
recipe limit. ``resolve_goal`` turns it into a ``ResolvedGoal`` the runtime can start, or raises
``GoalRejected`` with the PressCycle error-code name and a reason a user can act on.

A goal with segments runs them; its recipe_name/recipe_hash/step_name only label the
certificate. A goal with a recipe_name and no segments runs that recipe of the node's file.
Checks, in order: recipe name; finite numbers; negative
pressures; unit magnitude (a non-zero target below 1 kPa or above 2 GPa, a rate below 1 kPa/s or
above 2 GPa/s, a die diameter above 0.2 m: SI goals cannot mean such values, they are lab units
passed unconverted); contact area (one of die diameter / area, > 0, agreeing with the recipe's
tooling); material in the library; press capacity and die rating. The runtime checks the
profile rules (a hold keeps its level, the profile ends with a release to 0 Pa), the adaptive
hold end (``hold_end``) and the limits again when it starts.
"""

import math
from dataclasses import dataclass

from press_cell.control.certificate import recipe_hash as segments_hash
from press_cell.recipes import recipe_hash, recipe_segments
from press_cell.recipes.segments import Segment

# Unit-magnitude bounds: no lab press works outside them, so a value outside is a unit error.
MIN_PLAUSIBLE_PRESSURE_PA = 1e3         # 1 kPa; "25" meant as 25 MPa lands below this
MAX_PLAUSIBLE_PRESSURE_PA = 2e9         # 2 GPa, above the compressive yield of tool steel
MIN_PLAUSIBLE_RATE_PA_S = 1e3           # 1 kPa/s
MAX_PLAUSIBLE_RATE_PA_S = 2e9           # 2 GPa/s
MAX_PLAUSIBLE_DIAMETER_M = 0.2          # 200 mm; "13" meant as 13 mm lands above this
MIN_PLAUSIBLE_DIAMETER_M = 1e-3         # 1 mm
DIAMETER_MATCH_M = 1e-5                 # a goal diameter within 0.01 mm matches the recipe
HEADROOM_FRACTION = 0.01                # targets stay 1 % below the limit (as the supervisor)
# A ramp may ask for at most this fraction of the supervisor's rate-of-rise limit: the loop's
# rate at a ramp start runs above the commanded one (53 MPa/s measured for a 30 MPa/s ramp on
# 13 mm), and a ramp the supervisor then trips as RATE_LIMIT should be refused at the goal.
RAMP_RATE_FRACTION = 0.5


class GoalRejected(Exception):
    """A goal was refused; ``code`` is the PressCycle error-code name."""

    def __init__(self, code: str, reason: str) -> None:
        """Keep the error-code name and the reason."""
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class GoalLimits:
    """What the press and its tooling allow (from the node's parameters and the library)."""

    press_capacity_n: float         # N
    default_die_rating_n: float     # N, for a die the library does not list
    max_rate_pa_s: float = math.inf  # Pa/s, the supervisor's rate-of-rise limit


@dataclass(frozen=True)
class ResolvedGoal:
    """A goal ready for ``PressRuntime.start_cycle`` (SI)."""

    segments: tuple
    contact_area_m2: float
    max_pressure_pa: float          # recipe/goal limit and die rating as a pressure, Pa
    part_id: str
    step_name: str
    material: str
    recipe_name: str
    recipe_hash: str
    tooling: str                    # library die/rod name, or "" for an unlisted die
    peak_pressure_pa: float
    duration_s: float               # nominal profile duration, s


def _invalid(reason: str) -> GoalRejected:
    return GoalRejected("INVALID_GOAL", reason)


def _check_pressure(where: str, value_pa: float, allow_zero: bool) -> None:
    if not math.isfinite(value_pa):
        raise _invalid(f"{where} is {value_pa!r}; a finite pressure in Pa is required")
    if value_pa < 0.0:
        raise _invalid(f"{where} = {value_pa:g} Pa is negative; pressures are >= 0 Pa")
    if value_pa == 0.0 and allow_zero:
        return
    if value_pa < MIN_PLAUSIBLE_PRESSURE_PA:
        raise _invalid(f"{where} = {value_pa:g} Pa is below 1 kPa: looks like MPa given as Pa "
                       f"(goals are SI: {value_pa:g} MPa = {value_pa * 1e6:g} Pa)")
    if value_pa > MAX_PLAUSIBLE_PRESSURE_PA:
        raise _invalid(f"{where} = {value_pa:g} Pa is above 2 GPa, beyond any press and die: "
                       "a unit error (goals are in Pa; was a value already in Pa multiplied "
                       "by 1e6 again?)")


def _check_rate(where: str, value_pa_s: float) -> None:
    if not math.isfinite(value_pa_s):
        raise _invalid(f"{where} is {value_pa_s!r}; a finite rate in Pa/s is required")
    if value_pa_s <= 0.0:
        raise _invalid(f"{where} = {value_pa_s:g} Pa/s must be > 0")
    if value_pa_s < MIN_PLAUSIBLE_RATE_PA_S:
        raise _invalid(f"{where} = {value_pa_s:g} Pa/s is below 1 kPa/s: looks like MPa/s given "
                       f"as Pa/s ({value_pa_s:g} MPa/s = {value_pa_s * 1e6:g} Pa/s)")
    if value_pa_s > MAX_PLAUSIBLE_RATE_PA_S:
        raise _invalid(f"{where} = {value_pa_s:g} Pa/s is above 2 GPa/s: a unit error")


def check_segments(segments) -> tuple:
    """Check finiteness, sign and unit magnitude of each segment; return them as a tuple."""
    segs = tuple(segments)
    if not segs:
        raise _invalid("the goal has neither a recipe_name nor segments; give one of them")
    for i, seg in enumerate(segs):
        where = f"segment {i} ({seg.kind})"
        for name in ("target_pressure_pa", "rate_pa_s", "duration_s", "tolerance_pa"):
            value = getattr(seg, name)
            if not math.isfinite(value):
                raise _invalid(f"{where}: {name} is {value!r}; finite numbers are required")
        _check_pressure(f"{where} target pressure", seg.target_pressure_pa,
                        allow_zero=seg.kind == "release")
        if seg.kind in ("ramp", "release"):
            _check_rate(f"{where} rate", seg.rate_pa_s)
        else:
            if not seg.duration_s > 0.0:
                raise _invalid(f"{where}: duration = {seg.duration_s:g} s must be > 0")
            if seg.tolerance_pa < 0.0 or seg.tolerance_pa == 0.0:
                raise _invalid(f"{where}: tolerance = {seg.tolerance_pa:g} Pa must be > 0")
    return segs


def goal_area_m2(die_diameter_m: float, contact_area_m2: float) -> tuple:
    """Return ``(area_m2, diameter_m or NaN)`` from the goal's two area fields (0 = unset)."""
    for name, value in (("die_diameter", die_diameter_m), ("contact_area", contact_area_m2)):
        if not math.isfinite(value) or value < 0.0:
            raise _invalid(f"{name} = {value!r} must be a finite value >= 0 (0 = unset)")
    if die_diameter_m > 0.0 and contact_area_m2 > 0.0:
        raise _invalid("give die_diameter or contact_area, not both (the other stays 0)")
    if die_diameter_m > 0.0:
        if die_diameter_m > MAX_PLAUSIBLE_DIAMETER_M:
            raise _invalid(f"die_diameter = {die_diameter_m:g} m is above 0.2 m: looks like mm "
                           f"given as m ({die_diameter_m:g} mm = {die_diameter_m * 1e-3:g} m)")
        if die_diameter_m < MIN_PLAUSIBLE_DIAMETER_M:
            raise _invalid(f"die_diameter = {die_diameter_m:g} m is below 1 mm")
        return math.pi * die_diameter_m ** 2 / 4.0, die_diameter_m
    if contact_area_m2 > 0.0:
        if contact_area_m2 > math.pi * MAX_PLAUSIBLE_DIAMETER_M ** 2 / 4.0:
            raise _invalid(f"contact_area = {contact_area_m2:g} m^2 is larger than a 200 mm "
                           "platen: looks like mm^2 given as m^2")
        if contact_area_m2 < math.pi * MIN_PLAUSIBLE_DIAMETER_M ** 2 / 4.0:
            raise _invalid(f"contact_area = {contact_area_m2:g} m^2 is below a 1 mm disc")
        return contact_area_m2, math.nan
    return 0.0, math.nan


def resolve_goal(goal, book, library, limits: GoalLimits) -> ResolvedGoal:
    """Resolve a ``PressCycle.Goal`` against the recipe ``book`` and ``library``.

    Raise ``GoalRejected`` (INVALID_GOAL or OVER_LIMIT) naming what was wrong.
    """
    from press_cell.nodes.press_messages import SegmentKindError, segment_from_msg

    area_m2, diameter_m = goal_area_m2(float(goal.die_diameter), float(goal.contact_area))
    max_pressure_pa = float(goal.max_pressure)
    if math.isnan(max_pressure_pa) or max_pressure_pa < 0.0:
        raise _invalid(f"max_pressure = {max_pressure_pa!r} must be >= 0 Pa (0 = no recipe "
                       "limit)")
    if max_pressure_pa == 0.0:
        max_pressure_pa = math.inf
    elif math.isfinite(max_pressure_pa):
        _check_pressure("max_pressure", max_pressure_pa, allow_zero=False)
    material = str(goal.material)
    recipe_name = str(goal.recipe_name)
    tooling = ""
    die_rating_n = math.nan
    if recipe_name and len(goal.segments) == 0:
        recipe = book.press.get(recipe_name)
        if recipe is None:
            raise _invalid(f"unknown recipe {recipe_name!r}; the recipe file has: "
                           f"{', '.join(sorted(book.press))}")
        if material and material != recipe.material:
            raise _invalid(f"material {material!r} does not match recipe {recipe_name!r} "
                           f"({recipe.material}); leave material empty or use "
                           f"{recipe.material!r}")
        material = recipe.material
        if area_m2 > 0.0:
            recipe_d = recipe.contact_diameter_m
            goal_d = diameter_m if math.isfinite(diameter_m) else \
                math.sqrt(4.0 * area_m2 / math.pi)
            if abs(goal_d - recipe_d) > DIAMETER_MATCH_M:
                raise _invalid(f"recipe {recipe_name!r} is for {recipe.tooling} "
                               f"({recipe_d * 1e3:.2f} mm); the goal says {goal_d * 1e3:.2f} mm")
        area_m2 = recipe.contact_area_m2
        segments = check_segments(recipe_segments(recipe))
        if recipe.max_pressure_pa is not None:
            max_pressure_pa = min(max_pressure_pa, recipe.max_pressure_pa)
        tool = library.tooling(recipe.tooling)
        tooling = recipe.tooling
        die_rating_n = tool.rated_force_n if tool is not None else math.nan
        hash_text = recipe_hash(recipe)
    else:
        try:
            segments = check_segments(segment_from_msg(s) for s in goal.segments)
        except SegmentKindError as exc:
            raise _invalid(str(exc)) from exc
        # With segments, recipe_name/recipe_hash only label the certificate (the coordinator
        # sends a recipe's segments so that its overrides apply).
        hash_text = str(goal.recipe_hash) or segments_hash(segments)
    if area_m2 <= 0.0:
        raise _invalid("zero contact area: set die_diameter (m) or contact_area (m^2)")
    if material and material not in library.material_names():
        raise _invalid(f"unknown material {material!r}; the library has: "
                       f"{', '.join(library.material_names())}")
    if not tooling and math.isfinite(diameter_m):
        die = library.die_by_diameter(diameter_m)
        if die is not None:
            tooling, die_rating_n = die.name, die.rated_force_n
    if math.isnan(die_rating_n):
        die_rating_n = limits.default_die_rating_n
    _check_ramp_rates(segments, limits.max_rate_pa_s)
    peak_pa = max(s.target_pressure_pa for s in segments)
    force_limit_n = min(limits.press_capacity_n, die_rating_n)
    limit_pa = min(force_limit_n / area_m2, max_pressure_pa)
    allowed_pa = limit_pa * (1.0 - HEADROOM_FRACTION)
    if peak_pa > allowed_pa:
        die_label = tooling or "the die (default rating)"
        raise GoalRejected(
            "OVER_LIMIT",
            f"target {peak_pa / 1e6:.2f} MPa ({peak_pa * area_m2 / 1e3:.2f} kN on "
            f"{area_m2 * 1e6:.1f} mm^2) exceeds the allowed {allowed_pa / 1e6:.2f} MPa: min of "
            f"press capacity {limits.press_capacity_n / 1e3:.1f} kN, {die_label} rating "
            f"{die_rating_n / 1e3:.1f} kN, recipe limit "
            f"{max_pressure_pa / 1e6:.1f} MPa, less {100 * HEADROOM_FRACTION:g} % headroom")
    duration_s = _nominal_duration_s(segments)
    return ResolvedGoal(segments=segments, contact_area_m2=area_m2,
                        max_pressure_pa=min(max_pressure_pa, die_rating_n / area_m2),
                        part_id=str(goal.part_id), step_name=str(goal.step_name),
                        material=material, recipe_name=recipe_name,
                        recipe_hash=hash_text, tooling=tooling, peak_pressure_pa=peak_pa,
                        duration_s=duration_s)


def _check_ramp_rates(segments, max_rate_pa_s: float) -> None:
    """Refuse a ramp faster than RAMP_RATE_FRACTION of the supervisor's rate limit."""
    allowed_pa_s = RAMP_RATE_FRACTION * max_rate_pa_s
    for i, seg in enumerate(segments):
        if seg.kind == "ramp" and seg.rate_pa_s > allowed_pa_s:
            raise GoalRejected(
                "OVER_LIMIT",
                f"segment {i} (ramp) asks {seg.rate_pa_s / 1e6:g} MPa/s; at most "
                f"{allowed_pa_s / 1e6:g} MPa/s is allowed, {RAMP_RATE_FRACTION:g} of the "
                f"supervisor's rate-of-rise limit max_rate_pa_s = {max_rate_pa_s / 1e6:g} MPa/s "
                "(a ramp start overshoots the commanded rate); ramp slower")


def _nominal_duration_s(segments) -> float:
    """Return the nominal profile duration from 0 Pa, s (ramps from their start level)."""
    level_pa = 0.0
    total_s = 0.0
    for seg in segments:
        if seg.kind == "hold":
            total_s += seg.duration_s
        else:
            total_s += abs(seg.target_pressure_pa - level_pa) / seg.rate_pa_s
            level_pa = seg.target_pressure_pa
    return total_s


def explicit_profile(target_pa: float, ramp_pa_s: float, hold_s: float, release_pa_s: float,
                     tolerance_fraction: float = 0.01) -> list:
    """Return ramp -> hold (left out when ``hold_s`` <= 0) -> release segments (SI)."""
    band_pa = tolerance_fraction * target_pa
    segments = [Segment("ramp", target_pa, ramp_pa_s, target_pa / ramp_pa_s, band_pa)]
    if hold_s > 0.0:
        segments.append(Segment("hold", target_pa, 0.0, hold_s, band_pa))
    segments.append(Segment("release", 0.0, release_pa_s, target_pa / release_pa_s, band_pa))
    return segments
