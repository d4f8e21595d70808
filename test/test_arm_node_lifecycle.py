"""Arm node lifecycle and parameters, in-process: configure failures, refusals, deactivate.

The node is built in this process (``ArmNode(context=..., parameter_overrides=...)``) and
spun on a MultiThreadedExecutor thread; an action client in the same context drives it.
"""

import math
import threading
from pathlib import Path

import pytest
import rclpy
import yaml
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from std_msgs.msg import Bool
from support.arm_harness import wait_for, wait_future

from press_cell.action import PlaceComponent
from press_cell.hardware.arm_sim import SimulatedArm
from press_cell.hardware.dobot_emulator import DobotEmulator
from press_cell.msg import DeviceStatus
from press_cell.nodes import qos
from press_cell.nodes.arm_node import ArmNode, ScaledClock
from press_cell.recipes.stations import load_layout

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

CONFIG = Path(__file__).resolve().parent.parent / "config"
LAYOUT = load_layout(CONFIG / "stations.yaml")


@pytest.fixture
def spin(rclpy_context):
    """Yield a function that adds nodes to a background MultiThreadedExecutor."""
    executor = MultiThreadedExecutor(num_threads=6, context=rclpy_context)
    thread = threading.Thread(target=executor.spin, daemon=True)
    nodes = []

    def add(node):
        nodes.append(node)
        executor.add_node(node)
        if not thread.is_alive():
            thread.start()
        return node

    yield add
    executor.shutdown(timeout_sec=2.0)
    for node in nodes:
        if isinstance(node, ArmNode):
            node.make_safe()
        node.destroy_node()


def arm(context, namespace="/lc", **params):
    overrides = [Parameter(k, value=v) for k, v in params.items()]
    return ArmNode(namespace=namespace, context=context, parameter_overrides=overrides)


def test_shipped_arm_yaml_sets_only_declared_parameters(rclpy_context):
    # (the processes of the other arm-node tests load the file with --params-file)
    document = yaml.safe_load((CONFIG / "arm.yaml").read_text())
    values = document["/**/arm"]["ros__parameters"]
    params = [Parameter(name, value=value) for name, value in values.items()]
    node = ArmNode(namespace="/cell7", context=rclpy_context, parameter_overrides=params)
    try:
        for param in params:
            assert node.has_parameter(param.name), f"arm.yaml sets undeclared {param.name}"
            assert node.get_parameter(param.name).value == param.value
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    finally:
        node.make_safe()
        node.destroy_node()


def test_configure_fails_with_the_reason_for_a_bad_layout(rclpy_context, tmp_path):
    bad = tmp_path / "stations.yaml"
    bad.write_text((CONFIG / "stations.yaml").read_text().replace("safe_z_mm: 100",
                                                                   "safe_z_mm: 900"))
    node = arm(rclpy_context, stations_file=str(bad))
    listener = rclpy.create_node("listener", context=rclpy_context)
    received = []
    listener.create_subscription(DeviceStatus, "/lc/arm/status", received.append, qos.LATCHED)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        executor = rclpy.executors.SingleThreadedExecutor(context=rclpy_context)
        executor.add_node(listener)
        for _ in range(50):
            executor.spin_once(timeout_sec=0.05)
            if received and received[-1].state == DeviceStatus.STATE_FAULT:
                break
        assert received[-1].state == DeviceStatus.STATE_FAULT
        assert "safe_z_mm" in received[-1].message and str(bad) in received[-1].message
    finally:
        node.destroy_node()
        listener.destroy_node()


def test_configure_fails_for_a_dobot_port_that_does_not_exist(rclpy_context):
    node = arm(rclpy_context, hardware="dobot", serial_port="/dev/nonexistent_dobot")
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
        assert node.trigger_configure() == TransitionCallbackReturn.FAILURE   # still safe
    finally:
        node.destroy_node()


def test_runtime_parameters_refuse_unsafe_or_malformed_values(rclpy_context):
    node = arm(rclpy_context)
    try:
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        (ok,) = node.set_parameters([Parameter("travel_speed", value=0.05)])
        assert ok.successful and node.get_parameter("travel_speed").value == 0.05
        (fine,) = node.set_parameters([Parameter("fine_speed", value=0.06)])
        assert not fine.successful and "travel_speed" in fine.reason
        (fast,) = node.set_parameters([Parameter("travel_speed", value=2.0)])
        assert not fast.successful
        (fault,) = node.set_parameters([Parameter("sim_fault", value="explode")])
        assert not fault.successful and "grasp_failure" in fault.reason
        (stall,) = node.set_parameters([Parameter("sim_fault", value="stall:1.5")])
        assert not stall.successful
        (hw,) = node.set_parameters([Parameter("hardware", value="dobot")])
        assert not hw.successful, "hardware must be read-only"
    finally:
        node.make_safe()
        node.destroy_node()


def test_sim_fault_is_refused_on_a_real_arm(rclpy_context):
    node = arm(rclpy_context, hardware="dobot")
    try:
        (fault,) = node.set_parameters([Parameter("sim_fault", value="grasp_failure")])
        assert not fault.successful and "emulator" in fault.reason
    finally:
        node.destroy_node()


