"""The emulator as a process: port path on the first line, stdin control channel, clean exit."""

import subprocess
import sys
import time

import pytest

from press_cell.hardware.press_ascii import AsciiSerialPress
from press_cell.hardware.press_driver import PressConnectionError


@pytest.mark.timeout(20)
def test_emulator_process_serves_a_driver_and_obeys_the_control_channel():
    process = subprocess.Popen(
        [sys.executable, "-m", "press_cell.hardware.press_emulator", "--protocol", "ascii",
         "--latency-ms", "16", "--time-scale", "10"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
    )
    try:
        port = process.stdout.readline().strip()
        assert port.startswith("/dev/")
        press = AsciiSerialPress(port, timeout_s=0.3)
        press.connect()
        start = time.monotonic()
        press.read()
        assert time.monotonic() - start >= 0.016           # --latency-ms took effect
        process.stdin.write("fault stall on\n")
        assert process.stdout.readline().strip() == "ok fault stall on"
        with pytest.raises(PressConnectionError):
            press.read()
        process.stdin.write("fault bogus\n")
        assert process.stdout.readline().startswith("error unknown fault 'bogus'")
        process.stdin.write("quit\n")
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.timeout(20)
def test_emulator_process_exits_when_its_parent_closes_stdin():
    process = subprocess.Popen(
        [sys.executable, "-m", "press_cell.hardware.press_emulator", "--protocol", "modbus",
         "--fault", "stall"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().startswith("/dev/")
        process.stdin.close()
        assert process.wait(timeout=5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
