"""Kinematic simulator of a 4-axis pick-and-place arm with a suction cup (Dobot Magician class).

The tool point moves on straight lines with a trapezoidal speed profile (speed and
acceleration limits), inside a cylindrical-shell workspace around the base. Yaw is the only
tool rotation (a 4-axis SCARA-like arm cannot tilt its tool). Parts are points (the top centre
of a pellet or rod head): the suction cup picks the nearest part within a small tolerance,
carries it, and leaves it where the cup opens.

Time comes from a ``press_cell.timebase.Clock``; the state is integrated lazily up to
``clock.now()`` whenever the arm is read or commanded. With a ``SimulatedClock`` the arm runs
in lockstep: ``wait_until_idle`` advances the clock itself, so a 30 s placement is simulated
in milliseconds, deterministically.

Fault injection (for tests and rehearsals): a grasp that seals but leaves the part behind,
a part dropped after a carried distance, a move that stalls part way.
"""

import collections
import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from press_cell.hardware.arm_driver import (
    ArmConnectionError,
    ArmDriver,
    ArmMotionError,
    Pose,
    require_vertical_tool,
)
from press_cell.timebase import Clock

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimArmLimits:
    """Workspace and dynamic limits of the simulated arm (SI units)."""

    radius_min_m: float = 0.12          # inner dead zone around the base column [est]
    radius_max_m: float = 0.32          # max reach 320 mm (Dobot Magician User Guide V1.7, 2019)
    z_min_m: float = -0.10              # lowest tool height [est]
    z_max_m: float = 0.16               # highest tool height [est]
    max_speed_m_s: float = 0.30         # Cartesian speed cap [est]
    max_accel_m_s2: float = 1.0         # Cartesian acceleration [est]
    max_yaw_rate_rad_s: float = 3.0     # tool rotation speed [est]
    max_yaw_accel_rad_s2: float = 10.0  # tool rotation acceleration [est]
    grasp_tolerance_m: float = 0.003    # cup must be this close to a part's top to seal [est]
    floor_z_m: float = 0.0              # table height where a dropped part lands [est]


def trapezoid_duration(distance: float, speed: float, accel: float) -> float:
    """Return the time to cover ``distance`` from rest to rest (trapezoidal profile), s."""
    if distance <= 0.0:
        return 0.0
    if distance <= speed * speed / accel:
        return 2.0 * math.sqrt(distance / accel)
    return distance / speed + speed / accel


def trapezoid_progress(t_s: float, distance: float, speed: float, accel: float) -> float:
    """Return the distance covered after ``t_s`` seconds of a rest-to-rest trapezoidal move."""
    if distance <= 0.0:
        return 0.0
    total_s = trapezoid_duration(distance, speed, accel)
    t_s = min(max(t_s, 0.0), total_s)
    peak = min(speed, math.sqrt(distance * accel))
    ramp_s = peak / accel
    if t_s <= ramp_s:
        return 0.5 * accel * t_s * t_s
    if t_s >= total_s - ramp_s:
        left_s = total_s - t_s
        return distance - 0.5 * accel * left_s * left_s
    return 0.5 * peak * ramp_s + peak * (t_s - ramp_s)


def _wrap_angle(angle_rad: float) -> float:
    return (angle_rad + math.pi) % (2.0 * math.pi) - math.pi


@dataclass
class _Segment:
    start: Pose
    end: Pose
    duration_s: float
    distance: float      # length of the dominant profile (m or rad)
    speed: float
    accel: float
    stall_fraction: float | None = None

    def fraction_at(self, t_s: float) -> float:
        if self.distance <= 0.0:
            fraction = 1.0
        else:
            covered = trapezoid_progress(t_s, self.distance, self.speed, self.accel)
            fraction = covered / self.distance
        if self.stall_fraction is not None:
            fraction = min(fraction, self.stall_fraction)
        return fraction

    def pose_at(self, fraction: float) -> Pose:
        p0 = np.asarray(self.start.position_m)
        p1 = np.asarray(self.end.position_m)
        position = p0 + fraction * (p1 - p0)
        yaw0 = self.start.yaw_rad
        yaw = yaw0 + fraction * _wrap_angle(self.end.yaw_rad - yaw0)
        return Pose.from_xyz_yaw(*position, yaw)


