"""Arm node over ROS: placements, failures with their codes, cancel, e-stop; sim and Dobot.

The arm node runs in another process; a zone-lease press stand-in (test/support) serves
``press/zone_lease`` so the die can be entered. The same tests run against ``hardware: sim``
(faults injected through the node's ``sim_fault`` parameter) and ``hardware: dobot`` on the
pty emulator running in this test process (faults injected into the emulator's arm).
Tests of one backend share one arm process and run in file order: a canceled placement
leaves the part in the cup, so cancel and e-stop come late. The lease test at the end runs on
the sim backend only (it holds the arm in the zone with the sim stall fault) and kills the sim
arm with SIGKILL. The interlock
against the real press node is in test_arm_node_interlock.py.
"""

import math
import os
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from conftest import ros_subprocess_env
from rclpy.action import ActionClient
from rclpy.context import Context
from std_msgs.msg import Empty
from support.arm_harness import (
    SUPPORT,
    ArmCellClient,
    arm_args,
    start,
    stop,
    wait_for,
    wait_future,
)

from press_cell.action import PlaceComponent, PressCycle
from press_cell.hardware.dobot_emulator import DobotEmulator
from press_cell.msg import DeviceStatus, PressSegment
from press_cell.recipes.stations import load_layout
from press_cell.srv import ResetFault, ZoneLease

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]

LAYOUT = load_layout(SUPPORT.parent.parent / "config" / "stations.yaml")
TIME_SCALE = 40.0
PELLETS = [f"pellet_tray/{n}" for n in range(7)]      # pellet_tray/7 stays empty
ANODES = [f"anode_rack/{n}" for n in range(4)]
FILLED = PELLETS + ANODES
PELLET = PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET
ANODE = PlaceComponent.Goal.KIND_ANODE_ON_ROD
R = PlaceComponent.Result
TOL_M = 1e-3
LEASE_S = 1.0          # the sim arm's press-zone lease; renewed every LEASE_S / 3


class Backend:
    """One running arm node plus the means to inject faults into its hardware."""

    def __init__(self, name, client, arm_proc, emulator=None):
        self.name, self.client, self.arm_proc, self.emulator = name, client, arm_proc, emulator
        self._unused = {PELLET: list(PELLETS), ANODE: list(ANODES)}

    def take(self, kind):
        """Return a filled slot no earlier placement (or earlier attempt of a test) touched.

        Tests share one arm per backend, so a retried test must not reuse a slot its failed
        first attempt may have emptied.
        """
        assert self._unused[kind], f"the test layout ran out of filled slots for kind {kind}"
        return self._unused[kind].pop(0)

    def inject(self, fault):
        """Inject ``grasp_failure`` or ``drop:<m>`` for the next placement."""
        if self.emulator is None:
            (result,) = self.client.set_arm_params(sim_fault=fault)
            assert result.successful, result.reason
        elif fault == "grasp_failure":
            self.emulator.arm.inject_grasp_failure(1)
        else:
            self.emulator.lose_grip_after(float(fault.split(":")[1]))


@pytest.fixture(scope="module")
def cells(request):
    """Start both backends at once (discovery overlaps): {name: Backend}."""
    context = Context()
    rclpy.init(context=context)
    env = ros_subprocess_env()
    emulator = DobotEmulator(time_scale=TIME_SCALE)
    for slot in FILLED:
        emulator.arm.add_part(slot, LAYOUT.resolve_slot(slot)[2].position_m)
    port = emulator.start()
    hardware = {"sim": dict(hardware="sim", time_scale=TIME_SCALE, sim_filled_slots=FILLED,
                            lease_duration=LEASE_S, motion_timeout=600.0),
                "dobot": dict(hardware="dobot", serial_port=port)}
    namespaces = {name: f"/armtest_{name}_{os.getpid()}" for name in hardware}
    # one press stand-in process serves both namespaces
    processes = [start([str(SUPPORT / "zone_lease_press.py"), *namespaces.values()], env)]
    backends = {}
    try:
        for name, params in hardware.items():
            namespace = namespaces[name]
            arm = start(arm_args(namespace, **params), env)
            processes.append(arm)
            backends[name] = Backend(name, ArmCellClient(context, namespace), arm,
                                     emulator if name == "dobot" else None)
        for backend in backends.values():
            backend.client.wait_arm_ready()
            wait_for(lambda b=backend: b.client.press_states, 20.0, "the press's state samples")
            wait_for(lambda b=backend: b.client.arm_diagnostic("press_pressure_pa") not in
                     (None, "unknown"), 20.0, "the arm to hear the press (its /diagnostics)")
        yield backends
    finally:
        for backend in backends.values():
            backend.client.close()
        logs = [stop(proc) for proc in processes]
        emulator.close()
        context.try_shutdown()
        if request.session.testsfailed:
            print("\n".join(log[-3000:] for log in logs))


