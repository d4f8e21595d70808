"""The emulated press's own electronics in lockstep (no pty): sequencer, hold timer, watchdog."""

import pytest

from press_cell.hardware.press_ascii_protocol import ErrorCode, FaultCode, Phase, StatusFlag
from press_cell.hardware.press_driver import PressMode
from press_cell.hardware.press_emulator import (
    DeviceRefusal,
    EmulatedPressDevice,
    fault_code_from_text,
)
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.timebase import SimulatedClock

TICK_S = 0.005


@pytest.fixture
def rig():
    clock = SimulatedClock()
    sim = SimulatedPress(clock, seed=3, modes=(PressMode.SUPERVISORY,))
    sim.connect()
    device = EmulatedPressDevice(sim, clock, die_mm=13.0, watchdog_ms=500.0, link_clock=clock)
    return clock, sim, device


def _run(clock, device, seconds, feed=True):
    """Advance press time by ``seconds``; the host talks every tick when ``feed``."""
    for _ in range(round(seconds / TICK_S)):
        clock.advance(TICK_S)
        if feed:
            device.feed()
        device.tick()


def _start(device, setpoint_mpa=100.0, ramp_mpa_s=50.0, hold_s=0.0):
    device.set_ramp(ramp_mpa_s)
    device.set_hold(hold_s)
    device.set_setpoint(setpoint_mpa)
    device.go()


@pytest.mark.timeout(30)
def test_ramp_then_hold_inside_the_band_then_timed_unload_to_idle(rig):
    clock, sim, device = rig
    device.tare(20)
    _start(device, hold_s=8.0)
    _run(clock, device, 1.0)
    assert device.phase is Phase.RAMP                   # 100 MPa at 50 MPa/s takes 2 s
    _run(clock, device, 8.0)
    assert device.phase is Phase.HOLD
    assert device.load().pressure_mpa == pytest.approx(100.0, rel=0.01)
    assert device.flags() & StatusFlag.RUN and device.flags() & StatusFlag.HOLD
    _run(clock, device, 3.0)
    assert device.phase is Phase.UNLOAD                 # 8 s hold over: unload at 50 MPa/s
    _run(clock, device, 4.0)
    assert device.phase is Phase.IDLE
    assert sim.true_force_n < 0.01 * 100e3
    assert device.fault is FaultCode.NONE


@pytest.mark.timeout(30)
def test_watchdog_vents_a_loaded_press_when_the_host_goes_quiet(rig):
    clock, sim, _ = rig
    events = []
    device = EmulatedPressDevice(sim, clock, watchdog_ms=500.0, link_clock=clock,
                                 events=events.append)
    _start(device)
    _run(clock, device, 4.0)
    assert sim.true_force_n > 10e3
    _run(clock, device, 0.45, feed=False)
    assert device.fault is FaultCode.NONE               # 450 ms < 500 ms: still fine
    _run(clock, device, 0.1, feed=False)
    assert device.fault is FaultCode.WATCHDOG
    assert device.flags() & StatusFlag.WATCHDOG and device.flags() & StatusFlag.VENT
    assert len(events) == 1 and "watchdog" in events[0]
    _run(clock, device, 1.0, feed=False)
    assert sim.true_force_n < 0.01 * 100e3
    with pytest.raises(DeviceRefusal) as refused:
        device.go()
    assert refused.value.code is ErrorCode.FAULT_LATCHED
    device.reset()
    assert device.fault is FaultCode.NONE and device.phase is Phase.VENTED


@pytest.mark.timeout(30)
def test_watchdog_is_not_armed_while_the_press_is_unloaded(rig):
    clock, _, device = rig
    _run(clock, device, 3.0, feed=False)
    assert device.fault is FaultCode.NONE
    device.set_watchdog(0)
    _start(device)
    _run(clock, device, 3.0, feed=False)                # watchdog off: no trip even loaded
    assert device.fault is FaultCode.NONE


@pytest.mark.timeout(30)
def test_commands_the_press_must_refuse(rig):
    clock, _, device = rig
    with pytest.raises(DeviceRefusal) as refused:
        device.set_setpoint(800.0)                       # 106 kN on 13 mm > 100 kN rating
    assert refused.value.code is ErrorCode.OUT_OF_RANGE
    _start(device)
    _run(clock, device, 3.0)
    for command in (lambda: device.tare(10), lambda: device.set_die(10.0)):
        with pytest.raises(DeviceRefusal) as refused:
            command()
        assert refused.value.code is ErrorCode.NOT_ALLOWED_NOW
    with pytest.raises(DeviceRefusal):
        device.set_watchdog(10)


@pytest.mark.timeout(30)
def test_streamed_setpoints_retarget_without_restarting(rig):
    clock, _, device = rig
    _start(device, setpoint_mpa=50.0)
    _run(clock, device, 5.0)
    assert device.phase is Phase.HOLD
    for _ in range(100):                                # the same setpoint streamed at 200 Hz
        device.set_setpoint(50.0)
        _run(clock, device, TICK_S)
    assert device.phase is Phase.HOLD
    device.set_setpoint(80.0)
    assert device.phase is Phase.RAMP
    _run(clock, device, 5.0)
    assert device.phase is Phase.HOLD
    assert device.load().pressure_mpa == pytest.approx(80.0, rel=0.01)


@pytest.mark.timeout(30)
def test_relief_trip_latches_a_relief_fault_and_reset_waits_for_the_cause(rig):
    clock, sim, device = rig
    _start(device)
    _run(clock, device, 3.0)
    sim.inject_fault("relief_trip", force_n=1000.0)
    _run(clock, device, 0.1)
    assert device.fault is FaultCode.RELIEF
    assert device.load().flags & StatusFlag.RELIEF
    with pytest.raises(DeviceRefusal) as refused:
        device.reset()
    assert refused.value.code is ErrorCode.FAULT_LATCHED
    sim.clear_faults()
    device.reset()
    assert device.fault is FaultCode.NONE


@pytest.mark.timeout(30)
def test_a_stalled_internal_bus_latches_a_device_fault_instead_of_stale_data(rig):
    clock, sim, device = rig
    _start(device)
    _run(clock, device, 1.0)
    sim.inject_fault("comms_stall", duration_s=0.5)
    _run(clock, device, 0.1)
    assert device.fault is FaultCode.DEVICE
    assert device.load().flags & StatusFlag.FAULT
    _run(clock, device, 1.0)                            # stall over: the vent goes through
    assert sim.true_force_n < 0.01 * 100e3
    device.reset()
    assert device.fault is FaultCode.NONE


@pytest.mark.parametrize(
    ("text", "code"),
    [("watchdog: no command", FaultCode.WATCHDOG), ("relief trip", FaultCode.RELIEF),
     ("load cell reads NaN", FaultCode.SENSOR), ("ram over-travel", FaultCode.OVERTRAVEL),
     ("pump motor overheated", FaultCode.DEVICE)],
)
def test_simulator_fault_texts_map_onto_protocol_fault_codes(text, code):
    assert fault_code_from_text(text) is code
