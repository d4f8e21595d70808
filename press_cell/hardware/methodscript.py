"""Codec for the PalmSens MethodSCRIPT text protocol (the subset an EIS sweep needs).

Written from the published format description (PalmSens MethodSCRIPT documentation); no vendor
code is used. Everything here is pure text processing, shared by the serial driver and the
emulator.

Commands (host → instrument, one line each, newline terminated):

* ``t``: firmware version; reply ``t<version text>``.
* ``i``: serial number; reply ``i<serial>``.
* ``e``: execute a script: ``e`` line, script lines, one empty line. The instrument echoes
  ``e``, then streams output lines, then ends the script with an empty line.
* ``Z``: abort the running script.

Script output lines:

* ``M<4 hex>``: a measurement loop starts.
* ``P<var>;<var>;...``: a data package. Each variable is ``<type><value><prefix>[,<meta>...]``:
  a 2-letter type (``dc`` applied frequency, ``cc`` Z', ``cd`` Z''), 7 hex digits holding the
  integer mantissa offset by 2^27 (so 0x8000000 is zero), one SI-prefix character, then optional
  comma-separated metadata: ``1<h>`` status bit mask (0x1 timing error, 0x2 overload, 0x4
  underload, 0x8 overload warning), ``2<hh>`` current-range index, ``4<hex>`` noise.
  A NaN value is sent as ``     nan`` (five spaces and ``nan``) in place of digits and prefix.
* ``*`` ends a measurement loop (``+``/``-`` end a plain loop / a scan); an empty line ends
  the script.
* ``!<4 hex>`` (optionally followed by text) is an error code.

Number literals inside scripts are an integer with an optional SI prefix (``10m``, ``1M``).
"""

import math
import re
from dataclasses import dataclass

import numpy as np

from press_cell.hardware.potentiostat_driver import (
    PotentiostatDeviceError,
    PotentiostatProtocolError,
)

VALUE_OFFSET = 2 ** 27            # mantissa offset of a packet value (MethodSCRIPT format)
MANTISSA_MIN = -(2 ** 27)         # smallest mantissa 7 offset hex digits can hold
MANTISSA_MAX = 2 ** 27 - 1        # largest mantissa 7 offset hex digits can hold

# Every SI prefix the MethodSCRIPT data format defines (atto .. exa), with its power of ten.
SI_PREFIX_EXPONENT = {
    "a": -18, "f": -15, "p": -12, "n": -9, "u": -6, "m": -3, " ": 0,
    "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18,
}
_PREFIXES_SMALL_FIRST = sorted(SI_PREFIX_EXPONENT, key=SI_PREFIX_EXPONENT.get)
NAN_FIELD = "     nan"

# Variable types an EIS sweep uses (MethodSCRIPT documentation, variable type table).
VAR_APPLIED_FREQUENCY_HZ = "dc"
VAR_Z_REAL_OHM = "cc"
VAR_Z_IMAG_OHM = "cd"
VAR_IMPEDANCE_MODULUS_OHM = "cb"
VAR_PHASE_DEG = "ca"
VAR_APPLIED_POTENTIAL_V = "da"
VAR_CURRENT_A = "ba"
VAR_TIME_S = "eb"

STATUS_TIMING_ERROR = 0x1
STATUS_OVERLOAD = 0x2
STATUS_UNDERLOAD = 0x4
STATUS_OVERLOAD_WARNING = 0x8

_VAR_RE = re.compile(r"^([a-z]{2})(?:([0-9A-Fa-f]{7})([afpnumkMGTPE ])|( {5}nan))((?:,[^,;]*)*)$")
_LITERAL_RE = re.compile(r"^([+-]?\d+)([afpnumkMGTPE]?)$")
_ERROR_RE = re.compile(r"^!([0-9A-Fa-f]{4})(.*)$")


class MethodScriptFormatError(PotentiostatProtocolError):
    """A MethodSCRIPT line or value does not follow the format; the message says which part."""


