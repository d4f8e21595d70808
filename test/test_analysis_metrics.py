"""Per-cycle metrics from a bag reproduce the live certificate; standard-type bags still work."""

import ast
import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from press_cell.analysis.cycles import press_state_cycles, pressure_cycles
from press_cell.analysis.metrics import MetricsError, segments_from_trace
from press_cell.analysis.run import load_run
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run
from press_cell.control.profile import Phase

SPEC = CycleSpec(target_pressure_pa=25e6, ramp_rate_pa_s=10e6, hold_s=2.0,
                 release_rate_pa_s=20e6)
# Level, rate and hold not on the 2 ms sample grid: segment ends fall between samples.
ODD_SPEC = CycleSpec(target_pressure_pa=71e6, ramp_rate_pa_s=3e7, hold_s=1.2345,
                     release_rate_pa_s=7e7, tolerance_frac=0.01)


def _assert_same_certificate(got, live):
    for f in dataclasses.fields(live):
        a, b = getattr(got, f.name), getattr(live, f.name)
        if isinstance(b, float):
            if math.isnan(b):
                assert math.isnan(a), f.name
            else:
                # Same samples, same code: only float rounding may differ.
                assert a == pytest.approx(b, rel=1e-9, abs=1e-9), f.name
        else:
            assert a == b, f.name


@pytest.mark.parametrize(("storage", "spec", "tolerance"), [
    ("mcap", SPEC, 0.02), ("sqlite3", ODD_SPEC, 0.01)])
def test_bag_metrics_reproduce_the_live_certificate(tmp_path, storage, spec, tolerance):
    written = write_synthetic_run(tmp_path / "run", storage=storage, spec=spec, cycles=2)
    run = load_run(tmp_path / "run")
    results = run.cycle_results(tolerance_frac=tolerance)
    assert len(results) == 2
    for result, live in zip(results, written.certificates, strict=True):
        assert result.method == "live certificate code"
        assert result.cycle.completed
        _assert_same_certificate(result.certificate, live)


def test_wrong_tolerance_changes_the_band_figures_only(tmp_path):
    written = write_synthetic_run(tmp_path / "run", spec=SPEC)
    run = load_run(tmp_path / "run")
    narrow = run.cycle_results(tolerance_frac=0.001)[0].certificate
    live = written.certificates[0]
    assert narrow.fraction_in_band < live.fraction_in_band
    assert narrow.mean_hold_pressure == pytest.approx(live.mean_hold_pressure, rel=1e-12)


def test_standard_types_only_bag_gives_plateau_metrics(tmp_path):
    written = write_synthetic_run(tmp_path / "lab", press_types=False, spec=SPEC, cycles=2)
    run = load_run(tmp_path / "lab")
    assert not run.has_press_types
    assert set(run.topics) == {"/cell/press/pressure", "/cell/press/wrench", "/diagnostics"}
    results = run.cycle_results()
    assert [r.method for r in results] == ["pressure plateau"] * 2
    for result, live in zip(results, written.certificates, strict=True):
        cert = result.certificate
        assert cert.peak_pressure == pytest.approx(live.peak_pressure, rel=1e-12)
        assert cert.peak_force == pytest.approx(live.peak_force, rel=1e-12)
        assert cert.mean_hold_pressure == pytest.approx(SPEC.target_pressure_pa, rel=2e-3)
        assert cert.hold_duration == pytest.approx(SPEC.hold_s, abs=0.3)
        assert cert.ramp_rate_achieved == pytest.approx(SPEC.ramp_rate_pa_s, rel=0.01)
        assert result.extra["release_rate_pa_s"] == pytest.approx(SPEC.release_rate_pa_s,
                                                                  rel=0.02)
        assert math.isnan(cert.target_pressure) and math.isnan(cert.ram_travel)
        assert any("standard types only" in n for n in result.notes)


def test_press_state_cycles_split_back_to_back_and_flag_faults():
    seg = np.array([-1, 0, 0, 1, 2, 0, 1, 1, 1, -1, -1])
    phase = np.array([0, 1, 1, 2, 3, 1, 2, 4, 4, 5, 5])
    state = {"segment_index": seg, "phase": phase, "time_s": np.arange(11.0),
             "pressure_pa": np.arange(11.0)}
    cycles = press_state_cycles(state)
    assert [(c.first, c.stop) for c in cycles] == [(1, 5), (5, 9)]
    assert cycles[0].ended_by == "new cycle"
    assert cycles[1].ended_by == "fault" and not cycles[1].completed
    assert int(Phase.VENTING) == 4


def test_pressure_cycles_ignore_noise_and_short_taps():
    t = np.arange(0.0, 30.0, 0.01)
    p = np.where((t > 5) & (t < 15), 20e6, 0.0)
    p = p + np.where((t > 20) & (t < 20.2), 20e6, 0.0)   # 0.2 s tap: not a cycle
    p = p + np.random.default_rng(1).normal(0, 0.05e6, len(t))
    cycles = pressure_cycles(t, p)
    assert len(cycles) == 1
    assert cycles[0].start_s == pytest.approx(5.0, abs=0.05)
    assert cycles[0].end_s == pytest.approx(15.0, abs=0.05)


def test_segments_without_samples_are_refused():
    t = np.arange(5) * 0.002
    with pytest.raises(MetricsError, match="no samples"):
        segments_from_trace(t, t * 1e9, np.array([1, 1, 3, 3, 3]), np.array([0, 0, 2, 2, 2]))


def test_analysis_modules_never_import_rclpy():
    folder = Path(__file__).resolve().parents[1] / "press_cell" / "analysis"
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "rclpy" for n in names), path.name


