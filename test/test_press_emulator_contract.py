"""One contract, both serial presses: each driver against its emulator on a real pty.

Parametrised over the ASCII and the Modbus RTU protocol; the emulator plays the physics 20x
faster than wall time (the comms watchdog stays in wall time, set to 0.3 s by the driver).
"""

import math
import statistics
import time
from dataclasses import dataclass, field

import pytest

from press_cell.hardware.press_ascii import AsciiSerialPress
from press_cell.hardware.press_ascii_protocol import FaultCode, Phase, StatusFlag
from press_cell.hardware.press_driver import (
    PressConnectionError,
    PressDeviceFault,
    PressError,
    PressMode,
    PressModeError,
    PressProtocolError,
)
from press_cell.hardware.press_emulator import HOLD_BAND_FRACTION, PressEmulator
from press_cell.hardware.press_modbus import ModbusPress
from press_cell.hardware.press_supervisory import PressCommandRangeError

DRIVERS = {"ascii": AsciiSerialPress, "modbus": ModbusPress}
TIME_SCALE = 20.0
TIMEOUT_S = 0.2
WATCHDOG_S = 0.3
DIE_M = 0.013
AREA_M2 = math.pi * DIE_M**2 / 4
TARGET_N = 100e6 * AREA_M2          # 100 MPa on the 13 mm die, 13.27 kN
RAMP_N_S = 50e6 * AREA_M2           # 50 MPa/s


@dataclass
class Rig:
    """An emulator, the driver connected to it, and the emulator's event lines."""

    emulator: PressEmulator
    press: AsciiSerialPress | ModbusPress
    events: list = field(default_factory=list)


def _make_rig(protocol: str, latency_ms: float = 0.0, baudrate: int = 115200,
              pace: bool = False) -> Rig:
    events: list = []
    emulator = PressEmulator(protocol, time_scale=TIME_SCALE, latency_ms=latency_ms,
                             baudrate=baudrate, pace=pace, events=events.append).start()
    press = DRIVERS[protocol](emulator.port, baudrate=baudrate, timeout_s=TIMEOUT_S,
                              watchdog_s=WATCHDOG_S,
                              die_diameter_m=DIE_M, reconnect_attempts=3,
                              reconnect_base_delay_s=0.02)
    press.connect()
    return Rig(emulator, press, events)


@pytest.fixture(params=sorted(DRIVERS))
def rig(request):
    rig = _make_rig(request.param)
    yield rig
    rig.press.disconnect()
    rig.emulator.close()


def _stream(press, force_n, ramp_n_s, wall_s, period_s=0.01):
    """Stream the setpoint and read for ``wall_s``; return the readings."""
    readings = []
    end = time.monotonic() + wall_s
    while time.monotonic() < end:
        press.command_setpoint(force_n, ramp_n_s)
        readings.append(press.read())
        time.sleep(period_s)
    return readings


def _poll_until(press, predicate, wall_s):
    """Read until ``predicate(reading)`` or ``wall_s`` passes; return the last reading."""
    end = time.monotonic() + wall_s
    reading = press.read()
    while not predicate(reading) and time.monotonic() < end:
        time.sleep(0.01)
        reading = press.read()
    return reading


@pytest.mark.timeout(10)
def test_connect_reports_a_supervisory_press_and_self_check_passes(rig):
    caps = rig.press.capabilities
    assert caps.modes == (PressMode.SUPERVISORY,)
    assert caps.rated_force_n == pytest.approx(100e3)
    assert caps.force_full_scale_n == pytest.approx(100e3)
    assert caps.stroke_m > 0 and 0 < caps.max_read_rate_hz <= 200
    rig.press.self_check()
    assert rig.press.state().die_mm == pytest.approx(13.0)
    rig.press.set_die_diameter(0.010)
    assert rig.press.state().die_mm == pytest.approx(10.0)
    rig.press.set_die_diameter(DIE_M)
    with pytest.raises(PressModeError, match="SUPERVISORY"):
        rig.press.command_valve(0.5)