def test_deactivate_mid_placement_ends_the_goal_and_leaves_the_arm_safe(rclpy_context, spin):
    # a placement that never enters the press zone: anode rack (beside the park pose) ->
    # inspection spot, a long transfer
    node = spin(arm(rclpy_context, time_scale=10.0, travel_speed=0.03, autostart=True))
    client_node = spin(rclpy.create_node("lc_client", context=rclpy_context))
    client = ActionClient(client_node, PlaceComponent, "/lc/place_component")
    gripper = []
    client_node.create_subscription(Bool, "/lc/arm/gripper", lambda m: gripper.append(m.data),
                                    qos.LATCHED)
    wait_for(client.server_is_ready, 10.0, "place_component")
    feedback = []
    goal = PlaceComponent.Goal(kind=PlaceComponent.Goal.KIND_ANODE_ON_ROD,
                               component_id="a", source_slot="anode_rack/0",
                               target_station="inspection")
    handle = wait_future(client.send_goal_async(
        goal, feedback_callback=lambda m: feedback.append(m.feedback)), 10.0, "goal response")
    assert handle.accepted
    wait_for(lambda: any(f.stage == f.STAGE_TRANSFER for f in feedback), 20.0, "transfer")
    assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    response = wait_future(handle.get_result_async(), 10.0, "result")
    assert response.status == GoalStatus.STATUS_ABORTED
    assert response.result.error_code == PlaceComponent.Result.NOT_ACTIVE
    position = response.result.final_pose.position
    assert position.z >= LAYOUT.safe_z_m - 1e-3
    inspection = LAYOUT.resolve_slot("inspection")[2].position_m
    assert math.dist((position.x, position.y), inspection[:2]) > 0.005, \
        "the arm must not have reached (or opened over) the target"
    wait_for(lambda: gripper and gripper[-1], 5.0, "gripper closed: the part stays in the cup")
    refused = wait_future(client.send_goal_async(goal), 10.0, "goal response while inactive")
    assert not refused.accepted, "an inactive arm accepted a goal"
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    handle = wait_future(client.send_goal_async(goal), 10.0, "goal response after activate")
    assert handle.accepted
    wait_future(handle.cancel_goal_async(), 10.0, "cancel")


def test_arm_without_a_press_is_refused_entry_to_the_press_zone(rclpy_context, spin):
    spin(arm(rclpy_context, namespace="/nopress", time_scale=40.0, lease_service_timeout=0.3,
             autostart=True))
    client_node = spin(rclpy.create_node("np_client", context=rclpy_context))
    client = ActionClient(client_node, PlaceComponent, "/nopress/place_component")
    wait_for(client.server_is_ready, 10.0, "place_component")
    feedback = []
    goal = PlaceComponent.Goal(kind=PlaceComponent.Goal.KIND_ANODE_ON_ROD,
                               component_id="a", source_slot="anode_rack/0",
                               target_station="press_die")
    handle = wait_future(client.send_goal_async(
        goal, feedback_callback=lambda m: feedback.append(m.feedback)), 10.0, "goal response")
    response = wait_future(handle.get_result_async(), 20.0, "result")
    assert response.status == GoalStatus.STATUS_ABORTED
    result = response.result
    assert result.error_code == PlaceComponent.Result.ZONE_DENIED
    assert "not available" in result.error_msg and "put back" in result.error_msg
    assert not any(f.in_press_zone for f in feedback), "the arm entered the zone"


def test_prebuilt_sim_arm_hook_shows_the_part_where_the_goal_put_it(rclpy_context, spin):
    sim = SimulatedArm(ScaledClock(40.0), lockstep=False, home_pose=LAYOUT.park_pose)
    sim.add_part("anode-7", LAYOUT.resolve_slot("anode_rack/2")[2].position_m)
    spin(ArmNode(namespace="/hook", context=rclpy_context, sim_arm=sim,
                 parameter_overrides=[Parameter("autostart", value=True),
                                      Parameter("time_scale", value=40.0)]))
    client_node = spin(rclpy.create_node("hook_client", context=rclpy_context))
    client = ActionClient(client_node, PlaceComponent, "/hook/place_component")
    wait_for(client.server_is_ready, 10.0, "place_component")
    goal = PlaceComponent.Goal(kind=PlaceComponent.Goal.KIND_ANODE_ON_ROD,
                               component_id="anode-7", source_slot="anode_rack/2",
                               target_station="inspection")
    handle = wait_future(client.send_goal_async(goal), 10.0, "goal response")
    response = wait_future(handle.get_result_async(), 20.0, "result")
    assert response.status == GoalStatus.STATUS_SUCCEEDED, response.result.error_msg
    target = LAYOUT.resolve_slot("inspection")[2].position_m
    assert math.dist(sim.part_positions()["anode-7"], target) < 1e-3
    assert sim.held_part is None and not sim.gripper_closed


def test_dobot_on_its_emulator_configures_cleans_up_and_configures_again(rclpy_context):
    with DobotEmulator(time_scale=10.0) as emulator:
        node = arm(rclpy_context, namespace="/dobot_lc", hardware="dobot",
                   serial_port=emulator.port)
        try:
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
            assert node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
            frames = emulator.frames_received
            assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
            assert emulator.frames_received > frames, "cleanup must stop the arm over the wire"
            assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS, \
                "the port must be free again after cleanup"
        finally:
            node.make_safe()
            node.destroy_node()
