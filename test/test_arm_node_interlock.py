"""Arm/press interlock over ROS: zone lease, pressurised press, missing press, arm crash.

Processes: a press serving ``press/zone_lease``, ``press/state`` and ``press_cycle``
(test/support/zone_lease_press.py, the press contract without physics) and a simulated arm
node in the same namespace. The last test kills the arm with SIGKILL, so it runs last.
(An arm without any press is tested in test_arm_node_lifecycle.py.)
"""

import os
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from conftest import ros_subprocess_env
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
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
from press_cell.msg import PressSegment
from press_cell.recipes.stations import load_layout
from press_cell.srv import ZoneLease

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]

PELLET = PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET
R = PlaceComponent.Result
LAYOUT = load_layout(SUPPORT.parent.parent / "config" / "stations.yaml")
LEASE_S = 0.6          # the arm's requested lease; renewed every LEASE_S / 3
ARM = dict(hardware="sim", time_scale=20.0, lease_duration=LEASE_S,
           lease_service_timeout=0.5, motion_timeout=600.0, sim_filled_slots=["pellet_tray"])


class Cell:
    """The running processes and the test's ROS clients of one interlock module."""

    def __init__(self, context, namespace, env):
        self.press_proc = start([str(SUPPORT / "zone_lease_press.py"), "--ros-args", "-r",
                                 f"__ns:={namespace}"], env)
        self.arm_proc = start(arm_args(namespace, **ARM), env)
        self.client = ArmCellClient(context, namespace)
        self.press_params = AsyncParameterClient(self.client.node, f"{namespace}/press")

    def set_press_param(self, name, value):
        """Set one parameter of the press stand-in."""
        future = self.press_params.set_parameters([Parameter(name, value=value)])
        assert wait_future(future, 10.0, "press parameter").results[0].successful

    def set_press_pressure(self, pressure_pa):
        """Make the press report ``pressure_pa`` (Pa) and wait until the state shows it."""
        self.set_press_param("pressure_pa", float(pressure_pa))
        states = self.client.press_states
        wait_for(lambda: states and states[-1].pressure == pressure_pa, 5.0,
                 f"press state at {pressure_pa} Pa")

    def stop_all(self):
        """End the processes; return their output."""
        return [stop(p) for p in (self.arm_proc, self.press_proc)]


@pytest.fixture(scope="module")
def cell(request):
    context = Context()
    rclpy.init(context=context)
    tag = os.getpid()
    cell = Cell(context, f"/interlock_{tag}", ros_subprocess_env())
    try:
        cell.client.wait_arm_ready()
        wait_for(lambda: cell.client.press_states, 20.0, "press state samples")
        wait_for(lambda: cell.press_params.services_are_ready(), 20.0, "press parameters")
        wait_for(lambda: cell.client.arm_diagnostic("press_pressure_pa") not in (None, "unknown"),
                 20.0, "the arm to hear the press (its /diagnostics)")
        yield cell
    finally:
        cell.client.close()
        logs = cell.stop_all()
        context.try_shutdown()
        if request.session.testsfailed:
            print("\n".join(log[-3000:] for log in logs))


def press_goal():
    """Return a small explicit press cycle (ramp to 1 MPa and release)."""
    return PressCycle.Goal(part_id="interlock", die_diameter=0.013, segments=[
        PressSegment(kind=PressSegment.KIND_RAMP, target_pressure=1e6, rate=1e6),
        PressSegment(kind=PressSegment.KIND_RELEASE, target_pressure=0.0, rate=1e6)])


def test_arm_is_refused_entry_while_the_press_is_pressurised(cell):
    client = cell.client
    cell.set_press_pressure(5.0e6)
    client.in_zone.clear()
    client.press_states.clear()
    try:
        status, result, feedback = client.place(PELLET, "pellet_tray/0", "press_die", "p0")
    finally:
        cell.set_press_pressure(0.0)
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.ZONE_DENIED
    assert "5.000 MPa" in result.error_msg, result.error_msg
    assert not any(f.in_press_zone for f in feedback), "the arm entered the zone"
    assert True not in client.in_zone
    assert not any(s.zone_leased for s in client.press_states), "a lease was taken"
    assert "put back" in result.error_msg
    # the part went back into its slot: the same slot can be placed once the press is down
    status, result, _ = client.place(PELLET, "pellet_tray/0", "press_die", "p0")
    assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg


def enter_zone_and_stay(client, slot):
    """Start a placement from ``slot`` to the die; return once the arm is parked inside."""
    feedback = []
    handle = client.send(PELLET, slot, "press_die", slot, feedback)
    assert handle.accepted
    wait_for(lambda: any(f.in_press_zone for f in feedback), 30.0, "the arm inside the zone")
    # keep it there: every move after entering the zone ends inside it; stall the next one
    assert all(r.successful for r in client.set_arm_params(sim_fault="stall:0.0"))
    count = len(feedback)

    def stalled():
        recent = [f.pose.position for f in feedback[count:]][-4:]
        return len(recent) == 4 and all(p == recent[0] for p in recent)

    wait_for(stalled, 10.0, "the arm standing still inside the zone")
    assert feedback[-1].in_press_zone
    wait_for(lambda: client.press_states and client.press_states[-1].zone_leased, 5.0,
             "the press reporting the lease")
    return handle, feedback


def test_a_lease_the_press_revokes_takes_the_arm_out_of_the_zone(cell):
    client = cell.client
    handle, _ = enter_zone_and_stay(client, "pellet_tray/2")
    cell.set_press_param("deny_renewals", True)
    try:
        response = wait_future(handle.get_result_async(), 10.0, "the placement result")
    finally:
        cell.set_press_param("deny_renewals", False)
    assert response.status == GoalStatus.STATUS_ABORTED
    result = response.result
    assert result.error_code == R.ZONE_DENIED and "renewal" in result.error_msg
    position = result.final_pose.position
    assert not LAYOUT.press_zone.contains((position.x, position.y, position.z))
    wait_for(lambda: client.in_zone[-1] is False, 5.0, "~/in_press_zone false")


def test_press_goal_refused_while_arm_holds_lease_and_lease_expires_after_arm_crash(cell):
    client = cell.client
    press = ActionClient(client.node, PressCycle, "press_cycle")
    wait_for(press.server_is_ready, 20.0, "press_cycle server")
    client.press_states.clear()
    enter_zone_and_stay(client, "pellet_tray/1")
    refused = wait_future(press.send_goal_async(press_goal()), 10.0, "press goal response")
    assert not refused.accepted, "the press accepted a cycle with the arm in the zone"
    # a lease renewed by a live arm outlasts its duration
    time.sleep(1.5 * LEASE_S)
    assert client.press_states[-1].zone_leased, "the live arm's lease was not renewed"

    stop(cell.arm_proc, sig_kill=True)          # crash: no release is ever sent
    killed = time.monotonic()
    wait_for(lambda: not client.press_states[-1].zone_leased, 5.0, "the lease to expire")
    expired_after_s = time.monotonic() - killed
    assert expired_after_s <= LEASE_S + 0.5, f"lease outlived the arm by {expired_after_s} s"
    granted = client.lease(ZoneLease.Request.ACQUIRE, holder="test", duration=0.5)
    assert granted.granted, granted.message
    client.lease(ZoneLease.Request.RELEASE, holder="test", lease_id=granted.lease_id)
    accepted = wait_future(press.send_goal_async(press_goal()), 10.0, "press goal response")
    assert accepted.accepted, "the press still refuses after the lease expired"
