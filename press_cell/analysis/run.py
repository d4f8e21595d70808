"""Notebook API: ``load_run(path) -> Run``, a recorded run as numpy arrays, no ROS needed.

    from press_cell.analysis.run import load_run
    run = load_run("runs/cell_0042")
    run.press_state["pressure_pa"]          # numpy array, Pa
    for result in run.cycle_results():     # one per press cycle
        print(result.certificate.mean_hold_pressure)

Columns are plain dicts of equal-length numpy arrays (pandas is not a dependency), times in s
since the epoch (the message header stamp; the bag receive time where the header is unset) as
``time_s``, the same in integer ns as ``time_ns`` (exact), and ``receive_time_s``.
A bag recorded without press_cell types (``ros2 bag record`` of FluidPressure/WrenchStamped)
loads too: ``press_state`` is then ``None`` and the cycles come from the pressure trace alone.
``PressTrace`` messages (``.../press/trace``: every loop sample of a cycle, the profile as laid
out with its tolerances, and the live certificate) load as ``Run.traces``; the metrics prefer
them to the decimated PressState telemetry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from press_cell.analysis.bag_reader import Bag, BagReadError, TopicInfo, open_bag
from press_cell.analysis.bag_writer import RecordingInfo
from press_cell.analysis.cdr_columns import decode_columns
from press_cell.control.certificate import PressCertificate, PressTrace
from press_cell.control.loop_runner import LoopTiming
from press_cell.recipes.segments import Segment

logger = logging.getLogger(__name__)

PRESS_STATE = "press_cell/msg/PressState"
CONTROLLER_TIMING = "press_cell/msg/ControllerTiming"
IMPEDANCE_SPECTRUM = "press_cell/msg/ImpedanceSpectrum"
IMPEDANCE_SAMPLE = "press_cell/msg/ImpedanceSample"
DEVICE_STATUS = "press_cell/msg/DeviceStatus"
CELL_RECORD = "press_cell/msg/CellRecord"
FLUID_PRESSURE = "sensor_msgs/msg/FluidPressure"
WRENCH_STAMPED = "geometry_msgs/msg/WrenchStamped"
DIAGNOSTIC_ARRAY = "diagnostic_msgs/msg/DiagnosticArray"
PRESS_TRACE = "press_cell/msg/PressTrace"

#: PressSegment.kind -> ``Segment.kind``.
_SEGMENT_KINDS = {0: "ramp", 1: "hold", 2: "release"}

#: Messages decoded per batch: bounds the memory held as raw bytes while loading.
BATCH_MESSAGES = 100_000

#: PressState field -> Run column name (SI unit in the name).
_PRESS_STATE_COLUMNS = {
    "phase": "phase", "segment_index": "segment_index", "pressure": "pressure_pa",
    "pressure_setpoint": "setpoint_pa", "force": "force_n", "ram_position": "ram_position_m",
    "valve_command": "valve_command", "contact_area": "contact_area_m2",
    "relief_open": "relief_open", "fault_code": "fault_code",
}
_TIMING_COLUMNS = {
    "rate": "rate_hz", "realtime": "realtime", "lockstep": "lockstep", "cycles": "cycles",
    "overruns": "overruns", "dt_mean": "dt_mean_s", "dt_max": "dt_max_s",
    "wake_latency_p50": "wake_latency_p50_s", "wake_latency_p99": "wake_latency_p99_s",
    "wake_latency_p999": "wake_latency_p999_s", "wake_latency_max": "wake_latency_max_s",
    "compute_time_p99": "compute_time_p99_s",
}
_MONITOR_COLUMNS = {
    "frequency": "frequency_hz", "z_real": "z_real_ohm", "z_imag": "z_imag_ohm",
    "modulus": "modulus_ohm", "r_interface": "r_interface_ohm",
    "stack_pressure": "stack_pressure_pa",
}
_STATUS_COLUMNS = {"state": "state", "fault_code": "fault_code", "device": "device",
                   "message": "message"}


@dataclass(frozen=True)
class Spectrum:
    """One impedance spectrum (frequency descending as measured)."""

    time_s: float
    cell_id: str
    frequency_hz: np.ndarray
    z_real_ohm: np.ndarray
    z_imag_ohm: np.ndarray
    amplitude_v: float
    stack_pressure_pa: float
    overload: bool


@dataclass(frozen=True)
class RecordedTrace:
    """One ``PressTrace`` message: every loop sample of a cycle, its profile, live certificate."""

    receive_time_s: float                # s since the epoch, when the recorder received it
    part_id: str
    step_name: str
    contact_area_m2: float               # m^2
    loop_rate_hz: float                  # Hz
    segments: tuple                      # ``recipes.segments.Segment``, as laid out
    trace: PressTrace                    # the samples (time in s of the loop clock)
    live_certificate: PressCertificate   # as the press computed it at the end of the cycle


@dataclass
class Run:
    """A recorded run, loaded into numpy columns; see the module docstring."""

    path: Path
    storage: str
    info: RecordingInfo
    topics: dict[str, TopicInfo]
    problems: list[str]
    start_s: float
    end_s: float
    press_state: dict[str, np.ndarray] | None = None
    pressure: dict[str, np.ndarray] | None = None       # FluidPressure: time_s, pressure_pa
    wrench: dict[str, np.ndarray] | None = None         # WrenchStamped: time_s, force_n, ...
    timing: dict[str, np.ndarray] | None = None
    monitor: dict[str, np.ndarray] | None = None
    status: dict[str, np.ndarray] | None = None
    spectra: list[Spectrum] = field(default_factory=list)
    cell_records: list = field(default_factory=list)   # rosbags CellRecord objects
    diagnostics: list[tuple[float, str, int, str]] = field(default_factory=list)
    traces: list[RecordedTrace] = field(default_factory=list)
    chosen_topics: dict[str, str] = field(default_factory=dict)

    @property
    def has_press_types(self) -> bool:
        """Return True when the bag holds press_cell PressState telemetry."""
        return self.press_state is not None and len(self.press_state["time_s"]) > 0

    def cycles(self):
        """Return the press cycles found in the run (``cycles.Cycle`` list)."""
        from press_cell.analysis.cycles import find_cycles

        return find_cycles(self)

    def cycle_results(self, **kwargs):
        """Return per-cycle metrics (``metrics.CycleResult`` list); kwargs go to ``metrics``."""
        from press_cell.analysis.metrics import run_metrics

        return run_metrics(self, **kwargs)


def _stamp_ns(cols: dict[str, np.ndarray], receive_ns: np.ndarray) -> np.ndarray:
    """Return header stamps in ns; fall back to receive time where the header is unset."""
    sec = cols.get("header.stamp.sec")
    if sec is None:
        return receive_ns
    stamp_ns = sec.astype(np.int64) * 1_000_000_000 + cols["header.stamp.nanosec"].astype(np.int64)
    return np.where(stamp_ns == 0, receive_ns, stamp_ns)


class _ColumnCollector:
    """Collect raw messages of one topic and decode them in bounded batches."""

    def __init__(self, bag: Bag, topic: str, mapping: dict[str, str]) -> None:
        self.bag, self.topic, self.mapping = bag, topic, mapping
        self.msgtype = bag.topics[topic].msgtype
        self.raws: list[bytes] = []
        self.receive: list[int] = []
        self.parts: list[dict[str, np.ndarray]] = []
        self.undecodable = 0            # messages left out because they do not decode
        self.first_undecodable = ""     # the reason of the first one

    def extend(self, stamps: list[int], datas: list[bytes]) -> None:
        self.raws.extend(datas)
        self.receive.extend(stamps)
        if len(self.raws) >= BATCH_MESSAGES:
            self._decode()

    def _decode(self) -> None:
        if not self.raws:
            return
        bad: list = []
        cols = decode_columns(self.bag.typestore, self.msgtype, self.raws, undecodable=bad)
        receive = np.asarray(self.receive, dtype=np.int64)
        if bad:     # a damaged bag: leave those rows out, load_run names them in the problems
            self.undecodable += len(bad)
            self.first_undecodable = self.first_undecodable or bad[0][1]
            keep = np.ones(len(self.raws), dtype=bool)
            keep[[i for i, _ in bad]] = False
            cols = {k: v[keep] for k, v in cols.items()}
            receive = receive[keep]
        part = {new: cols[old] for old, new in self.mapping.items()}
        # Through integer ns, as rclpy's Time.nanoseconds * 1e-9: one rounding, not two.
        part["time_ns"] = _stamp_ns(cols, receive)
        part["time_s"] = part["time_ns"] * 1e-9
        part["receive_time_s"] = receive * 1e-9
        self.parts.append(part)
        self.raws, self.receive = [], []

    def result(self) -> dict[str, np.ndarray]:
        self._decode()
        if not self.parts:
            names = [*self.mapping.values(), "time_ns", "time_s", "receive_time_s"]
            return {name: np.empty(0) for name in names}
        # Concatenate column by column, dropping the parts as we go: peak memory is the
        # result plus one column, not twice the result.
        columns = {k: np.concatenate([p.pop(k) for p in self.parts]) for k in list(self.parts[0])}
        self.parts = []
        receive = columns["receive_time_s"]
        if len(receive) > 1 and (np.diff(receive) < 0).any():
            order = np.argsort(receive, kind="stable")
            columns = {k: v[order] for k, v in columns.items()}
        return columns


#: Record-type key -> the topic suffix of the device that publishes it in a press_cell cell; a
#: bag of a whole cell has e.g. a DeviceStatus topic per node, and the press's is the one meant.
_PREFERRED_SUFFIX = {
    PRESS_STATE: "/press/state", CONTROLLER_TIMING: "/press/timing",
    DEVICE_STATUS: "/press/status", FLUID_PRESSURE: "/press/pressure",
    WRENCH_STAMPED: "/press/wrench", PRESS_TRACE: "/press/trace",
    IMPEDANCE_SAMPLE: "/impedance/monitor",
}


def _choose(bag: Bag, msgtype: str, namespace: str | None, problems: list[str]) -> str | None:
    """Pick the topic of ``msgtype`` (under ``namespace`` when given); note ambiguity.

    Among several, the press_cell device's topic (``_PREFERRED_SUFFIX``) is taken silently
    when there is exactly one.
    """
    names = [t for t in bag.topics_of_type(msgtype) if namespace is None or t.startswith(namespace)]
    if not names:
        return None
    if msgtype not in bag.typestore.fielddefs:
        return None  # bag.problems already says that the type cannot be decoded
    suffix = _PREFERRED_SUFFIX.get(msgtype)
    preferred = [t for t in names if suffix is not None and t.endswith(suffix)]
    if len(preferred) == 1:
        return preferred[0]
    if len(names) > 1:
        problems.append(f"several {msgtype} topics {names}; analysed {names[0]} "
                        "(pass namespace= to choose)")
    return names[0]


def load_run(path: str | Path, namespace: str | None = None,
             progress: Callable[[int, int], None] | None = None) -> Run:
    """Load a bag (press_cell or plain ``ros2 bag record``) into a ``Run``.

    ``namespace`` (e.g. ``"/cell_a"``) selects one cell when several were recorded.
    ``progress(done, total)`` is called after each batch with the messages read so far and
    the messages of the topics being read. Raises ``BagReadError`` when the bag cannot be read
    at all.
    """
    with open_bag(path) as bag:
        problems = list(bag.problems)
        chosen = {
            key: _choose(bag, msgtype, namespace, problems)
            for key, msgtype in (
                ("press_state", PRESS_STATE), ("timing", CONTROLLER_TIMING),
                ("monitor", IMPEDANCE_SAMPLE), ("status", DEVICE_STATUS),
                ("pressure", FLUID_PRESSURE), ("wrench", WRENCH_STAMPED),
            )
        }
        mappings = {
            "press_state": _PRESS_STATE_COLUMNS, "timing": _TIMING_COLUMNS,
            "monitor": _MONITOR_COLUMNS, "status": _STATUS_COLUMNS,
            "pressure": {"fluid_pressure": "pressure_pa", "variance": "variance_pa2"},
            "wrench": {f"wrench.{a}.{c}": f"{'force' if a == 'force' else 'torque'}_{c}_"
                       f"{'n' if a == 'force' else 'nm'}"
                       for a in ("force", "torque") for c in "xyz"},
        }
        collectors = {
            key: _ColumnCollector(bag, topic, mappings[key])
            for key, topic in chosen.items() if topic is not None
        }
        by_topic = {c.topic: c for c in collectors.values()}
        decodable = bag.typestore.fielddefs
        spectrum_topics = {t for t in bag.topics_of_type(IMPEDANCE_SPECTRUM)
                           if (namespace is None or t.startswith(namespace))
                           and IMPEDANCE_SPECTRUM in decodable}
        record_topics = {t for t in bag.topics_of_type(CELL_RECORD)
                         if (namespace is None or t.startswith(namespace))
                         and CELL_RECORD in decodable}
        diag_topics = set(bag.topics_of_type(DIAGNOSTIC_ARRAY))
        trace_topic = _choose(bag, PRESS_TRACE, namespace, problems)
        trace_topics = {trace_topic} if trace_topic else set()
        wanted = set(by_topic) | spectrum_topics | record_topics | diag_topics | trace_topics
        total = sum(bag.topics[t].message_count for t in wanted)
        done = 0
        traces: list[RecordedTrace] = []
        spectra: list[Spectrum] = []
        records: list = []
        diagnostics: list[tuple[float, str, int, str]] = []
        undecodable: set[str] = set()
        for batch in bag.batches(wanted):
            if progress is not None:
                done += sum(len(stamps) for stamps, _ in batch.values())
                progress(done, max(total, done))
            for topic, (stamps, datas) in batch.items():
                collector = by_topic.get(topic)
                if collector is not None:
                    collector.extend(stamps, datas)
                    continue
                for timestamp, data in zip(stamps, datas, strict=True):
                    try:
                        msg = bag.deserialize(topic, data)
                    except Exception as exc:  # noqa: BLE001 - one bad message must not stop
                        if topic not in undecodable:
                            problems.append(f"{topic}: a message does not decode ({exc})")
                            undecodable.add(topic)
                        continue
                    if topic in spectrum_topics:
                        spectra.append(_spectrum(msg, timestamp))
                    elif topic in record_topics:
                        records.append(msg)
                    elif topic in trace_topics:
                        traces.append(_recorded_trace(msg, timestamp))
                    else:
                        for status in msg.status:  # keep WARN (1), ERROR (2), STALE (3)
                            if int(status.level) != 0:
                                diagnostics.append((timestamp * 1e-9, status.name,
                                                    int(status.level), status.message))
        spectra.sort(key=lambda sp: sp.time_s)
        traces.sort(key=lambda tr: tr.receive_time_s)
        columns = {key: c.result() for key, c in collectors.items()}
        for collector in collectors.values():
            if collector.undecodable:
                problems.append(f"{collector.topic}: {collector.undecodable} message(s) do not "
                                f"decode and were left out (first: "
                                f"{collector.first_undecodable})")
        problems.extend(p for p in bag.problems if p not in problems)
        run = Run(
            path=Path(path), storage=bag.storage, info=bag.info, topics=dict(bag.topics),
            problems=problems, start_s=bag.start_ns * 1e-9, end_s=bag.end_ns * 1e-9,
            spectra=spectra, cell_records=records, diagnostics=diagnostics, traces=traces,
            chosen_topics={k: v for k, v in chosen.items() if v is not None}
            | ({"trace": trace_topic} if trace_topic else {}),
            **columns,
        )
    if run.wrench is not None:
        w = run.wrench
        w["force_n"] = np.sqrt(w["force_x_n"] ** 2 + w["force_y_n"] ** 2 + w["force_z_n"] ** 2)
    if run.press_state is None and run.pressure is None and not run.traces:
        run.problems.append("no PressState and no FluidPressure topic: no press cycles to analyse")
    logger.info("loaded %s: %d topics, %d problems", path, len(run.topics), len(run.problems))
    return run


def _spectrum(msg, timestamp_ns: int) -> Spectrum:
    """Convert an ImpedanceSpectrum message."""
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    return Spectrum(
        time_s=stamp if stamp > 0 else timestamp_ns * 1e-9,
        cell_id=msg.cell_id,
        frequency_hz=np.asarray(msg.frequency, dtype=float),
        z_real_ohm=np.asarray(msg.z_real, dtype=float),
        z_imag_ohm=np.asarray(msg.z_imag, dtype=float),
        amplitude_v=float(msg.amplitude),
        stack_pressure_pa=float(msg.stack_pressure),
        overload=bool(msg.overload),
    )


def _time_s(stamp) -> float:
    """Return a ``builtin_interfaces/Time`` in s."""
    return stamp.sec + stamp.nanosec * 1e-9


def certificate_from_message(msg) -> PressCertificate:
    """Convert a ``PressCertificate`` message (rosbags object) into the control dataclass."""
    names = [f for f in PressCertificate.__dataclass_fields__ if f not in ("started",
                                                                            "loop_timing")]
    defaults = LoopTiming()
    # Each field keeps the Python type of its default (bool, int or float).
    loop_timing = LoopTiming(**{f: type(getattr(defaults, f))(getattr(msg.loop_timing, f))
                                for f in LoopTiming.__dataclass_fields__})
    return PressCertificate(started=_time_s(msg.started), loop_timing=loop_timing,
                            **{f: getattr(msg, f) for f in names})


def _recorded_trace(msg, timestamp_ns: int) -> RecordedTrace:
    """Convert a ``PressTrace`` message (rosbags object)."""
    segments = tuple(
        Segment(_SEGMENT_KINDS.get(int(s.kind), "hold"), float(s.target_pressure),
                float(s.rate), float(s.duration), float(s.tolerance))
        for s in msg.segments)
    trace = PressTrace(
        time_s=np.asarray(msg.time, dtype=float),
        setpoint_pa=np.asarray(msg.pressure_setpoint, dtype=float),
        pressure_pa=np.asarray(msg.pressure, dtype=float),
        force_n=np.asarray(msg.force, dtype=float),
        ram_position_m=np.asarray(msg.ram_position, dtype=float),
        demand=np.asarray(msg.valve_command, dtype=float),
        phase=np.asarray(msg.phase).astype(int),
        segment_index=np.asarray(msg.segment_index).astype(int),
    )
    return RecordedTrace(
        receive_time_s=timestamp_ns * 1e-9, part_id=msg.part_id, step_name=msg.step_name,
        contact_area_m2=float(msg.contact_area), loop_rate_hz=float(msg.loop_rate),
        segments=segments, trace=trace, live_certificate=certificate_from_message(msg.certificate),
    )


__all__ = ["BagReadError", "RecordedTrace", "Run", "Spectrum", "certificate_from_message",
           "load_run"]
