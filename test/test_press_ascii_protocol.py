"""Codec tests of the ASCII press protocol: round trips, fixed widths, malformed frames."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.hardware import press_ascii_protocol as ap
from press_cell.hardware.press_driver import PressProtocolError

N = ap.CommandName


def _field_values(field: ap.NumberField):
    """Values exactly representable in ``field`` (on its decimal grid)."""
    scale = 10**field.decimals
    return st.integers(round(field.minimum * scale), round(field.maximum * scale)).map(
        lambda i: i / scale
    )


_commands = st.one_of(
    st.sampled_from([N.LOAD, N.STATE, N.IDENTIFY, N.GO, N.STOP, N.VENT, N.RESET, N.TARE]).map(
        ap.Command
    ),
    *[
        _field_values(ap.COMMAND_FIELDS[name]).map(lambda v, name=name: ap.Command(name, v))
        for name in (N.SETPOINT, N.RAMP, N.HOLD, N.DIE, N.STREAM, N.TARE)
    ],
    st.sampled_from([0.0, 50.0, 500.0, 9999.0]).map(lambda v: ap.Command(N.WATCHDOG, v)),
)

_loads = st.builds(
    ap.LoadReply,
    force_kn=_field_values(ap.FORCE_KN),
    pressure_mpa=_field_values(ap.PRESSURE_MPA),
    position_mm=_field_values(ap.POSITION_MM),
    flags=st.integers(0, 255).map(ap.StatusFlag),
)

_replies = st.one_of(
    _loads,
    _loads.map(ap.StreamSample),
    st.builds(
        ap.StateReply,
        load=_loads,
        setpoint_mpa=_field_values(ap.SETPOINT_MPA),
        ramp_mpa_s=_field_values(ap.RAMP_MPA_S),
        hold_s=_field_values(ap.HOLD_S),
        die_mm=_field_values(ap.DIE_MM),
        phase=st.sampled_from(ap.Phase),
        phase_time_s=_field_values(ap.PHASE_TIME_S),
        fault=st.sampled_from(ap.FaultCode),
    ),
    st.builds(
        ap.IdentityReply,
        model=st.from_regex(r"[A-Za-z0-9_.\-]{1,16}", fullmatch=True),
        rated_kn=_field_values(ap.RATED_KN),
        full_scale_kn=_field_values(ap.RATED_KN),
        stroke_mm=_field_values(ap.STROKE_MM),
    ),
    _field_values(ap.FORCE_KN).map(ap.TareReply),
    st.just(ap.OkReply()),
    st.sampled_from(ap.ErrorCode).map(ap.ErrorReply),
)


@settings(max_examples=300, deadline=None)
@given(_commands)
def test_every_command_round_trips_and_fits_the_line_limit(command):
    wire = ap.encode_command(command)
    assert wire.endswith(b"\r\n")
    assert len(wire) - 2 <= ap.MAX_COMMAND_BYTES
    assert ap.decode_command(wire) == command


@settings(max_examples=300, deadline=None)
@given(_replies)
def test_every_reply_round_trips_and_fits_the_line_limit(reply):
    wire = ap.encode_reply(reply)
    assert wire.endswith(b"\r\n") and len(wire) - 2 <= ap.MAX_REPLY_BYTES
    assert ap.decode_reply(wire) == reply


@settings(max_examples=200, deadline=None)
@given(_loads)
def test_load_lines_have_one_fixed_width(load):
    assert len(ap.encode_reply(load)) == len(b"+0049.123 kN +0370.12 MPa +012.3456 mm 0A\r\n")


def test_documented_examples_decode_to_lab_units():
    load = ap.decode_reply(b"+0049.123 kN +0370.12 MPa +012.3456 mm 03\r\n")
    assert load == ap.LoadReply(49.123, 370.12, 12.3456, ap.StatusFlag.RUN | ap.StatusFlag.HOLD)
    assert ap.decode_command(b"SP0375.0\r\n") == ap.Command(N.SETPOINT, 375.0)
    assert ap.decode_command(b"SR005.0\r\n") == ap.Command(N.RAMP, 5.0)
    assert ap.decode_command(b"SH0300\r\n") == ap.Command(N.HOLD, 300.0)
    assert ap.decode_command(b"STRM0100\r\n") == ap.Command(N.STREAM, 100.0)
    assert ap.decode_command(b"S\r\n") == ap.Command(N.STOP)


@pytest.mark.parametrize(
    ("line", "code"),
    [
        (b"X\r\n", ap.ErrorCode.UNKNOWN_COMMAND),
        (b"GO\r\n", ap.ErrorCode.UNKNOWN_COMMAND),          # G takes no argument
        (b"SP375.0\r\n", ap.ErrorCode.MALFORMED_ARGUMENT),  # one digit short
        (b"SP0375\r\n", ap.ErrorCode.MALFORMED_ARGUMENT),   # decimals missing
        (b"SP-375.0\r\n", ap.ErrorCode.MALFORMED_ARGUMENT),  # no sign allowed
        (b"SR000.0\r\n", ap.ErrorCode.OUT_OF_RANGE),        # ramp must be > 0
        (b"STRM0500\r\n", ap.ErrorCode.OUT_OF_RANGE),       # above 200 Hz
        (b"WD0010\r\n", ap.ErrorCode.OUT_OF_RANGE),         # below the 50 ms minimum
        (b"DD00.500\r\n", ap.ErrorCode.OUT_OF_RANGE),
        (b"SP0375.0SP0375.0\r\n", ap.ErrorCode.MALFORMED_ARGUMENT),
        (b"SP0375.0 extra stuff\r\n", ap.ErrorCode.LINE_TOO_LONG),
        (b"SP0\xff75.0\r\n", ap.ErrorCode.MALFORMED_ARGUMENT),
        (b"SP\t375.0\r\n", ap.ErrorCode.MALFORMED_ARGUMENT),
    ],
)
def test_malformed_commands_get_the_documented_error_number(line, code):
    with pytest.raises(ap.AsciiFrameError) as caught:
        ap.decode_command(line)
    assert caught.value.code is code
    assert isinstance(caught.value, PressProtocolError)


@pytest.mark.parametrize(
    "line",
    [
        b"+049.123 kN +0370.12 MPa +012.3456 mm 03\r\n",     # force one digit short
        b"+0049.123 kN +0370.12 MPa +012.3456 mm 3\r\n",     # one flag digit
        b"+0049.123 kN +0370.12 MPa +012.3456 mm 0a\r\n",    # lower-case hex
        b"+0049.123 N +0370.12 MPa +012.3456 mm 03\r\n",     # wrong unit
        b"ERR 99\r\n",                                        # not in the table
        b"ERR 3\r\n",
        b"ok\r\n",
        b"",
    ],
)
def test_malformed_replies_raise_a_protocol_error(line):
    with pytest.raises(ap.AsciiFrameError):
        ap.decode_reply(line)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_crash_the_decoders(data):
    for decode in (ap.decode_command, ap.decode_reply):
        try:
            decode(data)
        except ap.AsciiFrameError as exc:
            assert exc.code in ap.ErrorCode


@settings(max_examples=100, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_fields_refuse_values_they_cannot_represent(value):
    field = ap.SETPOINT_MPA
    try:
        text = field.format(value)
    except ValueError:
        assert not (field.minimum <= round(value, 1) <= field.maximum)
    else:
        assert len(text) == field.width
        assert abs(field.parse(text) - value) <= 0.05 + 1e-9


def test_encoders_refuse_missing_or_extra_arguments():
    with pytest.raises(ValueError, match="needs a value"):
        ap.encode_command(ap.Command(N.SETPOINT))
    with pytest.raises(ValueError, match="takes no value"):
        ap.encode_command(ap.Command(N.GO, 1.0))
    with pytest.raises(ValueError, match="outside the field range"):
        ap.encode_command(ap.Command(N.SETPOINT, 10000.0))
