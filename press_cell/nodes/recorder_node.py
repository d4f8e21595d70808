"""Recorder node: write the cell's topics into a rosbag2 bag (MCAP or sqlite3) as they arrive.

What it records: with ``topics`` empty (the default), every topic under the node's namespace
whose type is a press_cell type, ``sensor_msgs/FluidPressure``, ``geometry_msgs/WrenchStamped``
or a ``diagnostic_msgs`` type, plus ``/diagnostics``; the ROS graph is searched again every
``discovery_period`` s, so devices started later are picked up. With ``topics`` set, exactly
those (relative names resolve in the node's namespace). Messages are taken as raw CDR
(``raw=True`` subscriptions) and written unchanged with ``BagWriter.write_raw``, stamped with
the receive time, as ``ros2 bag record`` does. Each topic is subscribed with the QoS its
publishers offer (reliable only when every publisher is reliable, transient local only when
every one is, so latched status arrives and best-effort telemetry matches) and those offered
profiles are stored in the bag for ``ros2 bag play``.

Where bags go: ``<output_dir>/<session>`` (``session`` empty: ``session-<UTC date-time>``).
With ``split_per_cell`` a new bag ``<output_dir>/<cell id>`` starts when the coordinator
announces a new cell. Trigger (chosen for robustness): the coordinator's latched
``~/status`` turning BUSY with ``assembling <cell id> (<recipe>)``. It comes at the start of
the cell (the CellRecord only comes at its end), a late-started recorder still receives it
(transient local), and a re-delivered status for the same cell id does not split again. The
cell's bag runs until the next cell starts, so it also holds the cell's CellRecord and the
idle telemetry after it. A name that exists already gets a ``_<n>`` suffix; a bag is never
overwritten.

Metadata (metadata.yaml ``custom_data``): cell id and recipe name from the coordinator's status,
recipe hash and package version from its ``~/cell_record``, calibration id from the press's
``/diagnostics`` (key ``calibration_id``) or a press trace certificate; empty when not seen.

Crash safety: the writer closes an MCAP chunk (or commits sqlite3) every ``flush_period`` s
or ``chunk_size`` bytes, also when no messages arrive (timer), so a recorder killed with
SIGKILL leaves a bag that ``bag_reader.open_bag`` reads up to the last flush.

Storage failure (disk full ``ENOSPC``, file too large ``EFBIG``, quota, I/O error, sqlite3
"database or disk is full"): recording stops at the first one. The bag is closed as far as the
full disk allows (an MCAP bag whose footer cannot be written reads up to its last complete
chunk, as after a crash), later messages are dropped and counted, and the failure is reported
on ``~/status`` (STATE_FAULT, latched) and ``/diagnostics`` (ERROR) until the recorder is
restarted. The recorder never stops or slows another node: they only lose their record.

Threading: ``BagWriter`` is not thread-safe and its sqlite3 connection must stay on the thread
that made it, so one writer thread (``BagWriterThread``) owns the writer: it opens, writes,
flushes, rotates and closes; callbacks only hand it messages through a queue, so a slow disk
never blocks the executor. The node's callbacks are in one mutually exclusive group, so
standalone (``main``) it spins a SingleThreadedExecutor: a multi-threaded one only adds
overhead here (bench/bench_recorder.py: 5000 msg/s kept with ~100 us CPU per message, against
~70 % kept at ~260 us per message with a MultiThreadedExecutor).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rosbags.interfaces import QosDurability

from press_cell import __version__
from press_cell.analysis.bag_types import press_cell_typestore
from press_cell.analysis.bag_writer import (
    BagWriter,
    RecordingInfo,
    StorageFormat,
    qos_from_policy_values,
)
from press_cell.analysis.replay import qos_policy_values, replay_qos
from press_cell.msg import CellRecord, DeviceStatus, PressTrace
from press_cell.nodes import diagnostics as diag
from press_cell.nodes.message_types import UnknownMessageType, message_class
from press_cell.nodes.node_runner import run_node
from press_cell.nodes.qos import LATCHED

#: Types recorded by default (besides every press_cell type).
STANDARD_TYPES = frozenset({"sensor_msgs/msg/FluidPressure", "geometry_msgs/msg/WrenchStamped"})
#: Type-name prefixes recorded by default.
RECORDED_PREFIXES = ("press_cell/", "diagnostic_msgs/")
#: Absolute topics recorded by default wherever the recorder runs.
GLOBAL_TOPICS = ("/diagnostics",)

#: The coordinator's status text when a cell starts (coordinator_node ``_assemble``).
CELL_START = re.compile(r"^assembling (?P<cell_id>\S+) \((?P<recipe>.*)\)$")

#: Period of the recorder's /diagnostics status, s.
DIAGNOSTICS_PERIOD_S = 1.0

# A QoS duration at or beyond this is "infinite" (rmw's default); stored as unset.
_INFINITE_S = 2.0**31

_LOG = logging.getLogger(__name__)


class BagWriterThread:
    """Own a ``BagWriter`` on one thread; every other thread talks to it through a queue.

    ``make_writer(name)`` returns an unopened ``BagWriter`` for bag ``name``; ``on_open(path)``
    is called (on the writer thread) after each bag is opened. Topics added once are added to
    every later bag, and the last message of each latched topic (every publisher offered
    transient local) is written again at the start of the next bag, stamped with its opening
    time: what a recorder started then would have received, so each cell's bag knows every
    device's status. Errors of the storage (disk full, ...) are logged, not raised.
    """

    def __init__(self, make_writer: Callable[[str], BagWriter], idle_flush_s: float,
                 on_open: Callable[[Path], None] = lambda path: None,
                 on_failure: Callable[[str], None] = lambda message: None) -> None:
        """Prepare the thread; ``idle_flush_s`` is how often it checks for a due flush, s.

        ``on_failure(message)`` is called once (writer thread) when the storage fails.
        """
        self._make_writer = make_writer
        self._idle_flush_s = idle_flush_s
        self._on_open = on_open
        self._on_failure = on_failure
        self.failure = ""           # what stopped the recording ("" while it runs)
        self.dropped = 0            # messages not written since the failure
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="bag-writer", daemon=True)
        self._writer: BagWriter | None = None
        self._topics: dict[str, tuple[str, list]] = {}
        self._latched: dict[str, bytes] = {}   # latched topic -> its last message
        self._info: RecordingInfo | None = None
        self.bags: list[Path] = []
        self.written = 0
        self._errors = 0

    @property
    def path(self) -> Path | None:
        """Return the bag being written (None before the first open and after close)."""
        writer = self._writer
        return None if writer is None else writer.path

    def start(self, first_bag: str) -> None:
        """Start the thread and open ``first_bag``."""
        self._thread.start()
        self.open(first_bag)

    def open(self, name: str, stamp_ns: int | None = None) -> None:
        """Close the current bag and continue in a new one named ``name``.

        ``stamp_ns`` (ns since the epoch, default now) stamps the latched messages repeated at
        its start.
        """
        self._queue.put(("open", name, time.time_ns() if stamp_ns is None else stamp_ns))

    def add_topic(self, topic: str, msgtype: str, offered: list) -> None:
        """Register a topic (in this bag and every later one)."""
        self._queue.put(("topic", topic, msgtype, offered))

    def write(self, topic: str, stamp_ns: int, data: bytes) -> None:
        """Queue one raw CDR message received at ``stamp_ns`` (ns since the epoch)."""
        self._queue.put(("write", topic, stamp_ns, data))

    def set_info(self, info: RecordingInfo) -> None:
        """Set the metadata of the current bag (and later ones)."""
        self._queue.put(("info", info))

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, finish the bag and stop the thread."""
        if self._thread.is_alive():
            self._queue.put(("close",))
            self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=self._idle_flush_s)
            except queue.Empty:
                item = ("flush",)
            try:
                if self._handle(item):
                    return
            except (OSError, sqlite3.DatabaseError) as exc:
                self._storage_failed(item, exc)
            except Exception as exc:  # noqa: BLE001 - a storage error must not end recording
                self._errors += 1
                if self._errors <= 3 or self._errors % 1000 == 0:
                    _LOG.error("recorder: %s %s failed (%d errors so far): %s: %s", item[0],
                               item[1] if len(item) > 1 else "", self._errors,
                               type(exc).__name__, exc, exc_info=self._errors == 1)

    def _storage_failed(self, item: tuple, exc: Exception) -> None:
        """Stop recording after a storage failure: close what can be closed, report once."""
        writer, self._writer = self._writer, None
        where = writer.path if writer is not None else "the bag"
        self.failure = (f"recording stopped: {type(exc).__name__} {exc} while {item[0]} into "
                        f"{where} after {self.written} messages")
        _LOG.error("recorder: %s", self.failure)
        if writer is not None:
            try:
                writer.close()
            except Exception as close_exc:  # noqa: BLE001 - the disk is full: expected
                # Dropping the writer releases its file; the bag reads up to its last chunk.
                _LOG.warning("recorder: %s not finished (%s); it reads up to its last "
                             "complete chunk", where, close_exc)
        self._on_failure(self.failure)

    def _handle(self, item: tuple) -> bool:
        """Carry out one request; return True when the thread should end."""
        kind, writer = item[0], self._writer
        if self.failure and kind in ("write", "flush", "open"):
            self.dropped += kind == "write"
            return False
        if kind == "write":
            if writer is not None and item[1] in self._topics:
                writer.write_raw(item[1], item[2], item[3])
                self.written += 1
                if item[1] in self._latched:
                    self._latched[item[1]] = item[3]
        elif kind == "flush":
            if writer is not None:
                writer.flush_if_due()
        elif kind == "topic":
            _, topic, msgtype, offered = item
            if topic not in self._topics:
                if writer is not None:
                    writer.add_topic(topic, msgtype, offered)
                self._topics[topic] = (msgtype, offered)
                if offered and all(q.durability == QosDurability.TRANSIENT_LOCAL
                                   for q in offered):
                    self._latched[topic] = b""
        elif kind == "info":
            self._info = item[1]
            if writer is not None:
                writer.info = item[1]
        elif kind == "open":
            new = self._make_writer(item[1])
            if self._info is not None:
                new.info = self._info
            new.open()
            for topic, (msgtype, offered) in self._topics.items():
                new.add_topic(topic, msgtype, offered)
            for topic, data in self._latched.items():
                if data:
                    new.write_raw(topic, item[2], data)
            self._writer = new
            if writer is not None:
                writer.close()
            self.bags.append(new.path)
            self._on_open(new.path)
        elif kind == "close":
            self._writer = None
            if writer is not None:
                writer.close()
            return True
        return False


