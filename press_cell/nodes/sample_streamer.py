"""Publish the control loop's latest sample from a dedicated thread at a fixed rate.

High-rate telemetry (``~/state`` and its standard twins at up to the loop rate) is published
from this thread, not from an executor timer: rclpy's MultiThreadedExecutor dispatches
callbacks at only a few hundred Hz on a 2-core machine (bench/bench_press_node.py measured a
500 Hz timer delivering ~170-310 Hz), while ``Publisher.publish`` is thread-safe. The thread
keeps absolute deadlines, skips deadlines it missed instead of bursting, and publishes a sample
only when the loop produced a new one (or every ``keepalive_s`` when the loop is parked, as an
unpaced simulation is while idle), so a subscriber never sees the same loop sample twice.
"""

import threading
import time


class SampleStreamer:
    """Call ``publish(sample)`` with ``read()``'s newest sample at ``rate_hz`` on a thread."""

    def __init__(self, read, publish, rate_hz: float, name: str = "press-telemetry",
                 keepalive_s: float = 0.5, key=None) -> None:
        """Configure; ``read`` and ``publish`` are called from the streamer thread only.

        ``key(sample)`` identifies a loop sample (default: the sample's ``stamp_s``); a sample
        with the key of the last one published is a repeat and is not sent again.
        """
        if not rate_hz > 0.0:
            raise ValueError(f"rate_hz={rate_hz!r} must be > 0")
        self._read = read
        self._publish = publish
        self._key = key or (lambda sample: sample.stamp_s)
        self.period_s = 1.0 / float(rate_hz)
        self.keepalive_s = float(keepalive_s)
        self._name = name
        self._stop = threading.Event()
        self._thread = None
        self.published = 0
        self.missed_deadlines = 0

    def set_rate(self, rate_hz: float) -> None:
        """Change the publish rate (takes effect at the next deadline)."""
        self.period_s = 1.0 / float(rate_hz)

    def start(self) -> None:
        """Start the thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop and join the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        last_key = object()
        last_publish_s = 0.0
        next_s = time.monotonic()
        while not self._stop.is_set():
            now_s = time.monotonic()
            if next_s > now_s:
                if self._stop.wait(next_s - now_s):
                    break
                now_s = time.monotonic()
            sample = self._read()
            key = self._key(sample) if sample is not None else last_key
            if sample is not None and (key != last_key or
                                       now_s - last_publish_s >= self.keepalive_s):
                self._publish(sample)
                self.published += 1
                last_key, last_publish_s = key, now_s
            next_s += self.period_s
            behind = time.monotonic() - next_s
            if behind > self.period_s:
                skipped = int(behind // self.period_s)
                self.missed_deadlines += skipped
                next_s += skipped * self.period_s
