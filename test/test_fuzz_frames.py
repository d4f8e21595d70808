"""Bad-input fuzzing of the serial protocols: decoders raise their protocol error, drivers fault.

For each protocol (ASCII press, Modbus RTU press, Dobot binary, MethodSCRIPT) two layers:

* the pure decoder gets random bytes/text and mutated valid frames (byte flips, truncations,
  insertions): it returns a valid message or raises the protocol's own error class, whose
  message names what was wrong; never another exception type;
* the host driver talks to a fake serial port (``serial.serial_for_url`` patched) that answers
  every command with garbage: connect/read/self-check either work or raise the driver's named
  error (PressError, ArmError, PotentiostatError), they return within their timeouts, and no
  motion command (press GO/setpoint, Dobot PTP move) is ever written.

Every input tried is counted (``support.fuzz_counts``, family ``frames``).
"""

import math
import struct
import time
from unittest import mock

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support.fuzz_counts import record

from press_cell.hardware import dobot_protocol as dobot
from press_cell.hardware import methodscript as ms
from press_cell.hardware import press_ascii_protocol as ascii_proto
from press_cell.hardware import press_modbus
from press_cell.hardware.arm_driver import ArmError
from press_cell.hardware.potentiostat_driver import PotentiostatError
from press_cell.hardware.press_driver import PressError, PressProtocolError

FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
DRIVER = settings(max_examples=25, deadline=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutated(valid: list):
    """Strategy: one of ``valid`` frames with byte flips, a truncation or inserted bytes."""
    def mutate(args):
        frame, flips, cut, insert_at, inserted = args
        data = bytearray(frame)
        for position, value in flips:
            if data:
                data[position % len(data)] = value
        if insert_at is not None:
            position = insert_at % (len(data) + 1)
            data[position:position] = inserted
        if cut is not None and data:
            del data[cut % len(data):]
        return bytes(data)

    return st.tuples(st.sampled_from(valid),
                     st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=3),
                     st.none() | st.integers(0, 200), st.none() | st.integers(0, 200),
                     st.binary(max_size=6)).map(mutate)


def outcome(call):
    """Run ``call``; return "accepted" or the name of the exception it raised."""
    try:
        call()
    except Exception as exc:    # noqa: BLE001 - the caller checks the type
        return exc
    return None


# ------------------------------------------------------------------ ASCII press protocol
_LOAD = ascii_proto.LoadReply(49.123, 370.12, 12.3456,
                              ascii_proto.StatusFlag.RUN | ascii_proto.StatusFlag.HOLD)
ASCII_REPLIES = [ascii_proto.encode_reply(r) for r in (
    ascii_proto.OkReply(), _LOAD, ascii_proto.StreamSample(_LOAD),
    ascii_proto.StateReply(_LOAD, 370.0, 5.0, 0.0, 13.0, ascii_proto.Phase.HOLD, 12.5,
                           ascii_proto.FaultCode.NONE),
    ascii_proto.IdentityReply("FUZZ-15T", 150.0, 150.0, 50.0), ascii_proto.TareReply(0.012),
    ascii_proto.ErrorReply(ascii_proto.ErrorCode.UNKNOWN_COMMAND))]
ASCII_COMMANDS = [b"?\r\n", b"SP0375.0\r\n", b"SR005.0\r\n", b"SH0300\r\n", b"G\r\n", b"S\r\n",
                  b"Z\r\n", b"p\r\n", b"STRM0100\r\n", b"WD0500\r\n", b"DD13.000\r\n"]


def _check_ascii(decode, data, case):
    exc = outcome(lambda: decode(data))
    if exc is not None:
        assert isinstance(exc, ascii_proto.AsciiFrameError), f"{data!r}: {exc!r}"
        assert isinstance(exc, PressProtocolError)
        assert str(exc) and isinstance(exc.code, ascii_proto.ErrorCode)
    record("frames", case, "accepted" if exc is None else "protocol error")


@FAST
@given(st.binary(max_size=120) | mutated(ASCII_REPLIES))
def test_ascii_reply_decoder_raises_only_its_frame_error(data):
    """Random and mutated reply lines decode or raise AsciiFrameError with an error code."""
    _check_ascii(ascii_proto.decode_reply, data, "ascii press replies")


