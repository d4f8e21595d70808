"""Arm/press interlock over ROS: zone lease, pressurised press, missing press, arm crash.

Processes: a press serving ``press/zone_lease``, ``press/state`` and ``press_cycle``
(test/support/zone_lease_press.py, the press contract without physics) and a simulated arm
node in the same namespace; a second arm node in a namespace with no press. The last test
kills the first arm with SIGKILL, so it runs last.
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
from press_cell.srv import ZoneLease

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]

PELLET = PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET
R = PlaceComponent.Result
LEASE_S = 1.0          # the arm's requested lease; renewed every LEASE_S / 3
ARM = dict(hardware="sim", time_scale=20.0, lease_duration=LEASE_S,
           lease_service_timeout=0.5, motion_timeout=600.0, sim_filled_slots=["pellet_tray"])


class Cell:
    """The running processes and the test's ROS clients of one interlock module."""

    def __init__(self, context, namespace, lone_namespace, env):
        self.press_proc = start([str(SUPPORT / "zone_lease_press.py"), "--ros-args", "-r",
                                 f"__ns:={namespace}"], env)
        self.arm_proc = start(arm_args(namespace, **ARM), env)
        self.lone_arm_proc = start(arm_args(lone_namespace, **ARM), env)
        self.client = ArmCellClient(context, namespace)
        self.lone = ArmCellClient(context, lone_namespace)
        self.press_params = AsyncParameterClient(self.client.node, f"{namespace}/press")

    def set_press_pressure(self, pressure_pa):
        """Make the press report ``pressure_pa`` (Pa) and wait until the state shows it."""
        future = self.press_params.set_parameters([Parameter("pressure_pa",
                                                             value=float(pressure_pa))])
        assert wait_future(future, 10.0, "press parameter").results[0].successful
        states = self.client.press_states
        wait_for(lambda: states and states[-1].pressure == pressure_pa, 5.0,
                 f"press state at {pressure_pa} Pa")

    def stop_all(self):
        """End the processes; return their output."""
        return [stop(p) for p in (self.arm_proc, self.lone_arm_proc, self.press_proc)]


@pytest.fixture(scope="module")
def cell(request):
    context = Context()
    rclpy.init(context=context)
    tag = os.getpid()
    cell = Cell(context, f"/interlock_{tag}", f"/nopress_{tag}", ros_subprocess_env())
    try:
        cell.client.wait_arm_ready()
        cell.lone.wait_arm_ready()
        wait_for(lambda: cell.client.press_states, 20.0, "press state samples")
        wait_for(lambda: cell.press_params.services_are_ready(), 20.0, "press parameters")
        yield cell
    finally:
        cell.client.close()
        cell.lone.close()
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


def test_arm_without_a_press_service_is_refused_entry(cell):
    started = time.monotonic()
    status, result, feedback = cell.lone.place(PELLET, "pellet_tray/0", "press_die", "p0")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.ZONE_DENIED and "not available" in result.error_msg
    assert not any(f.in_press_zone for f in feedback)
    assert time.monotonic() - started < 20.0


def test_press_goal_refused_while_arm_holds_lease_and_lease_expires_after_arm_crash(cell):
    client = cell.client
    press = ActionClient(client.node, PressCycle, "press_cycle")
    wait_for(press.server_is_ready, 20.0, "press_cycle server")
    client.press_states.clear()
    feedback = []
    handle = client.send(PELLET, "pellet_tray/1", "press_die", "p1", feedback)
    assert handle.accepted
    wait_for(lambda: any(f.in_press_zone for f in feedback), 30.0, "the arm inside the zone")
    # keep it there: every move after entering the zone ends inside it; stall the next one
    assert all(r.successful for r in client.set_arm_params(sim_fault="stall:0.0"))
    wait_for(lambda: client.press_states and client.press_states[-1].zone_leased, 5.0,
             "the press reporting the lease")
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
