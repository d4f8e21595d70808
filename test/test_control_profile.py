"""Profile generator: validation messages, bumpless layout, setpoint trajectory properties."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.control.profile import Phase, PressProfile, ProfileError, validate_segments
from press_cell.recipes.segments import Segment

MPA = 1e6


def basic(target=25 * MPA, rate=1 * MPA, hold=10.0, tol=0.1 * MPA, release=5 * MPA):
    return [Segment("ramp", target, rate), Segment("hold", target, 0.0, hold, tol),
            Segment("release", 0.0, release)]


@pytest.mark.parametrize("segments, fragment", [
    ([], "empty"),
    ([Segment("hold", 0.0, 0.0, 1.0, 1.0), Segment("release", 0.0, 1.0)], "cannot start"),
    ([Segment("ramp", 10 * MPA, 0.0), Segment("release", 0.0, 1.0)], "rate_pa_s=0 must be > 0"),
    ([Segment("ramp", 10 * MPA, 1e6), Segment("hold", 12 * MPA, 0, 5, 1e5),
      Segment("release", 0.0, 1e6)], "must keep the level"),
    ([Segment("ramp", 10 * MPA, 1e6), Segment("hold", 10 * MPA, 0, 0.0, 1e5),
      Segment("release", 0.0, 1e6)], "duration_s=0 must be > 0"),
    ([Segment("ramp", 10 * MPA, 1e6), Segment("hold", 10 * MPA, 0, 5.0, 0.0),
      Segment("release", 0.0, 1e6)], "tolerance_pa=0 must be > 0"),
    ([Segment("ramp", 10 * MPA, 1e6)], "must end with a release to 0 Pa"),
    ([Segment("ramp", 10 * MPA, 1e6), Segment("release", 1 * MPA, 1e6)], "must end with a release"),
    ([Segment("ramp", 10 * MPA, 1e6), Segment("release", 20 * MPA, 1e6),
      Segment("release", 0.0, 1e6)], "not below the previous level"),
    ([Segment("ramp", -1.0, 1e6), Segment("release", 0.0, 1e6)], "negative"),
    ([Segment("ramp", math.nan, 1e6), Segment("release", 0.0, 1e6)], "finite"),
    (["ramp", Segment("release", 0.0, 1e6)], "expected a Segment"),
])
def test_invalid_profiles_are_refused_with_the_rule_broken(segments, fragment):
    with pytest.raises(ProfileError, match=fragment):
        validate_segments(segments)


def test_target_above_the_limit_names_the_limit():
    with pytest.raises(ProfileError, match="exceeds the pressure limit"):
        validate_segments(basic(target=400 * MPA), max_pressure_pa=300 * MPA)


def test_ramp_starts_bumplessly_from_the_measured_pressure():
    prof = PressProfile(basic(target=25 * MPA, rate=1 * MPA), start_pressure_pa=5 * MPA)
    first = prof.sample(0.0)
    assert first.setpoint_pa == pytest.approx(5 * MPA)
    assert first.phase is Phase.RAMP and first.setpoint_rate_pa_s == pytest.approx(1 * MPA)
    # 20 MPa left to climb at 1 MPa/s.
    assert prof.span_bounds(0)[1] == pytest.approx(20.0)


def test_phases_times_and_end_of_a_staged_profile():
    segs = [Segment("ramp", 10 * MPA, 2 * MPA), Segment("hold", 10 * MPA, 0, 3.0, 1e5),
            Segment("ramp", 4 * MPA, 2 * MPA), Segment("hold", 4 * MPA, 0, 2.0, 1e5),
            Segment("release", 0.0, 4 * MPA)]
    prof = PressProfile(segs)
    assert prof.total_duration_s == pytest.approx(5 + 3 + 3 + 2 + 1)
    p = prof.sample(6.0)
    assert (p.phase, p.segment_index, p.setpoint_pa) == (Phase.HOLD, 1, 10 * MPA)
    assert p.time_in_segment_s == pytest.approx(1.0)
    assert p.time_remaining_s == pytest.approx(8.0)
    down = prof.sample(9.0)      # ramp down to the lower stage
    assert down.setpoint_rate_pa_s < 0 and down.setpoint_pa == pytest.approx(8 * MPA)
    end = prof.sample(100.0)
    assert end.finished and end.setpoint_pa == 0.0 and end.time_remaining_s == 0.0


def test_release_from_starts_at_the_given_pressure():
    prof = PressProfile.release_from(12 * MPA, 4 * MPA)
    assert prof.sample(0.0).setpoint_pa == pytest.approx(12 * MPA)
    assert prof.sample(0.0).phase is Phase.RELEASE
    assert prof.total_duration_s == pytest.approx(3.0)


stage = st.tuples(st.floats(1 * MPA, 800 * MPA), st.floats(0.01 * MPA, 100 * MPA),
                  st.floats(0.0, 300.0))


@settings(max_examples=60, deadline=None)
@given(stages=st.lists(stage, min_size=1, max_size=4), start=st.floats(0.0, 5 * MPA),
       release=st.floats(0.01 * MPA, 100 * MPA), probes=st.lists(st.floats(0, 1), min_size=5))
def test_setpoint_is_continuous_bounded_and_counts_down(stages, start, release, probes):
    segs = []
    for target, rate, hold in stages:
        segs.append(Segment("ramp", target, rate))
        if hold > 0:
            segs.append(Segment("hold", target, 0.0, hold, 0.01 * target))
    segs.append(Segment("release", 0.0, release))
    prof = PressProfile(segs, start_pressure_pa=start)
    top = max(start, max(s[0] for s in stages))
    times = sorted(p * prof.total_duration_s for p in probes)
    previous = None
    for t in times:
        point = prof.sample(t)
        assert 0.0 <= point.setpoint_pa <= top * (1 + 1e-12)
        assert point.time_remaining_s == pytest.approx(prof.total_duration_s - t, abs=1e-6)
        if previous is not None:
            t0, p0 = previous
            # The setpoint never moves faster than the fastest segment rate.
            fastest = max([s[1] for s in stages] + [release])
            assert abs(point.setpoint_pa - p0) <= fastest * (t - t0) * (1 + 1e-9) + 1e-3
        previous = (t, point.setpoint_pa)
    assert prof.sample(prof.total_duration_s + 1.0).setpoint_pa == 0.0
