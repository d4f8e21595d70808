"""Pick-and-place sequence: move one component from a tray slot into a station (the press die).

Stages, in order: APPROACH (up to the safe height, over the source, down to the approach
height) -> GRASP (slow descent, suction on) -> VERIFY_GRASP (vacuum switch: no seal means
the slot is empty) -> LIFT (up to the safe height; a part that stayed behind is a failed
grasp) -> TRANSFER (at the safe height to above the target; a part lost on the way is a
drop) -> PLACE (down to the target) -> RELEASE (suction off) -> RETREAT (up to the safe
height and, if inside the press zone, out to the park pose).

Safety rules the sequence keeps:

* the gripper opens only within ``station_tolerance_m`` of a layout slot, never elsewhere;
* before any move whose straight path touches the press-zone box the sequence asks
  ``zone_gate.zone_entry_permit()``; refused -> the part goes back to its slot and the result
  is ZONE_DENIED, the arm never entered the zone; after the arm has left the zone it calls
  ``zone_gate.zone_exit()`` once;
* cancel (from any thread) stops the arm at once, keeps the gripper closed and retreats
  straight up to the safe height (then out of the press zone if it was inside);
* every failure ends with the arm retreated, when the arm can still move.

The sequence is pure: no rclpy; the arm node drives it and turns results into action results.
"""

import enum
import logging
import threading
from dataclasses import dataclass
from typing import Callable, Protocol

from press_cell.hardware.arm_driver import ArmDriver, ArmError, Pose
from press_cell.recipes.stations import (
    CellLayout,
    ComponentKind,
    UnknownStationError,
)

_LOG = logging.getLogger(__name__)

__all__ = [
    "ComponentKind",
    "OpenZoneGate",
    "PlacementOutcome",
    "PlacementRequest",
    "PlacementResult",
    "PlacementSequence",
    "PlacementStage",
    "ZoneGate",
]


class PlacementStage(enum.Enum):
    """Motion stage reported as feedback."""

    APPROACH = "approach"
    GRASP = "grasp"
    VERIFY_GRASP = "verify_grasp"
    LIFT = "lift"
    TRANSFER = "transfer"
    PLACE = "place"
    RELEASE = "release"
    RETREAT = "retreat"


class PlacementOutcome(enum.IntEnum):
    """Result code of a placement (values are stable: they go into action results)."""

    SUCCESS = 0
    EMPTY_SOURCE = 1
    UNKNOWN_STATION = 2
    GRASP_FAILED = 3
    PART_DROPPED = 4
    CANCELED = 5
    MOTION_FAILED = 6
    ZONE_DENIED = 7


@dataclass(frozen=True)
class PlacementRequest:
    """Move component ``component_id`` of ``kind`` from ``source_slot`` to ``target_station``.

    Slots are ``"station/index"``; a single-slot station may be named alone.
    """

    kind: ComponentKind
    component_id: str
    source_slot: str
    target_station: str


@dataclass(frozen=True)
class PlacementResult:
    """How a placement ended."""

    outcome: PlacementOutcome
    message: str
    final_pose: Pose | None            # measured tool pose at the end, None if unreadable
    last_stage: PlacementStage | None  # stage reached on success; the failing stage otherwise

    @property
    def success(self) -> bool:
        """Return whether the component was placed."""
        return self.outcome == PlacementOutcome.SUCCESS


class ZoneGate(Protocol):
    """Lease on the press-zone volume, granted by the press (kept abstract here)."""

    def zone_entry_permit(self) -> bool:
        """Return whether the arm may enter the press zone now (takes the lease)."""

    def zone_exit(self) -> None:
        """Tell the press the arm has left the zone (returns the lease)."""


class OpenZoneGate:
    """A gate that always permits entry: for cells without a press interlock, and tests."""

    def zone_entry_permit(self) -> bool:
        """Permit entry."""
        return True

    def zone_exit(self) -> None:
        """Do nothing."""


class _Abort(Exception):
    def __init__(self, outcome: PlacementOutcome, message: str) -> None:
        super().__init__(message)
        self.outcome = outcome


class _Canceled(Exception):
    pass