@dataclass(frozen=True)
class PackageVariable:
    """One variable of a data package."""

    type_id: str                     # 2-letter MethodSCRIPT variable type, e.g. "cc"
    value: float                     # value in SI units (NaN allowed)
    status: int | None = None        # metadata status bit mask, None when absent
    current_range: int | None = None  # metadata current-range index, None when absent
    noise: int | None = None         # metadata noise figure, None when absent

    @property
    def overload(self) -> bool:
        """Return whether the instrument flagged an overload on this value."""
        return bool(self.status is not None and self.status & STATUS_OVERLOAD)

    @property
    def underload(self) -> bool:
        """Return whether the instrument flagged an underload on this value."""
        return bool(self.status is not None and self.status & STATUS_UNDERLOAD)


def encode_mantissa(mantissa: int, prefix: str) -> str:
    """Return the 8-character field for an integer mantissa and an SI-prefix character."""
    if prefix not in SI_PREFIX_EXPONENT:
        raise MethodScriptFormatError(
            f"unknown SI prefix {prefix!r}; allowed: {''.join(_PREFIXES_SMALL_FIRST)!r}")
    if not MANTISSA_MIN <= mantissa <= MANTISSA_MAX:
        raise MethodScriptFormatError(
            f"mantissa {mantissa} outside {MANTISSA_MIN}..{MANTISSA_MAX}")
    return f"{mantissa + VALUE_OFFSET:07X}{prefix}"


def choose_mantissa(value: float) -> tuple[int, str]:
    """Return the (mantissa, prefix) pair that represents ``value`` most precisely.

    The smallest prefix whose mantissa still fits in 28 signed bits wins. Raise
    ``MethodScriptFormatError`` for infinities and for values beyond (2^27 − 1)·1e18.
    """
    if not math.isfinite(value):
        raise MethodScriptFormatError(f"cannot encode non-finite value {value!r}")
    for prefix in _PREFIXES_SMALL_FIRST:
        mantissa = round(value / 10.0 ** SI_PREFIX_EXPONENT[prefix])
        if MANTISSA_MIN <= mantissa <= MANTISSA_MAX:
            return mantissa, prefix
    raise MethodScriptFormatError(
        f"value {value!r} is beyond the largest representable magnitude {MANTISSA_MAX}E")


def encode_value(value: float) -> str:
    """Return the 8-character value field (7 hex digits + SI prefix, or the NaN field)."""
    if math.isnan(value):
        return NAN_FIELD
    return encode_mantissa(*choose_mantissa(value))


def decode_value(field: str) -> float:
    """Return the value, in SI units, of an 8-character value field."""
    if field == NAN_FIELD:
        return math.nan
    if len(field) != 8:
        raise MethodScriptFormatError(f"value field must be 8 characters, got {field!r}")
    digits, prefix = field[:7], field[7]
    if not re.fullmatch(r"[0-9A-Fa-f]{7}", digits):
        raise MethodScriptFormatError(f"value digits must be 7 hex digits, got {digits!r}")
    if prefix not in SI_PREFIX_EXPONENT:
        raise MethodScriptFormatError(
            f"unknown SI prefix {prefix!r} in {field!r}; allowed: "
            f"{''.join(_PREFIXES_SMALL_FIRST)!r}")
    mantissa = int(digits, 16) - VALUE_OFFSET
    return mantissa * 10.0 ** SI_PREFIX_EXPONENT[prefix]


def _parse_metadata(tokens: list[str], var_text: str) -> dict:
    """Return status/current_range/noise from comma-separated metadata tokens."""
    meta: dict = {}
    for token in tokens:
        if re.fullmatch(r"1[0-9A-Fa-f]", token):
            key, value = "status", int(token[1], 16)
        elif re.fullmatch(r"2[0-9A-Fa-f]{2}", token):
            key, value = "current_range", int(token[1:], 16)
        elif re.fullmatch(r"4[0-9A-Fa-f]+", token):
            key, value = "noise", int(token[1:], 16)
        else:
            raise MethodScriptFormatError(
                f"bad metadata {token!r} in {var_text!r}: allowed are 1<h> (status), "
                "2<hh> (current range), 4<hex> (noise)")
        if key in meta:
            raise MethodScriptFormatError(f"metadata {key} given twice in {var_text!r}")
        meta[key] = value
    return meta