@pytest.mark.timeout(10)
def test_tare_removes_the_load_cell_offset(rig):
    before = rig.press.read().force_n
    offset_n = rig.press.tare(samples=20)
    assert offset_n == pytest.approx(before, abs=30.0)
    assert abs(offset_n) > 10.0                 # the simulated cell has a real zero offset
    assert abs(rig.press.read().force_n) < 20.0


@pytest.mark.timeout(15)
def test_ramp_reaches_the_target_and_holds_inside_the_press_band(rig):
    rig.press.tare()
    _stream(rig.press, TARGET_N, RAMP_N_S, wall_s=8.0 / TIME_SCALE)     # 8 s of press time
    hold = _stream(rig.press, TARGET_N, RAMP_N_S, wall_s=3.0 / TIME_SCALE)
    band_n = HOLD_BAND_FRACTION * TARGET_N
    assert all(abs(r.force_n - TARGET_N) <= band_n for r in hold), \
        [round(r.force_n) for r in hold]
    state = rig.press.state()
    assert state.phase is Phase.HOLD
    assert state.load.flags & StatusFlag.HOLD
    assert state.setpoint_mpa == pytest.approx(100.0, abs=0.05)
    assert hold[-1].ram_position_m > 0.0
    with pytest.raises(PressError, match="not unloaded"):
        rig.press.self_check()


@pytest.mark.timeout(15)
def test_stop_unloads_under_control_and_vent_dumps(rig):
    _stream(rig.press, TARGET_N, RAMP_N_S, wall_s=4.0 / TIME_SCALE)
    rig.press.stop()
    unloaded = _poll_until(rig.press, lambda r: r.force_n < 0.01 * 100e3, wall_s=2.0)
    assert unloaded.force_n < 1e3 and not unloaded.vented
    assert rig.press.state().phase is Phase.IDLE
    _stream(rig.press, TARGET_N, RAMP_N_S, wall_s=4.0 / TIME_SCALE)
    rig.press.vent()
    vented = _poll_until(rig.press, lambda r: r.force_n < 200.0, wall_s=1.0)
    assert vented.vented and vented.force_n < 200.0


@pytest.mark.timeout(10)
def test_setpoints_the_protocol_cannot_carry_are_refused_before_sending(rig):
    with pytest.raises(PressCommandRangeError, match="press rating"):
        rig.press.command_setpoint(150e3, RAMP_N_S)
    with pytest.raises(PressCommandRangeError, match="MPa/s"):
        rig.press.command_setpoint(TARGET_N, 1.0)
    assert rig.press.state().phase is Phase.IDLE


@pytest.mark.timeout(15)
def test_unplug_mid_hold_raises_and_the_press_vents_by_its_watchdog(rig):
    _stream(rig.press, TARGET_N, RAMP_N_S, wall_s=5.0 / TIME_SCALE)
    assert rig.emulator.sim.true_force_n > 0.9 * TARGET_N
    assert rig.emulator.control("fault unplug").startswith("ok")
    start = time.monotonic()
    with pytest.raises(PressConnectionError, match="within"):
        rig.press.read()
    assert time.monotonic() - start < TIMEOUT_S + 0.3      # bounded: the driver never hangs
    assert not rig.press.is_connected
    deadline = time.monotonic() + 2.0
    while rig.emulator.device.fault is FaultCode.NONE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert rig.emulator.device.fault is FaultCode.WATCHDOG
    assert any("watchdog" in event for event in rig.events)
    time.sleep(1.0 / TIME_SCALE)                             # 1 s of press time
    assert rig.emulator.sim.true_force_n < 0.02 * 100e3
    # Back on the line: the fault is reported, and nothing re-applies the old setpoint.
    rig.emulator.control("fault plug")
    rig.press.reconnect()
    reading = rig.press.read()
    assert reading.vented and "watchdog" in reading.device_fault
    with pytest.raises(PressDeviceFault):
        rig.press.command_setpoint(TARGET_N, RAMP_N_S)
    rig.press.reset_fault()
    rig.press.self_check()


