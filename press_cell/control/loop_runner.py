"""Fixed-rate control loop on its own thread, in real time or in lockstep with a simulated clock.

Real time (``lockstep=False``): absolute deadlines (``next += period``), so sleep jitter never
accumulates into drift; the measured dt, the wake latency (how late the thread woke after its
deadline) and the compute time are recorded every cycle; a cycle that finishes after the next
deadline is an overrun, and the loop skips the missed deadlines instead of bursting to catch up.
The thread asks for ``SCHED_FIFO`` and ``mlockall`` and logs one warning when they are refused,
and shortens the interpreter's GIL switch interval to a quarter period (process-wide), so another
Python thread cannot hold the loop off for the default 5 ms.

Lockstep (``lockstep=True``): every tick advances a ``SimulatedClock`` by exactly one period, then
runs the step; with ``time_scale=None`` ticks run back to back (a 60 s hold takes a fraction of
a second) and the loop parks itself while the step reports idle and no command is waiting, so
simulated time only moves while there is work; with a ``time_scale`` the ticks are paced at
``period / time_scale`` of wall time. Given the same commands, a lockstep run is deterministic.

Hand-off: ``LatestValue`` publishes the newest state object by reference swap (the loop never
takes a lock a reader could hold, like realtime_tools' RealtimeBuffer); commands reach the loop
through ``post()``, an inbox the loop drains at the start of each cycle.
"""

import collections
import ctypes
import ctypes.util
import logging
import math
import os
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np

_LOG = logging.getLogger(__name__)

# How many recent cycles the latency percentiles cover (10 s at 1 kHz).
TIMING_WINDOW = 10_000
# Minimum spacing of the overrun warning, s.
OVERRUN_WARN_INTERVAL_S = 5.0
# SCHED_FIFO priority asked for: above ordinary threads, below kernel IRQ threads (50) [est].
FIFO_PRIORITY = 40
# Shortest GIL switch interval the loop asks for, s (below ~0.1 ms switching costs dominate).
GIL_SWITCH_MIN_S = 1e-4
_MCL_CURRENT = 1
_MCL_FUTURE = 2

_rt_warned = False
_rt_warn_lock = threading.Lock()


class LoopError(RuntimeError):
    """The loop runner was misconfigured or misused (rate, clock, double start)."""


@dataclass(frozen=True)
class LoopTiming:
    """Loop timing statistics; field names and units as ``msg/ControllerTiming.msg``."""

    rate: float = 0.0                 # Hz, requested loop rate
    realtime: bool = False            # SCHED_FIFO and mlockall were granted
    lockstep: bool = False            # the loop runs in lockstep with a simulated clock
    cycles: int = 0                   # cycles since the loop started
    overruns: int = 0                 # cycles that missed their deadline since the loop started
    dt_mean: float = math.nan         # s, measured period
    dt_max: float = math.nan          # s
    wake_latency_p50: float = math.nan    # s, wake-up lateness after the absolute deadline
    wake_latency_p99: float = math.nan    # s
    wake_latency_p999: float = math.nan   # s
    wake_latency_max: float = math.nan    # s
    compute_time_p99: float = math.nan    # s, read + control + write time per cycle


class LatestValue:
    """Single-writer, many-reader box holding the newest published object; never blocks.

    The writer replaces a reference (atomic in CPython); readers get the last complete object.
    Publish immutable objects only. Loop-safe on both sides.
    """

    def __init__(self, initial=None) -> None:
        """Start with ``initial`` as the value."""
        self._value = initial
        self._sequence = 0

    def publish(self, value) -> None:
        """Make ``value`` the latest (loop-safe)."""
        self._value = value
        self._sequence += 1

    def read(self):
        """Return the latest value (never blocks)."""
        return self._value

    @property
    def sequence(self) -> int:
        """Return how many values were published."""
        return self._sequence


