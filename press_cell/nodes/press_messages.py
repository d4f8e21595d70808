"""Conversions between the press core's dataclasses and the press_cell / standard ROS messages.

Everything here is SI on both sides; no physics, no control law. Time stamps: the core tells
time in seconds on its own clock (a ``SimulatedClock`` for the simulator, monotonic time for a
real press); ``StampMapper`` turns those seconds into a ROS ``builtin_interfaces/Time`` (for the
simulator the simulated time itself, which is also what the node publishes on ``/clock``; for
a real press monotonic time shifted to the wall clock once, at configure).

The ``~/wrench`` convention: the press pushes the ram down onto the part, and the load cell
reports the compressive force as a positive number; the wrench is the force the ram exerts on
the part, expressed in the frame ``<node>_ram`` whose +z points up, so a compressive force of
``F`` N appears as ``force.z = -F``.
"""

import math
import time

from builtin_interfaces.msg import Time
from geometry_msgs.msg import WrenchStamped
from sensor_msgs.msg import FluidPressure

from press_cell.action import PressCycle
from press_cell.msg import (
    ControllerTiming,
    PressCertificate,
    PressSegment,
    PressState,
    PressTrace,
)
from press_cell.recipes.segments import Segment

_SEGMENT_KINDS = {PressSegment.KIND_RAMP: "ramp", PressSegment.KIND_HOLD: "hold",
                  PressSegment.KIND_RELEASE: "release"}
_KIND_NUMBERS = {name: number for number, name in _SEGMENT_KINDS.items()}


class SegmentKindError(ValueError):
    """A PressSegment carries a kind number that is not RAMP, HOLD or RELEASE."""


def time_from_seconds(stamp_s: float) -> Time:
    """Return ``stamp_s`` (s, >= 0) as a ``builtin_interfaces/Time`` (NaN or negative -> 0)."""
    if not (math.isfinite(stamp_s) and stamp_s > 0.0):
        return Time()
    sec = int(stamp_s)
    nanosec = min(int(round((stamp_s - sec) * 1e9)), 999_999_999)
    return Time(sec=sec, nanosec=nanosec)


def seconds_from_time(stamp: Time) -> float:
    """Return a ``builtin_interfaces/Time`` as seconds."""
    return stamp.sec + stamp.nanosec * 1e-9


class StampMapper:
    """Map core clock seconds to ROS time seconds: identity (sim) or monotonic -> wall."""

    def __init__(self, simulated: bool) -> None:
        """Fix the offset now; ``simulated`` keeps simulated time as it is."""
        self.offset_s = 0.0 if simulated else time.time() - time.monotonic()

    def to_ros_s(self, core_s: float) -> float:
        """Return the ROS time (s) of a core clock time (s)."""
        return core_s + self.offset_s

    def stamp(self, core_s: float) -> Time:
        """Return the ROS ``Time`` of a core clock time (s)."""
        return time_from_seconds(self.to_ros_s(core_s))


def segment_from_msg(msg: PressSegment) -> Segment:
    """Return the core ``Segment`` of a ``PressSegment`` (SI both sides).

    The nominal duration of a ramp or release is left at 0: the profile generator computes it
    from the level it starts at. Raise ``SegmentKindError`` for an unknown kind number.
    """
    kind = _SEGMENT_KINDS.get(msg.kind)
    if kind is None:
        raise SegmentKindError(f"segment kind {msg.kind} is unknown; allowed are "
                               f"{PressSegment.KIND_RAMP} (ramp), {PressSegment.KIND_HOLD} "
                               f"(hold), {PressSegment.KIND_RELEASE} (release)")
    rate = float(msg.rate) if kind != "hold" else 0.0
    duration = float(msg.duration) if kind == "hold" else 0.0
    return Segment(kind, float(msg.target_pressure), rate, duration, float(msg.tolerance))


def segment_to_msg(segment: Segment) -> PressSegment:
    """Return the ``PressSegment`` of a core ``Segment``."""
    return PressSegment(kind=_KIND_NUMBERS[segment.kind],
                        target_pressure=float(segment.target_pressure_pa),
                        rate=float(segment.rate_pa_s), duration=float(segment.duration_s),
                        tolerance=float(segment.tolerance_pa))


def timing_to_msg(timing, stamp: Time) -> ControllerTiming:
    """Return a ``ControllerTiming`` of a ``LoopTiming`` (same field names and units)."""
    msg = ControllerTiming()
    msg.header.stamp = stamp
    msg.rate = float(timing.rate)
    msg.realtime = bool(timing.realtime)
    msg.lockstep = bool(timing.lockstep)
    msg.cycles = int(timing.cycles)
    msg.overruns = int(timing.overruns)
    for name in ("dt_mean", "dt_max", "wake_latency_p50", "wake_latency_p99",
                 "wake_latency_p999", "wake_latency_max", "compute_time_p99"):
        setattr(msg, name, float(getattr(timing, name)))
    return msg


_CERT_TEXT = ("part_id", "step_name", "recipe_name", "recipe_hash", "calibration_id", "material")
_CERT_FLOAT = ("duration", "contact_area", "target_pressure", "peak_pressure", "peak_force",
               "mean_hold_pressure", "min_hold_pressure", "max_hold_pressure",
               "hold_pressure_std", "hold_duration", "overshoot", "overshoot_fraction",
               "settling_time", "time_out_of_band", "fraction_in_band", "ramp_rate_requested",
               "ramp_rate_achieved", "ramp_rate_error", "ram_travel", "thickness_start",
               "thickness_end", "thickness_change")


