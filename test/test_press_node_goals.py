"""Press node pieces without a running node: goal checks, zone lease book, conversions, params."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.action import PressCycle
from press_cell.control.certificate import PressCertificate
from press_cell.control.loop_runner import LoopTiming
from press_cell.msg import PressSegment
from press_cell.nodes.press_goal import GoalLimits, GoalRejected, resolve_goal
from press_cell.nodes.press_messages import (
    StampMapper,
    certificate_to_dict,
    certificate_to_msg,
    segment_from_msg,
    segment_to_msg,
    time_from_seconds,
)
from press_cell.nodes.press_parameters import check_parameter_change
from press_cell.nodes.zone_lease import ZoneLeaseBook
from press_cell.recipes import load_recipes
from press_cell.recipes.library import load_library
from press_cell.recipes.segments import Segment

LIMITS = GoalLimits(press_capacity_n=147.1e3, default_die_rating_n=98.07e3)


@pytest.fixture(scope="module")
def book_and_library():
    """Return the shipped recipe book and library."""
    library = load_library()
    return load_recipes(library=library), library


def goal(target_pa=50e6, rate_pa_s=5e6, hold_s=10.0, **fields):
    """Return a one-level profile goal on a 13 mm die unless fields say otherwise."""
    fields.setdefault("die_diameter", 0.013)
    g = PressCycle.Goal(part_id="p", **fields)
    g.segments = [PressSegment(kind=0, target_pressure=target_pa, rate=rate_pa_s),
                  PressSegment(kind=1, target_pressure=target_pa, duration=hold_s,
                               tolerance=0.01 * abs(target_pa)),
                  PressSegment(kind=2, target_pressure=0.0, rate=rate_pa_s)]
    return g


def test_recipe_goal_resolves_to_its_tooling_material_and_hash(book_and_library):
    """A recipe goal takes area, material, limit and hash from the recipe."""
    book, library = book_and_library
    plan = resolve_goal(PressCycle.Goal(recipe_name="li6ps5cl_370mpa_200mg", part_id="x"),
                        book, library, LIMITS)
    assert plan.material == "Li6PS5Cl" and plan.tooling == "die-13mm"
    assert plan.contact_area_m2 == pytest.approx(math.pi * 0.013 ** 2 / 4)
    assert plan.peak_pressure_pa == pytest.approx(370e6)
    assert plan.max_pressure_pa == pytest.approx(400e6)
    assert len(plan.recipe_hash) == 64
    # 370 MPa ramp at 5 MPa/s, 180 s hold, release at 10 MPa/s.
    assert plan.duration_s == pytest.approx(74 + 180 + 37)


def test_segments_with_a_recipe_name_run_the_segments_and_label_the_certificate(
        book_and_library):
    """The coordinator sends a recipe's segments (overrides applied) with its name and hash."""
    book, library = book_and_library
    plan = resolve_goal(goal(30e6, recipe_name="li6ps5cl_370mpa_200mg", recipe_hash="ab" * 32,
                             step_name="compaction"), book, library, LIMITS)
    assert plan.peak_pressure_pa == pytest.approx(30e6), "the goal's segments run, not the file's"
    assert (plan.recipe_name, plan.recipe_hash, plan.step_name) == \
        ("li6ps5cl_370mpa_200mg", "ab" * 32, "compaction")
    unlabeled = resolve_goal(goal(30e6), book, library, LIMITS)
    assert len(unlabeled.recipe_hash) == 64 and unlabeled.recipe_hash != "ab" * 32


@pytest.mark.parametrize("fields, code, text", [
    (dict(recipe_name="li6ps5cl_370mpa_200mg", die_diameter=0.010), "INVALID_GOAL", "13.00 mm"),
    (dict(recipe_name="li6ps5cl_370mpa_200mg", material="Li"), "INVALID_GOAL", "does not match"),
    (dict(die_diameter=13.0), "INVALID_GOAL", "looks like mm"),
    (dict(die_diameter=0.013, contact_area=1e-4), "INVALID_GOAL", "not both"),
    (dict(die_diameter=0.0), "INVALID_GOAL", "zero contact area"),
    (dict(material="Kryptonite"), "INVALID_GOAL", "unknown material"),
    (dict(max_pressure=-1.0), "INVALID_GOAL", "max_pressure"),
    (dict(max_pressure=40e6), "OVER_LIMIT", "recipe limit 40.0 MPa"),
])
def test_bad_goal_fields_are_rejected_with_a_reason(book_and_library, fields, code, text):
    """Conflicting or implausible goal fields are refused, naming the field."""
    book, library = book_and_library
    g = goal(**{k: v for k, v in fields.items() if k != "recipe_name"})
    if "recipe_name" in fields:
        g.segments = []
        g.recipe_name = fields["recipe_name"]
    with pytest.raises(GoalRejected) as refused:
        resolve_goal(g, book, library, LIMITS)
    assert refused.value.code == code
    assert text in refused.value.reason


def test_die_rating_comes_from_the_library_die_of_that_bore(book_and_library):
    """800 MPa on a 13 mm die exceeds its 10 tf rating (739 MPa), not the press."""
    book, library = book_and_library
    with pytest.raises(GoalRejected) as refused:
        resolve_goal(goal(800e6), book, library, LIMITS)
    assert refused.value.code == "OVER_LIMIT" and "die-13mm rating 98.1 kN" in refused.value.reason
    # 2 t press (SCIENCE.md): 300 MPa on 13 mm needs 39.8 kN > 19.6 kN.
    small = GoalLimits(press_capacity_n=19.6e3, default_die_rating_n=98.07e3)
    with pytest.raises(GoalRejected):
        resolve_goal(goal(300e6), book, library, small)
    assert resolve_goal(goal(140e6), book, library, small).peak_pressure_pa == 140e6


