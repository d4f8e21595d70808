"""Cell journal: atomic write/replace, scan, set aside, broken files, threads, sequence hook."""

import json
import math
import signal
import subprocess
import sys
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("rclpy")

from press_cell.control.assembly import (  # noqa: E402
    AssemblySequence,
    DeviceOutcome,
    MeasuredCell,
    plan_cell,
)
from press_cell.msg import CellRecord, PressCertificate  # noqa: E402
from press_cell.nodes import cell_journal  # noqa: E402
from press_cell.nodes.cell_journal import (  # noqa: E402
    CellJournal,
    JournalError,
    decode_journal,
    default_journal_dir,
    encode_journal,
    interrupted_record,
    read_journal_file,
)
from press_cell.recipes import load_recipes, recipe_hash  # noqa: E402

OWNER = "/cell1/coordinator"


def make_record(cell_id="cell1-cell-0003", steps=("compaction",), placed=()):
    """Return a CellRecord with one certificate per step (NaN thickness, as a real one)."""
    record = CellRecord(cell_id=cell_id, recipe_name="li_symmetric_cell", recipe_hash="ab12",
                        package_version="0.test")
    record.started.sec = 1_700_000_000
    record.certificates = [PressCertificate(step_name=s, part_id=f"{cell_id}/{s}",
                                            peak_pressure=370e6, thickness_start=math.nan)
                           for s in steps]
    record.placed_components = list(placed)
    return record


def test_default_dir_follows_ros_home(monkeypatch, tmp_path):
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "rh"))
    assert default_journal_dir() == tmp_path / "rh" / "press_cell" / "journal"
    monkeypatch.delenv("ROS_HOME")
    assert default_journal_dir() == cell_journal.Path.home() / ".ros" / "press_cell" / "journal"


def test_written_record_is_found_by_scan_with_its_certificates_and_step(tmp_path):
    journal = CellJournal(tmp_path / "j", OWNER)
    path = journal.write(make_record(placed=["cell1-cell-0003/pellet"]), "prepress_a")
    assert path.name == f"cell1-cell-0003@cell1.coordinator{cell_journal.SUFFIX}"
    header = json.loads(path.read_bytes().split(b"\n", 1)[0])   # readable first line
    assert header["step"] == "prepress_a" and header["certificates"] == ["compaction"]
    (entry,) = journal.scan()
    assert entry.error == "" and entry.step == "prepress_a" and entry.path == path
    assert entry.record.cell_id == "cell1-cell-0003"
    assert [c.step_name for c in entry.record.certificates] == ["compaction"]
    assert entry.record.certificates[0].peak_pressure == 370e6
    assert math.isnan(entry.record.certificates[0].thickness_start)
    assert list(entry.record.placed_components) == ["cell1-cell-0003/pellet"]


def test_a_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path):
    journal = CellJournal(tmp_path, OWNER)
    journal.write(make_record(steps=()), "compaction")
    journal.write(make_record(steps=("compaction", "prepress_a")), "prepress_b")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        journal.path_for("cell1-cell-0003").name]
    (entry,) = journal.scan()
    assert entry.step == "prepress_b"
    assert [c.step_name for c in entry.record.certificates] == ["compaction", "prepress_a"]


def test_a_failed_write_keeps_the_previous_version(tmp_path, monkeypatch):
    """A crash between the temp file and the replace leaves the last complete version."""
    journal = CellJournal(tmp_path, OWNER)
    journal.write(make_record(steps=()), "compaction")

    def crash(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cell_journal.os, "replace", crash)
    with pytest.raises(OSError, match="No space"):
        journal.write(make_record(steps=("compaction",)), "prepress_a")
    monkeypatch.undo()
    (entry,) = journal.scan()
    assert entry.step == "compaction" and not entry.record.certificates
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_scan_deletes_temporaries_of_interrupted_writes_and_keeps_the_complete_file(tmp_path):
    journal = CellJournal(tmp_path, OWNER)
    path = journal.write(make_record(), "prepress_a")
    stale = path.with_name(f".{path.name}.4242.1234.tmp")
    stale.write_bytes(b"half a reco")
    (entry,) = journal.scan()
    assert entry.step == "prepress_a" and not stale.exists()


