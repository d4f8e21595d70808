"""Report files (PNG/CSV/JSON/table) and replay order, timing, loop, filter and QoS."""

import csv
import json
import time

import pytest
from rosbags.interfaces import QosDurability, QosReliability

from press_cell.analysis.bag_reader import open_bag
from press_cell.analysis.replay import Replayer, ReplayError
from press_cell.analysis.report import write_report
from press_cell.analysis.run import load_run
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run
from press_cell.timebase import SimulatedClock

SHORT = CycleSpec(target_pressure_pa=5e6, ramp_rate_pa_s=10e6, hold_s=0.5,
                  release_rate_pa_s=20e6)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("rr") / "run"
    write_synthetic_run(path, spec=SHORT, cycles=2, idle_s=0.2)
    return path


@pytest.fixture(scope="module")
def report_files(bag, tmp_path_factory):
    return write_report(load_run(bag), tmp_path_factory.mktemp("report"))


def test_report_writes_plots_csv_json_and_table(report_files):
    files = report_files
    assert set(files.plots) == {"pressure", "ram_travel", "r_vs_stack_pressure", "nyquist"}
    for png in files.plots.values():
        data = png.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
    with files.csv.open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 2
    assert float(rows[0]["target_pressure"]) == pytest.approx(5e6)
    assert "loop_timing.rate" in rows[0]
    text = files.json.read_text()
    assert "NaN" not in text          # strict JSON: NaN written as null
    document = json.loads(text)
    assert document["recording"]["cell_id"] == "synthetic-0001"
    assert len(document["cycles"]) == 2
    assert document["cycles"][0]["thickness_start"] is None
    assert len(document["measurements"]) == 2
    assert document["measurements"][0]["cycle_index"] == 0
    table = files.table.read_text()
    assert "5.000" in table and "release" in table


def test_report_of_a_standard_types_bag_says_what_it_left_out(tmp_path):
    write_synthetic_run(tmp_path / "lab", spec=SHORT, press_types=False)
    files = write_report(load_run(tmp_path / "lab"), tmp_path / "out")
    assert set(files.plots) == {"pressure"}
    assert "ram position" in files.skipped["ram_travel"]
    assert json.loads(files.json.read_text())["plots_skipped"]["nyquist"]


@pytest.mark.timeout(30)
def test_replay_at_10x_keeps_order_count_and_timing(bag):
    # Played on a simulated clock (sleep advances it), so the timing is checked exactly and
    # no CI load can flake it; real-time lateness is a benchmark figure, not a test.
    recorded = [(t, ts) for t, ts, _ in open_bag(bag).messages()]
    replayer = Replayer(bag, rate=10.0)
    clock = SimulatedClock()
    published = []
    stats = replayer.play(lambda m: published.append((m.topic, m.timestamp_ns, clock.now())),
                          clock=clock, sleep=clock.advance)
    assert [(t, ts) for t, ts, _ in published] == recorded
    first_ns = recorded[0][1]
    due_s = [(ts - first_ns) * 1e-9 / 10.0 for _t, ts in recorded]
    sent_s = [when for _t, _ts, when in published]
    assert sent_s == pytest.approx(due_s, abs=1e-9)
    assert stats.max_lateness_s <= 1e-9 and stats.messages == len(recorded)
    assert due_s[-1] > 0.25     # the bag spans enough time to tell paced from all-at-once


def test_replay_loops_filters_topics_and_reports_qos(bag):
    replayer = Replayer(bag, rate=2.0, loop=3, topics=["/cell/press/state", "/cell/press/status"])
    assert replayer.topics["/cell/press/state"].qos.reliability == QosReliability.BEST_EFFORT
    status_qos = replayer.topics["/cell/press/status"].qos
    assert status_qos.durability == QosDurability.TRANSIENT_LOCAL
    assert status_qos.reliability == QosReliability.RELIABLE
    clock = SimulatedClock(50.0)
    seen = []
    stats = replayer.play(lambda m: seen.append(m), clock=clock, sleep=clock.advance)
    per_pass = replayer.topics["/cell/press/state"].message_count + 1
    assert stats.messages == 3 * per_pass and stats.loops == 3
    assert {m.topic for m in seen} == {"/cell/press/state", "/cell/press/status"}
    dues = [m.due_s for m in seen]
    assert dues == sorted(dues)
    assert clock.now() - 50.0 == pytest.approx(seen[-1].due_s, abs=1e-9)
    third = next(m for m in seen if m.loop == 2)
    assert third.due_s == pytest.approx(2 * replayer.pass_duration_s, abs=1e-9)


def test_replay_stop_event_and_bad_options(bag):
    import threading

    stop = threading.Event()
    replayer = Replayer(bag, rate=1000.0, loop=0)          # forever, until stopped
    count = []

    def publish(message):
        count.append(message)
        if len(count) == 500:
            stop.set()

    started = time.monotonic()
    stats = replayer.play(publish, stop=stop)
    assert stats.stopped and stats.messages == 500
    assert time.monotonic() - started < 5
    with pytest.raises(ReplayError, match="rate"):
        Replayer(bag, rate=0)
    with pytest.raises(ReplayError, match="not in the bag"):
        Replayer(bag, topics=["/nope"])


def test_qos_numbers_round_trip_between_policy_values_and_bag_profiles():
    from press_cell.analysis.bag_writer import LATCHED_QOS, qos_from_policy_values
    from press_cell.analysis.replay import qos_policy_values

    values = qos_policy_values(LATCHED_QOS)
    assert values == {"history": 1, "depth": 1, "reliability": 1, "durability": 1}
    assert qos_from_policy_values(**values) == LATCHED_QOS
    with pytest.raises(ValueError):
        qos_from_policy_values(history=1, depth=1, reliability=9, durability=1)


def test_report_fits_each_spectrum(report_files):
    fit = json.loads(report_files.json.read_text())["measurements"][0]["fit"]
    # Synthetic cell: R_ext 0.5 + R_bulk 25 + R_gb 5 + 2 x R_int 0.75 = 32 ohm (Doux 2020 anchor).
    assert fit["r_total_ohm"] == pytest.approx(32.0, rel=0.02)