class RecorderNode(Node):
    """Record the cell's topics into rosbag2 bags; see the module docstring."""

    def __init__(self, *, node_name: str = "recorder", namespace: str | None = None,
                 context=None, parameter_overrides=None) -> None:
        """Declare parameters, open the first bag and start discovery and flush timers."""
        super().__init__(node_name, namespace=namespace, context=context,
                         parameter_overrides=parameter_overrides or [])
        self._declare_parameters()
        self._group = MutuallyExclusiveCallbackGroup()
        self._info = RecordingInfo(package_version=__version__)
        self._bag_cell_id = ""
        # topic -> (type name, offered QoS list for the bag, (reliability, durability) used)
        self._recorded: dict[str, tuple[str, list, tuple]] = {}
        self._subscriptions_by_topic: dict[str, object] = {}
        self._refused: set[str] = set()
        self._closed = False
        self._status_pub = self.create_publisher(DeviceStatus, "~/status", LATCHED)
        self._diagnostics = diag.DiagnosticsPublisher(self)
        self._bag_thread = BagWriterThread(self._make_writer, self._param("flush_period") / 2.0,
                                           on_open=self._on_bag_opened,
                                           on_failure=self._on_storage_failure)
        self._bag_thread.set_info(self._info)
        self._bag_thread.start(self._session_name())
        self.create_timer(self._param("discovery_period"), self._discover,
                          callback_group=self._group)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics,
                          callback_group=self._group)
        self._discover()

    # ------------------------------------------------------------------ parameters
    def _declare_parameters(self) -> None:
        def text(name, default, description):
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True))

        text("output_dir", "runs", "folder the bags are written into")
        text("session", "", "bag name when not split per cell (empty: session-<UTC time>)")
        text("storage", "mcap", "rosbag2 storage: mcap or sqlite3")
        text("compression", "zstd", "MCAP chunk compression: zstd, lz4 or none")
        self.declare_parameter("topics", Parameter.Type.STRING_ARRAY, ParameterDescriptor(
            description="topics to record (relative names in the node's namespace); unset or "
                        "empty: discover the cell's press_cell, FluidPressure, WrenchStamped and "
                        "diagnostics topics", read_only=True))
        self.declare_parameter("split_per_cell", False, ParameterDescriptor(
            description="start a new bag <output_dir>/<cell id> when the coordinator starts "
                        "a cell", read_only=True))
        self.declare_parameter("chunk_size", 256 * 1024, ParameterDescriptor(
            description="bytes, MCAP chunk size (the most a crash can lose besides "
                        "flush_period)", read_only=True,
            integer_range=[IntegerRange(from_value=1024, to_value=64 * 1024 * 1024, step=1)]))
        self.declare_parameter("flush_period", 0.5, ParameterDescriptor(
            description="s, the open chunk is written out at least this often", read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.05, to_value=60.0)]))
        self.declare_parameter("discovery_period", 1.0, ParameterDescriptor(
            description="s, how often the ROS graph is searched for new topics",
            read_only=True,
            floating_point_range=[FloatingPointRange(from_value=0.1, to_value=60.0)]))
        self.declare_parameter("queue_depth", 200, ParameterDescriptor(
            description="messages each subscription buffers between callbacks",
            read_only=True, integer_range=[IntegerRange(from_value=1, to_value=100000, step=1)]))
        storage = self._param("storage")
        if storage not in {s.value for s in StorageFormat}:
            raise ValueError(f"recorder: storage {storage!r} is not supported; use one of "
                             f"{[s.value for s in StorageFormat]}")

    def _param(self, name):
        return self.get_parameter(name).value

    def _session_name(self) -> str:
        return self._param("session") or time.strftime("session-%Y%m%dT%H%M%SZ", time.gmtime())

    def _explicit_topics(self) -> list[str]:
        names = self.get_parameter_or("topics", Parameter("topics", value=[])).value or []
        ns = self.get_namespace().rstrip("/")
        return [n if n.startswith("/") else f"{ns}/{n}" for n in names if n]

    # ------------------------------------------------------------------ bags
    @property
    def bag_path(self) -> Path | None:
        """Return the bag being written (None before it is open and after ``close``)."""
        return self._bag_thread.path

    @property
    def bags(self) -> list[Path]:
        """Return every bag this node opened, in order."""
        return list(self._bag_thread.bags)

    @property
    def message_count(self) -> int:
        """Return the messages written so far, all bags."""
        return self._bag_thread.written

    def _make_writer(self, name: str) -> BagWriter:
        """Return an unopened writer for ``<output_dir>/<name>`` (a free name; writer thread)."""
        out = Path(self._param("output_dir"))
        out.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name) or "bag"
        path, n = out / safe, 0
        while path.exists():
            n += 1
            path = out / f"{safe}_{n}"
        flush_s = self._param("flush_period")
        return BagWriter(path, storage=self._param("storage"), info=self._info,
                         chunk_size_bytes=self._param("chunk_size"), max_chunk_age_s=flush_s,
                         metadata_interval_s=max(5.0, flush_s),
                         compression=self._param("compression"))

    def _on_bag_opened(self, path: Path) -> None:
        """Log and announce a new bag on ``~/status`` (writer thread)."""
        if self.context.ok():
            self.get_logger().info(f"recording into {path} ({self._param('storage')})")
            self._publish_status(f"recording {path}")

    def _on_storage_failure(self, message: str) -> None:
        """Report a storage failure on ~/status and /diagnostics at once (writer thread)."""
        if self.context.ok():
            self.get_logger().error(message)
            self._publish_status(message, DeviceStatus.STATE_FAULT)
            self._publish_diagnostics()

    def _publish_diagnostics(self) -> None:
        """Publish the recorder's /diagnostics status: the bag, the count, or the failure."""
        thread = self._bag_thread
        values = {"bag": str(thread.path or (thread.bags[-1] if thread.bags else "")),
                  "messages": thread.written, "dropped": thread.dropped,
                  "storage": self._param("storage"), "failure": thread.failure}
        if thread.failure:
            level, text = diag.ERROR, thread.failure
        else:
            level, text = diag.OK, f"recording {values['bag']} ({thread.written} messages)"
        self._diagnostics.publish(self.get_clock().now().to_msg(), [diag.diagnostic_status(
            f"{self.get_fully_qualified_name()}: recorder", str(self._param("storage")), level,
            text, values)])

    def _publish_status(self, message: str, state: int = DeviceStatus.STATE_READY) -> None:
        msg = DeviceStatus(device="recorder", hardware=str(self._param("storage")), state=state,
                           message=message)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def close(self) -> None:
        """Finish the current bag (summary, metadata); later messages are dropped."""
        self._closed = True
        self._bag_thread.close()

    def destroy_node(self) -> None:
        """Close the bag, then destroy the node."""
        self.close()
        super().destroy_node()

    # ------------------------------------------------------------------ discovery
    def _wanted(self, topic: str, types: list[str]) -> bool:
        explicit = self._explicit_topics()
        if explicit:
            return topic in explicit
        if topic in GLOBAL_TOPICS:
            return True
        ns = self.get_namespace().rstrip("/")
        if ns and not topic.startswith(ns + "/"):
            return False
        return any(t in STANDARD_TYPES or t.startswith(RECORDED_PREFIXES) for t in types)

    def _discover(self) -> None:
        """Subscribe to wanted topics that have publishers; adapt QoS to new publishers."""
        for topic, types in self.get_topic_names_and_types():
            if topic in self._refused or not self._wanted(topic, types):
                continue
            infos = self.get_publishers_info_by_topic(topic)
            if not infos:
                continue
            msgtype = types[0]
            if len(types) > 1:
                self.get_logger().warning(f"{topic} has several types {types}; recording "
                                          f"{msgtype}", once=True)
            offered = [_bag_qos(info.qos_profile) for info in infos]
            policy = replay_qos(offered)
            key = (policy.reliability.value, policy.durability.value)
            known = self._recorded.get(topic)
            if known is not None and known[2] == key:
                continue
            self._subscribe(topic, msgtype, offered, policy, key)

    def _subscribe(self, topic: str, msgtype: str, offered: list, policy, key: tuple) -> None:
        try:
            cls = message_class(msgtype)
        except UnknownMessageType as exc:
            self._refused.add(topic)
            self.get_logger().warning(f"not recording {topic}: {exc}")
            return
        old = self._subscriptions_by_topic.pop(topic, None)
        if old is not None:
            self.destroy_subscription(old)
        values = qos_policy_values(policy)
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=self._param("queue_depth"),
                         reliability=ReliabilityPolicy(values["reliability"]),
                         durability=DurabilityPolicy(values["durability"]))
        if not _has_definition(msgtype):
            self._refused.add(topic)
            self.get_logger().warning(f"not recording {topic}: no {msgtype} definition can be "
                                      "embedded in the bag")
            return
        if topic not in self._recorded:
            self._bag_thread.add_topic(topic, msgtype, offered)
        self._recorded[topic] = (msgtype, offered, key)
        decoder = self._metadata_decoder(msgtype)
        self._subscriptions_by_topic[topic] = self.create_subscription(
            cls, topic, lambda data, t=topic, d=decoder: self._on_message(t, data, d), qos,
            raw=True, callback_group=self._group)
        self.get_logger().info(f"recording {topic} [{msgtype}] "
                               f"({'reliable' if key[0] == 1 else 'best effort'}"
                               f"{', transient local' if key[1] == 1 else ''})")

    # ------------------------------------------------------------------ messages
    def _on_message(self, topic: str, data: bytes, decoder) -> None:
        """Write one received message (raw CDR) into the current bag."""
        if self._closed:
            return
        if decoder is not None:
            decoder(data)  # may start a new bag before this message is written
        self._bag_thread.write(topic, self.get_clock().now().nanoseconds, data)

    def _metadata_decoder(self, msgtype: str):
        """Return the callback that reads bag metadata from messages of ``msgtype``, if any."""
        return {
            "press_cell/msg/DeviceStatus": self._on_status,
            "press_cell/msg/CellRecord": self._on_cell_record,
            "press_cell/msg/PressTrace": self._on_trace,
            "diagnostic_msgs/msg/DiagnosticArray": self._on_diagnostics,
        }.get(msgtype)

    def _set_info(self, **changes) -> None:
        changes = {k: v for k, v in changes.items() if v and getattr(self._info, k) != v}
        if changes:
            self._info = dataclasses.replace(self._info, **changes)
            self._bag_thread.set_info(self._info)

    def _on_status(self, data: bytes) -> None:
        """Take the cell id from the coordinator's status; split when a new cell starts."""
        msg = deserialize_message(data, DeviceStatus)
        if msg.device != "coordinator" or msg.state != DeviceStatus.STATE_BUSY:
            return
        match = CELL_START.match(msg.message)
        if match is None:
            return
        cell_id, recipe = match["cell_id"], match["recipe"]
        if cell_id == self._bag_cell_id:
            return  # the latched status delivered again
        self._bag_cell_id = cell_id
        self._info = dataclasses.replace(self._info, cell_id=cell_id, recipe_name=recipe,
                                         recipe_hash="")
        if self._param("split_per_cell"):
            # The previous bag keeps its own cell id; the latched messages repeated in the new
            # one are stamped before this announcement, which is written after them.
            self._bag_thread.open(cell_id, self.get_clock().now().nanoseconds)
        self._bag_thread.set_info(self._info)

    def _on_cell_record(self, data: bytes) -> None:
        """Take recipe hash, package version and calibration id from a finished cell."""
        msg = deserialize_message(data, CellRecord)
        calibration = next((c.calibration_id for c in msg.certificates if c.calibration_id), "")
        self._set_info(cell_id=msg.cell_id, recipe_name=msg.recipe_name,
                       recipe_hash=msg.recipe_hash, package_version=msg.package_version,
                       calibration_id=calibration)

    def _on_trace(self, data: bytes) -> None:
        """Take the calibration id from a press cycle's certificate."""
        msg = deserialize_message(data, PressTrace)
        self._set_info(calibration_id=msg.certificate.calibration_id)

    def _on_diagnostics(self, data: bytes) -> None:
        """Take the press's calibration id from its diagnostics (key ``calibration_id``)."""
        from diagnostic_msgs.msg import DiagnosticArray

        ns = self.get_namespace().rstrip("/")
        for status in deserialize_message(data, DiagnosticArray).status:
            if not status.name.startswith(f"{ns}/press"):
                continue
            for kv in status.values:
                if kv.key == "calibration_id":
                    self._set_info(calibration_id=kv.value)


