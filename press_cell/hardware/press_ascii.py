"""Host driver of the ASCII serial press protocol (doc/press_protocols.md, protocol 1) on pyserial.

One command, one reply, CR LF terminated. Before each command the input buffer is discarded,
so a late reply (after a timeout) or an unsolicited stream line cannot be taken for the answer
to the next command. Stream lines (``#...``) that arrive while waiting are skipped.

Example::

    press = AsciiSerialPress("/dev/ttyUSB0", baudrate=115200, die_diameter_m=0.013)
    press.connect(); press.self_check(); press.tare()
    press.command_setpoint(force_n=49.1e3, ramp_n_s=2e3)   # 370 MPa at ~15 MPa/s
"""

from __future__ import annotations

import termios

import serial

from press_cell.hardware.press_ascii_protocol import (
    MAX_REPLY_BYTES,
    TERMINATOR,
    AsciiFrameError,
    Command,
    CommandName,
    ErrorCode,
    ErrorReply,
    IdentityReply,
    LoadReply,
    OkReply,
    Reply,
    StateReply,
    StreamSample,
    TareReply,
    decode_reply,
    encode_command,
)
from press_cell.hardware.press_driver import (
    PressConnectionError,
    PressDeviceFault,
    PressProtocolError,
)
from press_cell.hardware.press_supervisory import SupervisorySerialPress

LOAD_EXCHANGE_BYTES = 3 + 45        # "?\r\n" plus the load line; sets the poll-rate ceiling
MAX_POLL_RATE_HZ = 200.0            # the press's own sample rate ceiling (protocol 1)
_NOT_RETRIED = {CommandName.TARE}   # commands with side effects: never sent twice


class AsciiSerialPress(SupervisorySerialPress):
    """A press speaking the ASCII protocol over a serial port (or any pyserial URL)."""

    def __init__(self, port: str, *, baudrate: int = 115200, **kwargs) -> None:
        super().__init__(**kwargs)
        self.port = port
        self.baudrate = int(baudrate)
        self._serial: serial.SerialBase | None = None

    def _open(self) -> None:
        """Open the serial port with bounded read and write timeouts."""
        try:
            self._serial = serial.serial_for_url(
                self.port, baudrate=self.baudrate, timeout=self.timeout_s,
                write_timeout=self.timeout_s,
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise PressConnectionError(f"cannot open {self.port!r}: {exc}") from exc

    def _close(self) -> None:
        """Close the serial port, ignoring errors of an already-dead port."""
        if self._serial is not None:
            try:
                self._serial.close()
            except (serial.SerialException, OSError, termios.error):
                pass
            self._serial = None

    def _max_read_rate_hz(self) -> float:
        """Return the poll-rate ceiling: 10 bits per byte over the ``?`` exchange, max 200 Hz."""
        return min(MAX_POLL_RATE_HZ, self.baudrate / 10.0 / LOAD_EXCHANGE_BYTES)

    def exchange(self, command: Command) -> Reply:
        """Send one command and return its decoded reply (ErrorReply raises)."""
        self._require_link()
        try:
            reply = self._exchange_once(command)
        except AsciiFrameError:
            if command.name in _NOT_RETRIED:
                raise
            reply = self._exchange_once(command)    # once more after line noise
        if isinstance(reply, ErrorReply):
            sent = encode_command(command)[: -len(TERMINATOR)].decode()
            text = f"press answered ERR {int(reply.code):02d} ({reply.text}) to {sent!r}"
            if reply.code in (ErrorCode.FAULT_LATCHED, ErrorCode.SENSOR_FAILED):
                raise PressDeviceFault(text)
            raise PressProtocolError(text)
        return reply

    def _exchange_once(self, command: Command) -> Reply:
        """Write the command and read lines until a non-stream reply arrives or time runs out."""
        port = self._serial
        try:
            port.reset_input_buffer()
            port.write(encode_command(command))
            while True:
                line = port.read_until(TERMINATOR, MAX_REPLY_BYTES + len(TERMINATOR))
                if not line.endswith(TERMINATOR):
                    if len(line) > MAX_REPLY_BYTES:
                        raise AsciiFrameError(
                            ErrorCode.LINE_TOO_LONG,
                            f"reply to {command.name.value!r} longer than {MAX_REPLY_BYTES} "
                            f"bytes without CR LF: {line[:40]!r}...",
                        )
                    self._drop_link()
                    raise PressConnectionError(
                        f"no complete reply to {command.name.value!r} within "
                        f"{self.timeout_s:.3f} s (got {line!r}); link marked down"
                    )
                reply = decode_reply(line)
                if not isinstance(reply, StreamSample):
                    return reply
        except serial.SerialTimeoutException as exc:
            self._drop_link()
            raise PressConnectionError(
                f"write of {command.name.value!r} blocked for {self.timeout_s:.3f} s"
            ) from exc
        except (serial.SerialException, OSError, termios.error) as exc:
            # termios.error (not an OSError) comes from tcflush on a hung-up port
            self._drop_link()
            raise PressConnectionError(f"serial port {self.port!r} failed: {exc}") from exc

    def _expect(self, command: Command, kind: type) -> Reply:
        """Exchange ``command`` and check the reply has the expected type."""
        reply = self.exchange(command)
        if not isinstance(reply, kind):
            raise PressProtocolError(
                f"press answered {type(reply).__name__} to {command.name.value!r}, "
                f"expected {kind.__name__}"
            )
        return reply

    def _identify(self) -> IdentityReply:
        """Send ``I``."""
        return self._expect(Command(CommandName.IDENTIFY), IdentityReply)

    def _configure(self, die_mm: float, watchdog_ms: float) -> None:
        """Send ``DD``, ``WD``, ``SH0000`` and stop any stream."""
        self._expect(Command(CommandName.STREAM, 0), OkReply)
        self._expect(Command(CommandName.DIE, die_mm), OkReply)
        self._expect(Command(CommandName.WATCHDOG, round(watchdog_ms)), OkReply)
        self._expect(Command(CommandName.HOLD, 0), OkReply)

    def _set_die(self, die_mm: float) -> None:
        """Send ``DD``."""
        self._expect(Command(CommandName.DIE, die_mm), OkReply)

    def _load(self) -> LoadReply:
        """Send ``?``."""
        return self._expect(Command(CommandName.LOAD), LoadReply)

    def _state(self) -> StateReply:
        """Send ``p``."""
        return self._expect(Command(CommandName.STATE), StateReply)

    def _set_ramp(self, ramp_mpa_s: float) -> None:
        """Send ``SR``."""
        self._expect(Command(CommandName.RAMP, ramp_mpa_s), OkReply)

    def _set_setpoint(self, setpoint_mpa: float) -> None:
        """Send ``SP``."""
        self._expect(Command(CommandName.SETPOINT, setpoint_mpa), OkReply)

    def _go(self) -> None:
        """Send ``G``."""
        self._expect(Command(CommandName.GO), OkReply)

    def _stop(self) -> None:
        """Send ``S``."""
        self._expect(Command(CommandName.STOP), OkReply)

    def _vent(self) -> None:
        """Send ``V``."""
        self._expect(Command(CommandName.VENT), OkReply)

    def _tare(self, samples: int) -> float:
        """Send ``Zddd``."""
        return self._expect(Command(CommandName.TARE, samples), TareReply).offset_kn

    def _reset(self) -> None:
        """Send ``R``."""
        self._expect(Command(CommandName.RESET), OkReply)
