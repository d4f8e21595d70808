"""MethodSCRIPT codec: values across every SI prefix, packages, literals, scripts, strictness."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.hardware import methodscript as ms
from press_cell.hardware.potentiostat_driver import PotentiostatProtocolError

PREFIXES = list(ms.SI_PREFIX_EXPONENT)


def test_every_prefix_from_atto_to_exa_is_defined():
    assert "".join(PREFIXES) == "afpnum kMGTPE"
    assert [ms.SI_PREFIX_EXPONENT[p] for p in PREFIXES] == list(range(-18, 19, 3))


@settings(max_examples=300, deadline=None)
@given(mantissa=st.integers(ms.MANTISSA_MIN, ms.MANTISSA_MAX), prefix=st.sampled_from(PREFIXES))
def test_mantissa_and_prefix_round_trip_exactly(mantissa, prefix):
    field = ms.encode_mantissa(mantissa, prefix)
    assert len(field) == 8 and field[7] == prefix
    assert int(field[:7], 16) == mantissa + 2 ** 27
    assert ms.decode_value(field) == pytest.approx(
        mantissa * 10.0 ** ms.SI_PREFIX_EXPONENT[prefix], rel=1e-12, abs=0)


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-1.3e26, max_value=1.3e26, allow_nan=False))
def test_any_representable_value_round_trips_to_7_hex_digit_precision(value):
    decoded = ms.decode_value(ms.encode_value(value))
    # the chosen prefix keeps |mantissa| >= 2^27/1000 unless the value is below 1 atto-unit
    assert abs(decoded - value) <= max(abs(value) * 7.5e-6, 0.5e-18)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_values_typical_of_each_prefix_round_trip(prefix):
    value = -123456.0 * 10.0 ** ms.SI_PREFIX_EXPONENT[prefix]
    assert ms.decode_value(ms.encode_value(value)) == pytest.approx(value, rel=1e-6)


def test_zero_and_nan_and_extremes():
    assert ms.decode_value(ms.encode_value(0.0)) == 0.0
    assert ms.encode_value(0.0) == "8000000a"
    assert math.isnan(ms.decode_value(ms.encode_value(math.nan)))
    assert ms.decode_value("FFFFFFFE") == (2 ** 27 - 1) * 1e18
    assert ms.decode_value("0000000a") == -(2 ** 27) * 1e-18
    with pytest.raises(ms.MethodScriptFormatError, match="beyond"):
        ms.encode_value(1e27)
    with pytest.raises(ms.MethodScriptFormatError, match="non-finite"):
        ms.encode_value(math.inf)


def test_documented_eis_package_decodes():
    # example package of an EIS point on a 10 kΩ dummy cell (PalmSens MethodSCRIPT docs)
    f, zr, zi = ms.parse_package("PdcDF5DFF4u;cc896D904m,10,287;cd82DB1A8u,10,287\n")
    assert (f.type_id, zr.type_id, zi.type_id) == ("dc", "cc", "cd")
    assert f.value == pytest.approx(100.0, rel=1e-5)
    assert zr.value == pytest.approx(9885.956)
    assert zi.value == pytest.approx(2.9946)
    assert zr.status == 0 and zr.current_range == 0x87 and not zr.overload


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.floats(-1e12, 1e12, allow_nan=False), min_size=1, max_size=4),
       status=st.none() | st.integers(0, 15), cr=st.none() | st.integers(0, 255))
def test_package_round_trip_with_metadata(values, status, cr):
    types = ["dc", "cc", "cd", "ba"][:len(values)]
    sent = [ms.PackageVariable(t, v, status, cr) for t, v in zip(types, values, strict=True)]
    received = ms.parse_package(ms.encode_package(sent) + "\n")
    assert [r.type_id for r in received] == types
    for r, v in zip(received, values, strict=True):
        assert r.value == pytest.approx(v, rel=7.5e-6, abs=1e-18)
        assert (r.status, r.current_range) == (status, cr)


def test_status_bits_become_overload_and_underload_flags():
    over, under = ms.parse_package("Pcc8000001 ,12;cd8000001 ,14")
    assert over.overload and not over.underload
    assert under.underload and not under.overload


@pytest.mark.parametrize("line", [
    "", "X", "P", "P;", "Pdc", "PdcDF5DFF4", "PdcDF5DFF4x", "PdcGF5DFF4u", "PDCDF5DFF4u",
    "Pd1DF5DFF4u", "Pdc DF5DFF4u", "PdcDF5DFF4u;", "PdcDF5DFF4uu", "PdcDF5DFF4u,1",
    "PdcDF5DFF4u,19x", "PdcDF5DFF4u,9A", "PdcDF5DFF4u,10,10", "PdcDF5DFF4u,2F",
    "PdcDF5DFF4u,,10", "PdcDF5DFF4u;cc896D904m,10;cd", "Pdc    nan",
])
def test_malformed_packages_are_rejected_with_a_protocol_error(line):
    with pytest.raises(PotentiostatProtocolError):
        ms.parse_package(line)


def test_malformed_variable_message_names_the_expected_format():
    with pytest.raises(ms.MethodScriptFormatError, match="7 hex digits"):
        ms.parse_package("PdcDF5DFF4x")


def test_error_lines():
    error = ms.parse_error_line("!4004: script rejected\n")
    assert error.code == 0x4004 and "script rejected" in str(error)
    assert ms.parse_error_line("!0002").code == 2
    assert ms.parse_error_line("PdcDF5DFF4u") is None
    assert ms.parse_error_line("!12") is None


@settings(max_examples=200, deadline=None)
@given(mantissa=st.integers(-99999, 99999), prefix=st.sampled_from(PREFIXES))
def test_script_literals_round_trip(mantissa, prefix):
    value = mantissa * 10.0 ** ms.SI_PREFIX_EXPONENT[prefix]
    assert ms.parse_literal(ms.format_literal(value)) == pytest.approx(value, rel=1e-9)


@pytest.mark.parametrize("value, text", [(0.01, "10m"), (1e6, "1M"), (0.1, "100m"),
                                         (0.0, "0"), (200e3, "200k"), (5e-3, "5m")])
def test_literals_use_the_largest_exact_prefix(value, text):
    assert ms.format_literal(value) == text


@pytest.mark.parametrize("text", ["", "1.5", "10 m", "m", "10x", "1e3"])
def test_bad_literals_are_rejected(text):
    with pytest.raises(ms.MethodScriptFormatError):
        ms.parse_literal(text)


def test_eis_script_round_trips_through_the_script_parser():
    request = ms.EisSweepRequest(0.01, 1e6, 0.1, 71, 0.0)
    script = ms.eis_script(request)
    lines = script.split("\n")
    assert lines[0] == "e" and script.endswith("\n\n")
    assert ms.parse_eis_script(lines[1:]) == request
    assert request.frequencies_hz()[0] == pytest.approx(1e6)
    assert request.frequencies_hz()[-1] == pytest.approx(0.1)


@pytest.mark.parametrize("body, message", [
    (["var f", "pck_start"], "no meas_loop_eis"),
    (["rm -rf /"], "unknown command"),
    (["meas_loop_eis f r j 10m 1M 100m"], "8 arguments"),
    (["meas_loop_eis f r j 10m 1M 100m 0 0"], "point count"),
    (["meas_loop_eis f r j 10m 1M 100m 5 0", "meas_loop_eis f r j 10m 1M 100m 5 0"], "second"),
])
def test_bad_scripts_are_rejected(body, message):
    with pytest.raises(ms.MethodScriptFormatError, match=message):
        ms.parse_eis_script(body)
