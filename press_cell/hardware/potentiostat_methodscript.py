"""Potentiostat driver speaking PalmSens MethodSCRIPT over a serial port (pyserial).

Tested against ``press_cell.hardware.potentiostat_emulator`` on a pseudo-terminal. Protocol
details are in ``press_cell.hardware.methodscript``.

How replies are handled during a sweep:

* ``P`` packages become spectrum points; the frequency is the instrument's reported ``dc`` value.
  A ``P`` line that does not parse raises ``PotentiostatProtocolError`` (a point's data is
  corrupt, so the spectrum cannot be trusted).
* Lines that are not part of the protocol at all (line noise, boot banners) are skipped and
  counted in ``Spectrum.skipped_lines``; more than ``max_skipped_lines`` of them in one run
  raise ``PotentiostatProtocolError``.
* Status bits 0x2 (overload) / 0x4 (underload) on Z' or Z'' flag that point in the spectrum.
* ``!XXXX`` raises ``PotentiostatDeviceError`` carrying the code.
* A script that ends (empty line) before all requested points arrived raises
  ``PotentiostatAbortedError`` with the points received so far; so does a set ``cancel_event``
  (the driver sends ``Z`` to abort the script first).
* No line within the timeout raises ``PotentiostatConnectionError``.
"""

import logging
import re
import threading
import time

import numpy as np
import serial

from press_cell.hardware import methodscript as ms
from press_cell.hardware.potentiostat_driver import (
    PotentiostatAbortedError,
    PotentiostatConnectionError,
    PotentiostatDriver,
    PotentiostatOverloadError,
    PotentiostatProtocolError,
    ProgressCallback,
    Spectrum,
    validate_sweep,
)
from press_cell.physics.eis import log_frequency_grid_hz

_log = logging.getLogger(__name__)

DEFAULT_BAUDRATE = 230400           # EmStat Pico UART rate (PalmSens MethodSCRIPT examples)
DEFAULT_TIMEOUT_S = 2.0             # reply timeout for commands and between points [est]
PERIODS_PER_POINT_TIMEOUT = 10.0    # extra wait per point, in excitation periods [est]
_LOOP_START_RE = re.compile(r"^M[0-9A-Fa-f]{4}$")


