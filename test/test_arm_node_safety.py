"""Arm node safety inside the press zone, in-process: shutdown, e-stop, revoked lease.

One process holds the arm node (with a prebuilt simulated arm whose first move that starts
inside the press zone stalls, so the arm deterministically stands inside), the press stand-in
of test/support/zone_lease_press.py and a client, on one MultiThreadedExecutor.
"""

import threading
import time
from pathlib import Path

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Empty
from support.arm_harness import wait_for, wait_future
from support.zone_lease_press import ZoneLeasePress

from press_cell.action import PlaceComponent
from press_cell.hardware.arm_sim import SimulatedArm
from press_cell.nodes import qos
from press_cell.nodes.arm_node import ArmNode, ScaledClock
from press_cell.recipes.stations import load_layout

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

LAYOUT = load_layout(Path(__file__).resolve().parent.parent / "config" / "stations.yaml")
LEASE_S = 1.5        # renewed every 0.5 s: room for a loaded CI machine


class StallInsideZone(SimulatedArm):
    """A simulated arm whose first move starting inside the press zone never finishes."""

    armed = True

    def move_to(self, pose, speed_m_s):
        """Queue the move; stall it if it is the first to start inside the zone."""
        if self.armed and LAYOUT.press_zone.contains(self.current_pose().position_m):
            self.armed = False
            self.inject_stall(0.0)
        super().move_to(pose, speed_m_s)


@pytest.fixture
def cell(rclpy_context):
    """Start arm, press stand-in and client in /safe; yield (arm node, press, client, sim)."""
    sim = StallInsideZone(ScaledClock(20.0), lockstep=False, home_pose=LAYOUT.park_pose)
    sim.add_part("p0", LAYOUT.resolve_slot("pellet_tray/0")[2].position_m)
    executor = MultiThreadedExecutor(num_threads=8, context=rclpy_context)
    press_node = rclpy.create_node("press", namespace="/safe", context=rclpy_context)
    press = ZoneLeasePress(press_node)
    arm = ArmNode(namespace="/safe", context=rclpy_context, sim_arm=sim, parameter_overrides=[
        Parameter("autostart", value=True), Parameter("time_scale", value=20.0),
        Parameter("lease_duration", value=LEASE_S), Parameter("motion_timeout", value=600.0)])
    client_node = rclpy.create_node("safe_client", context=rclpy_context)
    for node in (press_node, arm, client_node):
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    client = ActionClient(client_node, PlaceComponent, "/safe/place_component")
    wait_for(client.server_is_ready, 10.0, "place_component")
    try:
        yield arm, press, client_node, client, sim
    finally:
        arm.make_safe()
        executor.shutdown(timeout_sec=2.0)
        for node in (press_node, arm, client_node):
            node.destroy_node()


def stand_inside(client, sim):
    """Send pellet_tray/0 -> press_die; return the result future once the arm stands inside."""
    goal = PlaceComponent.Goal(kind=PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET,
                               component_id="p0", source_slot="pellet_tray/0",
                               target_station="press_die")
    handle = wait_future(client.send_goal_async(goal), 10.0, "goal response")
    assert handle.accepted
    result = handle.get_result_async()      # asked at once, as action clients do
    wait_for(lambda: not sim.armed and LAYOUT.press_zone.contains(sim.current_pose().position_m),
             20.0, "the arm standing inside the press zone")
    return result


def test_shutdown_inside_the_zone_retreats_and_returns_the_lease_at_once(cell):
    arm, press, _, client, sim = cell
    result = stand_inside(client, sim)
    wait_for(lambda: press.current_lease() is not None, 5.0, "the lease")
    lease_id = press.current_lease()[0]
    arm.make_safe()              # what SIGINT / SIGTERM run in main() and on_shutdown do
    wait_for(lambda: press.current_lease() is None, 5.0, "the lease back at the press")
    # Handed back by an explicit RELEASE, not left to expire (a timing bound would flake on a
    # loaded machine; the press's own record says which it was).
    assert lease_id in press.released, "the lease expired instead of being released"
    response = wait_future(result, 10.0, "the result")
    assert response.status == GoalStatus.STATUS_ABORTED
    assert response.result.error_code == PlaceComponent.Result.NOT_ACTIVE
    position = response.result.final_pose.position
    assert not LAYOUT.press_zone.contains((position.x, position.y, position.z))
    assert sim.held_part == "p0", "the part stays in the cup away from a station"


def test_estop_inside_the_zone_keeps_the_lease_so_the_press_stays_locked(cell):
    arm, press, client_node, client, sim = cell
    result = stand_inside(client, sim)
    estop = client_node.create_publisher(Empty, "/safe/estop", qos.COMMAND)
    wait_for(lambda: estop.get_subscription_count() > 0, 5.0, "the arm's estop subscription")
    estop.publish(Empty())
    response = wait_future(result, 10.0, "the result")
    assert response.status == GoalStatus.STATUS_ABORTED
    assert "emergency stop" in response.result.error_msg
    stopped = sim.current_pose().position_m
    assert LAYOUT.press_zone.contains(stopped)
    time.sleep(2 * LEASE_S)
    assert press.current_lease() is not None, "the lease lapsed with the arm inside the zone"
    assert sim.current_pose().position_m == stopped, "the arm moved after the e-stop"
    assert sim.gripper_closed and sim.held_part == "p0"


def test_a_lease_the_press_revokes_takes_the_arm_out_of_the_zone(cell):
    arm, press, _, client, sim = cell
    result = stand_inside(client, sim)
    wait_for(lambda: press.current_lease() is not None, 5.0, "the lease")
    press.node.set_parameters([Parameter("deny_renewals", value=True)])
    response = wait_future(result, 10.0, "the result")
    assert response.status == GoalStatus.STATUS_ABORTED
    assert response.result.error_code == PlaceComponent.Result.ZONE_DENIED
    assert "renewal" in response.result.error_msg, response.result.error_msg
    position = response.result.final_pose.position
    assert not LAYOUT.press_zone.contains((position.x, position.y, position.z))
    assert sim.held_part == "p0", "the part stays in the cup away from a station"
