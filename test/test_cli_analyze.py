"""`press-cell analyze`: tables, report, --json, errors on damaged bags, and PressTrace bags.

The PressTrace test runs a real press cycle (PressRuntime on the SimulatedPress in lockstep,
approach to contact included), records its trace the way the press node publishes it, and checks
that the analysis of the bag reproduces the live certificate exactly.
"""

import io
import json
import math
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.analysis.bag_types import press_cell_typestore
from press_cell.analysis.bag_writer import BagWriter, RecordingInfo
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run
from press_cell.cli import main as cli_main
from press_cell.commands.analyze import ProgressBar
from press_cell.control.press_runtime import PressRuntime
from press_cell.control.profile import PressProfile
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.physics.foil import LITHIUM, AlkaliFoil
from press_cell.recipes.segments import Segment
from press_cell.timebase import SimulatedClock

MPA = 1e6
SHORT = CycleSpec(target_pressure_pa=25 * MPA, ramp_rate_pa_s=25 * MPA, hold_s=1.0,
                  release_rate_pa_s=25 * MPA)
KINDS = {"ramp": 0, "hold": 1, "release": 2}


def analyze(*args, capsys):
    """Run `press-cell analyze` in-process; return (exit code, stdout, stderr)."""
    code = cli_main(["analyze", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---------------------------------------------------------------- a real cycle's trace
def press_cycle(seed=3):
    """Run one Li-foil pre-press cycle in lockstep; return (outcome, segments, area)."""
    clock = SimulatedClock()
    foil = AlkaliFoil(LITHIUM, 100e-6, 12.7e-3 / 2)
    runtime = PressRuntime(SimulatedPress(clock, specimen=foil, seed=seed), clock,
                           rate_hz=500.0, lockstep=True, realtime=False)
    runtime.start()
    try:
        runtime.tare(50)
        segments = list(PressProfile([
            Segment("ramp", 10 * MPA, 2 * MPA),
            Segment("hold", 10 * MPA, 0.0, 1.0, 0.2 * MPA),
            Segment("release", 0.0, 5 * MPA)]).segments)
        handle = runtime.start_cycle(segments, foil.loaded_area_m2, part_id="anode-7",
                                     step_name="prepress_a", recipe_name="li_prepress",
                                     calibration_id="tare test", material="Li")
        outcome = handle.wait(60.0)
    finally:
        runtime.stop()
    assert outcome is not None and outcome.status == "SUCCEEDED", outcome
    return outcome, segments, foil.loaded_area_m2


def _certificate_msg(types, cert):
    values = asdict(cert)
    timing = values.pop("loop_timing")
    started = values.pop("started")
    return types["press_cell/msg/PressCertificate"](
        started=types["builtin_interfaces/msg/Time"](sec=int(started),
                                                     nanosec=int(started % 1.0 * 1e9)),
        loop_timing=types["press_cell/msg/ControllerTiming"](
            header=types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id=""),
            **timing),
        **values)


def write_trace_bag(path, outcome, segments, area, storage):
    """Write the cycle as the press node publishes it on ~/trace."""
    store = press_cell_typestore()
    types = store.types
    trace = outcome.trace
    col = np.ascontiguousarray
    msg = types["press_cell/msg/PressTrace"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="press"),
        part_id="anode-7", step_name="prepress_a", contact_area=area, loop_rate=500.0,
        segments=[types["press_cell/msg/PressSegment"](
            kind=KINDS[s.kind], target_pressure=s.target_pressure_pa, rate=s.rate_pa_s,
            duration=s.duration_s, tolerance=s.tolerance_pa) for s in segments],
        time=col(trace.time_s), pressure_setpoint=col(trace.setpoint_pa),
        pressure=col(trace.pressure_pa), force=col(trace.force_n),
        ram_position=col(trace.ram_position_m), valve_command=col(trace.demand),
        phase=col(trace.phase, dtype=np.uint8), segment_index=col(trace.segment_index,
                                                                  dtype=np.int32),
        certificate=_certificate_msg(types, outcome.certificate))
    with BagWriter(path, storage=storage, info=RecordingInfo(cell_id="cell-7")) as writer:
        writer.add_topic("/cell/press/trace", "press_cell/msg/PressTrace")
        writer.write("/cell/press/trace", 1_764_000_010_000_000_000, msg)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_trace_bag_reproduces_the_live_certificate(tmp_path, capsys, storage):
    outcome, segments, area = press_cycle()
    # The press approached contact first: the profile start is not the first setpoint, so a
    # reproduction must find where the press laid the profile out.
    assert outcome.trace.setpoint_pa[0] != outcome.trace.setpoint_pa[-1]
    bag = tmp_path / "bag"
    write_trace_bag(bag, outcome, segments, area, storage)
    code, out, err = analyze(bag, "--json", "--out", tmp_path / "rep", capsys=capsys)
    assert code == 0, err
    document = json.loads(out)
    [cycle] = document["cycles"]
    assert cycle["method"].startswith("full-rate trace")
    assert cycle["extra"]["matches_live"] is True, cycle["extra"]["differences_from_live"]
    live = outcome.certificate
    for name in ("peak_pressure", "mean_hold_pressure", "hold_pressure_std", "overshoot",
                 "settling_time", "fraction_in_band", "ramp_rate_achieved", "ram_travel",
                 "time_out_of_band", "duration"):
        expected = getattr(live, name)
        assert cycle[name] == pytest.approx(expected, rel=1e-12, abs=1e-12) or (
            cycle[name] is None and math.isnan(expected)), name
    # The band drawn and used is the recorded one (0.2 MPa), not a guessed 2 %.
    assert cycle["segments"][1]["tolerance_pa"] == 0.2 * MPA
    assert cycle["calibration_id"] == "tare test" and cycle["step_name"] == "prepress_a"