class PlacementSequence:
    """Run placements on one arm; one ``run`` at a time, ``cancel`` from any thread."""

    def __init__(
        self,
        arm: ArmDriver,
        layout: CellLayout,
        zone_gate: ZoneGate | None = None,
        on_feedback: Callable[[PlacementStage, Pose], None] | None = None,
        travel_speed_m_s: float = 0.10,   # moves at the safe height [est]
        fine_speed_m_s: float = 0.02,     # final approach, descent, lift [est]
        motion_timeout_s: float = 30.0,   # longest single move before it counts as stalled
        poll_s: float = 0.05,             # feedback / cancel check period during moves
        station_tolerance_m: float = 0.005,  # how near a slot the gripper may open
        arrival_tolerance_m: float = 0.001,  # a finished move must end this near its target
    ) -> None:
        if not (travel_speed_m_s > 0.0 and fine_speed_m_s > 0.0):
            raise ValueError("speeds must be > 0 m/s, got "
                             f"travel {travel_speed_m_s!r}, fine {fine_speed_m_s!r}")
        if not (motion_timeout_s > 0.0 and poll_s > 0.0):
            raise ValueError(f"motion_timeout_s and poll_s must be > 0 s, got "
                             f"{motion_timeout_s!r}, {poll_s!r}")
        self.arm = arm
        self.layout = layout
        self.zone_gate = zone_gate or OpenZoneGate()
        self.on_feedback = on_feedback
        self.travel_speed_m_s = float(travel_speed_m_s)
        self.fine_speed_m_s = float(fine_speed_m_s)
        self.motion_timeout_s = float(motion_timeout_s)
        self.poll_s = float(poll_s)
        self.station_tolerance_m = float(station_tolerance_m)
        self.arrival_tolerance_m = float(arrival_tolerance_m)
        self._cancel = threading.Event()
        self._stage: PlacementStage | None = None
        self._in_zone = False

    @property
    def holds_zone_lease(self) -> bool:
        """Return whether the arm is (or may be) inside the press zone under a lease."""
        return self._in_zone

    def cancel(self) -> None:
        """Ask the running placement to stop safely (thread-safe; returns at once)."""
        self._cancel.set()

    def run(self, request: PlacementRequest) -> PlacementResult:
        """Run one placement to the end and return its result; never raises ``ArmError``."""
        self._cancel.clear()
        self._stage = None
        try:
            source, target = self._resolve(request)
        except _Abort as abort:
            return self._result(abort.outcome, str(abort))
        try:
            self._pick_and_place(source, target)
        except _Canceled:
            return self._after_failure(PlacementOutcome.CANCELED,
                                       f"canceled during {self._stage.value}")
        except _Abort as abort:
            if abort.outcome == PlacementOutcome.ZONE_DENIED:
                return self._after_zone_denied(source, str(abort))
            return self._after_failure(abort.outcome, str(abort))
        except ArmError as exc:
            return self._after_failure(PlacementOutcome.MOTION_FAILED, f"arm error: {exc}")
        return self._result(PlacementOutcome.SUCCESS,
                            f"{request.component_id} placed at {request.target_station}")

    # ----------------------------------------------------------------- the sequence
    def _resolve(self, request: PlacementRequest) -> tuple:
        poses = []
        for ref, role in ((request.source_slot, "source"), (request.target_station, "target")):
            try:
                station, _, pose = self.layout.resolve_slot(ref)
            except UnknownStationError as exc:
                raise _Abort(PlacementOutcome.UNKNOWN_STATION, f"{role}: {exc}") from None
            if request.kind not in station.accepts:
                raise _Abort(PlacementOutcome.UNKNOWN_STATION,
                             f"{role} {station.name!r} does not take {request.kind.value}; it "
                             f"takes {sorted(k.value for k in station.accepts)}")
            poses.append(pose)
        return tuple(poses)

    def _pick_and_place(self, source: Pose, target: Pose) -> None:
        safe_z = self.layout.safe_z_m
        approach = self.layout.approach_height_m
        travel, fine = self.travel_speed_m_s, self.fine_speed_m_s

        self._enter(PlacementStage.APPROACH)
        self._rise_to_safe_height()
        self._go(source.with_z(safe_z), travel)
        self._go(source.with_z(source.z_m + approach), travel)

        self._enter(PlacementStage.GRASP)
        self._go(source, fine)
        self.arm.grip()

        self._enter(PlacementStage.VERIFY_GRASP)
        if not self.arm.grasp_detected():
            self._release_at_station()
            raise _Abort(PlacementOutcome.EMPTY_SOURCE, "no part sensed at the source slot "
                         "(vacuum switch open after the grip)")

        self._enter(PlacementStage.LIFT)
        self._go(source.with_z(source.z_m + approach), fine)
        self._go(source.with_z(safe_z), travel)
        if not self.arm.grasp_detected():
            self._release_at_station()
            raise _Abort(PlacementOutcome.GRASP_FAILED,
                         "the part sealed but stayed in its slot when lifted")

        self._enter(PlacementStage.TRANSFER)
        self._go(target.with_z(safe_z), travel)
        if not self.arm.grasp_detected():
            raise _Abort(PlacementOutcome.PART_DROPPED, "the part was lost during transfer")

        self._enter(PlacementStage.PLACE)
        self._go(target.with_z(target.z_m + approach), travel)
        self._go(target, fine)
        if not self.arm.grasp_detected():
            raise _Abort(PlacementOutcome.PART_DROPPED, "the part was lost while placing")

        self._enter(PlacementStage.RELEASE)
        self._release_at_station()

        self._enter(PlacementStage.RETREAT)
        self._retreat(check_cancel=False)

    # ----------------------------------------------------------------- endings
    def _after_failure(self, outcome: PlacementOutcome, message: str,
                       failed_stage: PlacementStage | None = None) -> PlacementResult:
        failed_stage = failed_stage or self._stage
        try:
            self.arm.stop()
            self._enter(PlacementStage.RETREAT)
            self._retreat(check_cancel=False)
        except (ArmError, _Abort) as exc:
            message = f"{message}; retreat failed too: {exc}"
        _LOG.info("placement ended with %s: %s", outcome.name, message)
        return self._result(outcome, message, failed_stage)

    def _after_zone_denied(self, source: Pose, message: str) -> PlacementResult:
        """Put the part back into its slot (a station), then retreat; never enter the zone."""
        failed_stage = self._stage
        try:
            self._enter(PlacementStage.PLACE)
            self._go(source.with_z(source.z_m + self.layout.approach_height_m),
                     self.travel_speed_m_s, check_cancel=False)
            self._go(source, self.fine_speed_m_s, check_cancel=False)
            self._release_at_station()
            message += "; the part was put back into its source slot"
        except (ArmError, _Abort) as exc:
            message += f"; returning the part failed ({exc}), it is still held"
        return self._after_failure(PlacementOutcome.ZONE_DENIED, message, failed_stage)

    def _result(self, outcome: PlacementOutcome, message: str,
                stage: PlacementStage | None = None) -> PlacementResult:
        try:
            pose = self.arm.current_pose()
        except ArmError:
            pose = None
        return PlacementResult(outcome, message, pose, stage or self._stage)

    # ----------------------------------------------------------------- motion primitives
    def _enter(self, stage: PlacementStage) -> None:
        self._stage = stage
        _LOG.debug("placement stage %s", stage.value)
        self._feedback()

    def _feedback(self) -> None:
        if self.on_feedback is not None and self._stage is not None:
            self.on_feedback(self._stage, self.arm.current_pose())

    def _rise_to_safe_height(self, check_cancel: bool = True) -> None:
        pose = self.arm.current_pose()
        if pose.z_m < self.layout.safe_z_m - 1e-4:
            self._go(pose.with_z(self.layout.safe_z_m), self.fine_speed_m_s, check_cancel)

    def _retreat(self, check_cancel: bool) -> None:
        self._rise_to_safe_height(check_cancel)
        pose = self.arm.current_pose()
        if self.layout.press_zone.contains(pose.position_m):
            self._go(self.layout.park_pose, self.travel_speed_m_s, check_cancel)
        elif self._in_zone:   # stopped on the way in, before reaching the zone
            self.zone_gate.zone_exit()
            self._in_zone = False

    def _go(self, pose: Pose, speed_m_s: float, check_cancel: bool = True) -> None:
        if check_cancel and self._cancel.is_set():
            raise _Canceled()
        start = self.arm.current_pose()
        zone = self.layout.press_zone
        if not self._in_zone and zone.intersects_segment(start.position_m, pose.position_m):
            if not self.zone_gate.zone_entry_permit():
                raise _Abort(PlacementOutcome.ZONE_DENIED,
                             "the press refused the press-zone lease")
            self._in_zone = True
        self.arm.move_to(pose, speed_m_s)
        waited_s = 0.0
        while True:
            idle = self.arm.wait_until_idle(self.poll_s)
            if check_cancel and self._cancel.is_set():
                # honour the cancel in the stage it was asked in, even if the move just ended
                if not idle:
                    self.arm.stop()
                raise _Canceled()
            if idle:
                break
            waited_s += self.poll_s
            if waited_s >= self.motion_timeout_s:
                self.arm.stop()
                raise _Abort(PlacementOutcome.MOTION_FAILED,
                             f"move to {tuple(round(v, 4) for v in pose.position_m)} m did not "
                             f"finish within {self.motion_timeout_s} s (stalled?)")
            self._feedback()
        reached = self.arm.current_pose()
        if self._in_zone and not zone.contains(reached.position_m):
            self.zone_gate.zone_exit()
            self._in_zone = False
        miss_m = reached.distance_to(pose)
        if miss_m > self.arrival_tolerance_m:
            # e.g. the arm refused the target with an alarm and reported the move as done
            raise _Abort(PlacementOutcome.MOTION_FAILED,
                         f"the arm stopped {miss_m * 1e3:.1f} mm from the target "
                         f"{tuple(round(v, 4) for v in pose.position_m)} m")

    def _release_at_station(self) -> None:
        pose = self.arm.current_pose()
        for station in self.layout.stations.values():
            for slot in station.slot_poses:
                dx, dy = pose.x_m - slot.x_m, pose.y_m - slot.y_m
                if (dx * dx + dy * dy) ** 0.5 <= self.station_tolerance_m:
                    self.arm.release()
                    return
        raise _Abort(PlacementOutcome.MOTION_FAILED,
                     "refused to open the gripper: the arm is not over a station slot")
