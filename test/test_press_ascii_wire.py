"""ASCII protocol on the wire: raw frames against the emulator, streaming, error replies."""

import time

import pytest
import serial

from press_cell.hardware.press_ascii import AsciiSerialPress
from press_cell.hardware.press_ascii_protocol import (
    Command,
    CommandName,
    LoadReply,
    StreamSample,
    decode_reply,
)
from press_cell.hardware.press_driver import PressDeviceFault, PressProtocolError
from press_cell.hardware.press_emulator import PressEmulator


@pytest.fixture
def emulator():
    emulator = PressEmulator("ascii", time_scale=10.0).start()
    yield emulator
    emulator.close()


@pytest.fixture
def port(emulator):
    with serial.Serial(emulator.port, 115200, timeout=0.5) as port:
        yield port


def _ask(port, line: bytes) -> bytes:
    port.reset_input_buffer()
    port.write(line)
    return port.read_until(b"\r\n")


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"SP0050.0\r\n", b"OK\r\n"),
        (b"SP9999.9\r\n", b"ERR 03\r\n"),       # above the rating on the 13 mm die
        (b"SP50.0\r\n", b"ERR 02\r\n"),
        (b"FOO\r\n", b"ERR 01\r\n"),
        (b"DD13.000\r\n", b"OK\r\n"),
        (b"R\r\n", b"OK\r\n"),
    ],
)
def test_each_command_gets_exactly_one_documented_reply(port, line, reply):
    assert _ask(port, line) == reply
    time.sleep(0.02)
    assert port.in_waiting == 0                 # nothing else follows


@pytest.mark.timeout(10)
def test_an_overlong_line_is_refused_once_and_the_next_command_works(port):
    port.write(b"SP" + b"0" * 30)
    assert port.read_until(b"\r\n") == b"ERR 06\r\n"
    port.write(b"\r\n")                         # end of the discarded line: no reply
    assert isinstance(decode_reply(_ask(port, b"?\r\n")), LoadReply)


@pytest.mark.timeout(10)
def test_identity_and_state_lines_parse(port):
    assert _ask(port, b"I\r\n").startswith(b"I,PC-EMU-1,0100.000,0100.000,")
    assert _ask(port, b"p\r\n").startswith(b"P +")


@pytest.mark.timeout(10)
def test_stream_lines_arrive_at_the_requested_rate(port):
    assert _ask(port, b"STRM0050\r\n") == b"OK\r\n"
    start = time.monotonic()
    lines = [port.read_until(b"\r\n") for _ in range(15)]
    elapsed = time.monotonic() - start
    assert all(isinstance(decode_reply(line), StreamSample) for line in lines)
    assert 14 / 50 * 0.6 < elapsed < 14 / 50 * 2.0
    port.write(b"STRM0000\r\n")
    replies = [port.read_until(b"\r\n")]
    while replies[-1] != b"OK\r\n" and len(replies) < 5:
        replies.append(port.read_until(b"\r\n"))
    assert replies[-1] == b"OK\r\n"             # stream lines may come first, never after OK
    assert all(line.startswith(b"#") for line in replies[:-1])
    time.sleep(0.1)
    assert port.in_waiting == 0                 # streaming stopped


@pytest.mark.timeout(10)
def test_driver_skips_stream_lines_and_maps_error_replies(emulator):
    press = AsciiSerialPress(emulator.port, timeout_s=0.2)
    press.connect()
    try:
        press.exchange(Command(CommandName.STREAM, 200))
        for _ in range(20):
            assert isinstance(press.exchange(Command(CommandName.LOAD)), LoadReply)
        with pytest.raises(PressProtocolError, match="ERR 03 .*SP9999.9"):
            press.exchange(Command(CommandName.SETPOINT, 9999.9))
        emulator.control("sim relief_trip")
        deadline = time.monotonic() + 1.0
        while not press.read().device_fault and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(PressDeviceFault, match="ERR 05"):
            press.exchange(Command(CommandName.GO))
    finally:
        press.disconnect()
