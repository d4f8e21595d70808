"""Abstract robot-arm driver: the contract every arm backend (simulator, Dobot serial) fulfils.

Units are SI throughout: positions in m, angles in rad, speeds in m/s, time in s. Orientation
is a unit quaternion stored in ROS order ``(x, y, z, w)`` (REP 103, ``geometry_msgs/Quaternion``).
``transforms3d`` orders quaternions ``(w, x, y, z)``; ``Pose.to_wxyz`` / ``Pose.from_wxyz``
are the only places where the order is converted.

Motion contract: ``move_to`` queues a straight-line Cartesian move and returns at once;
``is_moving`` / ``wait_until_idle`` tell when every queued move has finished. ``grip`` and
``release`` act after queued moves have finished and return once the end effector has
switched. ``stop`` halts motion now, drops queued moves and keeps the end-effector state
(a part held by suction stays held). Drivers raise the exceptions below and never swallow a
lost connection.
"""

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from transforms3d import euler, quaternions


class ArmError(Exception):
    """Base class of every arm driver error."""


class ArmConnectionError(ArmError):
    """The link to the arm is down (port gone, unplugged, no reply within the timeout)."""


class ArmProtocolError(ArmError):
    """The arm sent a frame that does not parse, or a reply that does not fit the request."""


class ArmMotionError(ArmError):
    """A move was refused or failed: target outside the workspace, alarm, stall."""


class ArmGraspError(ArmError):
    """The end effector could not do what was asked (no end effector, sensor missing)."""


@dataclass(frozen=True)
class Pose:
    """A tool pose in the arm base frame.

    ``position_m`` is ``(x, y, z)`` in m; ``orientation_xyzw`` is a unit quaternion in ROS
    order ``(x, y, z, w)``.
    """

    position_m: tuple
    orientation_xyzw: tuple = (0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        position = tuple(float(v) for v in self.position_m)
        orientation = tuple(float(v) for v in self.orientation_xyzw)
        if len(position) != 3 or not all(math.isfinite(v) for v in position):
            raise ValueError(f"position_m must be 3 finite numbers (m), got {self.position_m!r}")
        norm = math.sqrt(sum(v * v for v in orientation)) if len(orientation) == 4 else 0.0
        if not (math.isfinite(norm) and abs(norm - 1.0) < 1e-3):
            raise ValueError(
                "orientation_xyzw must be a unit quaternion (x, y, z, w), "
                f"got {self.orientation_xyzw!r}")
        object.__setattr__(self, "position_m", position)
        object.__setattr__(self, "orientation_xyzw", tuple(v / norm for v in orientation))

    @classmethod
    def from_xyz_yaw(cls, x_m: float, y_m: float, z_m: float, yaw_rad: float = 0.0) -> "Pose":
        """Build a pose from a position (m) and a rotation about the base z axis (rad)."""
        return cls.from_wxyz((x_m, y_m, z_m), euler.euler2quat(0.0, 0.0, yaw_rad, "sxyz"))

    @classmethod
    def from_wxyz(cls, position_m, quaternion_wxyz) -> "Pose":
        """Build a pose from a transforms3d quaternion ``(w, x, y, z)``."""
        w, x, y, z = (float(v) for v in quaternion_wxyz)
        return cls(tuple(position_m), (x, y, z, w))

    def to_wxyz(self) -> np.ndarray:
        """Return the orientation in transforms3d order ``(w, x, y, z)``."""
        x, y, z, w = self.orientation_xyzw
        return np.array([w, x, y, z])

    @property
    def yaw_rad(self) -> float:
        """Return the rotation about the base z axis, rad in (-pi, pi]."""
        return float(euler.quat2euler(self.to_wxyz(), "sxyz")[2])

    @property
    def x_m(self) -> float:
        """Return x, m."""
        return self.position_m[0]

    @property
    def y_m(self) -> float:
        """Return y, m."""
        return self.position_m[1]

    @property
    def z_m(self) -> float:
        """Return z, m."""
        return self.position_m[2]

    def with_position(self, x_m: float, y_m: float, z_m: float) -> "Pose":
        """Return a copy at another position (m) with the same orientation."""
        return Pose((x_m, y_m, z_m), self.orientation_xyzw)

    def with_z(self, z_m: float) -> "Pose":
        """Return a copy at another height (m)."""
        return self.with_position(self.x_m, self.y_m, z_m)

    def distance_to(self, other: "Pose") -> float:
        """Return the straight-line distance between the two positions, m."""
        return float(np.linalg.norm(np.subtract(self.position_m, other.position_m)))

    def angle_to(self, other: "Pose") -> float:
        """Return the rotation angle between the two orientations, rad in [0, pi]."""
        relative = quaternions.qmult(quaternions.qinverse(self.to_wxyz()), other.to_wxyz())
        _, angle = quaternions.quat2axangle(relative)
        angle = abs(float(angle)) % (2.0 * math.pi)
        return min(angle, 2.0 * math.pi - angle)


def require_vertical_tool(pose: Pose, tolerance: float = 1e-3) -> None:
    """Raise ``ArmMotionError`` unless the tool only rotates about z (4-axis arms)."""
    x, y, _, _ = pose.orientation_xyzw
    if abs(x) > tolerance or abs(y) > tolerance:
        raise ArmMotionError(
            "a 4-axis arm can only rotate its tool about z; "
            f"got quaternion (x, y, z, w) = {pose.orientation_xyzw}")


class ArmDriver(ABC):
    """A pick-and-place robot arm, simulated or real."""

    @abstractmethod
    def connect(self) -> None:
        """Open the link to the arm; raise ``ArmConnectionError`` with a reason on failure."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop motion and close the link; keep the end-effector state; safe to call twice."""

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Return whether the link is up."""

    @abstractmethod
    def self_check(self) -> None:
        """Check the arm is healthy (no alarm, pose readable); raise an ``ArmError`` naming it."""

    @abstractmethod
    def move_to(self, pose: Pose, speed_m_s: float) -> None:
        """Queue a straight-line move to ``pose`` at up to ``speed_m_s`` (m/s); return at once.

        Raise ``ArmMotionError`` when the pose is outside the workspace or the speed is not
        positive.
        """

    @property
    @abstractmethod
    def is_moving(self) -> bool:
        """Return whether queued moves are still running."""

    @abstractmethod
    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (s) for every queued move to finish; return whether it did."""

    @abstractmethod
    def current_pose(self) -> Pose:
        """Return the measured tool pose."""

    @abstractmethod
    def grip(self) -> None:
        """Close the gripper / switch the suction on, after queued moves finish."""

    @abstractmethod
    def release(self) -> None:
        """Open the gripper / switch the suction off, after queued moves finish."""

    @property
    @abstractmethod
    def gripper_closed(self) -> bool:
        """Return whether the gripper is closed (suction on), as last commanded."""

    @abstractmethod
    def grasp_detected(self) -> bool:
        """Return whether the end effector senses a payload (vacuum switch, jaw gap)."""

    @abstractmethod
    def stop(self) -> None:
        """Halt motion now and drop queued moves; keep the gripper state."""
