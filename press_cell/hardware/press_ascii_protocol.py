"""Codec of the press_cell ASCII press protocol (version 1): fixed-width frames, CR LF terminated.

This module is pure: it turns frames into typed values and back, for the host driver
(``press_ascii.AsciiSerialPress``) and the device emulator (``press_emulator``) alike. The full
protocol (commands, replies, status flags, error table, timing) is in ``doc/press_protocols.md``;
the tables below are its single source of truth in code.

Wire units are the lab's: pressure in MPa, force in kN, ram position in mm, time in s, die
diameter in mm. The press converts MPa <-> N itself from the die diameter set with ``DD``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from press_cell.hardware.press_driver import PressProtocolError

PROTOCOL_VERSION = 1
TERMINATOR = b"\r\n"
MAX_COMMAND_BYTES = 16          # longest valid command is "STRM0100" (8); longer lines are refused
MAX_REPLY_BYTES = 96            # longest valid reply is the state line (about 80 bytes)
STREAM_PREFIX = "#"             # unsolicited stream lines start with this; replies never do
BAUD_RATES = (9600, 19200, 38400, 57600, 115200)


class StatusFlag(enum.IntFlag):
    """Status bits sent as two hex digits at the end of every load line."""

    RUN = 0x01          # the press's own loop is active (ramping, holding or unloading)
    HOLD = 0x02         # force is inside the press's hold band around the setpoint
    VENT = 0x04         # dump valve open: the press is unloading itself
    RELIEF = 0x08       # relief valve opened since the previous load line
    FAULT = 0x10        # a fault is latched (code in the state line); clear with R
    WATCHDOG = 0x20     # the comms watchdog tripped and vented the press (latched with FAULT)
    OVERLOAD = 0x40     # force above the rated capacity
    SENSOR = 0x80       # load cell failed: the force and pressure fields are meaningless


class Phase(enum.IntEnum):
    """State of the press's own sequencer (one digit in the state line)."""

    IDLE = 0            # unloaded, waiting for G
    RAMP = 1            # moving to the setpoint at the ramp rate
    HOLD = 2            # at the setpoint; the hold timer runs
    UNLOAD = 3          # controlled release to zero at the ramp rate (after S or hold end)
    VENTED = 4          # dump valve open (after V)
    FAULT = 5           # fault latched, press vented; R clears it


class FaultCode(enum.IntEnum):
    """Latched fault reported as ``E..`` in the state line."""

    NONE = 0
    WATCHDOG = 1        # no valid command for the watchdog time while loaded
    RELIEF = 2          # relief valve tripped (force at rated capacity)
    SENSOR = 3          # load cell signal lost or implausible
    OVERTRAVEL = 4      # ram at the end of its stroke
    DEVICE = 5          # any other internal fault of the press


class ErrorCode(enum.IntEnum):
    """Numbers of the ``ERR nn`` reply; see ``ERROR_TEXT`` and the protocol document."""

    UNKNOWN_COMMAND = 1
    MALFORMED_ARGUMENT = 2
    OUT_OF_RANGE = 3
    NOT_ALLOWED_NOW = 4
    FAULT_LATCHED = 5
    LINE_TOO_LONG = 6
    SENSOR_FAILED = 7


ERROR_TEXT = {
    ErrorCode.UNKNOWN_COMMAND: "unknown command",
    ErrorCode.MALFORMED_ARGUMENT: "argument has the wrong width or characters",
    ErrorCode.OUT_OF_RANGE: "value outside the allowed range",
    ErrorCode.NOT_ALLOWED_NOW: "command not allowed in the current phase",
    ErrorCode.FAULT_LATCHED: "a fault is latched; send R to reset",
    ErrorCode.LINE_TOO_LONG: "line longer than 16 bytes before CR LF",
    ErrorCode.SENSOR_FAILED: "load cell failed; cannot tare",
}