@pytest.fixture(params=["sim", "dobot"])
def backend(request, cells):
    unlatch(cells[request.param].client)
    return cells[request.param]


def unlatch(client):
    """Reset an e-stop or fault an earlier test (or a failed attempt of this one) left latched."""
    if client.status and client.status[-1].state in (DeviceStatus.STATE_ESTOP,
                                                     DeviceStatus.STATE_FAULT):
        reset = wait_future(client.reset_client.call_async(ResetFault.Request()), 10.0,
                            "reset_fault")
        assert reset.success, reset.message
        wait_for(lambda: client.status[-1].state not in (DeviceStatus.STATE_ESTOP,
                                                         DeviceStatus.STATE_FAULT),
                 5.0, "the arm unlatched")


def assert_retreated(client, result):
    """Check the arm ended at the safe height, outside the press zone, and says so."""
    position = result.final_pose.position
    assert position.z >= LAYOUT.safe_z_m - TOL_M, f"arm left at z = {position.z} m"
    assert not LAYOUT.press_zone.contains((position.x, position.y, position.z))
    wait_for(lambda: client.in_zone and client.in_zone[-1] is False, 5.0,
             "~/in_press_zone back to false")


def test_pellet_then_anode_are_placed_into_the_die(backend):
    client = backend.client
    die = LAYOUT.resolve_slot("press_die")[2].position_m
    leased_seen = []
    for kind in (PELLET, ANODE):
        slot = backend.take(kind)
        client.press_states.clear()
        status, result, feedback = client.place(kind, slot, "press_die", f"{slot}-part")
        assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg
        assert result.success and result.error_code == R.NONE
        assert_retreated(client, result)
        # feedback and result travel on different topics: let the last feedback land
        wait_for(lambda fb=feedback: fb[-1].stage == fb[-1].STAGE_RETREAT, 5.0, "RETREAT")
        stages = [f.stage for f in feedback]
        assert sorted(set(stages)) == list(range(8)), f"stages seen: {set(stages)}"
        assert stages == sorted(stages), "stages out of order"
        assert any(f.in_press_zone for f in feedback if f.stage == f.STAGE_RELEASE)
        leased_seen.append(any(s.zone_leased for s in client.press_states))
        if backend.emulator is not None:   # the world behind the wire: the part is in the die
            part = backend.emulator.arm.part_positions()[slot]
            assert math.dist(part, die) < TOL_M
    assert leased_seen == [True, True], "the press never reported the arm's lease"
    wait_for(lambda: not client.press_states[-1].zone_leased, 5.0, "lease released")
    assert client.gripper[-1] is False


def test_empty_source_slot_ends_empty_source_and_retreated(backend):
    status, result, _ = backend.client.place(PELLET, "pellet_tray/7", "press_die")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.EMPTY_SOURCE and "no part" in result.error_msg
    assert_retreated(backend.client, result)
    assert backend.client.gripper[-1] is False, "suction left on over the empty slot"


def test_unknown_station_ends_unknown_station_without_motion(backend):
    status, result, feedback = backend.client.place(PELLET, "pellet_tray/1", "oven")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.UNKNOWN_STATION and "oven" in result.error_msg
    assert feedback == []
    assert_retreated(backend.client, result)


