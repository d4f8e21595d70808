"""Round-trip time and control-cycle rate of the serial press drivers against their emulators.

Baseline: the same driver on a bare pty (no latency, no baud pacing), measured in the same run.
Reported: median and p95 of one ``read()`` round trip, the rate of full supervisory cycles
(``command_setpoint`` + ``read``, setpoint unchanged while holding), and the poll rate the driver
claims in ``capabilities.max_read_rate_hz``; lines: bare pty, 16 ms USB-serial latency (FTDI
default latency timer), replies paced at 115200 and 9600 baud.

Run: ``.venv/bin/python bench/bench_press_serial.py [--samples 200]``
"""

import argparse
import statistics
import time

from press_cell.hardware.press_ascii import AsciiSerialPress
from press_cell.hardware.press_emulator import PressEmulator
from press_cell.hardware.press_modbus import ModbusPress

DRIVERS = {"ascii": AsciiSerialPress, "modbus": ModbusPress}


CASES = (  # (label, latency_ms, baudrate, paced at the baud rate)
    ("pty", 0.0, 115200, False),
    ("pty+16ms", 16.0, 115200, False),
    ("115200", 0.0, 115200, True),
    ("115200+16ms", 16.0, 115200, True),
    ("9600", 0.0, 9600, True),
)


def measure(protocol: str, latency_ms: float, baudrate: int, pace: bool, samples: int) -> dict:
    """Return round-trip statistics (s) and cycle rate (Hz) for one protocol and line."""
    emulator = PressEmulator(protocol, latency_ms=latency_ms, watchdog_ms=0, baudrate=baudrate,
                             pace=pace).start()
    press = DRIVERS[protocol](emulator.port, baudrate=baudrate, timeout_s=0.5, watchdog_s=0.0)
    try:
        press.connect()
        round_trips = []
        for _ in range(samples):
            start = time.perf_counter()
            press.read()
            round_trips.append(time.perf_counter() - start)
        cycles = max(20, samples // 4)
        start = time.perf_counter()
        for _ in range(cycles):
            press.command_setpoint(1e3, 5e3)
            press.read()
        cycle_hz = cycles / (time.perf_counter() - start)
        press.vent()
    finally:
        press.disconnect()
        emulator.close()
    round_trips.sort()
    return {"median_s": statistics.median(round_trips),
            "p95_s": round_trips[int(0.95 * (len(round_trips) - 1))], "cycle_hz": cycle_hz,
            "claimed_hz": press.capabilities.max_read_rate_hz}


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    print(f"{'protocol':8} {'line':>12} {'rtt median':>11} {'rtt p95':>9} {'cycle':>9} "
          f"{'claimed':>9} {'x baseline':>10}")
    for protocol in DRIVERS:
        baseline = None
        for label, latency_ms, baudrate, pace in CASES:
            result = measure(protocol, latency_ms, baudrate, pace, args.samples)
            baseline = baseline or result["median_s"]
            print(f"{protocol:8} {label:>12} {result['median_s'] * 1e3:9.2f}ms "
                  f"{result['p95_s'] * 1e3:7.2f}ms {result['cycle_hz']:7.1f}Hz "
                  f"{result['claimed_hz']:7.1f}Hz {result['median_s'] / baseline:9.1f}x")


if __name__ == "__main__":
    main()
