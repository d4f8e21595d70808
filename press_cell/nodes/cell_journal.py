"""Cell journal: the coordinator's record of each running cell, kept on disk step by step.

A coordinator killed mid-cell (SIGKILL, power cut) keeps the cell's record up to the last
finished step here; the next coordinator with the same node name reports it as interrupted.

Layout: one file per cell in the journal directory, named
``<cell id, %-quoted>@<node name, '/' as '.'>.cellrecord`` (e.g.
``cell1-cell-0003@cell1.coordinator.cellrecord``; a part longer than ``MAX_NAME_PART`` is cut
and ends in ``~<hash>``); files set aside after a crash go to
``<journal dir>/interrupted/``. Each write goes to a temporary file in the same directory,
is flushed and fsynced, then ``os.replace``-d over the cell's file (and the directory is
fsynced), so a kill at any instant leaves either the previous complete version or the new one.

File format (version 1), read by ``read_journal_file``:
- line 1: a JSON header, readable with ``head -1``: ``format``, ``version``, ``owner`` (node),
  ``cell_id``, ``step`` (the step in progress), ``recipe_name``, ``certificates`` (step names
  of the finished press steps), ``placed``, ``written_utc``, ``pid`` (of the writer),
  ``cdr_bytes`` and ``sha256`` of the body;
- then the body: the ``press_cell/msg/CellRecord`` serialised with ``rclpy.serialization``
  (CDR, the bytes a rosbag stores), holding certificates, placed components, recipe name/hash,
  cell id, start and ``failed_step`` = the step in progress.
A file whose header does not parse or whose body length or checksum does not match is reported
as unreadable (CDR alone would deserialise a truncated body silently).

Thread safety: one lock serialises every file operation of a journal (two press lines write
their cells' files from their own threads). Liveness: a journal holds an exclusive ``flock`` on
``.<node name>.lock`` in the directory for its lifetime (the kernel drops it when the process
dies, SIGKILL included); ``scan`` reports files only while it holds that lock, so a second
coordinator of the same name (another process, or another node in the same process) never
takes a live coordinator's cells for crashed ones.
"""

import datetime
import fcntl
import hashlib
import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

from rclpy.serialization import deserialize_message, serialize_message

from press_cell.msg import CellRecord

_LOG = logging.getLogger(__name__)

FORMAT = "press_cell cell journal"
VERSION = 1
SUFFIX = ".cellrecord"
INTERRUPTED_DIR = "interrupted"
MAX_NAME_PART = 100     # characters of a quoted cell id / node name in a file name (255 max)


class JournalError(Exception):
    """A journal file cannot be read (truncated, corrupted, wrong format)."""


def default_journal_dir() -> Path:
    """Return ``$ROS_HOME/press_cell/journal`` (``~/.ros/press_cell/journal`` without ROS_HOME)."""
    ros_home = os.environ.get("ROS_HOME")
    base = Path(ros_home).expanduser() if ros_home else Path.home() / ".ros"
    return base / "press_cell" / "journal"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _name_part(text: str) -> str:
    """Return ``text`` %-quoted for a file name; long ones shortened, with a hash kept unique."""
    quoted = quote(text, safe="")
    if len(quoted) <= MAX_NAME_PART:
        return quoted
    prefix = ""
    for char in text:
        piece = quote(char, safe="")
        if len(prefix) + len(piece) > MAX_NAME_PART - 20:
            break
        prefix += piece
    return f"{prefix}~{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def encode_journal(record: CellRecord, owner: str, step: str) -> bytes:
    """Return the journal file content (JSON header line + CDR body) of ``record``."""
    body = serialize_message(record)
    header = {
        "format": FORMAT, "version": VERSION, "owner": owner, "cell_id": record.cell_id,
        "step": step, "recipe_name": record.recipe_name,
        "certificates": [cert.step_name for cert in record.certificates],
        "placed": list(record.placed_components),
        "written_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "pid": os.getpid(), "cdr_bytes": len(body),
        "sha256": hashlib.sha256(body).hexdigest()}
    return json.dumps(header, sort_keys=True).encode() + b"\n" + body


def decode_journal(data: bytes) -> tuple[dict, CellRecord]:
    """Return (header, CellRecord) of a journal file's content; raise JournalError if broken."""
    line, newline, body = data.partition(b"\n")
    if not newline:
        raise JournalError(f"no header line ({len(data)} bytes; expected a JSON line, then "
                           "the CDR body)")
    try:
        header = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise JournalError(f"header is not JSON: {exc}") from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise JournalError(f"not a {FORMAT!r} file (header {line[:80]!r})")
    if header.get("version") != VERSION:
        raise JournalError(f"format version {header.get('version')!r}; this reader knows "
                           f"{VERSION}")
    if len(body) != header.get("cdr_bytes"):
        raise JournalError(f"body has {len(body)} bytes, header says {header.get('cdr_bytes')} "
                           "(truncated or appended)")
    if hashlib.sha256(body).hexdigest() != header.get("sha256"):
        raise JournalError("body checksum (sha256) does not match the header (corrupted)")
    try:
        record = deserialize_message(body, CellRecord)
    except Exception as exc:   # rclpy raises plain exceptions for bad CDR
        raise JournalError(f"body is not a CellRecord: {exc}") from exc
    return header, record


def read_journal_file(path) -> tuple[dict, CellRecord]:
    """Read one journal file; return (header, CellRecord) or raise JournalError / OSError."""
    return decode_journal(Path(path).read_bytes())


