"""Bags written by BagWriter read back with our reader, with rosbags, and with mcap_ros2."""

import math

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from mcap.reader import make_reader
from mcap_ros2.decoder import DecoderFactory
from rosbags.interfaces import QosDurability, QosReliability
from rosbags.rosbag2 import Reader

from press_cell.analysis.bag_reader import open_bag
from press_cell.analysis.bag_types import press_cell_typestore
from press_cell.analysis.bag_writer import BagWriter, BagWriterError, RecordingInfo
from press_cell.analysis.cdr_columns import decode_columns, encode_rows
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run

SPEC = CycleSpec(target_pressure_pa=25e6, ramp_rate_pa_s=10e6, hold_s=2.0,
                 release_rate_pa_s=20e6)
INFO = RecordingInfo(cell_id="cell-0042", recipe_name="li_foil_25mpa", recipe_hash="ab" * 32,
                     calibration_id="lc-2026-11-01")


@pytest.fixture(scope="module", params=["mcap", "sqlite3"])
def bag(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "run"
    written = write_synthetic_run(path, storage=request.param, spec=SPEC, info=INFO)
    return request.param, path, written


def test_reader_sees_topics_counts_metadata_and_qos(bag):
    storage, path, written = bag
    with open_bag(path) as b:
        assert b.storage == storage
        assert b.problems == [] and not b.recovered
        assert b.message_count == written.message_count
        assert b.topics["/cell/press/state"].message_count == written.press_state_count
        assert b.info == INFO
        state_qos = b.topics["/cell/press/state"].qos[0]
        status_qos = b.topics["/cell/press/status"].qos[0]
        assert state_qos.reliability == QosReliability.BEST_EFFORT
        assert status_qos.durability == QosDurability.TRANSIENT_LOCAL
        assert status_qos.depth == 1
        assert "float64 pressure_setpoint" in b.topics["/cell/press/state"].definition


def test_metadata_yaml_is_rosbag2_v9_with_custom_data(bag):
    storage, path, written = bag
    info = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert info["version"] == 9
    assert info["storage_identifier"] == storage
    assert info["message_count"] == written.message_count
    assert info["custom_data"]["press_cell.cell_id"] == "cell-0042"
    assert info["custom_data"]["press_cell.calibration_id"] == "lc-2026-11-01"
    assert (path / info["relative_file_paths"][0]).is_file()
    assert not list(path.glob("*-wal")), "a closed sqlite3 bag is a single file"


def test_types_come_from_the_bag_not_from_press_cell(bag):
    _, path, _ = bag
    with open_bag(path) as b:
        # The reader's typestore is built from the embedded definitions only.
        assert b.typestore is not press_cell_typestore()
        topic, _, data = next(b.messages(["/cell/press/state"]))
        msg = b.deserialize(topic, data)
        assert msg.contact_area == pytest.approx(math.pi * 0.0127**2 / 4)
        assert msg.header.frame_id == "press"


def test_rosbags_reader_opens_the_bag(bag):
    _, path, written = bag
    with Reader(path) as reader:
        assert reader.message_count == written.message_count
        assert {c.topic for c in reader.connections} >= {"/cell/press/state", "/diagnostics"}


def test_mcap_output_decodes_on_the_foxglove_path(tmp_path):
    path = tmp_path / "fox"
    write_synthetic_run(path, storage="mcap", spec=SPEC, info=INFO)
    ours = open_bag(path)
    expected = [ours.deserialize(t, d).pressure for t, _, d in ours.messages(["/cell/press/state"])]
    with (path / "fox.mcap").open("rb") as stream:
        reader = make_reader(stream, decoder_factories=[DecoderFactory()])
        assert reader.get_header().profile == "ros2"
        channels = reader.get_summary().channels.values()
        assert all("offered_qos_profiles" in c.metadata for c in channels)
        got = [m.pressure for _, ch, _, m in reader.iter_decoded_messages(
            topics=["/cell/press/state"])]
    assert got == expected


def test_writer_refuses_bad_use(tmp_path):
    with BagWriter(tmp_path / "b") as writer:
        with pytest.raises(BagWriterError, match="unknown to the typestore"):
            writer.add_topic("/x", "nope_msgs/msg/Nothing")
        with pytest.raises(BagWriterError, match="was not added"):
            writer.write_raw("/y", 1, b"\x00\x01\x00\x00")
    with pytest.raises(BagWriterError, match="exists already"):
        BagWriter(tmp_path / "b").open()
    with pytest.raises(BagWriterError, match="unknown storage"):
        BagWriter(tmp_path / "c", storage="rosbag1")


_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]),
                max_size=12)