def request_realtime(priority: int = FIFO_PRIORITY) -> bool:
    """Ask for SCHED_FIFO on the calling thread and mlockall; return whether both were granted.

    Logs one warning per process when refused (unprivileged runs are normal on lab PCs).
    """
    global _rt_warned
    problems = []
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError) as exc:
        problems.append(f"SCHED_FIFO refused ({exc})")
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        if libc.mlockall(_MCL_CURRENT | _MCL_FUTURE) != 0:
            problems.append(f"mlockall refused ({os.strerror(ctypes.get_errno())})")
    except OSError as exc:
        problems.append(f"mlockall unavailable ({exc})")
    if problems:
        with _rt_warn_lock:
            if not _rt_warned:
                _rt_warned = True
                _LOG.warning("control loop runs without real-time scheduling: %s; expect "
                             "millisecond wake-up jitter (grant CAP_SYS_NICE and "
                             "CAP_IPC_LOCK / rtprio+memlock limits to fix)",
                             "; ".join(problems))
        return False
    return True


class _TimingRecorder:
    """Per-cycle timing ring buffers; written by the loop, summarised by any thread."""

    def __init__(self, rate_hz: float, lockstep: bool) -> None:
        self.rate_hz = rate_hz
        self.lockstep = lockstep
        self.realtime = False
        self.cycles = 0
        self.overruns = 0
        # Plain lists: a Python float stores into a list several times faster than into a
        # numpy array, and this is written every cycle; summary() converts once.
        self._latency = [0.0] * TIMING_WINDOW
        self._compute = [0.0] * TIMING_WINDOW
        self._dt = [0.0] * TIMING_WINDOW

    def record(self, latency_s: float, compute_s: float, dt_s: float) -> None:
        i = self.cycles % TIMING_WINDOW
        self._latency[i] = latency_s
        self._compute[i] = compute_s
        self._dt[i] = dt_s
        self.cycles += 1

    def summary(self) -> LoopTiming:
        n = min(self.cycles, TIMING_WINDOW)
        if n == 0:
            return LoopTiming(rate=self.rate_hz, realtime=self.realtime, lockstep=self.lockstep)
        # Copies taken without a lock: a value being overwritten at this instant is as valid
        # a sample as its predecessor, and the loop must never wait for a reader.
        lat = np.array(self._latency[:n])
        comp = np.array(self._compute[:n])
        dt = np.array(self._dt[:n])
        p50, p99, p999 = np.percentile(lat, [50.0, 99.0, 99.9])
        return LoopTiming(
            rate=self.rate_hz, realtime=self.realtime, lockstep=self.lockstep,
            cycles=self.cycles, overruns=self.overruns,
            dt_mean=float(dt.mean()), dt_max=float(dt.max()),
            wake_latency_p50=float(p50), wake_latency_p99=float(p99),
            wake_latency_p999=float(p999), wake_latency_max=float(lat.max()),
            compute_time_p99=float(np.percentile(comp, 99.0)),
        )


