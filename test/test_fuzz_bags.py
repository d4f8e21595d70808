"""Bad-input fuzzing of recorded bags: a damaged bag is a clear error or a partial run that says so.

From one small synthetic press cycle recorded as MCAP (16 kB zstd chunks) and as sqlite3, each
example damages a copy: the storage file cut at a random byte, random bytes overwritten, both,
or ``metadata.yaml`` garbled. ``load_run`` (what ``press-cell analyze`` and the report use) must
then raise ``BagReadError`` naming the bag, or return a run whose cycles can be listed and
which, when samples are missing or altered, says so in ``run.problems``. MCAP chunks carry a
CRC, so an altered MCAP sample is always caught; sqlite3 storage has no checksum, so a flipped
byte can change a sample (or move one row to another topic) unseen; that is counted as
"sqlite rows altered unseen" and bounded: one overwritten byte, at most one row.

Every input tried is counted (``support.fuzz_counts``, family ``bags``).
"""

import shutil
import uuid

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.fuzz_counts import record

from press_cell.analysis.bag_reader import BagReadError
from press_cell.analysis.run import load_run
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run

SPEC = CycleSpec(target_pressure_pa=25e6, ramp_rate_pa_s=10e6, hold_s=1.0,
                 release_rate_pa_s=20e6)


@pytest.fixture(scope="module")
def bags(tmp_path_factory):
    """Write the two fixture bags; return {storage: (bag dir, reference pressure column)}."""
    root = tmp_path_factory.mktemp("fuzz_bags")
    out = {}
    for storage, options in (("mcap", {"chunk_size_bytes": 16 * 1024}), ("sqlite3", {})):
        path = root / storage
        write_synthetic_run(path, storage=storage, spec=SPEC, cycles=1, **options)
        run = load_run(path)
        assert not run.problems and run.cycles()
        out[storage] = (path, np.asarray(run.press_state["pressure_pa"]))
    return out


DAMAGE = st.fixed_dictionaries({
    "storage": st.sampled_from(["mcap", "sqlite3"]),
    "cut": st.none() | st.floats(0.0, 1.0) | st.floats(0.3, 0.99),
    "flips": st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 255)),
                      max_size=8),
    "metadata": st.sampled_from(["keep", "keep", "garble", "truncate", "delete"]),
})


def damage(source, target, plan):
    """Copy the bag ``source`` to ``target`` and damage the copy as ``plan`` says."""
    shutil.copytree(source, target)
    storage = next(p for p in target.iterdir() if p.suffix in (".mcap", ".db3"))
    data = bytearray(storage.read_bytes())
    for where, value in plan["flips"]:
        data[int(where * len(data))] = value
    if plan["cut"] is not None:
        del data[int(plan["cut"] * len(data)):]
    storage.write_bytes(bytes(data))
    meta = target / "metadata.yaml"
    if plan["metadata"] == "garble":
        text = bytearray(meta.read_bytes())
        text[len(text) // 3:len(text) // 3 + 40] = b"\x00: [{\n" * 6 + b"????"
        meta.write_bytes(bytes(text))
    elif plan["metadata"] == "truncate":
        meta.write_bytes(meta.read_bytes()[:100])
    elif plan["metadata"] == "delete":
        meta.unlink()
    return bytes(data)


@pytest.mark.timeout(120)
@settings(max_examples=36, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(DAMAGE)
def test_damaged_bag_is_a_clear_error_or_a_partial_run_that_says_what_is_missing(
        bags, tmp_path, plan):
    """Cut, overwritten or metadata-less bags load with their problems named, or raise."""
    source, reference = bags[plan["storage"]]
    target = tmp_path / uuid.uuid4().hex
    damage(source, target, plan)
    try:
        try:
            run = load_run(target)
        except BagReadError as exc:
            assert str(target) in str(exc) and len(str(exc)) > len(str(target)) + 10, exc
            record("bags", f"{plan['storage']} damaged", "BagReadError")
            return
        run.cycles()                    # the analysis runs on what is there
        pressure = (np.asarray(run.press_state["pressure_pa"]) if run.press_state is not None
                    else np.empty(0))
        intact = len(pressure) == len(reference) and np.array_equal(pressure, reference)
        if intact:
            outcome = "complete" if not run.problems else "complete, problems named"
        elif run.problems:
            outcome = "partial, problems named"
        else:
            # sqlite3 rows carry no checksum: an overwritten byte can change a value or move a
            # row to another topic unseen, but one byte touches at most one row
            assert plan["storage"] == "sqlite3" and plan["cut"] is None, (
                f"{len(pressure)}/{len(reference)} samples, altered or missing, "
                f"and no problem named for {plan}")
            assert abs(len(reference) - len(pressure)) <= len(plan["flips"]), plan
            outcome = "sqlite rows altered unseen"
        record("bags", f"{plan['storage']} damaged", outcome)
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_an_altered_sample_in_an_mcap_chunk_is_caught_by_the_chunk_crc(tmp_path):
    """A flipped byte in a sample of an uncompressed chunk is reported, never read as data."""
    path = tmp_path / "plain"
    write_synthetic_run(path, storage="mcap", spec=SPEC, cycles=1, compression="none",
                        chunk_size_bytes=16 * 1024)
    reference = np.asarray(load_run(path).press_state["pressure_pa"])
    mcap_file = next(path.glob("*.mcap"))
    data = bytearray(mcap_file.read_bytes())
    at = data.find(np.float64(reference[len(reference) // 2]).tobytes())
    assert at > 0
    data[at] ^= 0x01                        # the lowest mantissa bit of one pressure sample
    mcap_file.write_bytes(bytes(data))
    run = load_run(path)
    pressure = np.asarray(run.press_state["pressure_pa"])
    assert any("CRC does not match" in p for p in run.problems), run.problems
    assert len(pressure) < len(reference)
    assert np.array_equal(pressure, reference[:len(pressure)])


def test_an_undecodable_sqlite_message_is_left_out_and_named(tmp_path):
    """A PressState whose frame_id length is garbage is dropped and counted in the problems."""
    import sqlite3

    path = tmp_path / "db"
    write_synthetic_run(path, storage="sqlite3", spec=SPEC, cycles=1)
    reference = np.asarray(load_run(path).press_state["pressure_pa"])
    with sqlite3.connect(next(path.glob("*.db3"))) as conn:
        (topic_id,) = conn.execute(
            "SELECT id FROM topics WHERE type = 'press_cell/msg/PressState'").fetchone()
        row_id, blob = conn.execute("SELECT id, data FROM messages WHERE topic_id = ? "
                                    "ORDER BY timestamp LIMIT 1 OFFSET 10",
                                    (topic_id,)).fetchone()
        blob = bytearray(blob)
        blob[12:16] = (0xFFFFFF00).to_bytes(4, "little")    # header.frame_id length word
        conn.execute("UPDATE messages SET data = ? WHERE id = ?", (bytes(blob), row_id))
    run = load_run(path)
    pressure = np.asarray(run.press_state["pressure_pa"])
    assert any("1 message(s) do not decode and were left out" in p for p in run.problems), \
        run.problems
    assert len(pressure) == len(reference) - 1
    assert np.array_equal(pressure, np.delete(reference, 10))
    assert run.cycles()