def test_failed_grasp_ends_grasp_failed_and_retreated(backend):
    backend.inject("grasp_failure")
    status, result, _ = backend.client.place(PELLET, backend.take(PELLET), "press_die")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.GRASP_FAILED, result.error_msg
    assert_retreated(backend.client, result)
    assert backend.client.gripper[-1] is False, "the cup must let go over the source slot"


def test_dropped_part_ends_part_dropped_and_retreated_with_gripper_closed(backend):
    backend.inject("drop:0.15")     # after the lift (96 mm), during the transfer
    status, result, _ = backend.client.place(PELLET, backend.take(PELLET), "press_die")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.PART_DROPPED, result.error_msg
    assert_retreated(backend.client, result)
    assert backend.client.gripper[-1] is True, "gripper opened away from a station"


def test_malformed_goals_are_rejected_with_a_reason_on_status(backend):
    client = backend.client
    for kind, source, target, reason in ((9, "pellet_tray/3", "press_die", "unknown component"),
                                         (PELLET, "pellet_tray/x", "press_die", "source_slot"),
                                         (PELLET, "pellet_tray/3", "", "target_station")):
        assert not client.send(kind, source, target).accepted
        wait_for(lambda r=reason: reason_on_status(client, r), 5.0, f"status naming {reason}")


def reason_on_status(client, reason):
    return client.status and reason in client.status[-1].message


def test_cancel_mid_transfer_stops_retreats_and_keeps_the_part(backend):
    client = backend.client
    assert all(r.successful for r in client.set_arm_params(travel_speed=0.02))
    try:
        feedback = []
        slot = backend.take(PELLET)
        handle = client.send(PELLET, slot, "press_die", "p3", feedback)
        assert handle.accepted
        wait_for(lambda: any(f.stage == f.STAGE_TRANSFER for f in feedback), 30.0,
                 "the transfer stage")
        assert not client.send(ANODE, "anode_rack/1", "press_die", "busy").accepted
        wait_for(lambda: client.status[-1].fault_code == R.BUSY, 5.0, "BUSY on ~/status")
        wait_future(handle.cancel_goal_async(), 5.0, "cancel response")
        response = wait_future(handle.get_result_async(), 30.0, "the canceled result")
    finally:
        client.set_arm_params(travel_speed=0.10)
    assert response.status == GoalStatus.STATUS_CANCELED
    result = response.result
    assert result.error_code == R.CANCELED and "transfer" in result.error_msg
    assert not any(f.stage == f.STAGE_PLACE for f in feedback)
    assert_retreated(client, result)
    assert client.gripper[-1] is True, "the part must stay in the cup after a cancel"
    if backend.emulator is not None:
        assert backend.emulator.arm.held_part == slot


def test_estop_stops_at_once_aborts_and_latches_until_reset(backend):
    client = backend.client
    assert all(r.successful for r in client.set_arm_params(travel_speed=0.02))
    try:
        feedback = []
        handle = client.send(ANODE, backend.take(ANODE), "press_die", "a1", feedback)
        wait_for(lambda: any(f.stage == f.STAGE_TRANSFER for f in feedback), 30.0,
                 "the transfer stage")
        client.estop_pub.publish(Empty())
        response = wait_future(handle.get_result_async(), 10.0, "the aborted result")
        assert response.status == GoalStatus.STATUS_ABORTED
        assert "emergency stop" in response.result.error_msg
        stopped_at = response.result.final_pose.position
        wait_for(lambda: client.status and client.status[-1].state == DeviceStatus.STATE_ESTOP,
                 5.0, "ESTOP status")
        assert not client.send(PELLET, "pellet_tray/3", "press_die").accepted
        assert stopped_at.z == pytest.approx(LAYOUT.safe_z_m, abs=TOL_M)
        client.poses.clear()
        wait_for(lambda: len(client.poses) >= 5, 5.0, "pose samples after the e-stop")
        still = client.poses[-1].pose.position
        assert math.dist((still.x, still.y, still.z),
                         (stopped_at.x, stopped_at.y, stopped_at.z)) < TOL_M, "arm moved on"
        assert client.gripper[-1] is True, "e-stop must keep the part in the cup"
        reset = wait_future(client.reset_client.call_async(ResetFault.Request()), 10.0,
                            "reset_fault")
        assert reset.success and reset.cleared_fault == "ESTOP"
    finally:
        client.set_arm_params(travel_speed=0.10)


