"""DobotArm against the pty emulator: units, queue polling, retries, stalls, alarms, CLI."""

import math
import subprocess
import sys
from pathlib import Path

import pytest

from press_cell.hardware import dobot_protocol as proto
from press_cell.hardware.arm_dobot import DobotArm
from press_cell.hardware.arm_driver import (
    ArmConnectionError,
    ArmGraspError,
    ArmMotionError,
    Pose,
)
from press_cell.hardware.arm_sim import SimulatedArm
from press_cell.hardware.dobot_emulator import DobotEmulator
from press_cell.timebase import SimulatedClock

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def rig():
    clock = SimulatedClock()
    sim = SimulatedArm(clock, lockstep=False)
    emulator = DobotEmulator(sim, clock, time_scale=40.0)
    emulator.start()
    arm = DobotArm(emulator.port, reply_timeout_s=0.05, poll_interval_s=0.003)
    arm.connect()
    yield arm, emulator
    arm.disconnect()
    emulator.close()


@pytest.mark.timeout(10)
def test_units_are_converted_at_the_driver_boundary(rig):
    arm, emulator = rig
    arm.move_to(Pose.from_xyz_yaw(0.25, -0.05, 0.03, math.radians(30)), 0.1)
    assert arm.wait_until_idle(5.0)
    sim_pose = emulator.arm.current_pose()
    assert sim_pose.position_m == pytest.approx((0.25, -0.05, 0.03), abs=1e-6)
    assert math.degrees(sim_pose.yaw_rad) == pytest.approx(30.0, abs=1e-4)
    # and back: GetPose carries mm and degrees
    reply = emulator.handle_bytes(proto.encode_frame(proto.Frame(proto.CommandId.GET_POSE)))
    x_mm, y_mm, z_mm, r_deg, *_ = proto.unpack_params(
        proto.CommandId.GET_POSE, proto.decode_frame(reply).params, reply=True)
    assert (x_mm, y_mm, z_mm, r_deg) == pytest.approx((250.0, -50.0, 30.0, 30.0), abs=1e-3)
    assert arm.current_pose().distance_to(sim_pose) < 1e-6


@pytest.mark.timeout(10)
def test_moves_complete_by_queue_index_and_speed_is_sent(rig):
    arm, emulator = rig
    start_s = emulator.clock.now()
    arm.move_to(Pose.from_xyz_yaw(0.30, 0.0, 0.10), 0.01)
    assert arm.is_moving
    assert arm.wait_until_idle(5.0)
    # 0.1 m at 0.01 m/s (sent with SetPTPCoordinateParams) takes >= 10 s of arm time
    assert emulator.clock.now() - start_s >= 10.0
    assert not arm.is_moving


@pytest.mark.timeout(10)
@pytest.mark.parametrize("fault", ["drop_replies", "corrupt_replies"])
def test_lost_or_corrupted_replies_are_retried(rig, fault):
    arm, emulator = rig
    setattr(emulator.faults, fault, 2)
    arm.move_to(Pose.from_xyz_yaw(0.22, 0.0, 0.10), 0.1)   # queued: re-sent once each time
    assert arm.wait_until_idle(5.0)
    assert arm.current_pose().x_m == pytest.approx(0.22, abs=1e-6)
    assert arm.retry_count == 2


@pytest.mark.timeout(10)
def test_a_silent_arm_is_a_connection_error(rig):
    arm, emulator = rig
    emulator.faults.drop_replies = 100
    with pytest.raises(ArmConnectionError, match="did not answer GET_POSE after 4 attempts"):
        arm.current_pose()


@pytest.mark.timeout(10)
def test_stalled_queue_times_out_and_stop_recovers(rig):
    arm, emulator = rig
    emulator.faults.stall_queue = True
    arm.move_to(Pose.from_xyz_yaw(0.22, 0.0, 0.10), 0.1)
    assert not arm.wait_until_idle(0.2)
    with pytest.raises(ArmMotionError, match="queue stalled"):
        arm.grip(timeout_s=0.1)
    emulator.faults.stall_queue = False
    arm.stop()
    assert not arm.is_moving
    arm.move_to(Pose.from_xyz_yaw(0.21, 0.0, 0.10), 0.1)
    assert arm.wait_until_idle(5.0)


@pytest.mark.timeout(10)
def test_vacuum_switch_reads_the_payload(rig):
    arm, emulator = rig
    emulator.arm.add_part("pellet", (0.20, 0.0, 0.10))   # right under the home pose
    assert not arm.grasp_detected()
    arm.grip()
    assert arm.grasp_detected() and arm.gripper_closed
    arm.release()
    assert not arm.grasp_detected()


@pytest.mark.timeout(10)
def test_unreachable_target_raises_an_alarm_seen_by_self_check(rig):
    arm, _ = rig
    arm.self_check()
    arm.move_to(Pose.from_xyz_yaw(0.50, 0.0, 0.10), 0.1)
    arm.wait_until_idle(2.0)
    with pytest.raises(ArmMotionError, match="alarm bits"):
        arm.self_check()


def test_no_vacuum_sensor_configured():
    with pytest.raises(ArmGraspError, match="vacuum_sensor_eio"):
        DobotArm("loop://", vacuum_sensor_eio=None).grasp_detected()


def test_missing_port_is_a_connection_error():
    with pytest.raises(ArmConnectionError, match="cannot open"):
        DobotArm("/dev/press_cell_no_such_port").connect()


@pytest.mark.timeout(20)
def test_command_line_emulator_prints_a_usable_port():
    helped = subprocess.run([sys.executable, "-m", "press_cell.hardware.dobot_emulator",
                             "--help"], cwd=REPO, capture_output=True, text=True, timeout=10)
    assert helped.returncode == 0 and "--time-scale" in helped.stdout
    proc = subprocess.Popen([sys.executable, "-m", "press_cell.hardware.dobot_emulator",
                             "--time-scale", "50", "--stations", "config/stations.yaml"],
                            cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        arm = DobotArm(port, reply_timeout_s=0.1, poll_interval_s=0.005)
        arm.connect()
        arm.move_to(Pose.from_xyz_yaw(0.16, -0.14, 0.004), 0.2)   # pellet_tray/0
        assert arm.wait_until_idle(5.0)
        arm.grip()
        assert arm.grasp_detected()
        arm.disconnect()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert proc.returncode == 0


def test_emulator_answers_io_reads_with_address_only_or_full_struct():
    emulator = DobotEmulator(vacuum_sensor_eio=10)
    for params in (b"\x0a", b"\x0a\x00"):
        reply = emulator.handle_bytes(proto.encode_frame(
            proto.Frame(proto.CommandId.GET_IO_DI, params=params)))
        assert proto.decode_frame(reply).params == b"\x0a\x00"


def test_emulator_ignores_unknown_commands_and_bad_layouts():
    emulator = DobotEmulator()
    assert emulator.handle_bytes(proto.encode_frame(proto.Frame(199))) == b""
    assert emulator.handle_bytes(proto.encode_frame(
        proto.Frame(proto.CommandId.SET_PTP_CMD, True, True, b"\x02"))) == b""
    assert emulator.frames_received == 2