def parse_variable(text: str) -> PackageVariable:
    """Return the variable encoded in ``text`` (one ``;``-separated part of a package)."""
    match = _VAR_RE.match(text)
    if match is None:
        raise MethodScriptFormatError(
            f"malformed variable {text!r}: expected <2 lowercase letters><7 hex digits>"
            "<SI prefix>[,metadata...]")
    type_id, digits, prefix, nan_field, meta_text = match.groups()
    value = math.nan if nan_field else decode_value(digits + prefix)
    tokens = meta_text.split(",")[1:] if meta_text else []
    return PackageVariable(type_id, value, **_parse_metadata(tokens, text))


def parse_package(line: str) -> tuple[PackageVariable, ...]:
    """Return the variables of a data package line (``P...``; a trailing newline is allowed)."""
    body = line[:-1] if line.endswith("\n") else line
    if body.endswith("\r"):
        body = body[:-1]
    if not body.startswith("P"):
        raise MethodScriptFormatError(f"a data package starts with 'P', got {line!r}")
    if len(body) == 1:
        raise MethodScriptFormatError("empty data package 'P'")
    return tuple(parse_variable(part) for part in body[1:].split(";"))


def encode_variable(variable: PackageVariable) -> str:
    """Return the text of one package variable, metadata included."""
    if not re.fullmatch(r"[a-z]{2}", variable.type_id):
        raise MethodScriptFormatError(
            f"variable type must be 2 lowercase letters, got {variable.type_id!r}")
    text = variable.type_id + encode_value(variable.value)
    if variable.status is not None:
        if not 0 <= variable.status <= 0xF:
            raise MethodScriptFormatError(f"status must be 0..15, got {variable.status}")
        text += f",1{variable.status:X}"
    if variable.current_range is not None:
        if not 0 <= variable.current_range <= 0xFF:
            raise MethodScriptFormatError(
                f"current range index must be 0..255, got {variable.current_range}")
        text += f",2{variable.current_range:02X}"
    if variable.noise is not None:
        if variable.noise < 0:
            raise MethodScriptFormatError(f"noise must be >= 0, got {variable.noise}")
        text += f",4{variable.noise:X}"
    return text


def encode_package(variables) -> str:
    """Return a data package line (without the newline) for the given variables."""
    variables = tuple(variables)
    if not variables:
        raise MethodScriptFormatError("a data package needs at least one variable")
    return "P" + ";".join(encode_variable(v) for v in variables)


def parse_error_line(line: str) -> PotentiostatDeviceError | None:
    """Return the device error an ``!XXXX`` line reports, or None if the line is not one."""
    match = _ERROR_RE.match(line.rstrip("\r\n"))
    if match is None:
        return None
    return PotentiostatDeviceError(int(match.group(1), 16), match.group(2).lstrip(": ").strip())


def format_literal(value: float) -> str:
    """Return a script number literal for ``value``: an integer with the largest exact prefix."""
    if not math.isfinite(value):
        raise MethodScriptFormatError(f"cannot write non-finite value {value!r} into a script")
    if value == 0:
        return "0"
    for prefix in reversed(_PREFIXES_SMALL_FIRST):
        scaled = value / 10.0 ** SI_PREFIX_EXPONENT[prefix]
        mantissa = round(scaled)
        if mantissa != 0 and abs(scaled - mantissa) <= 1e-9 * abs(scaled) \
                and abs(mantissa) <= MANTISSA_MAX:
            return f"{mantissa}{prefix.strip()}"
    mantissa, prefix = choose_mantissa(value)
    return f"{mantissa}{prefix.strip()}"


def parse_literal(text: str) -> float:
    """Return the value of a script number literal such as ``10m`` or ``1M``."""
    match = _LITERAL_RE.match(text)
    if match is None:
        raise MethodScriptFormatError(
            f"bad number literal {text!r}: expected an integer with an optional SI prefix")
    mantissa, prefix = match.groups()
    return int(mantissa) * 10.0 ** SI_PREFIX_EXPONENT[prefix or " "]


