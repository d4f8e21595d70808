"""PressCertificate: field set matches the .msg files; figures from a synthetic trace."""

import dataclasses
import math
import re

import numpy as np
import pytest

from press_cell.control.certificate import PressCertificate, PressTrace, compute_certificate
from press_cell.control.loop_runner import LoopTiming
from press_cell.control.profile import PressProfile
from press_cell.recipes.segments import Segment

MPA = 1e6


def msg_fields(path):
    names = []
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line or "=" in line:
            continue
        type_, name = line.split()[:2]
        if type_ != "std_msgs/Header":
            names.append(name)
    return names


def test_certificate_has_exactly_the_msg_fields():
    assert [f.name for f in dataclasses.fields(PressCertificate)] == \
        msg_fields("msg/PressCertificate.msg")
    assert [f.name for f in dataclasses.fields(LoopTiming)] == \
        msg_fields("msg/ControllerTiming.msg")


def synthetic_trace(overshoot_pa=0.5 * MPA, settle_s=0.4, rate_factor=1.0):
    """Ramp 0->20 MPa at 2 MPa/s (achieved x rate_factor), hold 20 s, release 4 MPa/s."""
    dt = 1e-3
    segs = [Segment("ramp", 20 * MPA, 2 * MPA), Segment("hold", 20 * MPA, 0, 20.0, 0.1 * MPA),
            Segment("release", 0.0, 4 * MPA)]
    prof = PressProfile(segs)
    rows = []
    t = np.arange(0.0, prof.total_duration_s, dt)
    for ti in t:
        point = prof.sample(ti)
        p = point.setpoint_pa
        if point.segment_index == 0:
            p = min(p * rate_factor, 20 * MPA)
        elif point.segment_index == 1:
            tau = point.time_in_segment_s
            p = 20 * MPA + overshoot_pa * max(0.0, 1.0 - tau / settle_s)
        rows.append((ti, point.setpoint_pa, p, p * 1e-4, 1e-6 * ti, 0.0, int(point.phase),
                     point.segment_index))
    return PressTrace.from_rows(rows), prof


def test_figures_from_a_known_trace():
    trace, prof = synthetic_trace(overshoot_pa=0.5 * MPA, settle_s=0.4)
    cert = compute_certificate(trace, prof, 1e-4, LoopTiming(rate=1000.0), part_id="P1",
                               material="Li", thickness_start=100e-6, thickness_end=70e-6)
    assert cert.part_id == "P1" and cert.material == "Li"
    assert cert.target_pressure == 20 * MPA
    assert cert.overshoot == pytest.approx(0.5 * MPA, rel=0.03)
    assert cert.overshoot_fraction == pytest.approx(0.025, rel=0.03)
    # out of the 0.1 MPa band until the excess falls below it: 0.4 s x (1 - 0.1/0.5) = 0.32 s
    assert cert.settling_time == pytest.approx(0.32, abs=0.01)
    assert cert.time_out_of_band == pytest.approx(0.32, abs=0.01)
    assert cert.fraction_in_band == pytest.approx(1 - 0.32 / 20.0, abs=1e-3)
    assert cert.hold_duration == pytest.approx(20.0, abs=2e-3)
    assert cert.ramp_rate_achieved == pytest.approx(2 * MPA, rel=1e-3)
    assert abs(cert.ramp_rate_error) < 1e-3
    assert cert.thickness_change == pytest.approx(-30e-6)
    assert cert.peak_pressure == pytest.approx(20.5 * MPA, rel=1e-3)
    assert cert.duration == pytest.approx(prof.total_duration_s, abs=2e-3)
    assert len(cert.recipe_hash) == 64 and cert.loop_timing.rate == 1000.0


def test_a_slow_ramp_shows_as_ramp_rate_error():
    trace, prof = synthetic_trace(rate_factor=0.9)
    cert = compute_certificate(trace, prof, 1e-4)
    assert cert.ramp_rate_error == pytest.approx(-0.1, abs=0.01)


def test_without_hold_the_hold_figures_are_nan():
    segs = [Segment("ramp", 5 * MPA, 1 * MPA), Segment("release", 0.0, 1 * MPA)]
    prof = PressProfile(segs)
    rows = [(t, prof.sample(t).setpoint_pa, prof.sample(t).setpoint_pa, 0, 0, 0, 1,
             prof.sample(t).segment_index) for t in np.arange(0, 10, 0.01)]
    cert = compute_certificate(PressTrace.from_rows(rows), prof, 1e-4)
    assert math.isnan(cert.mean_hold_pressure) and math.isnan(cert.settling_time)
    assert math.isnan(cert.thickness_change)
    assert cert.as_dict()["loop_timing"]["rate"] == 0.0


def test_recipe_hash_depends_on_the_profile():
    field_names = {f.name for f in dataclasses.fields(PressCertificate)}
    assert "recipe_hash" in field_names
    a, prof_a = synthetic_trace()
    cert_a = compute_certificate(a, prof_a, 1e-4)
    prof_b = PressProfile([Segment("ramp", 21 * MPA, 2 * MPA), Segment("release", 0.0, 1e6)])
    cert_b = compute_certificate(a, prof_b, 1e-4)
    assert re.fullmatch("[0-9a-f]{64}", cert_a.recipe_hash)
    assert cert_a.recipe_hash != cert_b.recipe_hash