def _has_definition(msgtype: str) -> bool:
    """Return whether the bag can embed ``msgtype``'s definition (the typestore knows it).

    rosbags generates definitions for ``pkg/msg/`` types only: action feedback topics
    (``pkg/action/X_FeedbackMessage``) cannot be stored self-describing and are not recorded.
    """
    store = press_cell_typestore()
    if msgtype not in store.fielddefs:
        return False
    try:
        store.generate_msgdef(msgtype, ros_version=2)
    except (AssertionError, KeyError, ValueError):
        return False
    return True


def _seconds(duration) -> float:
    """Return an rclpy Duration in s, 0 for an infinite (unset) one."""
    seconds = duration.nanoseconds * 1e-9
    return 0.0 if seconds >= _INFINITE_S else seconds


def _bag_qos(profile):
    """Convert a publisher's rclpy QoSProfile into the bag's (rosbags) QoS profile."""
    return qos_from_policy_values(
        history=int(profile.history), depth=int(profile.depth),
        reliability=int(profile.reliability), durability=int(profile.durability),
        liveliness=int(profile.liveliness), deadline_s=_seconds(profile.deadline),
        lifespan_s=_seconds(profile.lifespan),
        liveliness_lease_s=_seconds(profile.liveliness_lease_duration))


def main(args=None) -> int:
    """Run the recorder until SIGINT/SIGTERM (the bag is closed cleanly on destroy).

    A SingleThreadedExecutor: every callback is in one exclusive group anyway (module doc).
    """
    return run_node(RecorderNode, args=args, single_threaded=True)


if __name__ == "__main__":
    main()