@FAST
@given(st.binary(max_size=24) | mutated(ASCII_COMMANDS))
def test_ascii_command_decoder_raises_only_its_frame_error(data):
    """Random and mutated command lines (what the emulator parses) decode or raise."""
    _check_ascii(ascii_proto.decode_command, data, "ascii press commands")


# ------------------------------------------------------------------ Dobot binary protocol
DOBOT_FRAMES = [dobot.encode_frame(f) for f in (
    dobot.Frame(dobot.CommandId.GET_POSE, params=struct.pack("<8f", *range(8))),
    dobot.Frame(dobot.CommandId.SET_PTP_CMD, True, True, struct.pack("<B4f", 2, 200, 0, 50, 0)),
    dobot.Frame(dobot.CommandId.GET_QUEUED_CMD_CURRENT_INDEX, params=struct.pack("<Q", 7)),
    dobot.Frame(dobot.CommandId.GET_ALARMS_STATE, params=bytes(16)))]


@FAST
@given(st.binary(max_size=80) | mutated(DOBOT_FRAMES))
def test_dobot_frame_decoder_raises_only_its_frame_error(data):
    """decode_frame and the parameter unpacker accept a valid frame or raise DobotFrameError."""
    exc = outcome(lambda: dobot.decode_frame(data))
    if exc is None:
        frame = dobot.decode_frame(data)
        for reply in (False, True):
            for queued in (False, True):
                inner = outcome(lambda r=reply, q=queued: dobot.unpack_params(
                    frame.command_id, frame.params, reply=r, queued=q))
                assert inner is None or isinstance(inner, dobot.DobotFrameError), repr(inner)
    else:
        assert isinstance(exc, dobot.DobotFrameError) and str(exc), repr(exc)
    record("frames", "dobot frames", "accepted" if exc is None else "protocol error")


@FAST
@given(st.lists(st.binary(max_size=40) | mutated(DOBOT_FRAMES), max_size=6))
def test_dobot_stream_decoder_resynchronises_on_garbage(chunks):
    """The stream decoder yields frames or DobotFrameError and always drains its buffer."""
    decoder = dobot.FrameDecoder()
    for chunk in chunks:
        decoder.feed(chunk)
    frames = errors = 0
    for _ in range(200):        # each call consumes >= 2 bytes or returns None
        try:
            frame = decoder.next_frame()
        except dobot.DobotFrameError:
            errors += 1
            continue
        if frame is None:
            break
        frames += 1
    else:
        pytest.fail("FrameDecoder.next_frame never returned None on a finite input")
    # whatever is left is a possible frame start waiting for more bytes
    assert decoder.next_frame() is None
    record("frames", "dobot byte streams", "frames decoded" if frames else
           ("protocol error" if errors else "no frame"))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=40), st.booleans(), st.booleans())
@example(0, b"", False, False)     # found here: an unknown id raised ValueError (now fixed)
def test_dobot_unpack_of_any_id_raises_its_frame_error(command_id, params, reply, queued):
    """Unpacking a frame with any id (known or not) returns values or raises DobotFrameError."""
    exc = outcome(lambda: dobot.unpack_params(command_id, params, reply=reply, queued=queued))
    assert exc is None or isinstance(exc, dobot.DobotFrameError), repr(exc)
    record("frames", "dobot parameters", "accepted" if exc is None else "protocol error")


# ------------------------------------------------------------------ MethodSCRIPT
PACKAGES = [ms.encode_package([ms.PackageVariable("dc", 1000.0),
                               ms.PackageVariable("cc", 32.5, status=0, current_range=3),
                               ms.PackageVariable("cd", -4.25, status=2, noise=5)]),
            "Pdc     nan;cc8000000 "]


@FAST
@given(st.text(max_size=80) | mutated([p.encode() for p in PACKAGES]).map(
    lambda b: b.decode("latin-1")))
def test_methodscript_package_parser_raises_only_its_format_error(line):
    """Data package lines parse or raise MethodScriptFormatError; error lines parse or None."""
    exc = outcome(lambda: ms.parse_package(line))
    assert exc is None or isinstance(exc, ms.MethodScriptFormatError), repr(exc)
    assert exc is None or str(exc)
    error = outcome(lambda: ms.parse_error_line(line))
    assert error is None, repr(error)
    literal = outcome(lambda: ms.parse_literal(line))
    assert literal is None or isinstance(literal, ms.MethodScriptFormatError), repr(literal)
    record("frames", "methodscript lines", "accepted" if exc is None else "protocol error")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.text(max_size=30), max_size=12))