def test_trace_with_a_wrong_live_figure_is_reported(tmp_path, capsys):
    outcome, segments, area = press_cycle(seed=4)
    tampered = outcome.certificate.__class__(**{
        **{k: getattr(outcome.certificate, k) for k in outcome.certificate.__dataclass_fields__},
        "mean_hold_pressure": outcome.certificate.mean_hold_pressure + 0.5 * MPA})
    write_trace_bag(tmp_path / "bag", outcome.__class__(
        outcome.status, outcome.error_code, outcome.message, tampered, outcome.trace),
        segments, area, "mcap")
    code, out, _ = analyze(tmp_path / "bag", "--out", tmp_path / "rep", capsys=capsys)
    assert code == 0
    assert "DIFFERS" in out
    report = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert set(report["cycles"][0]["extra"]["differences_from_live"]) == {"mean_hold_pressure"}


# ---------------------------------------------------------------- telemetry bags
@pytest.fixture(scope="module")
def synthetic_bags(tmp_path_factory):
    root = tmp_path_factory.mktemp("bags")
    return {"mcap": write_synthetic_run(root / "mcap", cycles=2, spec=SHORT, rate_hz=200.0)}


def test_table_in_lab_units_and_report_files(synthetic_bags, tmp_path, capsys):
    run = synthetic_bags["mcap"]
    code, out, err = analyze(run.path, "--out", tmp_path / "rep", capsys=capsys)
    assert code == 0, err
    assert "MPa" in out and "peak kN" in out and "R_total ohm" in out
    # 25 MPa target in MPa, in the table row of each cycle.
    rows = [line for line in out.splitlines() if line.strip().startswith(("0 ", "1 "))]
    assert sum("25.000" in line for line in rows) == 2
    for name in ("cycles.csv", "report.json", "table.txt", "pressure.png"):
        assert (tmp_path / "rep" / name).is_file(), name
    document = json.loads((tmp_path / "rep" / "report.json").read_text())
    for row, live in zip(document["cycles"], run.certificates, strict=True):
        assert row["mean_hold_pressure"] == pytest.approx(live.mean_hold_pressure, rel=1e-9)
    assert len(document["measurements"]) == 2


def test_default_report_folder_beside_the_bag(tmp_path, capsys):
    run = write_synthetic_run(tmp_path / "b", cycles=1, spec=SHORT, rate_hz=100.0,
                              spectra=False)
    code, _, _ = analyze(run.path, capsys=capsys)
    assert code == 0
    assert (tmp_path / "b_report" / "report.json").is_file()


