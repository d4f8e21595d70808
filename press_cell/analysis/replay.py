"""The pure part of bag replay: messages in recorded order, on the recorded time line.

``Replayer`` yields each message with the time it is due relative to the start of playback
(recorded spacing divided by ``rate``), optionally looping and filtered by topic, and tells the
QoS each topic should be re-published with (what the recorded publishers offered, adapted as
``ros2 bag play`` does). ``Replayer.play`` paces the messages on a ``press_cell.timebase``
clock and hands each one to a callback; the rclpy node wraps that callback around its
publishers (raw CDR bytes, no decode needed). Nothing here imports rclpy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rosbags.interfaces import Qos, QosDurability, QosReliability

from press_cell.analysis.bag_reader import Bag, open_bag
from press_cell.analysis.bag_writer import RELIABLE_QOS
from press_cell.timebase import Clock, MonotonicClock

logger = logging.getLogger(__name__)


class ReplayError(ValueError):
    """Replay options are invalid (rate, loop count, unknown topics)."""


@dataclass(frozen=True)
class ReplayTopic:
    """A topic to re-publish: its type, definition and the QoS to offer."""

    name: str
    msgtype: str
    qos: Qos
    definition: str
    message_count: int


@dataclass(frozen=True)
class ReplayMessage:
    """One message to publish ``due_s`` seconds after playback started."""

    topic: str
    msgtype: str
    timestamp_ns: int        # as recorded
    data: bytes              # CDR, as recorded
    due_s: float             # s after the start of playback
    loop: int                # 0 for the first pass


@dataclass
class ReplayStats:
    """What ``play`` did."""

    messages: int = 0
    loops: int = 0
    max_lateness_s: float = 0.0   # worst delay of a publish after its due time, s
    stopped: bool = False


def replay_qos(offered: list[Qos]) -> Qos:
    """Return the QoS to re-publish with, given what the recorded publishers offered.

    As ``ros2 bag play``: reliable only if every publisher offered reliable, transient local
    only if every publisher offered transient local (latched topics stay latched), the largest
    depth; reliable, volatile, depth 10 when nothing was recorded.
    """
    if not offered:
        return RELIABLE_QOS
    reliable = all(q.reliability == QosReliability.RELIABLE for q in offered)
    transient = all(q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    base = offered[0]
    return base._replace(
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient else QosDurability.VOLATILE,
        depth=max(q.depth for q in offered),
    )


def qos_policy_values(qos: Qos) -> dict[str, int]:
    """Return ``history``, ``depth``, ``reliability`` and ``durability`` as plain numbers.

    The numbers are the values of rclpy's ``HistoryPolicy``, ``ReliabilityPolicy`` and
    ``DurabilityPolicy`` (same numbering as rmw), so the node builds its publisher with
    ``QoSProfile(history=HistoryPolicy(v["history"]), depth=v["depth"], ...)``.
    """
    return {"history": qos.history.value, "depth": int(qos.depth),
            "reliability": qos.reliability.value, "durability": qos.durability.value}


class Replayer:
    """Schedule a bag's messages for re-publishing; see the module docstring.

    ``rate``: playback speed factor (> 0; 10 = ten times faster). ``loop``: number of passes
    (1 = once, 0 = forever). ``topics``: names to replay (default all). ``loop_gap_s``: pause
    between passes, s of playback time. ``qos_overrides``: topic -> QoS to use instead.
    """

    def __init__(self, bag: Bag | str | Path, *, rate: float = 1.0, loop: int = 1,
                 topics: Iterable[str] | None = None, loop_gap_s: float = 0.0,
                 qos_overrides: dict[str, Qos] | None = None) -> None:
        if not rate > 0.0:
            raise ReplayError(f"rate must be > 0 (1 = recorded speed), got {rate!r}")
        if int(loop) != loop or loop < 0:
            raise ReplayError(f"loop must be an integer >= 0 (0 = forever), got {loop!r}")
        if loop_gap_s < 0.0:
            raise ReplayError(f"loop_gap_s must be >= 0, got {loop_gap_s!r}")
        self.bag = bag if isinstance(bag, Bag) else open_bag(bag)
        names = list(self.bag.topics) if topics is None else list(topics)
        if unknown := sorted(set(names) - set(self.bag.topics)):
            raise ReplayError(f"topics {unknown} are not in the bag; it has "
                              f"{sorted(self.bag.topics)}")
        overrides = qos_overrides or {}
        self.topics = {
            name: ReplayTopic(name=name, msgtype=info.msgtype,
                              qos=overrides.get(name, replay_qos(info.qos)),
                              definition=info.definition, message_count=info.message_count)
            for name, info in self.bag.topics.items() if name in names
        }
        self.rate = float(rate)
        self.loop = int(loop)
        self.loop_gap_s = float(loop_gap_s)

    @property
    def pass_duration_s(self) -> float:
        """Return the playback time of one pass (recorded span / rate), s."""
        return max(0, self.bag.end_ns - self.bag.start_ns) * 1e-9 / self.rate

    def schedule(self) -> Iterator[ReplayMessage]:
        """Yield every message with its due time, in recorded order, pass after pass."""
        start_ns = self.bag.start_ns
        pass_index = 0
        while self.loop == 0 or pass_index < self.loop:
            offset_s = pass_index * (self.pass_duration_s + self.loop_gap_s)
            count = 0
            for topic, timestamp_ns, data in self.bag.messages(self.topics):
                count += 1
                yield ReplayMessage(
                    topic=topic, msgtype=self.topics[topic].msgtype, timestamp_ns=timestamp_ns,
                    data=bytes(data), due_s=offset_s + (timestamp_ns - start_ns) * 1e-9 / self.rate,
                    loop=pass_index,
                )
            if count == 0:
                return
            pass_index += 1

    def play(self, publish: Callable[[ReplayMessage], None], *, clock: Clock | None = None,
             sleep: Callable[[float], None] = time.sleep,
             stop: threading.Event | None = None) -> ReplayStats:
        """Publish every scheduled message at its due time on ``clock``; return statistics.

        ``sleep`` waits a number of seconds (pass one that advances a ``SimulatedClock`` for
        deterministic tests). Setting ``stop`` ends playback before the next message.
        """
        clock = clock or MonotonicClock()
        stats = ReplayStats()
        start_s = clock.now()
        for message in self.schedule():
            if stop is not None and stop.is_set():
                stats.stopped = True
                break
            wait_s = start_s + message.due_s - clock.now()
            if wait_s > 0.0:
                sleep(wait_s)
            stats.max_lateness_s = max(stats.max_lateness_s,
                                       clock.now() - start_s - message.due_s)
            publish(message)
            stats.messages += 1
            stats.loops = message.loop + 1
        logger.info("replayed %d messages in %d pass(es)", stats.messages, stats.loops)
        return stats

    def close(self) -> None:
        """Close the bag."""
        self.bag.close()
