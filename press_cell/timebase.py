"""Clocks shared by drivers and the control loop: real monotonic time or a simulated clock.

A simulated device integrates its physics up to ``clock.now()`` whenever it is read or
commanded, so the same driver runs in real time (``MonotonicClock``) and in lockstep with the
control loop (``SimulatedClock``, advanced by the loop runner one period per tick).
"""

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the time in seconds on a monotonic scale."""

    def now(self) -> float:
        """Return the current time, s."""


class MonotonicClock:
    """Wall-clock monotonic time (``time.monotonic``)."""

    def now(self) -> float:
        """Return monotonic time, s."""
        return time.monotonic()


class SimulatedClock:
    """A clock that only moves when told to; thread-safe.

    ``time_scale`` is used by real-time runs that play a simulation faster than real time: the
    loop runner sleeps ``period / time_scale`` of wall time per ``period`` of simulated time.
    """

    def __init__(self, start_s: float = 0.0, time_scale: float = 1.0) -> None:
        if not time_scale > 0.0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self._now = float(start_s)
        self._lock = threading.Lock()
        self.time_scale = float(time_scale)

    def now(self) -> float:
        """Return the simulated time, s."""
        with self._lock:
            return self._now

    def advance(self, dt_s: float) -> float:
        """Move the clock forward by ``dt_s`` seconds and return the new time, s."""
        if not dt_s >= 0.0:
            raise ValueError(f"a clock cannot go backwards (dt_s={dt_s!r})")
        with self._lock:
            self._now += dt_s
            return self._now