def test_remove_deletes_the_cell_file_only(tmp_path):
    journal = CellJournal(tmp_path, OWNER)
    journal.write(make_record("A"), "compaction")
    journal.write(make_record("B"), "compaction")
    assert journal.remove("A") is True
    assert journal.remove("A") is False
    assert [e.cell_id for e in journal.scan()] == ["B"]


def test_cell_indices_count_on_across_restarts_per_owner(tmp_path):
    journal = CellJournal(tmp_path, OWNER)
    assert [journal.take_cell_index() for _ in range(3)] == [0, 1, 2]
    journal.close()
    restarted = CellJournal(tmp_path, OWNER)           # a coordinator started again
    assert restarted.take_cell_index() == 3
    assert restarted.take_cell_index(minimum=10) == 10  # first_cell_index raises the floor
    assert restarted.take_cell_index() == 11
    assert CellJournal(tmp_path, "/cell2/coordinator").take_cell_index() == 0


def test_set_aside_moves_to_interrupted_without_overwriting(tmp_path):
    journal = CellJournal(tmp_path, OWNER)
    kept = []
    for step in ("compaction", "stack_press"):       # the same cell id interrupted twice
        journal.write(make_record(), step)
        (entry,) = journal.scan()
        kept.append(journal.set_aside(entry.path))
    assert journal.scan() == []
    assert [p.parent for p in kept] == [journal.interrupted_dir] * 2 and kept[0] != kept[1]
    assert [read_journal_file(p)[0]["step"] for p in kept] == ["compaction", "stack_press"]


