"""MethodSCRIPT potentiostat emulator on a pseudo-terminal, for testing the serial driver.

It opens a pty (``os.openpty``), announces the slave path (a real serial device a pyserial
client opens like ``/dev/ttyUSB0``) and answers ``t``, ``i``, ``Z`` and ``e`` scripts containing
one ``meas_loop_eis``, computing every point with a ``SimulatedPotentiostat``.

Fault injection (also as command-line flags), each ending in a flagged spectrum or an error on
the client side:

* ``overload_above_hz``: status 0x2 (overload) on points above this frequency;
* ``abort_after_points``: the instrument ends the loop after N points (as after an abort);
* ``garbage_every_points``: a line of line-noise after every N points;
* ``corrupt_packet_index``: the package with this 0-based index is sent malformed;
* ``error_code``: every script is answered with ``!XXXX``;
* ``silent``: never answer anything (a stalled or unplugged instrument).

Error codes 0x4001 (unknown command) and 0x4004 (script rejected) are this emulator's own, not
PalmSens's. Run ``python -m press_cell.hardware.potentiostat_emulator --help``.
"""

import argparse
import logging
import os
import select
import sys
import threading
import tty
from dataclasses import dataclass
from types import SimpleNamespace

from press_cell.hardware import methodscript as ms
from press_cell.hardware.potentiostat_driver import PotentiostatAbortedError
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.timebase import MonotonicClock, SimulatedClock

_log = logging.getLogger(__name__)

UNKNOWN_COMMAND_CODE = 0x4001       # emulator-specific error code
SCRIPT_REJECTED_CODE = 0x4004       # emulator-specific error code
GARBAGE_LINE = "\x7f#~garbage~#"
# EmStat Pico low-speed current ranges by index (PalmSens MethodSCRIPT documentation), A
PICO_CURRENT_RANGES_A = (100e-9, 2e-6, 4e-6, 8e-6, 16e-6, 32e-6, 63e-6, 125e-6, 250e-6,
                         500e-6, 1e-3, 5e-3)


@dataclass(frozen=True)
class EmulatorFaults:
    """Faults the emulator injects; all None/False means a healthy instrument."""

    overload_above_hz: float | None = None
    abort_after_points: int | None = None
    garbage_every_points: int | None = None
    corrupt_packet_index: int | None = None
    error_code: int | None = None
    silent: bool = False


def current_range_index(current_a: float) -> int:
    """Return the index of the smallest EmStat Pico range that holds ``current_a`` (A)."""
    for index, full_scale_a in enumerate(PICO_CURRENT_RANGES_A):
        if current_a <= full_scale_a:
            return index
    return len(PICO_CURRENT_RANGES_A) - 1