@dataclass(frozen=True)
class JournalEntry:
    """One leftover journal file found by ``CellJournal.scan``."""

    path: Path
    cell_id: str                # from the header; from the file name when unreadable
    step: str                   # the step in progress when the file was written ("" unreadable)
    record: CellRecord | None   # None when unreadable
    error: str = ""             # why the file could not be read ("" when it could)


class CellJournal:
    """The journal directory of one coordinator node (``owner`` = its fully qualified name)."""

    def __init__(self, directory, owner: str) -> None:
        """Use ``directory`` (created if missing; raise OSError if it cannot be)."""
        self.directory = Path(directory).expanduser()
        self.owner = owner
        self._owner_key = _name_part(owner.strip("/").replace("/", ".") or "coordinator")
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._owner_lock = open(self.directory / f".{self._owner_key}.lock", "a")  # noqa: SIM115
        self._owns = False
        self._take_owner_lock()

    def _take_owner_lock(self) -> bool:
        """Hold the owner's flock if no live journal of the same owner holds it."""
        if not self._owns and not self._owner_lock.closed:
            try:
                fcntl.flock(self._owner_lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                self._owns = True
            except BlockingIOError:
                pass
        return self._owns

    @property
    def sole_owner(self) -> bool:
        """Return whether no other live journal of this owner uses the directory."""
        with self._lock:
            return self._take_owner_lock()

    def close(self) -> None:
        """Release the owner's lock (a node being destroyed); the files stay."""
        with self._lock:
            self._owns = False
            self._owner_lock.close()

    @property
    def interrupted_dir(self) -> Path:
        """Return the directory crashed cells' files are moved to."""
        return self.directory / INTERRUPTED_DIR

    def path_for(self, cell_id: str) -> Path:
        """Return the journal file of ``cell_id``."""
        return self.directory / f"{_name_part(cell_id)}@{self._owner_key}{SUFFIX}"

    def write(self, record: CellRecord, step: str) -> Path:
        """Replace the cell's file atomically with ``record`` (``step`` = the step in progress)."""
        data = encode_journal(record, self.owner, step)
        path = self.path_for(record.cell_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            try:
                with open(tmp, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, path)
            except OSError:
                tmp.unlink(missing_ok=True)
                raise
            _fsync_dir(self.directory)
        return path

    def take_cell_index(self, minimum: int = 0) -> int:
        """Return this owner's next generated-cell index (at least ``minimum``) and count it.

        The count is kept in ``.<owner>.next_cell`` beside the journal (replaced atomically),
        so a restarted coordinator does not hand out again the ids of cells it already ran or
        that a crash interrupted. Raises OSError when the file cannot be written.
        """
        path = self.directory / f".{self._owner_key}.next_cell"
        with self._lock:
            try:
                stored = int(path.read_text(encoding="ascii").strip())
            except (OSError, ValueError):   # first cell, or a damaged count: start afresh
                stored = 0
            index = max(stored, int(minimum))
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="ascii") as handle:
                handle.write(f"{index + 1}\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        return index

    def remove(self, cell_id: str) -> bool:
        """Delete the cell's file (its record was published); return whether one existed."""
        with self._lock:
            try:
                self.path_for(cell_id).unlink()
            except FileNotFoundError:
                return False
            _fsync_dir(self.directory)
            return True

    def scan(self) -> list:
        """Return a ``JournalEntry`` per file of this owner: at start-up, the crashed cells.

        Return nothing while another live journal of the same owner holds the owner's lock
        (its files are running cells). Temporary files of interrupted writes are deleted.
        """
        entries = []
        with self._lock:
            if not self._take_owner_lock():
                _LOG.warning("journal %s: another coordinator named %s is running; its files "
                             "are left alone", self.directory, self.owner)
                return entries
            for tmp in self.directory.glob(f".*@{self._owner_key}{SUFFIX}.*.tmp"):
                tmp.unlink(missing_ok=True)
            for path in sorted(self.directory.glob(f"*@{self._owner_key}{SUFFIX}")):
                try:
                    header, record = read_journal_file(path)
                except (JournalError, OSError) as exc:
                    cell_id = unquote(path.name.split("@", 1)[0])
                    entries.append(JournalEntry(path, cell_id, "", None, str(exc)))
                    continue
                entries.append(JournalEntry(path, record.cell_id, str(header.get("step", "")),
                                            record))
        return entries

    def set_aside(self, path) -> Path:
        """Move a leftover file into ``interrupted/`` (never over an older one); return where."""
        path = Path(path)
        with self._lock:
            self.interrupted_dir.mkdir(exist_ok=True)
            stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S")
            target = self.interrupted_dir / path.name
            serial = 0
            while target.exists():
                serial += 1
                target = self.interrupted_dir / f"{path.stem}.{stamp}-{serial}{path.suffix}"
            os.replace(path, target)
            _fsync_dir(self.directory)
            _fsync_dir(self.interrupted_dir)
        return target


def interrupted_record(entry: JournalEntry) -> CellRecord:
    """Return the record of a crashed cell as the coordinator publishes it (passed=false)."""
    record = entry.record
    record.passed = False
    record.failed_step = entry.step
    record.verdict = (f"INTERRUPTED: the coordinator stopped during {entry.step or 'a step'}; "
                      "record kept up to the last finished step")
    return record
