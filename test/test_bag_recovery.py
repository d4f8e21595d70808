"""Damaged and unfinished bags: partial data with a stated problem, or a clear BagReadError."""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from press_cell.analysis.bag_reader import BagReadError, open_bag
from press_cell.analysis.run import load_run
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run

REPO = Path(__file__).resolve().parents[1]
SPEC = CycleSpec(target_pressure_pa=25e6, ramp_rate_pa_s=10e6, hold_s=2.0,
                 release_rate_pa_s=20e6)


@pytest.fixture(scope="module")
def mcap_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("mcap") / "run"
    # Small chunks so a cut file still holds several complete chunks.
    written = write_synthetic_run(path, storage="mcap", spec=SPEC, cycles=2,
                                  chunk_size_bytes=16 * 1024)
    return path, written


@pytest.fixture(scope="module")
def sqlite_bag(tmp_path_factory):
    path = tmp_path_factory.mktemp("sqlite") / "run"
    written = write_synthetic_run(path, storage="sqlite3", spec=SPEC, cycles=1)
    return path, written


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_truncated_mcap_gives_partial_run_and_says_so(mcap_bag, tmp_path):
    src, written = mcap_bag
    bag = _copy(src, tmp_path / "cut")
    mcap_file = bag / "cut.mcap" if (bag / "cut.mcap").exists() else next(bag.glob("*.mcap"))
    os.truncate(mcap_file, int(mcap_file.stat().st_size * 0.6))
    with open_bag(bag) as b:
        assert b.recovered
        assert any("incomplete" in p for p in b.problems)
        assert 0 < b.message_count < written.message_count
        assert sum(1 for _ in b.messages()) == b.message_count
    run = load_run(bag)
    assert run.has_press_types
    assert any("incomplete" in p for p in run.problems)
    assert run.info.cell_id == "synthetic-0001"   # metadata.yaml (provisional or final) read
    assert len(run.cycles()) >= 1


def test_random_bytes_named_mcap_is_a_clear_error(tmp_path):
    bag = tmp_path / "junk"
    bag.mkdir()
    (bag / "junk.mcap").write_bytes(os.urandom(4096))
    with pytest.raises(BagReadError, match="junk"):
        open_bag(bag)


def test_corrupted_sqlite3_is_a_clear_error(sqlite_bag, tmp_path):
    src, _ = sqlite_bag
    bag = _copy(src, tmp_path / "bad")
    db = next(bag.glob("*.db3"))
    with db.open("r+b") as stream:
        stream.write(b"this is not sqlite" * 64)
    with pytest.raises(BagReadError, match="damaged"):
        load_run(bag)


def test_corrupted_metadata_yaml_is_rebuilt_from_the_data(sqlite_bag, tmp_path):
    src, written = sqlite_bag
    bag = _copy(src, tmp_path / "meta")
    (bag / "metadata.yaml").write_text("rosbag2_bagfile_information: [unclosed\n")
    with open_bag(bag) as b:
        assert b.message_count == written.message_count
        assert any("metadata.yaml is unreadable" in p for p in b.problems)


def test_missing_bag_and_empty_directory_are_clear_errors(tmp_path):
    with pytest.raises(BagReadError, match="no such bag"):
        open_bag(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagReadError, match="no .mcap or .db3"):
        open_bag(tmp_path / "empty")


_KILLED_WRITER = textwrap.dedent("""
    import sys, time
    from press_cell.analysis.bag_types import press_cell_typestore
    from press_cell.analysis.bag_writer import BagWriter
    store = press_cell_typestore()
    T = store.types
    def msg(k):
        stamp = T["builtin_interfaces/msg/Time"](sec=k // 1000, nanosec=(k % 1000) * 1000000)
        return T["sensor_msgs/msg/FluidPressure"](
            header=T["std_msgs/msg/Header"](stamp=stamp, frame_id="press"),
            fluid_pressure=float(k), variance=0.0)
    w = BagWriter(sys.argv[1], storage=sys.argv[2], max_chunk_age_s=0.1,
                  chunk_size_bytes=1 << 20, metadata_interval_s=0.2)
    w.open()
    w.add_topic("/cell/press/pressure", "sensor_msgs/msg/FluidPressure")
    end = time.monotonic() + 0.6
    k = 0
    while time.monotonic() < end:
        w.write("/cell/press/pressure", 10**18 + k * 1000000, msg(k))
        k += 1
        time.sleep(0.001)
    print(k, flush=True)
    time.sleep(60)
""")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_writer_killed_mid_write_loses_at_most_the_last_chunk(tmp_path, storage):
    bag = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(bag), storage],
        stdout=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        written = int(proc.stdout.readline())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert written > 100
    with open_bag(bag) as b:
        assert b.recovered
        assert b.problems
        values = [b.deserialize(t, d).fluid_pressure for t, _, d in b.messages()]
    # Everything up to the last chunk (<= 0.1 s old at 1 kHz at most) is there, in order.
    assert written - 250 <= len(values) <= written
    assert values == [float(k) for k in range(len(values))]


def test_bag_without_embedded_definitions_uses_press_cell_files(sqlite_bag, tmp_path):
    import sqlite3

    src, written = sqlite_bag
    bag = _copy(src, tmp_path / "old")
    with sqlite3.connect(next(bag.glob("*.db3"))) as conn:
        conn.execute("DELETE FROM message_definitions")
    run = load_run(bag)
    assert any("used press_cell's own interface files" in p for p in run.problems)
    assert len(run.press_state["time_s"]) == written.press_state_count


def test_unknown_type_without_definition_is_reported_not_raised():
    from press_cell.analysis.bag_reader import TopicInfo, build_typestore

    topics = {"/x": TopicInfo(name="/x", msgtype="foo_msgs/msg/Bar", message_count=3, qos=[])}
    store, problems = build_typestore(topics)
    assert "foo_msgs/msg/Bar" not in store.fielddefs
    assert any("cannot be decoded" in p for p in problems)
