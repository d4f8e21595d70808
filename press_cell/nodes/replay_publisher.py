"""The rclpy side of bag replay: publishers with the recorded QoS, raw CDR out, ``/clock``.

``press_cell.analysis.replay.Replayer`` decides *what* is due *when*; ``ReplayPublisher`` owns
a node with one publisher per replayed topic (type looked up by name, QoS as the recorded
publishers offered it, adapted like ``ros2 bag play``) and hands each message's recorded CDR
bytes to ``Publisher.publish`` unchanged (no decode). With ``clock`` it also publishes
``rosgraph_msgs/Clock`` on ``/clock`` with the recorded time, at most ``clock_rate_hz`` times per
second of recorded time (``ros2 bag play --clock`` default: 40 Hz), so nodes with
``use_sim_time`` follow the bag's time line.
"""

from __future__ import annotations

import logging
import threading
import time

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock

from press_cell.analysis.replay import Replayer, ReplayMessage, ReplayStats, qos_policy_values
from press_cell.nodes.message_types import UnknownMessageType, message_class

logger = logging.getLogger(__name__)

#: ``rclcpp::ClockQoS``: best effort, keep last 1.
CLOCK_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)
#: Smallest queue a replay publisher keeps (bags store depth 0 for "unknown").
MIN_DEPTH = 10


def publisher_qos(qos) -> QoSProfile:
    """Return the rclpy profile for a replayed topic from its recorded (rosbags) QoS."""
    values = qos_policy_values(qos)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(MIN_DEPTH, values["depth"]),
                      reliability=ReliabilityPolicy(values["reliability"]),
                      durability=DurabilityPolicy(values["durability"]))


class ReplayPublisher(Node):
    """A node that republishes what a ``Replayer`` schedules; see the module docstring."""

    def __init__(self, replayer: Replayer, *, clock: bool = False, clock_rate_hz: float = 40.0,
                 node_name: str = "replay", namespace: str | None = None,
                 context=None) -> None:
        """Create one publisher per replayable topic (types not installed are skipped)."""
        super().__init__(node_name, namespace=namespace, context=context)
        if not clock_rate_hz > 0.0:
            raise ValueError(f"clock_rate_hz must be > 0, got {clock_rate_hz!r}")
        self.replayer = replayer
        self.skipped: dict[str, str] = {}
        self._publishers_by_topic = {}
        for name, topic in replayer.topics.items():
            try:
                cls = message_class(topic.msgtype)
            except UnknownMessageType as exc:
                self.skipped[name] = str(exc)
                self.get_logger().warning(f"not replaying {name}: {exc}")
                continue
            self._publishers_by_topic[name] = self.create_publisher(
                cls, name, publisher_qos(topic.qos))
        self._clock_pub = self.create_publisher(Clock, "/clock", CLOCK_QOS) if clock else None
        self._clock_period_ns = int(1e9 / clock_rate_hz)
        self._last_clock_ns: int | None = None

    def wait_for_subscribers(self, timeout_s: float) -> list[str]:
        """Wait up to ``timeout_s`` until every publisher has a subscriber; return the others."""
        deadline = time.monotonic() + timeout_s
        while True:
            lonely = [n for n, p in self._publishers_by_topic.items()
                      if p.get_subscription_count() == 0]
            if not lonely or time.monotonic() >= deadline:
                return lonely
            time.sleep(0.05)

    def publish(self, message: ReplayMessage) -> None:
        """Publish one scheduled message (and ``/clock`` when it is due)."""
        if self._clock_pub is not None and (
                self._last_clock_ns is None
                or message.timestamp_ns - self._last_clock_ns >= self._clock_period_ns
                or message.timestamp_ns < self._last_clock_ns):   # next loop pass
            stamp = Clock()
            stamp.clock.sec = message.timestamp_ns // 1_000_000_000
            stamp.clock.nanosec = message.timestamp_ns % 1_000_000_000
            self._clock_pub.publish(stamp)
            self._last_clock_ns = message.timestamp_ns
        publisher = self._publishers_by_topic.get(message.topic)
        if publisher is not None:
            publisher.publish(message.data)

    def play(self, stop: threading.Event | None = None) -> ReplayStats:
        """Play the bag on the wall clock until done or ``stop`` is set (wakes at once)."""
        stop = stop or threading.Event()
        return self.replayer.play(self.publish, stop=stop, sleep=stop.wait)