@pytest.mark.timeout(10)
def test_garbage_replies_raise_a_protocol_error_and_the_link_recovers(rig):
    rig.emulator.control("fault garbage on")
    with pytest.raises(PressProtocolError, match="(?i)garbled|non-ascii|unrecognised"):
        rig.press.read()
    rig.emulator.control("fault garbage off")
    assert rig.press.is_connected
    assert abs(rig.press.read().force_n) < 1e3


@pytest.mark.timeout(10)
def test_a_burst_of_line_noise_is_absorbed_by_one_retry(rig):
    rig.emulator.control("fault noise 24")
    time.sleep(0.02)
    assert abs(rig.press.read().force_n) < 1e3
    assert rig.press.is_connected


@pytest.mark.timeout(10)
def test_stalled_replies_time_out_and_reconnect_gives_up_in_bounded_time(rig):
    rig.emulator.control("fault stall on")
    start = time.monotonic()
    with pytest.raises(PressConnectionError):
        rig.press.read()
    assert time.monotonic() - start < TIMEOUT_S + 0.3
    start = time.monotonic()
    with pytest.raises(PressConnectionError, match="3 attempts"):
        rig.press.reconnect()
    assert time.monotonic() - start < 3 * (TIMEOUT_S + 0.3) + 0.2
    rig.emulator.control("fault stall off")
    rig.press.reconnect()
    rig.press.self_check()


@pytest.mark.timeout(10)
def test_hangup_closes_the_port_for_good(rig):
    rig.emulator.control("fault hangup")
    with pytest.raises(PressConnectionError):
        rig.press.read()
    with pytest.raises(PressConnectionError, match="did not come back"):
        rig.press.reconnect()


@pytest.mark.timeout(15)
@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_16_ms_usb_serial_latency_still_works(protocol):
    rig = _make_rig(protocol, latency_ms=16.0)
    try:
        round_trips = []
        for _ in range(10):
            start = time.monotonic()
            rig.press.read()
            round_trips.append(time.monotonic() - start)
        assert statistics.median(round_trips) >= 0.016      # the latency is really there
        _stream(rig.press, TARGET_N, RAMP_N_S, wall_s=6.0 / TIME_SCALE, period_s=0.0)
        assert rig.press.state().load.force_kn * 1e3 == pytest.approx(TARGET_N, rel=0.03)
    finally:
        rig.press.disconnect()
        rig.emulator.close()


@pytest.mark.timeout(15)
@pytest.mark.parametrize("protocol", sorted(DRIVERS))
def test_poll_rate_claimed_at_9600_baud_is_not_optimistic(protocol):
    rig = _make_rig(protocol, baudrate=9600, pace=True)
    try:
        round_trips = []
        for _ in range(8):
            start = time.monotonic()
            rig.press.read()
            round_trips.append(time.monotonic() - start)
        claimed_hz = rig.press.capabilities.max_read_rate_hz
        assert claimed_hz < 40.0
        # Not optimistic: even the fastest round trip (least disturbed by machine load) is
        # no faster than the claim allows; and not far too pessimistic either.
        assert claimed_hz <= 1.0 / min(round_trips)
        assert 1.0 / statistics.median(round_trips) <= claimed_hz * 1.5
    finally:
        rig.press.disconnect()
        rig.emulator.close()


@pytest.mark.timeout(10)
def test_physical_sensor_fault_reaches_the_driver(rig):
    assert rig.emulator.control("sim sensor_nan").startswith("ok")
    reading = _poll_until(rig.press, lambda r: r.device_fault != "", wall_s=1.0)
    assert math.isnan(reading.force_n)
    assert "load cell" in reading.device_fault
    with pytest.raises(PressDeviceFault, match="E03"):
        rig.press.self_check()
    with pytest.raises(PressDeviceFault):
        rig.press.tare()