class SimulatedArm(ArmDriver):
    """A kinematic arm with a suction cup, parts at positions and fault injection."""

    def __init__(
        self,
        clock: Clock,
        limits: SimArmLimits | None = None,
        home_pose: Pose | None = None,
        lockstep: bool | None = None,
        lockstep_step_s: float = 0.01,
    ) -> None:
        self._clock = clock
        self.limits = limits or SimArmLimits()
        self._pose = home_pose or Pose.from_xyz_yaw(0.20, 0.0, 0.10)
        self._check_reachable(self._pose)
        self._lockstep = hasattr(clock, "advance") if lockstep is None else lockstep
        self._step_s = float(lockstep_step_s)
        self._lock = threading.RLock()
        self._connected = False
        self._cursor_s = clock.now()
        self._queue: collections.deque = collections.deque()
        self._active: _Segment | None = None
        self._active_start_s = 0.0
        self._gripper_closed = False
        self._parts: dict[str, np.ndarray] = {}
        self._held: str | None = None
        self._stuck: str | None = None
        self._grasp_failures = 0
        self._drop_after_m: float | None = None
        self._carried_m = 0.0
        self._stall_fraction: float | None = None
        self.motion_log: list[tuple[Pose, Pose]] = []   # (start, end) of every executed move

    # ----------------------------------------------------------------- world set-up
    def add_part(self, part_id: str, position_m) -> None:
        """Put a part with its top centre at ``position_m`` (m)."""
        with self._lock:
            self._parts[part_id] = np.asarray(position_m, dtype=float).copy()

    def part_positions(self) -> dict:
        """Return ``{part_id: (x, y, z)}`` of every part, m (held parts move with the tool)."""
        with self._lock:
            self._integrate()
            return {pid: tuple(float(v) for v in pos) for pid, pos in self._parts.items()}

    def part_near(self, position_m, tolerance_m: float | None = None) -> str | None:
        """Return the id of the part nearest ``position_m`` within ``tolerance_m``, else None."""
        tolerance_m = self.limits.grasp_tolerance_m if tolerance_m is None else tolerance_m
        with self._lock:
            self._integrate()
            return self._nearest_part(np.asarray(position_m, dtype=float), tolerance_m)

    @property
    def held_part(self) -> str | None:
        """Return the id of the part the cup carries, or None."""
        with self._lock:
            self._integrate()
            return self._held

    # ----------------------------------------------------------------- fault injection
    def inject_grasp_failure(self, count: int = 1) -> None:
        """Make the next ``count`` grips seal on the part but leave it behind when lifted."""
        with self._lock:
            self._grasp_failures = int(count)

    def inject_drop(self, after_m: float) -> None:
        """Drop the carried part after it has been carried ``after_m`` metres further."""
        with self._lock:
            self._drop_after_m = float(after_m)
            self._carried_m = 0.0

    def inject_stall(self, at_fraction: float = 0.5) -> None:
        """Make the next move stop at ``at_fraction`` of its path and never finish."""
        if not 0.0 <= at_fraction < 1.0:
            raise ValueError(f"at_fraction must be in [0, 1), got {at_fraction!r}")
        with self._lock:
            self._stall_fraction = float(at_fraction)

    # ----------------------------------------------------------------- ArmDriver
    def connect(self) -> None:
        """Mark the simulated link as up."""
        with self._lock:
            self._connected = True
            self._cursor_s = max(self._cursor_s, self._clock.now())

    def disconnect(self) -> None:
        """Stop motion and mark the link as down; safe to call twice."""
        with self._lock:
            if self._connected:
                self.stop()
            self._connected = False

    @property
    def is_connected(self) -> bool:
        """Return whether the simulated link is up."""
        return self._connected

    def self_check(self) -> None:
        """Raise ``ArmConnectionError`` when not connected, ``ArmMotionError`` when stalled."""
        with self._lock:
            self._require_connected()
            self._integrate()
            if self._active is not None and self._active.stall_fraction is not None:
                raise ArmMotionError("the arm is stalled on a move; stop() it first")

    def move_to(self, pose: Pose, speed_m_s: float) -> None:
        """Queue a straight-line move to ``pose`` at up to ``speed_m_s`` (m/s)."""
        with self._lock:
            self._require_connected()
            self._integrate()
            if not (math.isfinite(speed_m_s) and speed_m_s > 0.0):
                raise ArmMotionError(f"speed_m_s must be > 0, got {speed_m_s!r}")
            self._check_reachable(pose)
            start = self._queue[-1].end if self._queue else (
                self._active.end if self._active is not None else self._pose)
            self._check_path(start, pose)
            speed = min(float(speed_m_s), self.limits.max_speed_m_s)
            lim = self.limits
            dist_m = start.distance_to(pose)
            dist_rad = abs(_wrap_angle(pose.yaw_rad - start.yaw_rad))
            t_lin = trapezoid_duration(dist_m, speed, lim.max_accel_m_s2)
            t_rot = trapezoid_duration(dist_rad, lim.max_yaw_rate_rad_s, lim.max_yaw_accel_rad_s2)
            if t_lin >= t_rot:
                segment = _Segment(start, pose, t_lin, dist_m, speed, lim.max_accel_m_s2)
            else:
                segment = _Segment(start, pose, t_rot, dist_rad, lim.max_yaw_rate_rad_s,
                                   lim.max_yaw_accel_rad_s2)
            if self._stall_fraction is not None:
                segment.stall_fraction = self._stall_fraction
                self._stall_fraction = None
            self._queue.append(segment)
            self._integrate()

    @property
    def is_moving(self) -> bool:
        """Return whether a move is running or queued."""
        with self._lock:
            self._integrate()
            return self._active is not None or bool(self._queue)

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (s of arm clock) for the moves to finish.

        In lockstep the clock is advanced here in ``lockstep_step_s`` steps.
        """
        deadline_s = self._clock.now() + max(0.0, timeout_s)
        while self.is_moving:
            now_s = self._clock.now()
            if now_s >= deadline_s:
                return False
            if self._lockstep:
                self._clock.advance(min(self._step_s, deadline_s - now_s))
            else:
                time.sleep(min(0.005, deadline_s - now_s))
        return True

    def current_pose(self) -> Pose:
        """Return the simulated tool pose."""
        with self._lock:
            self._require_connected()
            self._integrate()
            return self._pose

    def grip(self, timeout_s: float = 60.0) -> None:
        """Switch the suction on once moves finish; seal on the nearest part within tolerance."""
        self._wait_before_effector(timeout_s)
        with self._lock:
            self._gripper_closed = True
            if self._held is not None or self._stuck is not None:
                return
            part = self._nearest_part(np.asarray(self._pose.position_m),
                                      self.limits.grasp_tolerance_m)
            if part is None:
                return
            if self._grasp_failures > 0:
                self._grasp_failures -= 1
                self._stuck = part
                _LOG.info("simulated grasp failure: %s sealed but will stay behind", part)
            else:
                self._held = part
                self._carried_m = 0.0

    def release(self, timeout_s: float = 60.0) -> None:
        """Switch the suction off once moves finish; a carried part stays where it is."""
        self._wait_before_effector(timeout_s)
        with self._lock:
            self._gripper_closed = False
            self._held = None
            self._stuck = None

    @property
    def gripper_closed(self) -> bool:
        """Return whether the suction is on."""
        return self._gripper_closed

    def grasp_detected(self) -> bool:
        """Return whether the vacuum switch senses a sealed part."""
        with self._lock:
            self._require_connected()
            self._integrate()
            if self._held is not None:
                return True
            if self._stuck is not None:
                gap = np.linalg.norm(self._parts[self._stuck] - np.asarray(self._pose.position_m))
                return bool(gap <= self.limits.grasp_tolerance_m)
            return False

    def stop(self) -> None:
        """Halt at the current pose and drop queued moves; the suction stays as it is."""
        with self._lock:
            self._integrate()
            if self._active is not None:
                self.motion_log.append((self._active.start, self._pose))
            self._active = None
            self._queue.clear()

    # ----------------------------------------------------------------- internals
    def _require_connected(self) -> None:
        if not self._connected:
            raise ArmConnectionError("simulated arm is not connected; call connect() first")

    def _wait_before_effector(self, timeout_s: float) -> None:
        with self._lock:
            self._require_connected()
        if not self.wait_until_idle(timeout_s):
            raise ArmMotionError(f"moves did not finish within {timeout_s} s before the "
                                 "end-effector command")

    def _check_reachable(self, pose: Pose) -> None:
        lim = self.limits
        radius_m = math.hypot(pose.x_m, pose.y_m)
        if not lim.radius_min_m <= radius_m <= lim.radius_max_m:
            raise ArmMotionError(
                f"target radius {radius_m:.4f} m is outside the workspace "
                f"[{lim.radius_min_m}, {lim.radius_max_m}] m")
        if not lim.z_min_m <= pose.z_m <= lim.z_max_m:
            raise ArmMotionError(
                f"target z {pose.z_m:.4f} m is outside the workspace "
                f"[{lim.z_min_m}, {lim.z_max_m}] m")
        require_vertical_tool(pose)

    def _check_path(self, start: Pose, end: Pose) -> None:
        # A straight line can pass closer to the base column than either end point.
        a = np.asarray(start.position_m[:2])
        d = np.asarray(end.position_m[:2]) - a
        length2 = float(d @ d)
        t = 0.0 if length2 == 0.0 else float(np.clip(-(a @ d) / length2, 0.0, 1.0))
        radius_m = float(np.linalg.norm(a + t * d))
        if radius_m < self.limits.radius_min_m:
            raise ArmMotionError(
                f"the straight path passes {radius_m:.4f} m from the base axis, inside the "
                f"minimum radius {self.limits.radius_min_m} m; add a via point")

    def _nearest_part(self, position: np.ndarray, tolerance_m: float) -> str | None:
        best, best_gap = None, tolerance_m
        for pid, pos in self._parts.items():
            gap = float(np.linalg.norm(pos - position))
            if gap <= best_gap:
                best, best_gap = pid, gap
        return best

    def _set_pose(self, pose: Pose) -> None:
        if self._held is not None:
            step_m = pose.distance_to(self._pose)
            self._parts[self._held] = np.asarray(pose.position_m, dtype=float)
            if self._drop_after_m is not None:
                self._carried_m += step_m
                if self._carried_m >= self._drop_after_m:
                    dropped = self._held
                    self._parts[dropped][2] = self.limits.floor_z_m
                    self._held = None
                    self._drop_after_m = None
                    _LOG.info("simulated drop: %s fell at (%.3f, %.3f) m", dropped,
                              pose.x_m, pose.y_m)
        self._pose = pose

    def _integrate(self) -> None:
        now_s = self._clock.now()
        while True:
            if self._active is None:
                if not self._queue:
                    break
                self._active = self._queue.popleft()
                self._active_start_s = self._cursor_s
            seg = self._active
            end_s = self._active_start_s + seg.duration_s
            if seg.stall_fraction is None and now_s >= end_s:
                self._set_pose(seg.end)
                self.motion_log.append((seg.start, seg.end))
                self._cursor_s = end_s
                self._active = None
                continue
            self._set_pose(seg.pose_at(seg.fraction_at(now_s - self._active_start_s)))
            break
        self._cursor_s = max(self._cursor_s, now_s)
