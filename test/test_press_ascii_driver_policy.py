"""Policy of the serial press drivers (shared base): what is sent when, and reconnect backoff."""

import math

import pytest

from press_cell.hardware import press_supervisory
from press_cell.hardware.press_ascii_protocol import (
    FaultCode,
    IdentityReply,
    LoadReply,
    Phase,
    StateReply,
    StatusFlag,
)
from press_cell.hardware.press_driver import PressConnectionError
from press_cell.hardware.press_supervisory import PressCommandRangeError, SupervisorySerialPress


class RecordingPress(SupervisorySerialPress):
    """Transport hooks that record calls instead of moving bytes."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.sent = []
        self.flags = StatusFlag(0)
        self.open_failures = 0

    def _open(self):
        if self.open_failures:
            self.open_failures -= 1
            raise PressConnectionError("port gone")

    def _close(self):
        pass

    def _identify(self):
        return IdentityReply("REC", 100.0, 100.0, 50.0)

    def _configure(self, die_mm, watchdog_ms):
        self.sent.append(("configure", die_mm, watchdog_ms))

    def _set_die(self, die_mm):
        self.sent.append(("die", round(die_mm, 3)))

    def _load(self):
        return LoadReply(1.0, 5.9, 0.1, self.flags)

    def _state(self):
        return StateReply(self._load(), 0, 1, 0, 13.0, Phase.IDLE, 0, FaultCode.NONE)

    def _set_ramp(self, ramp_mpa_s):
        self.sent.append(("ramp", round(ramp_mpa_s, 3)))

    def _set_setpoint(self, setpoint_mpa):
        self.sent.append(("setpoint", round(setpoint_mpa, 3)))

    def _go(self):
        self.sent.append(("go",))

    def _stop(self):
        self.sent.append(("stop",))

    def _vent(self):
        self.sent.append(("vent",))

    def _tare(self, samples):
        return 0.0

    def _reset(self):
        self.sent.append(("reset",))

    def _max_read_rate_hz(self):
        return 100.0


AREA_M2 = math.pi * 0.013**2 / 4


@pytest.fixture
def press():
    press = RecordingPress(die_diameter_m=0.013, watchdog_s=0.3)
    press.connect()
    press.sent.clear()
    return press


def test_connect_configures_die_in_mm_and_watchdog_in_ms():
    press = RecordingPress(die_diameter_m=0.010, watchdog_s=0.25)
    press.connect()
    assert press.sent == [("configure", pytest.approx(10.0), pytest.approx(250.0))]
    assert press.capabilities.rated_force_n == 100e3


def test_setpoint_is_converted_with_the_die_area_and_not_resent_while_running(press):
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    assert press.sent == [("ramp", 50.0), ("setpoint", 100.0), ("go",)]
    press.flags = StatusFlag.RUN
    press.read()
    press.sent.clear()
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    assert press.sent == []                             # unchanged while running: no traffic
    press.command_setpoint(120e6 * AREA_M2, 50e6 * AREA_M2)
    assert press.sent == [("setpoint", 120.0)]


def test_a_press_that_stopped_by_itself_is_started_again(press):
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    press.flags = StatusFlag(0)                         # e.g. hold timer over at the press
    press.read()
    press.sent.clear()
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    assert press.sent == [("setpoint", 100.0), ("go",)]


def test_stop_and_vent_make_the_next_setpoint_start_again(press):
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    for action, name in ((press.stop, "stop"), (press.vent, "vent")):
        action()
        press.sent.clear()
        press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
        assert press.sent == [("setpoint", 100.0), ("go",)], name


def test_out_of_range_commands_are_refused_locally(press):
    for force_n, ramp_n_s in ((-1.0, 1e3), (101e3, 1e3), (1e3, 1.0), (1e3, 2e9)):
        with pytest.raises(PressCommandRangeError):
            press.command_setpoint(force_n, ramp_n_s)
    assert press.sent == []
    with pytest.raises(PressCommandRangeError):
        RecordingPress(die_diameter_m=0.2)
    with pytest.raises(PressCommandRangeError):
        RecordingPress(watchdog_s=0.01)


def test_reconnect_backs_off_exponentially_up_to_the_cap(press, monkeypatch):
    sleeps = []
    monkeypatch.setattr(press_supervisory.time, "sleep", sleeps.append)
    press.reconnect_attempts, press.reconnect_base_delay_s = 5, 0.1
    press.reconnect_max_delay_s = 0.3
    press.open_failures = 3
    press.reconnect()
    assert sleeps == [0.1, 0.2, 0.3]
    assert press.is_connected
    press.open_failures = 10
    sleeps.clear()
    with pytest.raises(PressConnectionError, match="5 attempts"):
        press.reconnect()
    assert sleeps == [0.1, 0.2, 0.3, 0.3]
    assert not press.is_connected
    with pytest.raises(PressConnectionError, match="link is down"):
        press.read()


def test_a_new_die_is_sent_and_used_for_the_next_conversion(press):
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    press.flags = StatusFlag(0)
    press.read()
    press.set_die_diameter(0.010)
    press.sent.clear()
    press.command_setpoint(100e6 * AREA_M2, 50e6 * AREA_M2)
    area_10_m2 = math.pi * 0.010**2 / 4
    assert press.sent[1] == ("setpoint", pytest.approx(100.0 * AREA_M2 / area_10_m2, abs=1e-3))
    with pytest.raises(PressCommandRangeError, match="0.001-0.099999 m"):
        press.set_die_diameter(0.5)
