"""Dobot Magician frame codec: known bytes, round trips, malformed frames, stream resync."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.hardware import dobot_protocol as proto
from press_cell.hardware.arm_driver import ArmProtocolError
from press_cell.hardware.dobot_protocol import CommandId, DobotFrameError, Frame

frames = st.builds(Frame, st.integers(0, 255), st.booleans(), st.booleans(),
                   st.binary(max_size=proto.MAX_PARAMS_BYTES))


def test_get_pose_request_bytes():
    # len 2 (id + ctrl), checksum = 256 - 10
    assert proto.encode_frame(Frame(CommandId.GET_POSE)) == bytes.fromhex("aaaa020a00f6")


def test_queued_ptp_command_layout():
    params = proto.pack_params(CommandId.SET_PTP_CMD, proto.PtpMode.MOVL_XYZ, 200.0, -10.5, 30.0,
                               45.0)
    raw = proto.encode_frame(Frame(CommandId.SET_PTP_CMD, rw=True, is_queued=True, params=params))
    assert raw[:5] == bytes([0xAA, 0xAA, 19, 84, 0x03])
    assert raw[5] == 2
    assert struct.unpack("<4f", raw[6:22]) == (200.0, -10.5, 30.0, 45.0)
    assert (sum(raw[3:]) % 256) == 0


@settings(max_examples=200, deadline=None)
@given(frames)
def test_round_trip(frame):
    assert proto.decode_frame(proto.encode_frame(frame)) == frame


@settings(max_examples=100, deadline=None)
@given(st.lists(frames, min_size=1, max_size=5), st.binary(max_size=20), st.integers(1, 7))
def test_stream_decoder_finds_frames_after_garbage_in_any_chunking(frame_list, junk, chunk):
    junk = junk.replace(b"\xaa", b"\x00")
    data = junk + b"".join(proto.encode_frame(f) for f in frame_list)
    decoder = proto.FrameDecoder()
    got = []
    for i in range(0, len(data), chunk):
        decoder.feed(data[i:i + chunk])
        while (frame := decoder.next_frame()) is not None:
            got.append(frame)
    assert got == frame_list


@settings(max_examples=150, deadline=None)
@given(frames, st.data())
def test_any_corrupted_byte_is_rejected(frame, data):
    raw = bytearray(proto.encode_frame(frame))
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(DobotFrameError):
        proto.decode_frame(bytes(raw))


@pytest.mark.parametrize("raw, message", [
    (bytes.fromhex("abaa020a00f6"), "sync"),
    (bytes.fromhex("aaaa030a00f6"), "length byte says 3"),
    (bytes.fromhex("aaaa020a00f7"), "checksum"),
    (bytes.fromhex("aaaa010af6"), "at least 6"),
    (bytes.fromhex("aaaa020a04f2"), "ctrl"),
])
def test_malformed_frames_name_the_problem(raw, message):
    with pytest.raises(DobotFrameError, match=message):
        proto.decode_frame(raw)


def test_frame_errors_are_arm_protocol_errors():
    assert issubclass(DobotFrameError, ArmProtocolError)


def test_stream_decoder_reports_bad_checksum_then_recovers():
    good = proto.encode_frame(Frame(CommandId.GET_POSE))
    bad = bytearray(good)
    bad[-1] ^= 1
    decoder = proto.FrameDecoder()
    decoder.feed(bytes(bad) + good)
    with pytest.raises(DobotFrameError, match="checksum"):
        decoder.next_frame()
    assert decoder.next_frame() == Frame(CommandId.GET_POSE)


def test_unpack_is_strict_about_length():
    with pytest.raises(DobotFrameError, match="needs 32 parameter bytes, got 31"):
        proto.unpack_params(CommandId.GET_POSE, bytes(31), reply=True)
    assert proto.unpack_params(CommandId.SET_PTP_CMD, (7).to_bytes(8, "little"), reply=True,
                               queued=True) == (7,)


def test_oversized_params_are_refused():
    with pytest.raises(DobotFrameError, match="at most 253"):
        proto.encode_frame(Frame(1, params=bytes(254)))
