"""Arm/press interlock with the real press node: no press-zone entry while it holds pressure.

Processes, started together: the press node (``press_cell.nodes.press_node``, simulated
press) and a simulated arm node in the same namespace. The lease tests that keep the arm in
the zone at an unloaded press also run in test_arm_node_placement.py against the press
stand-in (test/support/zone_lease_press.py), which can revoke leases; the crash of an arm
inside the zone is tested here against the real press node, last in the module. An arm with no
press at all is tested in test_arm_node_lifecycle.py.
"""

import os

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from conftest import ros_subprocess_env
from rclpy.action import ActionClient
from rclpy.context import Context
from support.arm_harness import (
    ArmCellClient,
    arm_args,
    start,
    stop,
    wait_for,
    wait_future,
)

from press_cell.action import PlaceComponent, PressCycle
from press_cell.msg import PressSegment

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90)]

PELLET = PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET
R = PlaceComponent.Result
ARM = dict(hardware="sim", time_scale=20.0, sim_filled_slots=["pellet_tray"])


class Cell:
    """The running processes and the test's ROS clients of one interlock module."""

    def __init__(self, context, real_namespace, env):
        self.real_press_proc = start(["-m", "press_cell.nodes.press_node", "--ros-args", "-r",
                                      f"__ns:={real_namespace}", "-p", "autostart:=true",
                                      "-p", "time_scale:=5.0", "-p", "rate_hz:=200.0",
                                      "-p", "state_rate_hz:=50.0"], env)
        self.real_arm_proc = start(arm_args(real_namespace, **ARM), env)
        self.real = ArmCellClient(context, real_namespace)

    def stop_all(self):
        """End the processes; return their output."""
        return [stop(p) for p in (self.real_arm_proc, self.real_press_proc)]


@pytest.fixture(scope="module")
def cell(request):
    context = Context()
    rclpy.init(context=context)
    tag = os.getpid()
    cell = Cell(context, f"/realpress_{tag}", ros_subprocess_env())
    try:
        cell.real.wait_arm_ready()
        wait_for(lambda: cell.real.press_states, 20.0, "press state samples")
        wait_for(lambda: cell.real.arm_diagnostic("press_pressure_pa") not in (None, "unknown"),
                 20.0, "the arm to hear the press (its /diagnostics)")
        yield cell
    finally:
        cell.real.close()
        logs = cell.stop_all()
        context.try_shutdown()
        if request.session.testsfailed:
            print("\n".join(log[-3000:] for log in logs))


def test_arm_is_refused_entry_while_the_press_node_holds_pressure(cell):
    # the real press node (press_cell.nodes.press_node, simulated press)
    client = cell.real
    press = ActionClient(client.node, PressCycle, "press_cycle")
    wait_for(press.server_is_ready, 20.0, "press_cycle server")
    hold = PressCycle.Goal(part_id="hold", die_diameter=0.013, material="Li6PS5Cl", segments=[
        PressSegment(kind=PressSegment.KIND_RAMP, target_pressure=3e6, rate=5e6),
        PressSegment(kind=PressSegment.KIND_HOLD, target_pressure=3e6, duration=600.0,
                     tolerance=1e6),
        PressSegment(kind=PressSegment.KIND_RELEASE, target_pressure=0.0, rate=5e6)])
    cycle = wait_future(press.send_goal_async(hold), 10.0, "press goal response")
    assert cycle.accepted
    try:
        wait_for(lambda: client.press_states[-1].pressure > 2e6, 10.0, "the press at pressure")
        client.in_zone.clear()
        client.press_states.clear()
        status, result, feedback = client.place(PELLET, "pellet_tray/0", "press_die", "p0")
        # with the arm's own check relaxed, the press refuses the lease itself
        assert client.set_arm_params(zone_pressure_threshold=5e6)[0].successful
        status2, result2, feedback2 = client.place(PELLET, "pellet_tray/0", "press_die", "p0")
        assert not any(s.zone_leased for s in client.press_states), "a lease was granted"
    finally:
        client.set_arm_params(zone_pressure_threshold=2e5)
        wait_future(cycle.cancel_goal_async(), 10.0, "press cancel")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.ZONE_DENIED
    assert "above the zone threshold 0.200 MPa" in result.error_msg, result.error_msg
    assert "put back" in result.error_msg, "the part must go back into its slot"
    assert status2 == GoalStatus.STATUS_ABORTED
    assert result2.error_code == R.ZONE_DENIED
    assert "press denied the zone lease" in result2.error_msg, result2.error_msg
    assert not any(f.in_press_zone for f in feedback + feedback2), "the arm entered the zone"
    assert not any(client.in_zone), "the arm reported being in the zone"


def test_arm_killed_in_the_zone_leaves_the_real_press_safe_and_usable(cell):
    """Last in the module (it kills the arm): lease held at idle, arm crash, lease expiry.

    The press refuses to pressurise while the arm holds the lease, keeps no fault from its own
    idle noise during the visit, and once the crashed arm's lease expires it grants a new
    lease and accepts a cycle again.
    """
    from test_arm_node_placement import enter_zone_and_stay, press_goal

    from press_cell.srv import ZoneLease

    client = cell.real
    press = ActionClient(client.node, PressCycle, "press_cycle")
    wait_for(press.server_is_ready, 20.0, "press_cycle server")
    wait_for(lambda: client.press_states and client.press_states[-1].pressure < 1e5, 20.0,
             "the press released")
    enter_zone_and_stay(client, "pellet_tray/1")
    wait_for(lambda: client.press_states[-1].zone_leased, 5.0, "the lease on press/state")
    refused = wait_future(press.send_goal_async(press_goal()), 10.0, "press goal response")
    assert not refused.accepted, "the press accepted a cycle with the arm in the zone"
    stop(cell.real_arm_proc, sig_kill=True)        # crash: no release is ever sent
    # the last renewal may have landed just before the kill; 3 s of slack for a loaded machine
    wait_for(lambda: not client.press_states[-1].zone_leased, 3.0 + 3.0,
             "the crashed arm's lease to expire (3 s lease)")
    assert client.press_states[-1].fault_code == 0, client.press_states[-1].fault_message
    granted = client.lease(ZoneLease.Request.ACQUIRE, holder="test", duration=0.5)
    assert granted.granted, granted.message
    client.lease(ZoneLease.Request.RELEASE, holder="test", lease_id=granted.lease_id)
    accepted = wait_future(press.send_goal_async(press_goal()), 10.0, "press goal response")
    assert accepted.accepted, "the press still refuses after the lease expired"