def test_ramp_faster_than_half_the_supervisor_rate_limit_is_refused(book_and_library):
    """A 30 MPa/s ramp would trip RATE_LIMIT (50 MPa/s) at its start: refused at the goal."""
    book, library = book_and_library
    limits = GoalLimits(press_capacity_n=147.1e3, default_die_rating_n=98.07e3,
                        max_rate_pa_s=50e6)
    with pytest.raises(GoalRejected) as refused:
        resolve_goal(goal(300e6, rate_pa_s=30e6), book, library, limits)
    assert refused.value.code == "OVER_LIMIT"
    assert "segment 0 (ramp) asks 30 MPa/s; at most 25 MPa/s" in refused.value.reason
    assert resolve_goal(goal(300e6, rate_pa_s=25e6), book, library, limits).peak_pressure_pa \
        == 300e6


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=1e-6, max_value=999.0))
def test_target_below_1_kpa_is_a_unit_error(book_and_library, target):
    """A target such as 25 (meant as MPa) is refused as MPa given as Pa."""
    book, library = book_and_library
    with pytest.raises(GoalRejected) as refused:
        resolve_goal(goal(target), book, library, LIMITS)
    assert "looks like MPa given as Pa" in refused.value.reason


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=2.0001e9, max_value=1e30))
def test_target_above_2_gpa_is_a_unit_error(book_and_library, target):
    """A target such as 25e12 (MPa converted twice) is refused as a unit error."""
    book, library = book_and_library
    with pytest.raises(GoalRejected) as refused:
        resolve_goal(goal(target), book, library, LIMITS)
    assert "above 2 GPa" in refused.value.reason


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([math.nan, math.inf, -math.inf, -5e6]),
       st.sampled_from(["target", "rate", "hold"]))
def test_non_finite_or_negative_numbers_are_refused(book_and_library, bad, where):
    """NaN, inf or negative numbers anywhere in a segment are refused as INVALID_GOAL."""
    book, library = book_and_library
    g = goal()
    if where == "target":
        g.segments[0].target_pressure = bad
    elif where == "rate":
        g.segments[0].rate = bad
    else:
        g.segments[1].duration = bad
    with pytest.raises(GoalRejected) as refused:
        resolve_goal(g, book, library, LIMITS)
    assert refused.value.code == "INVALID_GOAL"


def test_zone_lease_grant_renew_release_expire():
    """One lease at a time, granted only unloaded and idle, capped, renewable, expiring."""
    book = ZoneLeaseBook(max_lease_s=10.0)
    assert not book.acquire("arm", 5.0, 0.0, 1e6, 0.2e6, False).granted        # loaded
    assert not book.acquire("arm", 5.0, 0.0, 0.0, 0.2e6, True).granted         # cycle runs
    answer = book.acquire("arm", 50.0, 0.0, 0.0, 0.2e6, False)
    assert answer.granted and answer.remaining_s == 10.0 and "capped" in answer.message
    assert not book.acquire("other", 1.0, 1.0, 0.0, 0.2e6, False).granted     # held
    assert book.renew(answer.lease_id, 3.0, 8.0).granted
    assert book.remaining_s(9.0) == pytest.approx(2.0)
    assert book.expire(10.9) is None and book.held
    assert book.expire(11.0) is not None and not book.held
    assert not book.release(answer.lease_id, 11.1).granted
    second = book.acquire("arm", 1.0, 12.0, 0.0, 0.2e6, False)
    assert second.lease_id != answer.lease_id
    assert book.release(second.lease_id, 12.5).granted and not book.held


def test_segment_and_certificate_conversions_keep_si_values():
    """Segments round-trip; the certificate message carries every field, NaN as None in JSON."""
    for s in (Segment("ramp", 50e6, 5e6, 0.0, 0.5e6), Segment("hold", 50e6, 0.0, 10.0, 0.5e6),
              Segment("release", 0.0, 5e6, 0.0, 0.5e6)):
        assert segment_from_msg(segment_to_msg(s)) == s
    cert = PressCertificate(part_id="p", started=12.5, peak_pressure=370.2e6,
                            loop_timing=LoopTiming(rate=500.0, cycles=10))
    msg = certificate_to_msg(cert, StampMapper(simulated=True))
    assert (msg.started.sec, msg.started.nanosec) == (12, 500_000_000)
    assert msg.peak_pressure == 370.2e6 and msg.loop_timing.rate == 500.0
    as_dict = certificate_to_dict(msg)
    assert as_dict["peak_pressure"] == 370.2e6 and as_dict["settling_time"] is None
    assert time_from_seconds(math.nan).sec == 0


@pytest.mark.parametrize("changes, rating_n, read_rate_hz, text", [
    ({"press_capacity_n": 2e5}, 147.1e3, math.nan, "rating"),
    ({"press_capacity_n": 1e5}, 147.1e3, math.nan, ""),
    ({"rate_hz": 500.0}, math.nan, 200.0, "polled"),
    ({"rate_hz": 150.0, "state_rate_hz": 100.0}, math.nan, 200.0, ""),
    ({"state_rate_hz": 1000.0}, math.nan, math.nan, "exceeds rate_hz"),
    ({"released_pa": 0.5e6}, math.nan, math.nan, "zone_threshold_pa"),
])
def test_parameter_changes_checked_against_ratings(changes, rating_n, read_rate_hz, text):
    """Changes beyond the press rating or breaking cross-field rules are refused."""
    current = {"press_capacity_n": 0.0, "rate_hz": 500.0, "state_rate_hz": 100.0,
               "released_pa": 0.1e6, "zone_threshold_pa": 0.2e6}
    reason = check_parameter_change(current, changes, rating_n, read_rate_hz)
    if text:
        assert text in reason
    else:
        assert reason == ""
