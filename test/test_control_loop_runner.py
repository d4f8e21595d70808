"""LoopRunner: lockstep determinism and parking, paced real-time loop, overruns, hand-off."""

import logging
import threading
import time

import pytest

from press_cell.control import loop_runner
from press_cell.control.loop_runner import LatestValue, LoopError, LoopRunner
from press_cell.timebase import MonotonicClock, SimulatedClock


class Recorder:
    def __init__(self, busy_cycles):
        self.busy_cycles = busy_cycles
        self.calls = []
        self.commands = []
        self.done = threading.Event()

    def __call__(self, now_s, dt_s, commands):
        self.calls.append((now_s, dt_s))
        self.commands.extend(commands)
        if len(self.calls) >= self.busy_cycles:
            self.done.set()
            return False
        return True


@pytest.mark.timeout(10)
def test_lockstep_advances_the_clock_one_period_per_tick_and_parks_when_idle():
    clock = SimulatedClock()
    rec = Recorder(busy_cycles=5000)
    runner = LoopRunner(rec, 1000.0, clock, lockstep=True)
    runner.start()
    assert rec.done.wait(5.0)
    time.sleep(0.05)
    parked_at = clock.now()
    time.sleep(0.05)
    assert clock.now() == parked_at == pytest.approx(5.0)     # idle: simulated time stops
    runner.post("wake")
    deadline = time.monotonic() + 2.0
    while "wake" not in rec.commands and time.monotonic() < deadline:
        time.sleep(0.001)
    runner.stop()
    assert "wake" in rec.commands
    assert all(dt == pytest.approx(1e-3) for _, dt in rec.calls)
    times = [t for t, _ in rec.calls]
    assert times[:3] == pytest.approx([1e-3, 2e-3, 3e-3])
    timing = runner.timing()
    assert timing.lockstep and timing.cycles == len(rec.calls) and timing.overruns == 0


@pytest.mark.timeout(10)
def test_time_scale_paces_simulated_time_against_the_wall():
    clock = SimulatedClock()
    rec = Recorder(busy_cycles=10**9)
    runner = LoopRunner(rec, 500.0, clock, lockstep=True, time_scale=10.0, realtime=False)
    t0 = time.monotonic()
    runner.start()
    time.sleep(0.2)
    runner.stop()
    wall = time.monotonic() - t0
    # 10x: about 2 s of simulated time in 0.2 s of wall time
    assert clock.now() == pytest.approx(10.0 * wall, rel=0.35)


@pytest.mark.timeout(10)
def test_real_time_loop_keeps_its_rate_and_measures_dt():
    rec = Recorder(busy_cycles=10**9)
    runner = LoopRunner(rec, 500.0, MonotonicClock(), realtime=False)
    runner.start()
    time.sleep(0.5)
    runner.stop()
    timing = runner.timing()
    assert 200 <= timing.cycles <= 260
    assert timing.dt_mean == pytest.approx(2e-3, rel=0.1)
    assert timing.wake_latency_p50 >= 0.0 and timing.wake_latency_max >= timing.wake_latency_p99


@pytest.mark.timeout(10)
def test_slow_cycles_are_counted_as_overruns_and_warned_about_once(caplog):
    def slow(now_s, dt_s, commands):
        time.sleep(0.0035)          # 3.5 ms in a 2 ms period
        return True
    runner = LoopRunner(slow, 500.0, MonotonicClock(), realtime=False)
    with caplog.at_level(logging.WARNING, logger=loop_runner.__name__):
        runner.start()
        time.sleep(0.2)
        runner.stop()
    timing = runner.timing()
    assert timing.overruns >= timing.cycles       # each slow cycle misses at least one deadline
    warnings = [r for r in caplog.records if "missed" in r.getMessage()]
    assert len(warnings) == 1 and "ms late" in warnings[0].getMessage()


@pytest.mark.timeout(10)
def test_an_exception_in_the_step_stops_the_loop_and_is_kept():
    def broken(now_s, dt_s, commands):
        raise RuntimeError("boom")
    runner = LoopRunner(broken, 1000.0, SimulatedClock(), lockstep=True)
    runner.start()
    runner._thread.join(2.0)
    assert not runner.running and isinstance(runner.error, RuntimeError)


def test_bad_configuration_is_refused():
    with pytest.raises(LoopError, match="rate_hz"):
        LoopRunner(lambda *a: True, 0.0, SimulatedClock())
    with pytest.raises(LoopError, match="SimulatedClock"):
        LoopRunner(lambda *a: True, 100.0, MonotonicClock(), lockstep=True)
    with pytest.raises(LoopError, match="lockstep runs only"):
        LoopRunner(lambda *a: True, 100.0, MonotonicClock(), time_scale=2.0)


def test_latest_value_hands_over_the_newest_object():
    box = LatestValue("first")
    box.publish("second")
    assert box.read() == "second" and box.sequence == 1


def test_realtime_request_warns_once_per_process(caplog, monkeypatch):
    monkeypatch.setattr(loop_runner, "_rt_warned", False)

    def refuse(*args):
        raise PermissionError("not permitted")
    monkeypatch.setattr(loop_runner.os, "sched_setscheduler", refuse)
    with caplog.at_level(logging.WARNING, logger=loop_runner.__name__):
        assert loop_runner.request_realtime() is False
        assert loop_runner.request_realtime() is False
    assert len([r for r in caplog.records if "real-time" in r.getMessage()]) == 1
