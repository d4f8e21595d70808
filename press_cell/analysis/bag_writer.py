"""The recorder core: write a rosbag2 bag (MCAP by default, sqlite3 on request) without ROS.

The layout is the standard rosbag2 one, so ``ros2 bag play``/``info``, Foxglove and PlotJuggler
open the result: a directory with ``metadata.yaml`` (rosbag2 version 9, ``custom_data`` holding
the cell id, recipe name and hash, package version and calibration id) and one storage file.

Each topic carries the QoS profiles its publisher offered (``ros2 bag play`` re-offers them) and
its full message definition (MCAP schema or the sqlite3 ``message_definitions`` table), so the
bag is readable on a laptop that has never seen press_cell.

Crash behaviour (``kill -9``, power cut of the process): data is written in bounded pieces.
MCAP chunks are closed when they reach ``chunk_size_bytes`` or are ``max_chunk_age_s`` old
(wall time); sqlite3 runs in WAL mode and commits on the same schedule. ``metadata.yaml`` is
written at open and refreshed every ``metadata_interval_s``, atomically. After a crash, at most the
last chunk is lost; ``bag_reader.open_bag`` recovers the rest (an MCAP file without its summary is
scanned linearly; counts are taken from the data, not from the stale ``metadata.yaml``).
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mcap.writer import CompressionType
from mcap.writer import Writer as McapFileWriter
from rosbags.interfaces import (
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2.metadata import dump_qos_v9
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer
from rosbags.typesys.store import Typestore

import press_cell
from press_cell.analysis.bag_types import press_cell_typestore

logger = logging.getLogger(__name__)

ROSBAG2_VERSION = 9
CUSTOM_DATA_PREFIX = "press_cell."


class BagWriterError(Exception):
    """A bag could not be written (bad path, unknown topic or type, writer not open)."""


class StorageFormat(enum.StrEnum):
    """Storage plugins the writer offers (the ``storage_identifier`` in metadata.yaml)."""

    MCAP = "mcap"
    SQLITE3 = "sqlite3"


def qos_profile(*, reliable: bool, transient_local: bool, depth: int) -> Qos:
    """Build a keep-last QoS profile (durations left at the ROS default: unset)."""
    zero = QosTime(0, 0)
    return Qos(
        history=QosHistory.KEEP_LAST,
        depth=depth,
        reliability=QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
        durability=QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )


def _qos_time(seconds: float) -> QosTime:
    """Split a duration in s into (sec, nsec); 0 means the ROS default (unset)."""
    nanoseconds = int(round(seconds * 1e9))
    return QosTime(nanoseconds // 1_000_000_000, nanoseconds % 1_000_000_000)


def qos_from_policy_values(*, history: int, depth: int, reliability: int, durability: int,
                           liveliness: int = 1, deadline_s: float = 0.0,
                           lifespan_s: float = 0.0, liveliness_lease_s: float = 0.0) -> Qos:
    """Build a bag QoS profile from ROS policy numbers (the values of rclpy's policy enums).

    For the recorder node: ``rclpy`` ``QoSProfile.reliability.value`` etc. of each publisher
    from ``get_publishers_info_by_topic`` (durations in s). Raises ``ValueError`` for a number
    that is not a policy value.
    """
    return Qos(
        history=QosHistory(history), depth=int(depth),
        reliability=QosReliability(reliability), durability=QosDurability(durability),
        deadline=_qos_time(deadline_s), lifespan=_qos_time(lifespan_s),
        liveliness=QosLiveliness(liveliness),
        liveliness_lease_duration=_qos_time(liveliness_lease_s),
        avoid_ros_namespace_conventions=False,
    )


#: High-rate telemetry (rclpy ``qos_profile_sensor_data``).
SENSOR_DATA_QOS = qos_profile(reliable=False, transient_local=False, depth=5)
#: Latched status, records and action status: reliable, transient local, depth 1.
LATCHED_QOS = qos_profile(reliable=True, transient_local=True, depth=1)
#: Everything else (diagnostics, action feedback): reliable, volatile, depth 10.
RELIABLE_QOS = qos_profile(reliable=True, transient_local=False, depth=10)

_SENSOR_SUFFIXES = (
    "/press/state", "/press/timing", "/press/pressure", "/press/wrench", "/impedance/monitor",
)
_LATCHED_SUFFIXES = ("/press/status", "/_action/status", "/coordinator/cell_record")


def default_qos(topic: str) -> list[Qos]:
    """Return the QoS press_cell's publishers offer on ``topic`` (DESIGN.md, STYLE.md point 10)."""
    if topic.endswith(_SENSOR_SUFFIXES):
        return [SENSOR_DATA_QOS]
    if topic.endswith(_LATCHED_SUFFIXES):
        return [LATCHED_QOS]
    return [RELIABLE_QOS]


@dataclass(frozen=True)
class RecordingInfo:
    """What the bag is about; stored in metadata.yaml ``custom_data`` as ``press_cell.<field>``."""

    cell_id: str = ""
    recipe_name: str = ""
    recipe_hash: str = ""
    calibration_id: str = ""
    package_version: str = press_cell.__version__

    def as_custom_data(self) -> dict[str, str]:
        """Return the ``custom_data`` entries (string keys and values)."""
        return {f"{CUSTOM_DATA_PREFIX}{k}": str(v) for k, v in self.__dict__.items()}

    @classmethod
    def from_custom_data(cls, custom_data: dict[str, str] | None) -> RecordingInfo:
        """Rebuild the info from a bag's ``custom_data`` (missing keys become empty strings)."""
        custom_data = custom_data or {}
        values = {
            name: str(custom_data.get(f"{CUSTOM_DATA_PREFIX}{name}", ""))
            for name in cls.__dataclass_fields__
        }
        return cls(**values)


@dataclass
class _Topic:
    """One recorded topic (a rosbag2 connection)."""

    topic_id: int
    name: str
    msgtype: str
    qos: list[Qos]
    type_hash: str
    count: int = 0


def _qos_yaml(qos: list[Qos]) -> str:
    """Serialise QoS profiles as rosbag2 stores them in the storage file (a YAML string)."""
    return yaml.safe_dump(dump_qos_v9(qos), default_flow_style=False, sort_keys=False).strip()


class _McapStorage:
    """MCAP storage with bounded chunks (mcap library writer, ``ros2`` profile)."""

    suffix = ".mcap"

    def __init__(self, path: Path, chunk_size_bytes: int, compression: str) -> None:
        self._file = path.open("xb")
        compressions = {"zstd": CompressionType.ZSTD, "lz4": CompressionType.LZ4,
                        "none": CompressionType.NONE}
        if compression not in compressions:
            raise BagWriterError(
                f"MCAP compression {compression!r} is not supported; use one of "
                f"{sorted(compressions)}"
            )
        self._writer = McapFileWriter(
            self._file, chunk_size=chunk_size_bytes, compression=compressions[compression]
        )
        self._writer.start(profile="ros2", library=f"press_cell-{press_cell.__version__}")
        self._schema_ids: dict[str, int] = {}
        self._sequence: dict[int, int] = {}

    def add_topic(self, topic: _Topic, definition: str) -> None:
        """Register the schema (once per type) and the channel."""
        if topic.msgtype not in self._schema_ids:
            self._schema_ids[topic.msgtype] = self._writer.register_schema(
                name=topic.msgtype, encoding="ros2msg", data=definition.encode()
            )
        channel_id = self._writer.register_channel(
            topic=topic.name,
            message_encoding="cdr",
            schema_id=self._schema_ids[topic.msgtype],
            metadata={
                "offered_qos_profiles": _qos_yaml(topic.qos),
                "topic_type_hash": topic.type_hash,
            },
        )
        if channel_id != topic.topic_id:
            raise BagWriterError(f"MCAP channel id {channel_id} != topic id {topic.topic_id}")
        self._sequence[channel_id] = 0

    def write(self, topic_id: int, timestamp_ns: int, data: bytes) -> None:
        """Append one serialised message."""
        self._sequence[topic_id] += 1
        self._writer.add_message(
            channel_id=topic_id, log_time=timestamp_ns, data=data,
            publish_time=timestamp_ns, sequence=self._sequence[topic_id],
        )

    def flush(self) -> None:
        """Close the open chunk and hand it to the operating system."""
        self._writer.flush()

    def close(self, serialized_metadata: str) -> None:
        """Write the rosbag2 metadata record, the summary and the footer."""
        self._writer.add_metadata("rosbag2", {"serialized_metadata": serialized_metadata})
        self._writer.finish()
        self._file.close()


class _Sqlite3Storage:
    """rosbag2 sqlite3 storage (schema version 4) in WAL mode with periodic commits."""

    suffix = ".db3"

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path)
        # WAL keeps committed transactions intact when the process is killed mid-write
        # (rosbag2's "resilient" storage preset does the same).
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(Sqlite3Writer.SQLITE_SCHEMA)
        self._conn.commit()
        self._defined: set[str] = set()

    def add_topic(self, topic: _Topic, definition: str) -> None:
        """Store the message definition (once per type) and the topic row."""
        if topic.msgtype not in self._defined:
            self._conn.execute(
                "INSERT INTO message_definitions (topic_type, encoding,"
                " encoded_message_definition, type_description_hash) VALUES(?, ?, ?, ?)",
                (topic.msgtype, "ros2msg", definition, topic.type_hash),
            )
            self._defined.add(topic.msgtype)
        self._conn.execute(
            "INSERT INTO topics VALUES(?, ?, ?, ?, ?, ?)",
            (topic.topic_id, topic.name, topic.msgtype, "cdr", _qos_yaml(topic.qos),
             topic.type_hash),
        )
        self._conn.commit()

    def write(self, topic_id: int, timestamp_ns: int, data: bytes) -> None:
        """Insert one serialised message (committed by the next flush)."""
        self._conn.execute(
            "INSERT INTO messages (topic_id, timestamp, data) VALUES(?, ?, ?)",
            (topic_id, timestamp_ns, bytes(data)),
        )

    def flush(self) -> None:
        """Commit the open transaction."""
        self._conn.commit()

    def close(self, serialized_metadata: str) -> None:
        """Store the metadata row, checkpoint the WAL and leave a single .db3 file."""
        self._conn.execute(
            "INSERT INTO metadata(metadata_version, metadata) VALUES(?, ?)",
            (ROSBAG2_VERSION, serialized_metadata),
        )
        self._conn.commit()
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.execute("PRAGMA journal_mode=DELETE")
        self._conn.close()


