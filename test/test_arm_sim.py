"""SimulatedArm: trapezoidal timing in lockstep, workspace limits, suction, faults, stop."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from press_cell.hardware.arm_driver import ArmConnectionError, ArmMotionError, Pose
from press_cell.hardware.arm_sim import (
    SimArmLimits,
    SimulatedArm,
    trapezoid_duration,
    trapezoid_progress,
)
from press_cell.timebase import SimulatedClock


@pytest.fixture
def arm():
    clock = SimulatedClock()
    sim = SimulatedArm(clock, home_pose=Pose.from_xyz_yaw(0.20, 0.0, 0.10))
    sim.connect()
    return sim


@settings(max_examples=100, deadline=None)
@given(st.floats(1e-4, 0.5), st.floats(0.01, 0.5), st.floats(0.1, 5.0))
def test_trapezoid_reaches_the_end_without_exceeding_limits(distance, speed, accel):
    total = trapezoid_duration(distance, speed, accel)
    assert trapezoid_progress(total, distance, speed, accel) == pytest.approx(distance)
    assert total >= distance / speed - 1e-12
    dt = total / 200
    last = 0.0
    for i in range(1, 201):
        s = trapezoid_progress(i * dt, distance, speed, accel)
        assert s >= last - 1e-12
        assert (s - last) / dt <= speed * (1 + 1e-6) + 1e-9
        last = s


def test_move_takes_the_trapezoid_time_in_lockstep(arm):
    clock = arm._clock
    start_s = clock.now()
    arm.move_to(Pose.from_xyz_yaw(0.30, 0.0, 0.10), 0.1)
    assert arm.is_moving
    assert arm.wait_until_idle(10.0)
    # 0.1 m at 0.1 m/s with 1 m/s^2: 0.1 s ramps, 1.1 s in all
    assert clock.now() - start_s == pytest.approx(1.1, abs=0.011)
    assert arm.current_pose().position_m == pytest.approx((0.30, 0.0, 0.10))


def test_midway_pose_is_on_the_straight_line(arm):
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.10, 0.0, 1.0), 0.1)
    arm._clock.advance(0.3)
    pose = arm.current_pose()
    fraction = (0.10 - pose.z_m) / 0.10
    assert 0.0 < fraction < 1.0
    assert pose.y_m == pytest.approx(0.10 * fraction)
    assert pose.yaw_rad == pytest.approx(1.0 * fraction)


def test_speed_is_capped_by_the_limit(arm):
    clock = arm._clock
    start_s = clock.now()
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, -0.05), 10.0)
    arm.wait_until_idle(10.0)
    limits = SimArmLimits()
    assert clock.now() - start_s >= trapezoid_duration(0.15, limits.max_speed_m_s, 1.0) - 0.011


@pytest.mark.parametrize("pose, words", [
    (Pose.from_xyz_yaw(0.40, 0.0, 0.05), "radius"),
    (Pose.from_xyz_yaw(0.05, 0.0, 0.05), "radius"),
    (Pose.from_xyz_yaw(0.20, 0.0, 0.50), "target z"),
    (Pose((0.20, 0.0, 0.05), (math.sin(0.2), 0.0, 0.0, math.cos(0.2))), "only rotate"),
    (Pose.from_xyz_yaw(-0.20, 0.0, 0.10), "passes"),
])
def test_unreachable_targets_are_refused(arm, pose, words):
    with pytest.raises(ArmMotionError, match=words):
        arm.move_to(pose, 0.1)
    assert not arm.is_moving


def test_commands_need_a_connection():
    sim = SimulatedArm(SimulatedClock())
    with pytest.raises(ArmConnectionError, match="connect"):
        sim.move_to(Pose.from_xyz_yaw(0.2, 0.0, 0.0), 0.1)


def test_grip_carries_the_nearest_part_and_release_leaves_it(arm):
    arm.add_part("pellet", (0.20, 0.0, 0.004))
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, 0.004), 0.1)
    arm.grip()
    assert arm.grasp_detected() and arm.held_part == "pellet"
    arm.move_to(Pose.from_xyz_yaw(0.25, 0.05, 0.05), 0.1)
    arm.release()
    assert not arm.grasp_detected()
    assert arm.part_positions()["pellet"] == pytest.approx((0.25, 0.05, 0.05))


def test_grip_over_nothing_senses_nothing(arm):
    arm.add_part("pellet", (0.20, 0.0, 0.004))
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.01, 0.004), 0.1)   # 10 mm off
    arm.grip()
    assert arm.gripper_closed and not arm.grasp_detected()


def test_injected_grasp_failure_seals_then_leaves_the_part(arm):
    arm.add_part("pellet", (0.20, 0.0, 0.004))
    arm.inject_grasp_failure()
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, 0.004), 0.1)
    arm.grip()
    assert arm.grasp_detected()
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, 0.05), 0.1)
    arm.wait_until_idle(5.0)
    assert not arm.grasp_detected()
    assert arm.part_positions()["pellet"] == pytest.approx((0.20, 0.0, 0.004))


def test_injected_drop_puts_the_part_on_the_floor(arm):
    arm.add_part("pellet", (0.20, 0.0, 0.004))
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, 0.004), 0.1)
    arm.grip()
    arm.inject_drop(after_m=0.03)
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, 0.10), 0.1)
    arm.wait_until_idle(5.0)
    assert arm.gripper_closed and not arm.grasp_detected()
    x, _, z = arm.part_positions()["pellet"]
    assert z == pytest.approx(SimArmLimits().floor_z_m) and x == pytest.approx(0.20)


def test_stall_never_finishes_until_stopped(arm):
    arm.inject_stall(0.5)
    arm.move_to(Pose.from_xyz_yaw(0.30, 0.0, 0.10), 0.1)
    assert not arm.wait_until_idle(5.0)
    assert arm.current_pose().x_m == pytest.approx(0.25, abs=1e-6)
    with pytest.raises(ArmMotionError, match="stalled"):
        arm.self_check()
    arm.stop()
    assert not arm.is_moving
    arm.self_check()


def test_stop_halts_mid_move_and_keeps_the_part(arm):
    arm.add_part("pellet", (0.20, 0.0, 0.004))
    arm.move_to(Pose.from_xyz_yaw(0.20, 0.0, 0.004), 0.1)
    arm.grip()
    arm.move_to(Pose.from_xyz_yaw(0.30, 0.0, 0.004), 0.1)
    arm.move_to(Pose.from_xyz_yaw(0.30, 0.0, 0.10), 0.1)
    arm._clock.advance(0.5)
    arm.stop()
    x = arm.current_pose().x_m
    assert 0.20 < x < 0.30
    arm._clock.advance(5.0)
    assert arm.current_pose().x_m == x
    assert arm.held_part == "pellet" and arm.gripper_closed