class MethodScriptPotentiostat(PotentiostatDriver):
    """A MethodSCRIPT instrument (EmStat Pico / EmStat4 class) on a serial port."""

    def __init__(self, port: str, baudrate: int = DEFAULT_BAUDRATE,
                 timeout_s: float = DEFAULT_TIMEOUT_S, max_skipped_lines: int = 10,
                 max_current_a: float = 5e-3, min_current_a: float = 100e-9) -> None:
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
        if max_skipped_lines < 0:
            raise ValueError(f"max_skipped_lines must be >= 0, got {max_skipped_lines!r}")
        self.port = port
        self.baudrate = int(baudrate)
        self.timeout_s = float(timeout_s)
        self.max_skipped_lines = int(max_skipped_lines)
        self.max_current_a = float(max_current_a)
        self.min_current_a = float(min_current_a)
        self._serial: serial.Serial | None = None
        self._buffer = b""
        self._lock = threading.RLock()

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Open the serial port; raise ``PotentiostatConnectionError`` naming it on failure."""
        with self._lock:
            if self._serial is not None:
                return
            try:
                self._serial = serial.serial_for_url(self.port, baudrate=self.baudrate,
                                                     timeout=0.05, write_timeout=self.timeout_s)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise PotentiostatConnectionError(
                    f"cannot open potentiostat port {self.port!r}: {exc}") from exc
            self._serial.reset_input_buffer()
            self._buffer = b""

    def disconnect(self) -> None:
        """Abort any running script and close the port; idempotent."""
        with self._lock:
            if self._serial is None:
                return
            try:
                self._serial.write(b"Z\n")
            except (serial.SerialException, OSError):
                pass
            self._serial.close()
            self._serial = None

    @property
    def is_connected(self) -> bool:
        """Return whether the port is open."""
        return self._serial is not None

    def self_check(self) -> str:
        """Ask for firmware (``t``) and serial number (``i``); return both as one string."""
        with self._lock:
            firmware = self._query("t")
            serial_number = self._query("i")
            return f"MethodSCRIPT firmware {firmware!r}, serial {serial_number!r}"

    def firmware_version(self) -> str:
        """Return the firmware text the instrument reports for ``t``."""
        with self._lock:
            return self._query("t")

    # -- measurement ------------------------------------------------------------------------

    def measure_eis(self, freq_max_hz: float, freq_min_hz: float, points_per_decade: int,
                    amplitude_v: float, progress_cb: ProgressCallback | None = None,
                    cancel_event: threading.Event | None = None) -> Spectrum:
        """Run an EIS script from freq_max_hz down to freq_min_hz; return the spectrum."""
        validate_sweep(freq_max_hz, freq_min_hz, points_per_decade, amplitude_v)
        n_points = log_frequency_grid_hz(freq_max_hz, freq_min_hz, points_per_decade).size
        request = ms.EisSweepRequest(amplitude_v, freq_max_hz, freq_min_hz, n_points, 0.0)
        return self._run_sweep(request, progress_cb, cancel_event)

    def measure_impedance_at(self, freq_hz: float, amplitude_v: float) -> complex:
        """Measure one frequency (Hz) at amplitude_v (V RMS); return Z, Ω."""
        if not (np.isfinite(freq_hz) and freq_hz > 0):
            raise ValueError(f"freq_hz must be finite and > 0, got {freq_hz!r}")
        if not 0.0 < amplitude_v <= 1.0:
            raise ValueError(f"amplitude_v must be in (0, 1] V, got {amplitude_v!r}")
        spectrum = self._run_sweep(ms.EisSweepRequest(amplitude_v, freq_hz, freq_hz, 1, 0.0),
                                   None, None)
        if spectrum.any_overload:
            raise PotentiostatOverloadError(
                f"current out of range at {freq_hz:g} Hz and {amplitude_v:g} V "
                f"(overload={bool(spectrum.overload[0])}, underload={bool(spectrum.underload[0])})")
        return complex(spectrum.z_ohm[0])

    # -- internals --------------------------------------------------------------------------

    def _port(self) -> serial.Serial:
        if self._serial is None:
            raise PotentiostatConnectionError(f"potentiostat on {self.port!r} is not connected")
        return self._serial

    def _write(self, text: str) -> None:
        try:
            self._port().write(text.encode("ascii"))
            self._port().flush()
        except (serial.SerialException, OSError) as exc:
            raise PotentiostatConnectionError(f"write to {self.port!r} failed: {exc}") from exc

    def _readline(self, timeout_s: float) -> str:
        """Return the next line without its newline; raise on timeout or a lost port."""
        deadline = time.monotonic() + timeout_s
        port = self._port()
        while b"\n" not in self._buffer:
            if time.monotonic() > deadline:
                raise PotentiostatConnectionError(
                    f"no reply from the potentiostat on {self.port!r} within {timeout_s:.3g} s")
            try:
                chunk = port.read(max(1, port.in_waiting))
            except (serial.SerialException, OSError) as exc:
                raise PotentiostatConnectionError(f"read from {self.port!r} failed: {exc}") from exc
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode("ascii", errors="replace").rstrip("\r")

    def _query(self, command: str) -> str:
        """Send a one-letter command and return its reply text (without the echoed letter)."""
        self._write(command + "\n")
        skipped = 0
        while True:
            line = self._readline(self.timeout_s)
            error = ms.parse_error_line(line)
            if error is not None:
                raise error
            if line.startswith(command):
                return line[len(command):]
            skipped += 1
            if skipped > self.max_skipped_lines:
                raise PotentiostatProtocolError(
                    f"no reply to {command!r} among {skipped} lines (last {line!r})")

    def _drain_script(self) -> None:
        """Read until the script's terminating empty line (or a timeout) after an abort/error."""
        try:
            while self._readline(self.timeout_s) != "":
                pass
        except PotentiostatConnectionError:
            _log.warning("potentiostat did not end the script after an abort/error")

    def _run_sweep(self, request: ms.EisSweepRequest, progress_cb: ProgressCallback | None,
                   cancel_event: threading.Event | None) -> Spectrum:
        """Send the script, collect its packages and return them as a spectrum."""
        with self._lock:
            expected_hz = request.frequencies_hz()
            self._write(ms.eis_script(request, self.max_current_a, self.min_current_a))
            rows: list[tuple[float, float, float, bool, bool]] = []
            skipped = 0
            stale = 0
            echoed = False
            start_s = time.monotonic()

            def spectrum() -> Spectrum:
                data = np.array([r[:3] for r in rows], float).reshape(-1, 3)
                flags = np.array([r[3:] for r in rows], bool).reshape(-1, 2)
                notes = (f"skipped {skipped} unparseable line(s)",) if skipped else ()
                return Spectrum(data[:, 0], data[:, 1], data[:, 2], flags[:, 0], flags[:, 1],
                                request.amplitude_v, start_s, time.monotonic() - start_s,
                                skipped, "methodscript", notes)

            while True:
                if cancel_event is not None and cancel_event.is_set():
                    self._write("Z\n")
                    self._drain_script()
                    raise PotentiostatAbortedError(
                        f"sweep cancelled after {len(rows)} of {request.n_points} points",
                        spectrum())
                next_hz = expected_hz[min(len(rows), expected_hz.size - 1)]
                line = self._readline(self.timeout_s + PERIODS_PER_POINT_TIMEOUT / next_hz)
                if not echoed:
                    # before the echo only an error can concern this script; anything else is
                    # left over from an earlier exchange (e.g. the reply to an abort)
                    if line == "e":
                        echoed = True
                    elif ms.parse_error_line(line) is not None:
                        raise ms.parse_error_line(line)
                    else:
                        stale += 1
                        if stale > self.max_skipped_lines:
                            raise PotentiostatProtocolError(
                                f"no echo of the script command among {stale} lines "
                                f"(last {line[:80]!r})")
                    continue
                error = ms.parse_error_line(line)
                if error is not None:
                    self._drain_script()
                    raise error
                if line == "":
                    break
                if line.startswith("P"):
                    try:
                        rows.append(self._point(line))
                    except PotentiostatProtocolError:
                        self._write("Z\n")
                        self._drain_script()
                        raise
                    if progress_cb is not None:
                        progress_cb(len(rows), request.n_points, rows[-1][0])
                elif _LOOP_START_RE.match(line) or line in ("*", "+", "-"):
                    continue
                else:
                    skipped += 1
                    _log.warning("skipping unparseable line from potentiostat: %r", line[:80])
                    if skipped > self.max_skipped_lines:
                        self._write("Z\n")
                        self._drain_script()
                        raise PotentiostatProtocolError(
                            f"{skipped} unparseable lines from the potentiostat (limit "
                            f"{self.max_skipped_lines}); last {line[:80]!r}")
            result = spectrum()
            if len(result) < request.n_points:
                raise PotentiostatAbortedError(
                    f"instrument ended the sweep after {len(result)} of {request.n_points} "
                    "points", result)
            if result.any_overload:
                _log.warning("EIS sweep: %d overloaded and %d underloaded points",
                             int(result.overload.sum()), int(result.underload.sum()))
            return result

    @staticmethod
    def _point(line: str) -> tuple[float, float, float, bool, bool]:
        """Return (f Hz, Z' Ω, Z'' Ω, overload, underload) from a package line."""
        variables = {v.type_id: v for v in ms.parse_package(line)}
        missing = [t for t in (ms.VAR_APPLIED_FREQUENCY_HZ, ms.VAR_Z_REAL_OHM, ms.VAR_Z_IMAG_OHM)
                   if t not in variables]
        if missing:
            raise PotentiostatProtocolError(
                f"EIS package {line!r} lacks variable(s) {missing}; expected dc, cc and cd")
        z_parts = (variables[ms.VAR_Z_REAL_OHM], variables[ms.VAR_Z_IMAG_OHM])
        return (variables[ms.VAR_APPLIED_FREQUENCY_HZ].value, z_parts[0].value, z_parts[1].value,
                any(v.overload for v in z_parts), any(v.underload for v in z_parts))