class BagWriter:
    """Write press_cell telemetry to a rosbag2 bag; use as a context manager.

    ``write`` takes a message object of the typestore (``typestore.types[msgtype](...)``);
    ``write_raw`` takes CDR bytes as received from a ROS subscription (``raw=True``).
    Timestamps are receive times in ns since the epoch, as ``ros2 bag record`` stores them.
    Not thread-safe: call it from one thread (or hold a lock), e.g. the recorder's callbacks
    in a mutually exclusive callback group.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        storage: StorageFormat | str = StorageFormat.MCAP,
        info: RecordingInfo | None = None,
        typestore: Typestore | None = None,
        chunk_size_bytes: int = 256 * 1024,
        max_chunk_age_s: float = 1.0,
        metadata_interval_s: float = 5.0,
        compression: str = "zstd",
    ) -> None:
        try:
            self.storage_format = StorageFormat(storage)
        except ValueError:
            raise BagWriterError(
                f"unknown storage {storage!r}; use one of {[s.value for s in StorageFormat]}"
            ) from None
        if chunk_size_bytes < 1024:
            raise BagWriterError(f"chunk_size_bytes must be >= 1024, got {chunk_size_bytes}")
        if not max_chunk_age_s > 0.0:
            raise BagWriterError(f"max_chunk_age_s must be > 0, got {max_chunk_age_s}")
        self.path = Path(path)
        self.info = info or RecordingInfo()
        self.typestore = typestore or press_cell_typestore()
        self._chunk_size_bytes = chunk_size_bytes
        self._max_chunk_age_s = max_chunk_age_s
        self._metadata_interval_s = metadata_interval_s
        self._compression = compression
        self._storage: _McapStorage | _Sqlite3Storage | None = None
        self._topics: dict[str, _Topic] = {}
        self._first_ns: int | None = None
        self._last_ns = 0
        self._last_flush = 0.0
        self._last_metadata = 0.0

    # -- life cycle -------------------------------------------------------------------------
    def open(self) -> BagWriter:
        """Create the bag directory and the storage file; write a provisional metadata.yaml."""
        if self.path.exists():
            raise BagWriterError(f"{self.path} exists already; a bag is never overwritten")
        self.path.mkdir(parents=True)
        file_path = self.path / f"{self.path.name}{self._suffix()}"
        if self.storage_format is StorageFormat.MCAP:
            self._storage = _McapStorage(file_path, self._chunk_size_bytes, self._compression)
        else:
            self._storage = _Sqlite3Storage(file_path)
        self._last_flush = self._last_metadata = time.monotonic()
        self._write_metadata_yaml()
        logger.info("recording %s (%s)", self.path, self.storage_format.value)
        return self

    def close(self) -> None:
        """Finish the storage file and write the final metadata.yaml."""
        if self._storage is None:
            return
        info = self._metadata()["rosbag2_bagfile_information"]
        self._storage.close(yaml.safe_dump(info, sort_keys=False))
        self._storage = None
        self._write_metadata_yaml()
        logger.info("closed %s: %d messages", self.path, self.message_count)

    def __enter__(self) -> BagWriter:
        """Open the bag."""
        return self.open()

    def __exit__(self, *exc: object) -> None:
        """Close the bag (also after an exception: what was written stays readable)."""
        self.close()

    # -- topics and messages --------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, qos: list[Qos] | None = None) -> None:
        """Register ``topic`` with ``msgtype`` (e.g. ``press_cell/msg/PressState``).

        ``qos`` are the profiles the publishers offered; default: ``default_qos(topic)``.
        """
        storage = self._require_open()
        if topic in self._topics:
            raise BagWriterError(f"topic {topic!r} is already registered")
        if msgtype not in self.typestore.fielddefs:
            raise BagWriterError(
                f"message type {msgtype!r} of topic {topic!r} is unknown to the typestore"
            )
        definition, _ = self.typestore.generate_msgdef(msgtype, ros_version=2)
        entry = _Topic(
            topic_id=len(self._topics) + 1, name=topic, msgtype=msgtype,
            qos=list(qos) if qos is not None else default_qos(topic),
            type_hash=self.typestore.hash_rihs01(msgtype),
        )
        storage.add_topic(entry, definition)
        self._topics[topic] = entry

    def write(self, topic: str, timestamp_ns: int, message: Any) -> None:
        """Serialise ``message`` (a typestore message object) and append it."""
        entry = self._topics.get(topic)
        if entry is None:
            raise BagWriterError(f"topic {topic!r} was not added (call add_topic first)")
        data = self.typestore.serialize_cdr(message, entry.msgtype)
        self._append(entry, timestamp_ns, data)

    def write_raw(self, topic: str, timestamp_ns: int, data: bytes) -> None:
        """Append an already serialised CDR message."""
        entry = self._topics.get(topic)
        if entry is None:
            raise BagWriterError(f"topic {topic!r} was not added (call add_topic first)")
        self._append(entry, timestamp_ns, data)

    def flush(self) -> None:
        """Commit everything written so far to the file (closes the open chunk)."""
        self._require_open().flush()
        self._last_flush = time.monotonic()

    @property
    def message_count(self) -> int:
        """Messages written so far, all topics."""
        return sum(t.count for t in self._topics.values())

    # -- internals ---------------------------------------------------------------------------
    def _append(self, entry: _Topic, timestamp_ns: int, data: bytes) -> None:
        """Write, count, and close the chunk or refresh metadata.yaml when they are due."""
        storage = self._require_open()
        storage.write(entry.topic_id, timestamp_ns, data)
        entry.count += 1
        if self._first_ns is None or timestamp_ns < self._first_ns:
            self._first_ns = timestamp_ns
        self._last_ns = max(self._last_ns, timestamp_ns)
        self.flush_if_due()

    def flush_if_due(self) -> bool:
        """Close the open chunk when it is ``max_chunk_age_s`` old; return True if it did.

        Called on every write; a recorder should also call it from a timer so a chunk does not
        stay in memory when messages stop arriving.
        """
        storage = self._require_open()
        now = time.monotonic()
        if now - self._last_flush < self._max_chunk_age_s:
            return False
        storage.flush()
        self._last_flush = now
        if now - self._last_metadata >= self._metadata_interval_s:
            self._write_metadata_yaml()
            self._last_metadata = now
        return True

    def _require_open(self) -> _McapStorage | _Sqlite3Storage:
        if self._storage is None:
            raise BagWriterError(f"bag {self.path} is not open")
        return self._storage

    def _suffix(self) -> str:
        return ".mcap" if self.storage_format is StorageFormat.MCAP else ".db3"

    def _metadata(self) -> dict:
        """Build metadata.yaml content (rosbag2 version 9) from what was written so far."""
        start_ns = self._first_ns or 0
        duration_ns = max(0, self._last_ns - start_ns)
        count = self.message_count
        file_name = f"{self.path.name}{self._suffix()}"
        return {
            "rosbag2_bagfile_information": {
                "version": ROSBAG2_VERSION,
                "storage_identifier": self.storage_format.value,
                "duration": {"nanoseconds": duration_ns},
                "starting_time": {"nanoseconds_since_epoch": start_ns},
                "message_count": count,
                "topics_with_message_count": [
                    {
                        "topic_metadata": {
                            "name": t.name,
                            "type": t.msgtype,
                            "serialization_format": "cdr",
                            "offered_qos_profiles": dump_qos_v9(t.qos),
                            "type_description_hash": t.type_hash,
                        },
                        "message_count": t.count,
                    }
                    for t in self._topics.values()
                ],
                "compression_format": "",
                "compression_mode": "",
                "relative_file_paths": [file_name],
                "files": [
                    {
                        "path": file_name,
                        "starting_time": {"nanoseconds_since_epoch": start_ns},
                        "duration": {"nanoseconds": duration_ns},
                        "message_count": count,
                    }
                ],
                "custom_data": self.info.as_custom_data(),
                "ros_distro": os.environ.get("ROS_DISTRO", "kilted"),
            }
        }

    def _write_metadata_yaml(self) -> None:
        """Replace metadata.yaml atomically (readers never see a half-written file)."""
        tmp = self.path / "metadata.yaml.tmp"
        tmp.write_text(yaml.safe_dump(self._metadata(), sort_keys=False))
        os.replace(tmp, self.path / "metadata.yaml")