def test_methodscript_script_parser_raises_only_its_format_error(lines):
    """Random script text (what the emulator reads) parses or raises MethodScriptFormatError."""
    valid = ms.eis_script(ms.EisSweepRequest(0.01, 1e5, 10.0, 9, 0.0)).splitlines()
    for script in (lines, valid[: len(lines)] + lines):
        exc = outcome(lambda s=script: ms.parse_eis_script(s))
        assert exc is None or isinstance(exc, ms.MethodScriptFormatError), repr(exc)
        record("frames", "methodscript scripts", "accepted" if exc is None else "protocol error")


# ------------------------------------------------------------------ Modbus registers
@FAST
@given(st.lists(st.integers(0, 0xFFFF), min_size=2, max_size=2),
       st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8))
def test_modbus_register_decoders_take_any_register_values(pair, model):
    """Any two registers are a float32 (NaN/inf included); any eight a printable model name."""
    value = press_modbus.registers_to_float(pair)
    assert isinstance(value, float)
    if math.isfinite(value):
        assert press_modbus.registers_to_float(press_modbus.float_to_registers(value)) == value
    assert isinstance(press_modbus.registers_to_model(model), str)
    record("frames", "modbus registers", "decoded")


# ------------------------------------------------------------------ drivers on a garbage port
class GarbagePort:
    """A pyserial-like port answering each write with the next garbage chunk (then silence)."""

    def __init__(self, chunks):
        self.chunks = list(chunks)
        self.written = []
        self.buffer = b""
        self.is_open = True
        self.timeout = 0.01
        self.inter_byte_timeout = None

    @property
    def in_waiting(self):
        """Return the bytes waiting."""
        return len(self.buffer)

    def inWaiting(self):    # noqa: N802 - pyserial's legacy name, used by pymodbus
        """Return the bytes waiting."""
        return len(self.buffer)

    def write(self, data):
        """Record the bytes and queue the next garbage answer."""
        self.written.append(bytes(data))
        self.buffer += self.chunks.pop(0) if self.chunks else b""
        return len(data)

    def read(self, size=1):
        """Return up to ``size`` waiting bytes (b"" = a timeout)."""
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def read_until(self, expected=b"\n", size=None):
        """Return bytes up to and including ``expected`` or ``size`` bytes."""
        end = self.buffer.find(expected)
        stop = len(self.buffer) if end < 0 else end + len(expected)
        if size is not None:
            stop = min(stop, size)
        return self.read(stop)

    def reset_input_buffer(self):
        """Discard waiting bytes."""
        self.buffer = b""

    def flush(self):
        """Nothing to flush."""

    def close(self):
        """Close the port."""
        self.is_open = False


def garbage_chunks(valid: list):
    """Strategy: answers for successive commands, random bytes or mutated valid frames."""
    return st.lists(st.binary(max_size=60) | mutated(valid) | st.sampled_from(valid),
                    min_size=1, max_size=12)


def run_on_garbage(chunks, build, steps, error_type):
    """Connect the driver ``build()`` to a GarbagePort and run ``steps``; return the port."""
    port = GarbagePort(chunks)
    with mock.patch("serial.serial_for_url", lambda *a, **k: port):
        driver = build()
        started = time.monotonic()
        for step in steps:
            exc = outcome(lambda s=step: s(driver))
            assert exc is None or isinstance(exc, error_type), f"{step.__name__}: {exc!r}"
            if exc is not None:
                break
        assert time.monotonic() - started < 10.0, "the driver did not bound its waits"
        outcome(driver.disconnect)
    return port, exc


# what a healthy press answers to connect (I, STRM0, DD, WD, SH0): garbage then hits read()
ASCII_CONNECT = [ascii_proto.encode_reply(ascii_proto.IdentityReply("FUZZ", 150.0, 150.0, 50.0))]
ASCII_CONNECT += [ascii_proto.encode_reply(ascii_proto.OkReply())] * 4


@pytest.mark.timeout(60)
@DRIVER
@given(garbage_chunks(ASCII_REPLIES) | garbage_chunks(ASCII_REPLIES).map(
    lambda chunks: ASCII_CONNECT + chunks))