def test_cycle_cut_by_a_fault_still_gets_metrics_over_what_it_reached(tmp_path):
    write_synthetic_run(tmp_path / "run", spec=SPEC)
    run = load_run(tmp_path / "run")
    state = run.press_state
    hold_rows = np.flatnonzero(state["segment_index"] == 1)
    cut = int(hold_rows[len(hold_rows) // 2])
    state["phase"][cut:] = int(Phase.FAULT)
    state["segment_index"][cut:] = -1
    (result,) = run.cycle_results()
    assert result.cycle.ended_by == "fault" and not result.cycle.completed
    visited = state["pressure_pa"][hold_rows[0]:cut]
    assert result.certificate.mean_hold_pressure == pytest.approx(visited.mean(), rel=1e-12)
    assert result.certificate.hold_duration == pytest.approx(len(visited) * 0.002, rel=1e-6)
    assert any("ended by fault" in n for n in result.notes)


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_bag_from_another_rosbag2_writer_with_standard_types(tmp_path, storage):
    """A lab's bag: rosbags' own writer (rosbag2 v8 layout), FluidPressure only."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_HUMBLE)
    types = store.types
    t = np.arange(0.0, 12.0, 0.002)
    p = np.interp(t, [0, 1, 3, 8, 9, 12], [0, 0, 20e6, 20e6, 0, 0])
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(tmp_path / "lab", version=8, storage_plugin=plugin) as writer:
        conn = writer.add_connection("/press/pressure", "sensor_msgs/msg/FluidPressure",
                                     typestore=store)
        for ti, pi in zip(t, p, strict=True):
            ns = 1_700_000_000_000_000_000 + int(round(ti * 1e9))
            msg = types["sensor_msgs/msg/FluidPressure"](
                header=types["std_msgs/msg/Header"](
                    stamp=types["builtin_interfaces/msg/Time"](sec=ns // 10**9,
                                                               nanosec=ns % 10**9),
                    frame_id="gauge"),
                fluid_pressure=pi, variance=0.0)
            writer.write(conn, ns, store.serialize_cdr(msg, conn.msgtype))
    run = load_run(tmp_path / "lab")
    assert run.problems == []
    assert run.info.cell_id == ""            # no press_cell metadata: empty, not an error
    (result,) = run.cycle_results()
    assert result.certificate.peak_pressure == pytest.approx(20e6)
    # In the 2 % band from 19.6 MPa on the ramp (0.04 s) until 19.6 MPa on the release (0.02 s).
    assert result.certificate.hold_duration == pytest.approx(5.0 + 0.04 + 0.02, abs=0.005)
    assert result.certificate.ramp_rate_achieved == pytest.approx(10e6, rel=1e-6)
    assert result.extra["release_rate_pa_s"] == pytest.approx(20e6, rel=1e-6)


def test_recipe_book_gives_the_exact_tolerance_band(tmp_path):
    from types import SimpleNamespace

    from press_cell.analysis.bag_writer import RecordingInfo

    tight = dataclasses.replace(SPEC, tolerance_frac=0.004)     # 0.1 MPa: about 2 sigma noise
    written = write_synthetic_run(tmp_path / "run", spec=tight,
                                  info=RecordingInfo(cell_id="c", recipe_name="quick"))
    stage = SimpleNamespace(pressure_pa=tight.target_pressure_pa,
                            ramp_pa_s=tight.ramp_rate_pa_s, hold_s=tight.hold_s)
    book = SimpleNamespace(press={"quick": SimpleNamespace(
        stages=[stage], tolerance_frac=0.004, release_pa_s=tight.release_rate_pa_s)})
    run = load_run(tmp_path / "run")
    (with_book,) = run.cycle_results(recipe_book=book)
    _assert_same_certificate(with_book.certificate, written.certificates[0])
    assert any("recipe 'quick'" in n for n in with_book.notes)
    (default,) = run.cycle_results()
    assert default.certificate.fraction_in_band > written.certificates[0].fraction_in_band


_stage = st.tuples(st.integers(1, 100),                        # MPa
                   st.integers(50, 1000).map(lambda r: r / 10),  # MPa/s, 0.1 resolution
                   st.sampled_from([0.0, 0.25, 0.5, 1.234, 2.0]))  # s, 0 = no hold


@settings(max_examples=20, deadline=None)
@given(stages=st.lists(_stage, min_size=1, max_size=3),
       release=st.integers(10, 100), tolerance_pct=st.sampled_from([0.5, 1, 2, 5]))
def test_segments_are_rebuilt_exactly_from_a_sampled_setpoint(stages, release, tolerance_pct):
    from types import SimpleNamespace

    from press_cell.control.profile import PressProfile
    from press_cell.recipes.segments import recipe_segments

    recipe = SimpleNamespace(
        stages=[SimpleNamespace(pressure_pa=p * 1e6, ramp_pa_s=r * 1e6, hold_s=h)
                for p, r, h in stages],
        tolerance_frac=tolerance_pct / 100, release_pa_s=release * 1e6)
    segments = recipe_segments(recipe)
    # Every segment must be seen by at least a few 2 ms samples to be rebuilt.
    assume(all(s.duration_s >= 0.02 for s in segments))
    profile = PressProfile(segments)
    assume(profile.total_duration_s <= 8.0)   # keeps the test fast; lengths do not matter
    t = np.arange(int(profile.total_duration_s * 500)) / 500.0
    points = [profile.sample(x) for x in t]
    rebuilt, start = segments_from_trace(
        t, np.array([p.setpoint_pa for p in points]), np.array([int(p.phase) for p in points]),
        np.array([p.segment_index for p in points]), tolerance_pct / 100)
    assert start == 0.0
    assert rebuilt == segments
