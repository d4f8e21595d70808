"""Pose: ROS (x, y, z, w) quaternion order and its explicit conversion to transforms3d."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transforms3d import euler

from press_cell.hardware.arm_driver import Pose


def test_yaw_quarter_turn_is_stored_in_ros_order():
    pose = Pose.from_xyz_yaw(0.2, 0.0, 0.1, math.pi / 2)
    x, y, z, w = pose.orientation_xyzw
    assert (x, y) == pytest.approx((0.0, 0.0))
    assert z == pytest.approx(math.sqrt(0.5))
    assert w == pytest.approx(math.sqrt(0.5))


def test_to_wxyz_puts_w_first_for_transforms3d():
    pose = Pose((0.1, 0.2, 0.3), (0.0, 0.0, math.sin(0.25), math.cos(0.25)))
    wxyz = pose.to_wxyz()
    assert wxyz[0] == pytest.approx(math.cos(0.25))
    assert euler.quat2euler(wxyz, "sxyz")[2] == pytest.approx(0.5)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=4, max_size=4).filter(
    lambda q: np.linalg.norm(q) > 0.1))
def test_wxyz_round_trip_keeps_the_rotation(q):
    wxyz = np.asarray(q) / np.linalg.norm(q)
    pose = Pose.from_wxyz((0.0, 0.0, 0.0), wxyz)
    assert pose.orientation_xyzw == pytest.approx((wxyz[1], wxyz[2], wxyz[3], wxyz[0]))
    assert pose.to_wxyz() == pytest.approx(wxyz)


@settings(max_examples=60, deadline=None)
@given(st.floats(-math.pi + 1e-6, math.pi))
def test_yaw_round_trip(yaw_rad):
    assert Pose.from_xyz_yaw(0.0, 0.0, 0.0, yaw_rad).yaw_rad == pytest.approx(yaw_rad, abs=1e-9)


def test_non_unit_quaternion_is_rejected_with_the_order_named():
    with pytest.raises(ValueError, match=r"\(x, y, z, w\)"):
        Pose((0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 2.0))


def test_angle_between_poses():
    a = Pose.from_xyz_yaw(0, 0, 0, 0.1)
    b = Pose.from_xyz_yaw(0, 0, 0, -0.2)
    assert a.angle_to(b) == pytest.approx(0.3)