@pytest.mark.parametrize("damage, message", [
    (lambda data: data[:-7], "truncated"),
    (lambda data: data[:data.index(b"\n") // 2], "no header line"),
    (lambda data: data[:-1] + bytes([data[-1] ^ 0xFF]), "checksum"),
    (lambda data: b"{not json\n" + data, "not JSON"),
    (lambda data: b"", "no header line"),
])
def test_a_broken_file_is_reported_and_set_aside_not_a_crash(tmp_path, damage, message):
    journal = CellJournal(tmp_path, OWNER)
    path = journal.write(make_record(), "prepress_a")
    path.write_bytes(damage(path.read_bytes()))
    (entry,) = journal.scan()
    assert entry.record is None and message in entry.error
    assert entry.cell_id == "cell1-cell-0003"
    kept = journal.set_aside(entry.path)
    assert kept.parent == journal.interrupted_dir and journal.scan() == []


def test_a_wrong_version_is_refused_with_the_version_named():
    data = encode_journal(make_record(), OWNER, "compaction")
    line, body = data.split(b"\n", 1)
    header = json.loads(line)
    header["version"] = 99
    with pytest.raises(JournalError, match="version 99"):
        decode_journal(json.dumps(header).encode() + b"\n" + body)


def test_scan_sees_only_its_owner(tmp_path):
    mine = CellJournal(tmp_path, OWNER)
    other = CellJournal(tmp_path, "/cell2/coordinator")
    other.write(make_record("cell2-cell-0000"), "compaction")
    mine.write(make_record("mine"), "compaction")
    assert [e.cell_id for e in mine.scan()] == ["mine"]
    assert [e.cell_id for e in other.scan()] == ["cell2-cell-0000"]


def test_a_second_journal_of_a_live_owner_leaves_its_running_cells_alone(tmp_path):
    running = CellJournal(tmp_path, OWNER)
    running.write(make_record("running"), "compaction")
    second = CellJournal(tmp_path, OWNER)          # same node name, same process
    assert second.scan() == [] and not second.sole_owner
    running.close()                                # the first node is destroyed
    assert second.sole_owner
    assert [e.cell_id for e in second.scan()] == ["running"]


@pytest.mark.timeout(30)
def test_a_sigkilled_writer_leaves_its_last_record_for_the_next_process(tmp_path):
    """The owner lock dies with the process: the next journal reports the cell at once."""
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from press_cell.msg import CellRecord, PressCertificate\n"
         "from press_cell.nodes.cell_journal import CellJournal\n"
         f"j = CellJournal({str(tmp_path)!r}, {OWNER!r})\n"
         "r = CellRecord(cell_id='k1')\n"
         "j.write(r, 'compaction')\n"
         "r.certificates = [PressCertificate(step_name='compaction')]\n"
         "j.write(r, 'prepress_a')\n"
         "print('written', flush=True)\n"
         "time.sleep(60)\n"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "written"
        assert CellJournal(tmp_path, OWNER).scan() == []      # the writer is alive
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        (entry,) = CellJournal(tmp_path, OWNER).scan()
        assert entry.cell_id == "k1" and entry.step == "prepress_a"
        assert [c.step_name for c in entry.record.certificates] == ["compaction"]
    finally:
        child.kill()
        child.wait(timeout=10)


@settings(max_examples=40, deadline=None)
@given(cell_id=st.text(min_size=1, max_size=300).filter(lambda s: "\x00" not in s))  # C string
def test_any_cell_id_gets_its_own_file_in_the_directory(tmp_path_factory, cell_id):
    directory = tmp_path_factory.mktemp("j")
    journal = CellJournal(directory, OWNER)
    path = journal.write(make_record(cell_id), "compaction")
    assert path.parent == directory and len(path.name) < 255 - 40   # room for the temp name
    journal.write(make_record(cell_id + "x"), "compaction")        # a neighbour id
    entry = next(e for e in journal.scan() if e.path == path)
    assert entry.cell_id == cell_id
    assert journal.remove(cell_id)
    assert [e.cell_id for e in journal.scan()] == [cell_id + "x"]


@pytest.mark.timeout(30)
def test_two_lines_writing_at_once_leave_complete_files(tmp_path):
    journal = CellJournal(tmp_path, OWNER)
    errors = []

    def line(cell_id):
        try:
            for index in range(40):
                journal.write(make_record(cell_id, steps=[f"s{i}" for i in range(index)]),
                              f"s{index}")
        except Exception as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=line, args=(c,)) for c in ("A", "B")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    entries = {e.cell_id: e for e in journal.scan()}
    assert sorted(entries) == ["A", "B"]
    assert all(e.step == "s39" and len(e.record.certificates) == 39 for e in entries.values())


def test_interrupted_record_names_the_step_and_fails_the_cell():
    journal_entry = cell_journal.JournalEntry(cell_journal.Path("x"), "C", "prepress_a",
                                              make_record("C"))
    record = interrupted_record(journal_entry)
    assert record.passed is False and record.failed_step == "prepress_a"
    assert record.verdict == ("INTERRUPTED: the coordinator stopped during prepress_a; record "
                              "kept up to the last finished step")


class _Ports:
    """Ports that succeed at once (press certificate = the step name)."""

    def run_cycle(self, recipe, part_id, step_name, cancel):
        return DeviceOutcome(True, payload=step_name)

    def place(self, kind, component_id, source_slot, target_station, cancel):
        return DeviceOutcome(True)

    def measure(self, settings, cell_id, electrode_area_m2, cancel):
        return DeviceOutcome(True, payload=MeasuredCell(None, None, 30.0, 1e-4))

    def make_safe(self):
        return "safe"


def test_sequence_calls_on_step_before_each_step_with_the_finished_steps():
    recipe = load_recipes().assembly["li_symmetric_cell"]
    plan = plan_cell(recipe, recipe_hash(recipe), "C1", {
        "ELECTROLYTE_PELLET": ("pellet_tray/0",),
        "ANODE_ON_ROD": ("anode_rack/0", "anode_rack/1")})
    ports = _Ports()
    seen = []
    AssemblySequence(plan, ports, ports, ports, ports, on_step=lambda record, step: seen.append(
        (step, [n for n, _c in record.certificates], list(record.placed)))).run()
    assert seen[0] == ("compaction", [], [])                   # the cell's start
    assert seen[1] == ("prepress_a", ["compaction"], [])
    assert seen[4] == ("place C1/anode-a", ["compaction", "prepress_a", "prepress_b"],
                       ["C1/pellet"])
    assert [s[0] for s in seen[-3:]] == ["stack_press", "impedance", "verdict"]