def certificate_to_msg(cert, stamps: StampMapper) -> PressCertificate:
    """Return the ``PressCertificate`` message of a core ``PressCertificate`` dataclass."""
    msg = PressCertificate()
    for name in _CERT_TEXT:
        setattr(msg, name, str(getattr(cert, name)))
    for name in _CERT_FLOAT:
        setattr(msg, name, float(getattr(cert, name)))
    msg.started = stamps.stamp(cert.started)
    msg.loop_timing = timing_to_msg(cert.loop_timing, stamps.stamp(cert.started))
    return msg


def certificate_to_dict(msg: PressCertificate) -> dict:
    """Return a ``PressCertificate`` message as a JSON-ready dict (SI, NaN kept as None)."""
    out = {}
    for name in _CERT_TEXT:
        out[name] = getattr(msg, name)
    out["started"] = seconds_from_time(msg.started)
    for name in _CERT_FLOAT:
        value = getattr(msg, name)
        out[name] = value if math.isfinite(value) else None
    timing = msg.loop_timing
    out["loop_timing"] = {
        name: (value if not isinstance(value, float) or math.isfinite(value) else None)
        for name, value in ((n, getattr(timing, n)) for n in (
            "rate", "realtime", "lockstep", "cycles", "overruns", "dt_mean", "dt_max",
            "wake_latency_p50", "wake_latency_p99", "wake_latency_p999", "wake_latency_max",
            "compute_time_p99"))}
    return out


def state_to_msg(snap, stamps: StampMapper, frame_id: str) -> PressState:
    """Return a ``PressState`` of a runtime ``PressSnapshot``."""
    msg = PressState()
    msg.header.stamp = stamps.stamp(snap.stamp_s)
    msg.header.frame_id = frame_id
    msg.phase = int(snap.phase)
    msg.segment_index = int(snap.segment_index)
    msg.pressure = float(snap.pressure_pa)
    msg.pressure_setpoint = float(snap.setpoint_pa)
    msg.force = float(snap.force_n)
    msg.ram_position = float(snap.ram_position_m)
    msg.valve_command = float(snap.valve_demand)
    msg.contact_area = float(snap.contact_area_m2)
    msg.relief_open = bool(snap.relief_open)
    msg.zone_leased = bool(snap.zone_leased)
    msg.fault_code = int(snap.fault_code)
    msg.fault_message = str(snap.fault_message)
    return msg


def pressure_to_msg(snap, stamps: StampMapper, frame_id: str,
                    variance_pa2: float = 0.0) -> FluidPressure:
    """Return the measured die pressure as ``sensor_msgs/FluidPressure`` (Pa)."""
    msg = FluidPressure()
    msg.header.stamp = stamps.stamp(snap.stamp_s)
    msg.header.frame_id = frame_id
    msg.fluid_pressure = float(snap.pressure_pa)
    msg.variance = float(variance_pa2)
    return msg


def wrench_to_msg(snap, stamps: StampMapper, frame_id: str) -> WrenchStamped:
    """Return the ram force as ``geometry_msgs/WrenchStamped``: compression is -z (N)."""
    msg = WrenchStamped()
    msg.header.stamp = stamps.stamp(snap.stamp_s)
    msg.header.frame_id = frame_id
    msg.wrench.force.z = -float(snap.force_n)
    return msg


def feedback_from_snapshot(snap) -> PressCycle.Feedback:
    """Return the action feedback of a runtime ``PressSnapshot``."""
    return PressCycle.Feedback(
        phase=int(snap.phase), segment_index=int(snap.segment_index),
        segment_count=max(0, int(snap.segment_count)),
        pressure=float(snap.pressure_pa), pressure_setpoint=float(snap.setpoint_pa),
        force=float(snap.force_n), ram_position=float(snap.ram_position_m),
        time_in_segment=float(snap.time_in_segment_s),
        time_remaining=float(snap.time_remaining_s))


def trace_to_msg(trace, segments, certificate_msg: PressCertificate, contact_area_m2: float,
                 loop_rate_hz: float, stamps: StampMapper) -> PressTrace:
    """Return the full-rate ``PressTrace`` of one cycle (core ``PressTrace`` + its profile).

    ``time`` stays in loop clock seconds (as the msg says); the header carries the ROS stamp
    of the last sample.
    """
    msg = PressTrace()
    if len(trace):
        msg.header.stamp = stamps.stamp(float(trace.time_s[-1]))
    msg.part_id = certificate_msg.part_id
    msg.step_name = certificate_msg.step_name
    msg.contact_area = float(contact_area_m2)
    msg.loop_rate = float(loop_rate_hz)
    msg.segments = [segment_to_msg(s) for s in segments]
    msg.time = trace.time_s.astype(float).tolist()
    msg.pressure_setpoint = trace.setpoint_pa.astype(float).tolist()
    msg.pressure = trace.pressure_pa.astype(float).tolist()
    msg.force = trace.force_n.astype(float).tolist()
    msg.ram_position = trace.ram_position_m.astype(float).tolist()
    msg.valve_command = trace.demand.astype(float).tolist()
    msg.phase = trace.phase.astype("uint8").tolist()
    msg.segment_index = trace.segment_index.astype("int32").tolist()
    msg.certificate = certificate_msg
    return msg
