"""Adaptive hold end (control/hold_end.py): the HoldEndCriterion rules, incl. hypothesis."""

import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.control.hold_end import (
    HoldEndCriterion,
    HoldEndError,
    HoldEndEvaluator,
    interface_resistance_from_point,
)


def creeping_interface_ohm(t_s, r_end_ohm=1.0, r_start_ohm=50.0, tau_s=20.0):
    """R_int of a foil creeping into the electrolyte: exponential approach to r_end [est]."""
    return r_end_ohm + (r_start_ohm - r_end_ohm) * math.exp(-t_s / tau_s)


def run(evaluator, times_s, r_of_t):
    """Feed samples until the evaluator ends the hold; return the end time (None if never)."""
    for t_s in times_s:
        if evaluator.update(t_s, r_of_t(t_s)):
            return t_s
    return None


def test_ends_when_the_interface_falls_below_the_threshold():
    evaluator = HoldEndEvaluator(HoldEndCriterion(True, 10.0, r_interface_below_ohm=5.0,
                                                  min_hold_s=5.0, max_hold_s=300.0))
    end_s = run(evaluator, [0.5 * k for k in range(1000)], creeping_interface_ohm)
    expected_s = -20.0 * math.log((5.0 - 1.0) / 49.0)        # R(t) = 5 ohm at ~50 s
    assert end_s == pytest.approx(expected_s, abs=0.5)
    assert "r_interface" in evaluator.reason and evaluator.ended


def test_ends_when_the_resistance_stops_falling():
    evaluator = HoldEndEvaluator(HoldEndCriterion(True, 10.0, dr_dt_below_ohm_s=0.05,
                                                  min_hold_s=5.0, max_hold_s=600.0),
                                 slope_window_s=10.0)
    end_s = run(evaluator, [0.5 * k for k in range(2000)], creeping_interface_ohm)
    # dR/dt = -(49/20) exp(-t/20) = -0.05 at ~78 s; the window-averaged slope lags ~5 s
    assert 75.0 < end_s < 95.0
    assert "dR/dt" in evaluator.reason
    assert abs(evaluator.slope_ohm_s) < 0.05


def test_never_ends_before_min_hold_even_if_already_good():
    evaluator = HoldEndEvaluator(HoldEndCriterion(True, 10.0, r_interface_below_ohm=5.0,
                                                  min_hold_s=30.0, max_hold_s=60.0))
    assert run(evaluator, [float(k) for k in range(100)], lambda t: 1.0) == 30.0


def test_always_ends_at_max_hold_when_the_criterion_is_never_met():
    evaluator = HoldEndEvaluator(HoldEndCriterion(True, 10.0, r_interface_below_ohm=0.1,
                                                  dr_dt_below_ohm_s=1e-6, min_hold_s=1.0,
                                                  max_hold_s=40.0))
    assert run(evaluator, [float(k) for k in range(100)], creeping_interface_ohm) == 40.0
    assert "max_hold" in evaluator.reason
    assert evaluator.update(41.0, 0.0) and evaluator.ended_at_s == 40.0   # latched


def test_disabled_criterion_never_ends_the_hold():
    evaluator = HoldEndEvaluator(HoldEndCriterion(False, r_interface_below_ohm=100.0))
    assert run(evaluator, [float(k) for k in range(1000)], lambda t: 0.0) is None
    assert evaluator.reason == ""


def test_overloaded_points_are_ignored_but_max_hold_still_applies():
    evaluator = HoldEndEvaluator(HoldEndCriterion(True, 10.0, r_interface_below_ohm=5.0,
                                                  max_hold_s=20.0))
    assert run(evaluator, [float(k) for k in range(30)], lambda t: math.nan) == 20.0


def test_from_fields_reads_the_message_layout():
    fields = SimpleNamespace(enabled=True, monitor_frequency=1.0, r_interface_below=2.0,
                             dr_dt_below=0.1, min_hold=3.0, max_hold=9.0)
    assert HoldEndCriterion.from_fields(fields) == HoldEndCriterion(True, 1.0, 2.0, 0.1, 3.0, 9.0)
    evaluator = HoldEndEvaluator(fields)            # the message itself is accepted too
    assert not evaluator.update(2.0, 1.0) and evaluator.update(3.0, 1.0)


@pytest.mark.parametrize("kwargs, word", [
    (dict(min_hold_s=10.0, max_hold_s=5.0), "min_hold_s <= max_hold_s"),
    (dict(max_hold_s=0.0), "0 < max_hold_s"),
    (dict(r_interface_below_ohm=-1.0), "r_interface_below_ohm"),
    (dict(dr_dt_below_ohm_s=math.nan), "dr_dt_below_ohm_s"),
    (dict(monitor_frequency_hz=0.0), "monitor_frequency_hz"),
])
def test_invalid_criteria_are_refused_with_the_field_named(kwargs, word):
    with pytest.raises(HoldEndError, match=word):
        HoldEndCriterion(enabled=True, **kwargs)


def test_time_going_backwards_is_refused():
    evaluator = HoldEndEvaluator(HoldEndCriterion(True, max_hold_s=10.0))
    evaluator.update(2.0, 1.0)
    with pytest.raises(HoldEndError, match="non-decreasing"):
        evaluator.update(1.0, 1.0)


samples = st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 1000.0) | st.just(math.nan)),
                   min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(steps=samples, r_below=st.floats(0.0, 500.0), slope_below=st.floats(0.0, 50.0),
       min_hold=st.floats(0.0, 50.0), extra=st.floats(0.0, 100.0))
def test_hypothesis_end_lies_within_min_and_max_hold(steps, r_below, slope_below, min_hold,
                                                     extra):
    criterion = HoldEndCriterion(True, 10.0, r_below, slope_below, min_hold, min_hold + extra
                                 + 1e-3)
    evaluator = HoldEndEvaluator(criterion, slope_window_s=5.0)
    t_s = 0.0
    for dt_s, r_ohm in steps:
        t_s += dt_s
        if evaluator.update(t_s, r_ohm):
            assert criterion.min_hold_s <= evaluator.ended_at_s <= max(t_s, criterion.max_hold_s)
            break
        assert t_s < criterion.max_hold_s
    if evaluator.ended and evaluator.ended_at_s < criterion.max_hold_s:
        assert "r_interface" in evaluator.reason or "dR/dt" in evaluator.reason
    # whatever happened, a sample at max_hold ends the hold
    assert evaluator.update(max(t_s, criterion.max_hold_s), math.nan)


@settings(max_examples=100, deadline=None)
@given(r_series=st.floats(0.0, 1e3), r_int=st.floats(0.0, 1e3), x=st.floats(-1e3, 0.0))
def test_hypothesis_interface_estimate_inverts_a_resistive_point(r_series, r_int, x):
    z = complex(r_series + 2.0 * r_int, x)
    assert interface_resistance_from_point(z, r_series) == pytest.approx(r_int, abs=1e-9,
                                                                         rel=1e-9)
    assert interface_resistance_from_point(z, math.nan) != interface_resistance_from_point(
        z, math.nan)     # NaN in, NaN out