class LoopRunner:
    """Run ``step(now_s, dt_s, commands) -> busy`` at a fixed rate on a dedicated thread.

    ``step`` gets the clock time of this cycle (s), the measured time since the previous cycle
    (s; exactly one period in lockstep) and the commands posted since the last cycle (a
    sequence, oldest first; empty most cycles). It returns whether it has work in progress
    (used to park an idle lockstep loop). An exception escaping ``step`` stops the loop and
    is kept in ``error``.
    """

    def __init__(self, step, rate_hz: float, clock, lockstep: bool = False,
                 time_scale: float | None = None, realtime: bool = True,
                 name: str = "press-control-loop") -> None:
        """Configure the runner; ``clock`` must have ``advance()`` when ``lockstep`` is true."""
        if not (math.isfinite(rate_hz) and 0.0 < rate_hz <= 20_000.0):
            raise LoopError(f"rate_hz={rate_hz!r} is out of range; allowed is (0, 20000] Hz")
        if lockstep and not hasattr(clock, "advance"):
            raise LoopError("lockstep needs a SimulatedClock (a clock with advance())")
        if time_scale is not None and not (math.isfinite(time_scale) and time_scale > 0.0):
            raise LoopError(f"time_scale={time_scale!r} must be a finite number > 0 or None")
        if time_scale is not None and not lockstep:
            raise LoopError("time_scale applies to lockstep runs only (real time runs at 1x)")
        self._step = step
        self.rate_hz = float(rate_hz)
        self.period_s = 1.0 / self.rate_hz
        self._clock = clock
        self.lockstep = bool(lockstep)
        self.time_scale = time_scale
        self._want_realtime = bool(realtime) and not (lockstep and time_scale is None)
        self._name = name
        self._inbox = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._timing = _TimingRecorder(self.rate_hz, self.lockstep)
        self.error = None
        self._last_warn_s = -math.inf
        self._missed_since_warn = 0
        self._worst_late_s = 0.0

    # --- any thread -------------------------------------------------------------------
    def start(self) -> None:
        """Start the loop thread; raise ``LoopError`` if it is already running."""
        if self._thread is not None and self._thread.is_alive():
            raise LoopError("the loop is already running")
        self._stop.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop the loop and join its thread (waits at most ``timeout_s``)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        """Return whether the loop thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def post(self, command) -> None:
        """Queue ``command`` for the next cycle (never blocks; thread-safe)."""
        self._inbox.append(command)
        self._wake.set()

    def timing(self) -> LoopTiming:
        """Return timing over the last ``TIMING_WINDOW`` cycles (never blocks the loop)."""
        return self._timing.summary()

    # --- loop thread ------------------------------------------------------------------
    def _drain(self):
        if not self._inbox:
            return ()
        commands = []
        while self._inbox:
            commands.append(self._inbox.popleft())
        return commands

    def _run(self) -> None:
        if self._want_realtime:
            self._timing.realtime = request_realtime()
        if not (self.lockstep and self.time_scale is None):
            # Another Python thread (the ROS executor) keeps the GIL for up to the switch
            # interval (5 ms by default) before the woken loop can run; shorten it to a quarter
            # period. Process-wide, which is what a process hosting a force loop wants.
            wanted = max(GIL_SWITCH_MIN_S, self.period_s / 4.0)
            if sys.getswitchinterval() > wanted:
                sys.setswitchinterval(wanted)
        try:
            if self.lockstep and self.time_scale is None:
                self._run_lockstep_fast()
            else:
                self._run_paced()
        except Exception as exc:  # noqa: BLE001 - kept for the owner, loop must not die silently
            self.error = exc
            _LOG.exception("control loop stopped by an exception in its step")

    def _run_lockstep_fast(self) -> None:
        # Everything the tick touches is bound to a local once: ticks run back to back here.
        busy = True
        stopped = self._stop.is_set
        inbox = self._inbox
        advance = self._clock.advance
        step = self._step
        record = self._timing.record
        perf_counter = time.perf_counter
        period_s = self.period_s
        while not stopped():
            if not busy and not inbox:
                self._wake.wait()
                self._wake.clear()
                continue
            t0 = perf_counter()
            now_s = advance(period_s)
            busy = bool(step(now_s, period_s, self._drain() if inbox else ()))
            record(0.0, perf_counter() - t0, period_s)

    def _run_paced(self) -> None:
        wall_period_s = self.period_s / (self.time_scale or 1.0)
        next_s = time.monotonic() + wall_period_s
        prev_now_s = None
        while not self._stop.is_set():
            delay = next_s - time.monotonic()
            if delay > 0.0:
                time.sleep(delay)
            woke_s = time.monotonic()
            if self.lockstep:
                now_s = self._clock.advance(self.period_s)
            else:
                now_s = self._clock.now()
            dt_s = self.period_s if prev_now_s is None else now_s - prev_now_s
            prev_now_s = now_s
            self._step(now_s, dt_s, self._drain())
            done_s = time.monotonic()
            self._timing.record(woke_s - next_s, done_s - woke_s, dt_s)
            next_s += wall_period_s
            if done_s > next_s:
                missed = int((done_s - next_s) // wall_period_s) + 1
                self._timing.overruns += missed
                self._missed_since_warn += missed
                self._worst_late_s = max(self._worst_late_s, done_s - next_s)
                next_s += missed * wall_period_s
                if done_s - self._last_warn_s >= OVERRUN_WARN_INTERVAL_S:
                    _LOG.warning("control loop missed %d cycles since the last warning, worst "
                                 "%.2f ms late (period %.2f ms)", self._missed_since_warn,
                                 1e3 * self._worst_late_s, 1e3 * wall_period_s)
                    self._last_warn_s = done_s
                    self._missed_since_warn = 0
                    self._worst_late_s = 0.0