@pytest.mark.timeout(60)
def test_damaged_bags_one_line_error_or_partial_analysis(synthetic_bags, tmp_path, capsys):
    import shutil

    # Cut to its first 100 bytes: nothing readable -> exit 2, one line, no traceback.
    cut = tmp_path / "cut"
    shutil.copytree(synthetic_bags["mcap"].path, cut)
    (cut / "metadata.yaml").unlink()
    mcap = next(cut.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[:100])
    code, _, err = analyze(cut, "--out", tmp_path / "r1", capsys=capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("press-cell analyze: ") and str(cut) in err
    # Cut at 60 %: the first cycle survives; the analysis says the file is incomplete.
    half = tmp_path / "half"
    shutil.copytree(synthetic_bags["mcap"].path, half)
    mcap = next(half.glob("*.mcap"))
    data = mcap.read_bytes()
    mcap.write_bytes(data[: int(len(data) * 0.6)])
    code, out, err = analyze(half, "--json", "--out", tmp_path / "r2", capsys=capsys)
    assert code == 0, err
    document = json.loads(out)
    assert any("incomplete" in p for p in document["problems"])
    assert len(document["cycles"]) >= 1
    # Missing bag.
    code, _, err = analyze(tmp_path / "nope", capsys=capsys)
    assert code == 2 and "no such bag" in err and len(err.strip().splitlines()) == 1


@pytest.mark.timeout(60)
def test_no_traceback_from_the_command_line(tmp_path):
    result = subprocess.run([sys.executable, "-m", "press_cell.cli", "analyze",
                             str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"press-cell analyze: {tmp_path / 'nope'}: no such bag (directory or .mcap/.db3 file)"]


class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_only_on_a_terminal():
    tty, pipe = _Tty(), io.StringIO()
    for stream in (tty, pipe):
        bar = ProgressBar("reading x", stream=stream)
        bar(50, 200)
        bar(200, 200)
        bar.close()
    assert "100.0 %" in tty.getvalue() and "(200/200 messages)" in tty.getvalue()
    assert pipe.getvalue() == ""


@settings(max_examples=60, deadline=None)
@given(approach_rows=st.integers(0, 40), old_start_kpa=st.integers(0, 500),
       contact_kpa=st.integers(50, 2000), rate_mpa_s=st.integers(1, 50),
       clock_offset_s=st.sampled_from([0.0, 1234.5, 1.764e9]), jitter=st.booleans(),
       seed=st.integers(0, 2**16))
def test_trace_start_is_the_pressure_the_profile_was_laid_out_from(
        approach_rows, old_start_kpa, contact_kpa, rate_mpa_s, clock_offset_s, jitter, seed):
    """The press lays the profile out again at contact; the analysis finds that start exactly."""
    from press_cell.analysis.metrics import trace_start_pressure
    from press_cell.control.certificate import PressTrace

    rng = np.random.default_rng(seed)
    segments = list(PressProfile([Segment("ramp", 30 * MPA, rate_mpa_s * MPA),
                                  Segment("hold", 30 * MPA, 0.0, 0.1, 0.3 * MPA),
                                  Segment("release", 0.0, 50 * MPA)]).segments)
    dt = 0.002 * (1.0 + (rng.uniform(-0.3, 0.3, 4000) if jitter else np.zeros(4000)))
    t = clock_offset_s + np.cumsum(dt)
    start_pa = contact_kpa * 1e3 + float(rng.uniform(0.0, 1.0))   # a measured pressure
    plan = PressProfile(segments, start_pressure_pa=start_pa)
    t_contact = t[approach_rows]
    sp = np.array([old_start_kpa * 1e3] * approach_rows
                  + [plan.sample(x - t_contact).setpoint_pa for x in t[approach_rows:]])
    idx = np.array([0] * approach_rows
                   + [plan.sample(x - t_contact).segment_index for x in t[approach_rows:]])
    n = len(t)
    trace = PressTrace(t, sp, sp, sp, np.zeros(n), np.zeros(n), np.ones(n, dtype=int), idx)
    assert trace_start_pressure(trace, segments) == start_pa