# --------------------------------------------------------------- lease test (sim only, last)
# It keeps the arm standing in the zone (sim stall fault) at an unloaded press, then kills the
# sim arm process.

def press_goal():
    """Return a small explicit press cycle (ramp to 1 MPa and release)."""
    return PressCycle.Goal(part_id="interlock", die_diameter=0.013, segments=[
        PressSegment(kind=PressSegment.KIND_RAMP, target_pressure=1e6, rate=1e6),
        PressSegment(kind=PressSegment.KIND_RELEASE, target_pressure=0.0, rate=1e6)])


def enter_zone_and_stay(client, slot):
    """Start a placement from ``slot`` to the die; return once the arm stands inside the zone.

    The transfer runs slowly; once it is under way, a stall is injected for the next move,
    the descent into the die, which is the last move that a cancel (or a lost lease) can stop.
    """
    slow = client.set_arm_params(fine_speed=0.01, travel_speed=0.01)   # in this order
    assert all(r.successful for r in slow), [r.reason for r in slow]
    feedback = []
    try:
        handle = client.send(PELLET, slot, "press_die", slot, feedback)
        assert handle.accepted
        wait_for(lambda: sum(f.stage == f.STAGE_TRANSFER for f in feedback) >= 2, 30.0,
                 "the transfer under way")
        assert all(r.successful for r in client.set_arm_params(sim_fault="stall:0.0"))
    finally:
        client.set_arm_params(travel_speed=0.10, fine_speed=0.02)
    wait_for(lambda: any(f.stage == f.STAGE_PLACE for f in feedback), 10.0, "the descent")
    count = len(feedback)

    def stalled():
        recent = [f.pose.position for f in feedback[count:]][-3:]
        return len(recent) == 3 and all(p == recent[0] for p in recent)

    wait_for(stalled, 10.0, "the arm standing still inside the zone")
    assert feedback[-1].stage == feedback[-1].STAGE_PLACE and feedback[-1].in_press_zone
    wait_for(lambda: client.press_states and client.press_states[-1].zone_leased, 5.0,
             "the press reporting the lease")
    return handle, feedback


def test_press_goal_refused_while_arm_holds_lease_and_lease_expires_after_arm_crash(cells):
    sim = cells["sim"]
    client = sim.client
    unlatch(client)
    press = ActionClient(client.node, PressCycle, "press_cycle")
    wait_for(press.server_is_ready, 20.0, "press_cycle server")
    client.press_states.clear()
    enter_zone_and_stay(client, sim.take(PELLET))
    refused = wait_future(press.send_goal_async(press_goal()), 10.0, "press goal response")
    assert not refused.accepted, "the press accepted a cycle with the arm in the zone"
    assert client.press_states[-1].zone_leased    # (renewal itself: test_arm_node_safety.py)

    stop(sim.arm_proc, sig_kill=True)          # crash: no release is ever sent
    killed = time.monotonic()
    wait_for(lambda: not client.press_states[-1].zone_leased, 5.0, "the lease to expire")
    expired_after_s = time.monotonic() - killed
    assert expired_after_s <= LEASE_S + 1.5, f"lease outlived the arm by {expired_after_s} s"
    granted = client.lease(ZoneLease.Request.ACQUIRE, holder="test", duration=0.5)
    assert granted.granted, granted.message
    client.lease(ZoneLease.Request.RELEASE, holder="test", lease_id=granted.lease_id)
    accepted = wait_future(press.send_goal_async(press_goal()), 10.0, "press goal response")
    assert accepted.accepted, "the press still refuses after the lease expired"