@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(_text, _text, st.floats(allow_nan=False, width=64),
                               st.integers(-1, 50), st.booleans()), min_size=1, max_size=12))
def test_columnar_decoder_matches_rosbags(rows):
    store = press_cell_typestore()
    types = store.types
    raws = []
    for frame, fault, pressure, seg, relief in rows:
        msg = types["press_cell/msg/PressState"](
            header=types["std_msgs/msg/Header"](
                stamp=types["builtin_interfaces/msg/Time"](sec=7, nanosec=9), frame_id=frame),
            phase=2, segment_index=seg, pressure=pressure, pressure_setpoint=1.0, force=2.0,
            ram_position=3.0, valve_command=0.5, contact_area=1e-4, relief_open=relief,
            zone_leased=False, fault_code=3, fault_message=fault)
        raws.append(bytes(store.serialize_cdr(msg, "press_cell/msg/PressState")))
    cols = decode_columns(store, "press_cell/msg/PressState", raws)
    for i, raw in enumerate(raws):
        ref = store.deserialize_cdr(raw, "press_cell/msg/PressState")
        assert cols["header.frame_id"][i] == ref.header.frame_id
        assert cols["fault_message"][i] == ref.fault_message
        assert cols["pressure"][i] == ref.pressure
        assert cols["segment_index"][i] == ref.segment_index
        assert bool(cols["relief_open"][i]) == ref.relief_open


def test_encode_rows_is_the_inverse_of_decode_columns():
    store = press_cell_typestore()
    types = store.types
    template = types["sensor_msgs/msg/FluidPressure"](
        header=types["std_msgs/msg/Header"](
            stamp=types["builtin_interfaces/msg/Time"](sec=0, nanosec=0), frame_id="gauge"),
        fluid_pressure=0.0, variance=1.0)
    values = np.linspace(0.0, 3e8, 50)
    raws = encode_rows(store, "sensor_msgs/msg/FluidPressure", template,
                       {"fluid_pressure": values, "header.stamp.sec": np.arange(50)})
    decoded = [store.deserialize_cdr(r, "sensor_msgs/msg/FluidPressure") for r in raws]
    assert [m.fluid_pressure for m in decoded] == values.tolist()
    assert [m.header.stamp.sec for m in decoded] == list(range(50))
    assert {m.header.frame_id for m in decoded} == {"gauge"}


def test_bulk_batches_hold_the_same_messages_as_ordered_iteration(bag):
    _, path, _ = bag
    with open_bag(path) as b:
        ordered: dict = {}
        for topic, stamp, data in b.messages():
            ordered.setdefault(topic, []).append((stamp, bytes(data)))
        bulk: dict = {}
        for batch in b.batches(batch_messages=1000):
            for topic, (stamps, datas) in batch.items():
                bulk.setdefault(topic, []).extend(zip(stamps, map(bytes, datas), strict=True))
    assert {t: sorted(v) for t, v in bulk.items()} == {t: sorted(v) for t, v in ordered.items()}
    assert sum(len(v) for v in bulk.values()) == b.message_count


@pytest.mark.parametrize(("plugin", "mode"), [("SQLITE3", "FILE"), ("MCAP", "MESSAGE"),
                                               ("MCAP", "STORAGE")])
def test_compressed_bags_from_other_writers_load(tmp_path, plugin, mode):
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    store = press_cell_typestore()
    types = store.types
    writer = Writer(tmp_path / "z", version=9, storage_plugin=StoragePlugin[plugin])
    writer.set_compression(CompressionMode[mode], CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection("/cell/press/pressure", "sensor_msgs/msg/FluidPressure",
                                     typestore=store)
        for k in range(300):
            msg = types["sensor_msgs/msg/FluidPressure"](
                header=types["std_msgs/msg/Header"](
                    stamp=types["builtin_interfaces/msg/Time"](sec=100 + k // 100,
                                                               nanosec=(k % 100) * 10**7),
                    frame_id="gauge"),
                fluid_pressure=1e6 * k, variance=0.0)
            writer.write(conn, (100 * 10**9) + k * 10**7, store.serialize_cdr(msg, conn.msgtype))
    from press_cell.analysis.run import load_run

    run = load_run(tmp_path / "z")
    assert run.problems == []
    assert run.pressure["pressure_pa"].tolist() == [1e6 * k for k in range(300)]