class PotentiostatEmulator:
    """Serve the MethodSCRIPT protocol on a pty, backed by a simulated potentiostat."""

    def __init__(self, potentiostat: SimulatedPotentiostat,
                 faults: EmulatorFaults = EmulatorFaults(),
                 firmware: str = "press_cell emulator 1.0", serial_number: str = "EMU-0001"):
        self._sim = potentiostat
        self._sim.connect()
        self.faults = faults
        self.firmware = firmware
        self.serial_number = serial_number
        self._master_fd, self._slave_fd = os.openpty()
        tty.setraw(self._slave_fd)
        os.set_blocking(self._master_fd, False)
        self.slave_path = os.ttyname(self._slave_fd)
        self._buffer = b""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.scripts_run = 0

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> "PotentiostatEmulator":
        """Serve in a daemon thread; return self."""
        self._thread = threading.Thread(target=self.serve_forever, name="potentiostat-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the pty; idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        for fd in (self._master_fd, self._slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master_fd = self._slave_fd = -1

    def serve_forever(self) -> None:
        """Answer commands until ``stop`` is called."""
        while not self._stop.is_set():
            line = self._read_line(timeout_s=0.05)
            if line is None:
                continue
            if self.faults.silent:
                continue
            self._handle(line)

    # -- protocol ---------------------------------------------------------------------------

    def _handle(self, line: str) -> None:
        if line == "t":
            self._send(f"t{self.firmware}")
        elif line == "i":
            self._send(f"i{self.serial_number}")
        elif line == "Z":
            self._send("Z")
        elif line == "e":
            self._run_script()
        elif line == "":
            return
        else:
            self._send(f"!{UNKNOWN_COMMAND_CODE:04X}: unknown command {line[:20]!r}")

    def _run_script(self) -> None:
        """Collect script lines up to the empty line, then execute the EIS loop."""
        body = []
        while not self._stop.is_set():
            line = self._read_line(timeout_s=1.0)
            if line is None:
                continue
            if line == "":
                break
            body.append(line)
        self.scripts_run += 1
        self._send("e")
        if self.faults.error_code is not None:
            self._send(f"!{self.faults.error_code:04X}: injected error")
            self._send("")
            return
        try:
            request = ms.parse_eis_script(body)
        except ms.MethodScriptFormatError as exc:
            self._send(f"!{SCRIPT_REJECTED_CODE:04X}: {exc}")
            self._send("")
            return
        self._send("M0000")
        for index, freq_hz in enumerate(request.frequencies_hz()):
            if self._abort_requested():
                break
            if self.faults.abort_after_points is not None \
                    and index >= self.faults.abort_after_points:
                break
            try:
                z, overload, underload = self._sim.measure_point(freq_hz, request.amplitude_v)
            except PotentiostatAbortedError:
                break
            limit_hz = self.faults.overload_above_hz
            if limit_hz is not None and freq_hz > limit_hz:
                overload = True
            status = ((ms.STATUS_OVERLOAD if overload else 0)
                      | (ms.STATUS_UNDERLOAD if underload else 0))
            cr = current_range_index(request.amplitude_v / max(abs(z), 1e-300))
            package = ms.encode_package([
                ms.PackageVariable(ms.VAR_APPLIED_FREQUENCY_HZ, float(freq_hz)),
                ms.PackageVariable(ms.VAR_Z_REAL_OHM, z.real, status, cr),
                ms.PackageVariable(ms.VAR_Z_IMAG_OHM, z.imag, status, cr),
            ])
            if self.faults.corrupt_packet_index == index:
                package = package[:6] + "XYZ" + package[9:]
            self._send(package)
            every = self.faults.garbage_every_points
            if every and (index + 1) % every == 0:
                self._send(GARBAGE_LINE)
        self._send("*")
        self._send("")

    def _abort_requested(self) -> bool:
        """Return whether a ``Z`` arrived while the script runs (other input is dropped)."""
        while True:
            line = self._read_line(timeout_s=0.0)
            if line is None:
                return False
            if line == "Z":
                return True

    # -- pty I/O ----------------------------------------------------------------------------

    def _read_line(self, timeout_s: float) -> str | None:
        """Return one received line (without newline) or None if none arrived in time."""
        if b"\n" not in self._buffer:
            try:
                ready, _, _ = select.select([self._master_fd], [], [], timeout_s)
            except (OSError, ValueError):
                self._stop.set()
                return None
            if ready:
                try:
                    self._buffer += os.read(self._master_fd, 4096)
                except BlockingIOError:
                    pass
                except OSError:
                    return None
        if b"\n" not in self._buffer:
            return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("ascii", errors="replace").rstrip("\r")

    def _send(self, line: str) -> None:
        """Write one line to the client; drop it if the client does not read for 1 s."""
        data = (line + "\n").encode("ascii", errors="replace")
        while data and not self._stop.is_set():
            _, ready, _ = select.select([], [self._master_fd], [], 1.0)
            if not ready:
                _log.warning("client not reading; dropped %d bytes", len(data))
                return
            try:
                data = data[os.write(self._master_fd, data):]
            except BlockingIOError:
                continue


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m press_cell.hardware.potentiostat_emulator",
        description="Serve the PalmSens MethodSCRIPT protocol on a pseudo-terminal; print its "
                    "path on the first line of stdout, then answer until killed.")
    parser.add_argument("--r-ext-ohm", type=float, default=0.5, help="lead resistance, ohm")
    parser.add_argument("--r-bulk-ohm", type=float, default=28.0, help="electrolyte bulk, ohm")
    parser.add_argument("--r-gb-ohm", type=float, default=2.0, help="grain boundaries, ohm")
    parser.add_argument("--r-int-ohm", type=float, default=0.75,
                        help="ONE electrode interface, ohm (the cell has two)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--relative-noise", type=float, default=0.002,
                        help="noise std as a fraction of |Z|")
    parser.add_argument("--real-time", action="store_true",
                        help="take real time per point instead of a simulated clock")
    parser.add_argument("--overload-above-hz", type=float, default=None,
                        help="flag overload (status 0x2) on points above this frequency, Hz")
    parser.add_argument("--abort-after", type=int, default=None,
                        help="end every sweep after this many points")
    parser.add_argument("--garbage-every", type=int, default=None,
                        help="send a garbage line after every N points")
    parser.add_argument("--corrupt-packet", type=int, default=None,
                        help="send the package with this 0-based index malformed")
    parser.add_argument("--error-code", type=lambda text: int(text, 16), default=None,
                        help="answer every script with !XXXX (hex)")
    parser.add_argument("--silent", action="store_true", help="never answer (stalled device)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator from the command line until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    resistances = SimpleNamespace(r_ext_ohm=args.r_ext_ohm, r_bulk_ohm=args.r_bulk_ohm,
                                  r_gb_ohm=args.r_gb_ohm, r_int_each_ohm=args.r_int_ohm)
    clock = MonotonicClock() if args.real_time else SimulatedClock()
    sim = SimulatedPotentiostat(lambda: resistances, clock=clock, seed=args.seed,
                                relative_noise=args.relative_noise)
    faults = EmulatorFaults(args.overload_above_hz, args.abort_after, args.garbage_every,
                            args.corrupt_packet, args.error_code, args.silent)
    emulator = PotentiostatEmulator(sim, faults)
    sys.stdout.write(emulator.slave_path + "\n")
    sys.stdout.flush()
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
