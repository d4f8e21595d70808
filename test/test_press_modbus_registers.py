"""Modbus RTU register map: word order, table consistency, and exception replies on the wire."""

import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient

from press_cell.hardware import press_modbus as mb
from press_cell.hardware.press_ascii_protocol import StatusFlag
from press_cell.hardware.press_driver import PressProtocolError
from press_cell.hardware.press_emulator import PressEmulator


def test_float32_is_high_word_first_big_endian():
    assert mb.float_to_registers(370.5) == [0x43B9, 0x4000]
    assert mb.registers_to_float([0x43B9, 0x4000]) == 370.5


@settings(max_examples=200, deadline=None)
@given(st.floats(width=32, allow_nan=False))
def test_float32_round_trips_exactly(value):
    assert mb.registers_to_float(mb.float_to_registers(value)) == value


@settings(max_examples=100, deadline=None)
@given(st.from_regex(r"[ -~]{1,16}", fullmatch=True).filter(lambda t: not t.endswith("\0")))
def test_model_name_round_trips(model):
    assert mb.registers_to_model(mb.model_to_registers(model)) == model


def test_register_tables_do_not_overlap():
    def spans(enum_class, floats):
        return sorted((int(r), int(r) + (2 if r in floats else 1)) for r in enum_class)

    input_floats = {r for r in mb.InputRegister if r.name.endswith(("_KN", "_MPA", "_MM", "_S"))}
    for table in (spans(mb.InputRegister, input_floats),
                  spans(mb.HoldingRegister, set(mb.HOLDING_FLOATS))):
        for (_, end), (start, _) in zip(table, table[1:], strict=False):
            assert end <= start
    assert mb.INPUT_REGISTER_COUNT == mb.InputRegister.MODEL + 8
    assert [int(c) for c in mb.Coil] == list(range(mb.COIL_COUNT))


@pytest.fixture
def emulator():
    emulator = PressEmulator("modbus", time_scale=10.0).start()
    yield emulator
    emulator.close()


@pytest.fixture
def client(emulator):
    client = ModbusSerialClient(emulator.port, framer=FramerType.RTU, baudrate=115200,
                                timeout=0.3, retries=0)
    assert client.connect()
    yield client
    client.close()


@pytest.mark.timeout(10)
def test_writes_outside_the_map_or_range_get_exception_replies(client):
    half_float = client.write_register(mb.HoldingRegister.SETPOINT_MPA + 1, 0, device_id=1)
    assert half_float.isError() and half_float.exception_code == 2
    too_high = client.write_registers(mb.HoldingRegister.SETPOINT_MPA,
                                      mb.float_to_registers(5000.0), device_id=1)
    assert too_high.isError() and too_high.exception_code == 3
    nan = client.write_registers(mb.HoldingRegister.RAMP_MPA_S,
                                 mb.float_to_registers(math.nan), device_id=1)
    assert nan.isError() and nan.exception_code == 3
    ok = client.write_registers(mb.HoldingRegister.SETPOINT_MPA,
                                mb.float_to_registers(75.0), device_id=1)
    assert not ok.isError()
    back = client.read_holding_registers(0, count=mb.HOLDING_REGISTER_COUNT, device_id=1)
    assert mb.registers_to_float(back.registers[0:2]) == pytest.approx(75.0)


@pytest.mark.timeout(10)
def test_coils_trigger_once_and_read_back_zero_and_inputs_mirror_status(client, emulator):
    client.write_registers(0, mb.float_to_registers(50.0), device_id=1)
    assert not client.write_coil(mb.Coil.GO, True, device_id=1).isError()
    assert client.read_coils(0, count=mb.COIL_COUNT, device_id=1).bits[:mb.COIL_COUNT] == \
        [False] * mb.COIL_COUNT
    time.sleep(0.05)
    status = client.read_input_registers(mb.InputRegister.STATUS, count=1, device_id=1)
    inputs = client.read_discrete_inputs(0, count=8, device_id=1).bits[:8]
    assert status.registers[0] & StatusFlag.RUN
    assert inputs == [bool(status.registers[0] >> bit & 1) for bit in range(8)]
    busy = client.write_coil(mb.Coil.TARE, True, device_id=1)      # loaded: tare refused
    assert busy.isError() and busy.exception_code == 6
    client.write_coil(mb.Coil.VENT, True, device_id=1)


@pytest.mark.timeout(10)
def test_driver_reports_a_busy_press_as_a_protocol_error(emulator):
    press = mb.ModbusPress(emulator.port, timeout_s=0.2)
    press.connect()
    try:
        press.command_setpoint(20e3, 20e3)
        time.sleep(0.05)
        with pytest.raises(PressProtocolError, match="busy"):
            press.tare()
        assert press.is_connected
    finally:
        press.disconnect()
