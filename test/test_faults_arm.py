"""Zone lease expiring on the real press node while a live arm stands in the press zone.

Processes: the press node (simulated press) and a simulated arm node in one namespace. The arm
stands still inside the zone holding the lease (sim stall on the descent, as in
test_arm_node_placement), then the press node is frozen (SIGSTOP) for longer than the lease:
the arm's renewals go unanswered and its lease runs out on the press's clock. Asserted: the
arm names the lost lease in its result (ZONE_DENIED) and leaves the zone; once resumed
(SIGCONT) the press reports the lease gone, no fault, and it never held pressure meanwhile; it
then grants leases and runs cycles again. Covered elsewhere and not repeated: a lease the press
revokes (test_arm_node_safety, press stand-in), an arm SIGKILLed in the zone
(test_arm_node_interlock, test_arm_node_placement), e-stop in the zone (test_arm_node_safety).
"""

import os
import signal
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from conftest import ros_subprocess_env
from rclpy.action import ActionClient
from rclpy.context import Context
from support.arm_harness import ArmCellClient, arm_args, start, stop, wait_for, wait_future
from support.fault_press import record_figure
from test_arm_node_placement import enter_zone_and_stay, press_goal

from press_cell.action import PlaceComponent, PressCycle

pytestmark = [pytest.mark.ros, pytest.mark.timeout(90),
              pytest.mark.flaky(reruns=2, reruns_delay=1)]

LEASE_S = 1.5           # the arm's lease; renewed every 0.5 s
FROZEN_S = 2.0 * LEASE_S


@pytest.fixture
def cell():
    """Start a press node and a sim arm in one namespace; yield (client, press process)."""
    context = Context()
    rclpy.init(context=context)
    env = ros_subprocess_env()
    ns = f"/faults_arm_{os.getpid()}"
    press = start(["-m", "press_cell.nodes.press_node", "--ros-args", "-r", f"__ns:={ns}",
                   "-p", "autostart:=true", "-p", "time_scale:=5.0", "-p", "rate_hz:=200.0",
                   "-p", "state_rate_hz:=50.0"], env)
    arm = start(arm_args(ns, hardware="sim", time_scale=20.0, sim_filled_slots=["pellet_tray"],
                         lease_duration=LEASE_S, motion_timeout=600.0), env)
    client = ArmCellClient(context, ns)
    try:
        client.wait_arm_ready()
        wait_for(lambda: client.press_states, 20.0, "press state samples")
        wait_for(lambda: client.arm_diagnostic("press_pressure_pa") not in (None, "unknown"),
                 20.0, "the arm to hear the press")
        yield client, press
    finally:
        if press.poll() is None:
            press.send_signal(signal.SIGCONT)
        client.close()
        for proc in (arm, press):
            stop(proc)
        context.try_shutdown()


def test_lease_expiring_on_a_frozen_press_takes_the_arm_out_and_the_press_stays_safe(cell):
    """Press frozen past the lease: arm leaves (ZONE_DENIED), press unloaded, usable again."""
    client, press = cell
    handle, _ = enter_zone_and_stay(client, "pellet_tray/2")
    wait_for(lambda: client.press_states[-1].zone_leased, 5.0, "the lease on press/state")
    client.press_states.clear()
    frozen_s = time.monotonic()
    press.send_signal(signal.SIGSTOP)
    try:
        response = wait_future(handle.get_result_async(), 30.0, "the placement result")
        left_s = time.monotonic() - frozen_s
        wait_for(lambda: client.in_zone and client.in_zone[-1] is False, 10.0,
                 "the arm out of the press zone")
        time.sleep(max(0.0, FROZEN_S - (time.monotonic() - frozen_s)))
    finally:
        press.send_signal(signal.SIGCONT)
    assert response.status == GoalStatus.STATUS_ABORTED
    assert response.result.error_code == PlaceComponent.Result.ZONE_DENIED, \
        response.result.error_msg
    assert "renewal" in response.result.error_msg, response.result.error_msg
    # The press, resumed: the lease ran out on its clock; no fault; it never held pressure.
    wait_for(lambda: client.press_states and not client.press_states[-1].zone_leased, 10.0,
             "the lease gone on press/state")
    state = client.press_states[-1]
    assert state.fault_code == 0, state.fault_message
    assert max(s.pressure for s in client.press_states) < 0.2e6
    granted = client.lease(0, holder="test", duration=0.5)
    assert granted.granted, granted.message
    client.lease(2, holder="test", lease_id=granted.lease_id)
    press_client = ActionClient(client.node, PressCycle, "press_cycle")
    wait_for(press_client.server_is_ready, 20.0, "press_cycle server")
    goal = wait_future(press_client.send_goal_async(press_goal()), 10.0, "press goal response")
    assert goal.accepted, "the press refuses cycles after the lease expired"
    result = wait_future(goal.get_result_async(), 60.0, "press result")
    assert result.status == GoalStatus.STATUS_SUCCEEDED, result.result.error_msg
    record_figure("arm lease expiry in the zone (press frozen)", arm_out_after_s=round(left_s, 2),
                  arm_error=response.result.error_msg[:100])