@dataclass(frozen=True)
class EisSweepRequest:
    """The EIS sweep a script asks for (what ``meas_loop_eis`` receives)."""

    amplitude_v: float     # AC amplitude, V RMS
    freq_start_hz: float   # first frequency, Hz
    freq_end_hz: float     # last frequency, Hz
    n_points: int          # number of frequencies, log-spaced, ends included
    dc_potential_v: float  # DC bias, V

    def frequencies_hz(self):
        """Return the log-spaced frequencies of the sweep in measurement order, Hz."""
        if self.n_points == 1:
            return np.array([self.freq_start_hz])
        return np.logspace(math.log10(self.freq_start_hz), math.log10(self.freq_end_hz),
                           self.n_points)


EIS_LOOP_COMMAND = "meas_loop_eis"
SCRIPT_COMMANDS = ("var", "set_pgstat_chan", "set_pgstat_mode", "set_max_bandwidth",
                   "set_range", "set_autoranging", "set_e", "cell_on", "cell_off",
                   EIS_LOOP_COMMAND, "pck_start", "pck_add", "pck_end", "endloop", "on_finished:")


def eis_script(request: EisSweepRequest, max_current_a: float = 5e-3,
               min_current_a: float = 100e-9) -> str:
    """Return the full ``e`` command (ending with its empty line) that runs ``request``.

    Each point is reported as one package: applied frequency, Z' and Z''.
    """
    if request.n_points < 1:
        raise MethodScriptFormatError(f"n_points must be >= 1, got {request.n_points}")
    lit = format_literal
    lines = [
        "e",
        "var f", "var r", "var j",
        "set_pgstat_chan 0",
        "set_pgstat_mode 3",
        f"set_range ba {lit(max_current_a)}",
        f"set_autoranging ba {lit(min_current_a)} {lit(max_current_a)}",
        f"set_e {lit(request.dc_potential_v)}",
        "cell_on",
        f"{EIS_LOOP_COMMAND} f r j {lit(request.amplitude_v)} {lit(request.freq_start_hz)} "
        f"{lit(request.freq_end_hz)} {request.n_points} {lit(request.dc_potential_v)}",
        "pck_start", "pck_add f", "pck_add r", "pck_add j", "pck_end",
        "endloop",
        "on_finished:",
        "cell_off",
        "",
    ]
    return "\n".join(lines) + "\n"


def parse_eis_script(script_lines) -> EisSweepRequest:
    """Return the sweep requested by the script body (lines after ``e``, blank line excluded).

    Raise ``MethodScriptFormatError`` for an unknown command or a script without exactly one
    ``meas_loop_eis f r j <amplitude> <f_start> <f_end> <n_points> <e_dc>`` line.
    """
    request = None
    for number, raw in enumerate(script_lines, start=1):
        line = raw.strip()
        if not line:
            continue
        words = line.split()
        if words[0] not in SCRIPT_COMMANDS:
            raise MethodScriptFormatError(f"script line {number}: unknown command {words[0]!r}")
        if words[0] != EIS_LOOP_COMMAND:
            continue
        if request is not None:
            raise MethodScriptFormatError(f"script line {number}: a second {EIS_LOOP_COMMAND}")
        if len(words) != 9:
            raise MethodScriptFormatError(
                f"script line {number}: {EIS_LOOP_COMMAND} takes 8 arguments, got {len(words) - 1}")
        n_points = parse_literal(words[7])
        if n_points != int(n_points) or n_points < 1:
            raise MethodScriptFormatError(f"script line {number}: bad point count {words[7]!r}")
        request = EisSweepRequest(
            amplitude_v=parse_literal(words[4]), freq_start_hz=parse_literal(words[5]),
            freq_end_hz=parse_literal(words[6]), n_points=int(n_points),
            dc_potential_v=parse_literal(words[8]))
        if not (request.freq_start_hz > 0 and request.freq_end_hz > 0 and request.amplitude_v > 0):
            raise MethodScriptFormatError(
                f"script line {number}: frequencies and amplitude must be > 0")
    if request is None:
        raise MethodScriptFormatError(f"script has no {EIS_LOOP_COMMAND} line")
    return request