def test_ascii_driver_turns_garbage_into_press_errors_and_never_moves(chunks):
    """An ASCII press answering garbage gives PressError subclasses, never a GO or setpoint."""
    from press_cell.hardware.press_ascii import AsciiSerialPress

    def connect(press):
        press.connect()

    def read(press):
        press.read()

    def self_check(press):
        press.self_check()

    port, exc = run_on_garbage(chunks, lambda: AsciiSerialPress(
        "fuzz://", die_diameter_m=0.013, timeout_s=0.01), (connect, read, self_check), PressError)
    sent = [line for chunk in port.written for line in chunk.split(b"\r\n") if line]
    assert not [line for line in sent if line == b"G" or line.startswith(b"SP")], sent
    record("frames", "ascii press driver", "ran" if exc is None else type(exc).__name__)


def _rtu_reply(function: int, payload: bytes) -> bytes:
    """Return an RTU frame from device 1 with a valid CRC."""
    from pymodbus.framer.rtu import FramerRTU

    body = bytes([1, function]) + payload
    return body + FramerRTU.compute_CRC(body).to_bytes(2, "big")


def _register_reply(registers) -> bytes:
    data = b"".join(int(r).to_bytes(2, "big") for r in registers)
    return _rtu_reply(4, bytes([len(data)]) + data)


MODBUS_REPLIES = [_register_reply([0] * 15), _register_reply([0x7FC0, 0] * 4),
                  _rtu_reply(6, bytes(4)), _rtu_reply(0x84, b"\x04"), _rtu_reply(5, bytes(4))]


@pytest.mark.timeout(60)
@DRIVER
@given(garbage_chunks(MODBUS_REPLIES) | st.lists(
    st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=16).map(_register_reply),
    min_size=1, max_size=8))
def test_modbus_driver_turns_garbage_into_press_errors_and_never_moves(chunks):
    """A Modbus press answering garbage or valid-CRC nonsense gives PressErrors, never GO."""
    from press_cell.hardware.press_modbus import Coil, HoldingRegister, ModbusPress

    def connect(press):
        press.connect()

    def read(press):
        press.read()

    port, exc = run_on_garbage(chunks, lambda: ModbusPress("fuzz://", die_diameter_m=0.013,
                                                           timeout_s=0.02),
                               (connect, read), PressError)
    for frame in port.written:
        if len(frame) >= 4 and frame[1] == 5:       # write single coil
            assert int.from_bytes(frame[2:4], "big") != Coil.GO, port.written
        if len(frame) >= 4 and frame[1] == 16:      # write multiple registers
            assert int.from_bytes(frame[2:4], "big") != HoldingRegister.SETPOINT_MPA
    record("frames", "modbus press driver", "ran" if exc is None else type(exc).__name__)


@pytest.mark.timeout(60)
@DRIVER
@given(garbage_chunks(DOBOT_FRAMES))
def test_dobot_driver_turns_garbage_into_arm_errors_and_never_moves(chunks):
    """A Dobot answering garbage gives ArmError subclasses and is never sent a PTP move."""
    from press_cell.hardware.arm_dobot import DobotArm

    def connect(arm):
        arm.connect()

    def self_check(arm):
        arm.self_check()

    port, exc = run_on_garbage(chunks, lambda: DobotArm("fuzz://", reply_timeout_s=0.01,
                                                        retries=1),
                               (connect, self_check), ArmError)
    for frame in port.written:
        assert frame[3] != dobot.CommandId.SET_PTP_CMD, port.written
    record("frames", "dobot arm driver", "ran" if exc is None else type(exc).__name__)


@pytest.mark.timeout(60)
@DRIVER
@given(st.lists(st.text(max_size=40).map(lambda t: (t + "\n").encode("utf-8"))
                | mutated([(p + "\n").encode() for p in PACKAGES]), min_size=1, max_size=12))
def test_methodscript_driver_turns_garbage_into_potentiostat_errors(chunks):
    """A potentiostat answering garbage gives PotentiostatError subclasses within its timeout."""
    from press_cell.hardware.potentiostat_methodscript import MethodScriptPotentiostat

    def connect(pot):
        pot.connect()

    def self_check(pot):
        pot.self_check()

    def sweep(pot):
        pot.measure_eis(1e4, 100.0, 2, 0.01)

    port, exc = run_on_garbage([b"".join(chunks)] * 3, lambda: MethodScriptPotentiostat(
        "fuzz://", timeout_s=0.02, max_skipped_lines=5), (connect, self_check, sweep),
        PotentiostatError)
    record("frames", "methodscript driver", "ran" if exc is None else type(exc).__name__)