class AsciiFrameError(PressProtocolError):
    """A frame does not follow the ASCII protocol; ``code`` is the ``ERR`` number a press sends."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = ErrorCode(code)


@dataclass(frozen=True)
class NumberField:
    """A fixed-width decimal field: ``int_digits`` + optional ``.`` + ``decimals`` digits."""

    int_digits: int
    decimals: int
    minimum: float
    maximum: float
    signed: bool = False

    @property
    def width(self) -> int:
        """Return the number of characters of the field, sign included."""
        return self.int_digits + (self.decimals + 1 if self.decimals else 0) + int(self.signed)

    @property
    def pattern(self) -> str:
        """Return the regular expression that matches exactly one field."""
        sign = "[+-]" if self.signed else ""
        frac = rf"\.\d{{{self.decimals}}}" if self.decimals else ""
        return rf"{sign}\d{{{self.int_digits}}}{frac}"

    def format(self, value: float) -> str:
        """Format ``value`` (rounded to the field's resolution); raise ValueError if it cannot."""
        if value != value or not self.minimum <= round(value, self.decimals) <= self.maximum:
            raise ValueError(
                f"{value!r} is outside the field range [{self.minimum}, {self.maximum}]"
            )
        sign = "+" if self.signed else ""
        value = round(value, self.decimals) + 0.0     # -0.0 would print as "-000.0"
        return f"{value:{sign}0{self.width}.{self.decimals}f}"

    def parse(self, text: str) -> float:
        """Parse one field; raise AsciiFrameError naming the expected shape."""
        if not re.fullmatch(self.pattern, text):
            raise AsciiFrameError(
                ErrorCode.MALFORMED_ARGUMENT,
                f"field {text!r} does not match {self.example()!r} (fixed width {self.width})",
            )
        value = float(text)
        if not self.minimum <= value <= self.maximum:
            raise AsciiFrameError(
                ErrorCode.OUT_OF_RANGE,
                f"value {value} outside [{self.minimum}, {self.maximum}]",
            )
        return value

    def example(self) -> str:
        """Return a sample of the field's shape, e.g. ``dddd.d``."""
        body = "d" * self.int_digits + ("." + "d" * self.decimals if self.decimals else "")
        return ("±" if self.signed else "") + body


# Command arguments (host -> press).
SETPOINT_MPA = NumberField(4, 1, 0.0, 9999.9)       # SP0375.0
RAMP_MPA_S = NumberField(3, 1, 0.1, 999.9)          # SR005.0
HOLD_S = NumberField(4, 0, 0, 9999)                 # SH0300 (0 = hold until S)
DIE_MM = NumberField(2, 3, 1.0, 99.999)             # DD13.000
STREAM_HZ = NumberField(4, 0, 0, 200)               # STRM0100 (0 = off)
WATCHDOG_MS = NumberField(4, 0, 0, 9999)            # WD0500 (0 = off, 50..9999 otherwise)
TARE_SAMPLES = NumberField(3, 0, 1, 999)            # Z050 (plain Z = 50 samples)
# Reply fields (press -> host).
FORCE_KN = NumberField(4, 3, -9999.999, 9999.999, signed=True)
PRESSURE_MPA = NumberField(4, 2, -9999.99, 9999.99, signed=True)
POSITION_MM = NumberField(3, 4, -999.9999, 999.9999, signed=True)
PHASE_TIME_S = NumberField(4, 1, 0.0, 9999.9)
RATED_KN = NumberField(4, 3, 0.0, 9999.999)
STROKE_MM = NumberField(3, 2, 0.0, 999.99)

WATCHDOG_MIN_MS = 50
DEFAULT_TARE_SAMPLES = 50


class CommandName(enum.Enum):
    """Every host command; the value is the literal prefix on the wire."""

    LOAD = "?"
    STATE = "p"
    IDENTIFY = "I"
    SETPOINT = "SP"
    RAMP = "SR"
    HOLD = "SH"
    DIE = "DD"
    GO = "G"
    STOP = "S"
    VENT = "V"
    TARE = "Z"
    RESET = "R"
    STREAM = "STRM"
    WATCHDOG = "WD"


# Argument field of each command; None = no argument. TARE's argument is optional.
COMMAND_FIELDS: dict[CommandName, NumberField | None] = {
    CommandName.LOAD: None,
    CommandName.STATE: None,
    CommandName.IDENTIFY: None,
    CommandName.SETPOINT: SETPOINT_MPA,
    CommandName.RAMP: RAMP_MPA_S,
    CommandName.HOLD: HOLD_S,
    CommandName.DIE: DIE_MM,
    CommandName.GO: None,
    CommandName.STOP: None,
    CommandName.VENT: None,
    CommandName.TARE: TARE_SAMPLES,
    CommandName.RESET: None,
    CommandName.STREAM: STREAM_HZ,
    CommandName.WATCHDOG: WATCHDOG_MS,
}

# Longest prefix first, so "SP" wins over "S" and "STRM" over "S".
_PREFIXES = sorted(CommandName, key=lambda name: -len(name.value))


@dataclass(frozen=True)
class Command:
    """One host command; ``value`` is None for commands without an argument."""

    name: CommandName
    value: float | None = None


def encode_command(command: Command) -> bytes:
    """Return the wire bytes of ``command``, terminator included; raise ValueError if invalid."""
    field = COMMAND_FIELDS[command.name]
    if command.value is None:
        if field is not None and command.name is not CommandName.TARE:
            raise ValueError(f"command {command.name.value} needs a value")
        return command.name.value.encode("ascii") + TERMINATOR
    if field is None:
        raise ValueError(f"command {command.name.value} takes no value")
    return (command.name.value + field.format(command.value)).encode("ascii") + TERMINATOR


def decode_command(line: bytes) -> Command:
    """Parse one command line (terminator stripped or not); raise AsciiFrameError with its code."""
    body = _strip_line(line, MAX_COMMAND_BYTES, ErrorCode.LINE_TOO_LONG)
    for name in _PREFIXES:
        if not body.startswith(name.value):
            continue
        argument = body[len(name.value):]
        field = COMMAND_FIELDS[name]
        if field is None:
            if argument:
                break       # e.g. "GX" is not G with an argument: unknown
            return Command(name)
        if not argument and name is CommandName.TARE:
            return Command(name)
        value = field.parse(argument)
        if name is CommandName.WATCHDOG and 0 < value < WATCHDOG_MIN_MS:
            raise AsciiFrameError(
                ErrorCode.OUT_OF_RANGE,
                f"watchdog {value:.0f} ms is below {WATCHDOG_MIN_MS} ms (0 disables it)",
            )
        return Command(name, value)
    raise AsciiFrameError(ErrorCode.UNKNOWN_COMMAND, f"unknown command {body!r}")


def _strip_line(line: bytes, max_bytes: int, too_long: ErrorCode) -> str:
    """Return the line's text without CR LF; raise AsciiFrameError if not printable ASCII."""
    if line.endswith(TERMINATOR):
        line = line[: -len(TERMINATOR)]
    if len(line) > max_bytes:
        raise AsciiFrameError(too_long, f"line of {len(line)} bytes exceeds {max_bytes} bytes")
    try:
        text = line.decode("ascii")
    except UnicodeDecodeError as exc:
        raise AsciiFrameError(
            ErrorCode.MALFORMED_ARGUMENT, f"non-ASCII byte in line {line!r}"
        ) from exc
    if not text.isprintable():
        raise AsciiFrameError(ErrorCode.MALFORMED_ARGUMENT, f"control character in {text!r}")
    return text


@dataclass(frozen=True)
class LoadReply:
    """Reply to ``?`` (and body of a stream line): ``+0049.123 kN +0370.12 MPa +012.3456 mm 0A``."""

    force_kn: float
    pressure_mpa: float
    position_mm: float
    flags: StatusFlag

    def body(self) -> str:
        """Return the fixed-width text of the load line (no terminator)."""
        return (
            f"{FORCE_KN.format(self.force_kn)} kN {PRESSURE_MPA.format(self.pressure_mpa)} MPa "
            f"{POSITION_MM.format(self.position_mm)} mm {int(self.flags):02X}"
        )


_LOAD_RE = (
    rf"(?P<force>{FORCE_KN.pattern}) kN (?P<pressure>{PRESSURE_MPA.pattern}) MPa "
    rf"(?P<position>{POSITION_MM.pattern}) mm (?P<flags>[0-9A-F]{{2}})"
)


@dataclass(frozen=True)
class StreamSample:
    """An unsolicited stream line: ``#`` followed by a load line."""

    load: LoadReply


@dataclass(frozen=True)
class StateReply:
    """Reply to ``p``: ``P <load> SP0370.0 SR005.0 SH0300 DD13.000 PH1 T0012.3 E00``."""

    load: LoadReply
    setpoint_mpa: float
    ramp_mpa_s: float
    hold_s: float
    die_mm: float
    phase: Phase
    phase_time_s: float
    fault: FaultCode


_STATE_RE = re.compile(
    rf"P {_LOAD_RE} SP(?P<sp>{SETPOINT_MPA.pattern}) SR(?P<sr>{RAMP_MPA_S.pattern}) "
    rf"SH(?P<sh>{HOLD_S.pattern}) DD(?P<dd>{DIE_MM.pattern}) PH(?P<ph>[0-5]) "
    rf"T(?P<t>{PHASE_TIME_S.pattern}) E(?P<e>\d{{2}})"
)


@dataclass(frozen=True)
class IdentityReply:
    """Reply to ``I``: ``I,<model>,<rated kN>,<full scale kN>,<stroke mm>,<version>``."""

    model: str
    rated_kn: float
    full_scale_kn: float
    stroke_mm: float
    version: int = PROTOCOL_VERSION


_MODEL_RE = r"[A-Za-z0-9_.\-]{1,16}"
_IDENTITY_RE = re.compile(
    rf"I,(?P<model>{_MODEL_RE}),(?P<rated>{RATED_KN.pattern}),(?P<fs>{RATED_KN.pattern}),"
    rf"(?P<stroke>{STROKE_MM.pattern}),(?P<version>\d)"
)


@dataclass(frozen=True)
class TareReply:
    """Reply to ``Z``: the offset removed, ``Z+0000.012`` (kN)."""

    offset_kn: float


@dataclass(frozen=True)
class OkReply:
    """Reply ``OK`` to a setter or an action command."""


@dataclass(frozen=True)
class ErrorReply:
    """Reply ``ERR nn``; ``code`` indexes ``ERROR_TEXT``."""

    code: ErrorCode

    @property
    def text(self) -> str:
        """Return the meaning of the error number."""
        return ERROR_TEXT[self.code]


Reply = LoadReply | StreamSample | StateReply | IdentityReply | TareReply | OkReply | ErrorReply

_LOAD_LINE_RE = re.compile(_LOAD_RE)
_TARE_RE = re.compile(rf"Z(?P<offset>{FORCE_KN.pattern})")
_ERR_RE = re.compile(r"ERR (?P<code>\d{2})")


def encode_reply(reply: Reply) -> bytes:
    """Return the wire bytes of a press reply, terminator included."""
    match reply:
        case LoadReply():
            text = reply.body()
        case StreamSample():
            text = STREAM_PREFIX + reply.load.body()
        case StateReply():
            text = (
                f"P {reply.load.body()} SP{SETPOINT_MPA.format(reply.setpoint_mpa)} "
                f"SR{RAMP_MPA_S.format(reply.ramp_mpa_s)} SH{HOLD_S.format(reply.hold_s)} "
                f"DD{DIE_MM.format(reply.die_mm)} PH{int(reply.phase)} "
                f"T{PHASE_TIME_S.format(min(reply.phase_time_s, PHASE_TIME_S.maximum))} "
                f"E{int(reply.fault):02d}"
            )
        case IdentityReply():
            if not re.fullmatch(_MODEL_RE, reply.model):
                raise ValueError(f"model {reply.model!r} must match {_MODEL_RE}")
            text = (
                f"I,{reply.model},{RATED_KN.format(reply.rated_kn)},"
                f"{RATED_KN.format(reply.full_scale_kn)},{STROKE_MM.format(reply.stroke_mm)},"
                f"{reply.version:d}"
            )
        case TareReply():
            text = "Z" + FORCE_KN.format(reply.offset_kn)
        case OkReply():
            text = "OK"
        case ErrorReply():
            text = f"ERR {int(reply.code):02d}"
        case _:
            raise TypeError(f"not a reply: {reply!r}")
    return text.encode("ascii") + TERMINATOR


def _load_from_match(match: re.Match) -> LoadReply:
    """Build a LoadReply from a regex match of ``_LOAD_RE``."""
    return LoadReply(
        force_kn=float(match["force"]),
        pressure_mpa=float(match["pressure"]),
        position_mm=float(match["position"]),
        flags=StatusFlag(int(match["flags"], 16)),
    )


def decode_reply(line: bytes) -> Reply:
    """Parse one press reply line; raise AsciiFrameError if it is not a valid reply."""
    text = _strip_line(line, MAX_REPLY_BYTES, ErrorCode.LINE_TOO_LONG)
    if text == "OK":
        return OkReply()
    if match := _LOAD_LINE_RE.fullmatch(text):
        return _load_from_match(match)
    if text.startswith(STREAM_PREFIX) and (match := _LOAD_LINE_RE.fullmatch(text[1:])):
        return StreamSample(_load_from_match(match))
    if match := _STATE_RE.fullmatch(text):
        try:
            phase, fault = Phase(int(match["ph"])), FaultCode(int(match["e"]))
        except ValueError as exc:
            raise AsciiFrameError(ErrorCode.OUT_OF_RANGE, f"state line {text!r}: {exc}") from exc
        return StateReply(
            load=_load_from_match(match),
            setpoint_mpa=float(match["sp"]),
            ramp_mpa_s=float(match["sr"]),
            hold_s=float(match["sh"]),
            die_mm=float(match["dd"]),
            phase=phase,
            phase_time_s=float(match["t"]),
            fault=fault,
        )
    if match := _IDENTITY_RE.fullmatch(text):
        return IdentityReply(
            model=match["model"],
            rated_kn=float(match["rated"]),
            full_scale_kn=float(match["fs"]),
            stroke_mm=float(match["stroke"]),
            version=int(match["version"]),
        )
    if match := _TARE_RE.fullmatch(text):
        return TareReply(float(match["offset"]))
    if match := _ERR_RE.fullmatch(text):
        try:
            return ErrorReply(ErrorCode(int(match["code"])))
        except ValueError as exc:
            raise AsciiFrameError(
                ErrorCode.OUT_OF_RANGE, f"error number {match['code']} is not in the table"
            ) from exc
    raise AsciiFrameError(ErrorCode.MALFORMED_ARGUMENT, f"unrecognised reply {text!r}")
