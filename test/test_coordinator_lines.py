"""Two presses, one arm, a tray inventory: the coordinator over ROS (issue 7, session 2).

One ``press-cell bringup --presses 2`` process (press + press_b, impedance + impedance_b,
arm, coordinator; simulated: arm and potentiostats at 50x, presses in unpaced lockstep) serves
the module. Every test starts by refilling the trays (``coordinator/refill_trays``, which also
refills the simulated arm), so it does not depend on what an earlier test consumed.
"""

import json
import subprocess
import sys
import threading
import time

import pytest
from action_msgs.msg import GoalStatus
from conftest import REPO, ros_subprocess_env
from test_coordinator_ros import Bringup, RosClient, assert_passed, short_overrides

NS = "lines"
RECIPE = "li_symmetric_cell"            # 1 pellet + 2 anode rods; the rack holds 4 rods

pytestmark = [pytest.mark.ros, pytest.mark.flaky(reruns=1, reruns_delay=1)]


@pytest.fixture(scope="module")
def cell():
    """Start the two-press cell once for the module (conftest's start_process is per test)."""

    class _Starter:
        def __init__(self):
            self.procs = []

        def __call__(self, *args, module=None, **_kw):
            proc = subprocess.Popen([sys.executable, "-m", module, *args],
                                    env=ros_subprocess_env(), cwd=REPO,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self.procs.append(proc)
            return proc

    starter = _Starter()
    bringup = Bringup(starter, NS, "--presses", "2")
    try:
        bringup.wait_running()
        yield bringup
    finally:
        for proc in starter.procs:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def ros(rclpy_context):
    """Yield a RosClient in this test's rclpy context."""
    client = RosClient(rclpy_context)
    try:
        yield client
    finally:
        client.close()


def refill(ros):
    """Refill the trays (book and simulated arm); return the service response."""
    from press_cell.nodes.refill_service import RefillTrays

    reply = ros.call(RefillTrays, f"/{NS}/coordinator/refill_trays", RefillTrays.Request(),
                     timeout_s=20.0)
    assert reply.success, reply.message
    return reply


def inventory(ros):
    """Return the latest ~/inventory book (latched JSON)."""
    from std_msgs.msg import String

    from press_cell.nodes import qos

    seen = []
    sub = ros.node.create_subscription(String, f"/{NS}/coordinator/inventory",
                                       lambda msg: seen.append(json.loads(msg.data)),
                                       qos.LATCHED)
    deadline = time.monotonic() + 10.0
    while not seen:
        assert time.monotonic() < deadline, "no coordinator/inventory message"
        time.sleep(0.02)
    time.sleep(0.2)                 # a newer message may follow the latched one
    ros.node.destroy_subscription(sub)
    return seen[-1]


def rejection_reason(ros, send):
    """Send a goal with ``send()`` that must be rejected; return the reason on ~/status."""
    from press_cell.msg import DeviceStatus
    from press_cell.nodes import qos

    statuses = []
    sub = ros.node.create_subscription(DeviceStatus, f"/{NS}/coordinator/status",
                                       statuses.append, qos.LATCHED)
    time.sleep(0.3)                 # the latched status arrives first
    before = len(statuses)
    handle = send()
    assert handle.accepted is False, "a goal beyond the trays was accepted"
    deadline = time.monotonic() + 10.0
    while not [s for s in statuses[before:] if "rejected" in s.message]:
        assert time.monotonic() < deadline, "no rejection reason on coordinator/status"
        time.sleep(0.02)
    ros.node.destroy_subscription(sub)
    return [s for s in statuses[before:] if "rejected" in s.message][-1].message


@pytest.mark.timeout(120)
def test_two_presses_pipeline_two_cells_with_one_arm(cell, ros):
    """Two Li cells on press and press_b at once: both pass, arm work overlaps the other hold."""
    from press_cell.msg import PressState
    from press_cell.nodes import qos

    refill(ros)
    holds = {"press": [], "press_b": []}
    for press, seen in holds.items():
        ros.node.create_subscription(
            PressState, f"/{NS}/{press}/state",
            lambda msg, seen=seen: msg.phase == PressState.PHASE_HOLD and seen.append(msg),
            qos.TELEMETRY)
    events = []                     # (wall time, goal index, step name)
    lock = threading.Lock()

    def track(index):
        def on_feedback(fb):
            with lock:
                events.append((time.monotonic(), index, fb.step_name))
        return on_feedback

    overrides = short_overrides(RECIPE)
    handles = [ros.send(NS, RECIPE, overrides, cell_id=f"p{i}", feedback=track(i))
               for i in range(2)]
    assert all(h.accepted for h in handles)
    ends = {}
    for index, handle in enumerate(handles):
        status, result = ros.result(handle, 90.0)
        ends[index] = time.monotonic()
        assert_passed(status, result, cell)
    assert holds["press"] and holds["press_b"], "both presses must have held a cell"
    # overlap: one cell's placements ran while the other cell's stack press ran. A sub-step
    # lasts from its feedback to the goal's next feedback (or its result).
    spans = {0: [], 1: []}
    with lock:
        ordered = sorted(events) + [(ends[i], i, "end") for i in range(2)]
    for index, steps in spans.items():
        mine = sorted((t, step) for t, i, step in ordered if i == index)
        steps += [(step, t0, t1) for (t0, step), (t1, _n) in zip(mine, mine[1:], strict=False)]
    overlaps = [(i, p0, p1, h0, h1) for i in (0, 1) for step, p0, p1 in spans[i]
                if step == "place" for other, h0, h1 in spans[1 - i]
                if other == "stack_press" and p0 < h1 and h0 < p1]
    assert overlaps, f"no placement overlapped the other cell's stack press: {spans}"
    books = inventory(ros)
    assert books["anode_rack"]["filled"] == 0 and books["anode_rack"]["reserved"] == 0


@pytest.mark.timeout(150)
def test_a_queue_beyond_the_trays_is_refused_until_a_refill(cell, ros):
    """3 cells on a 4-rod rack: the 3rd is refused with the reason; after a refill it passes."""
    reply = refill(ros)
    assert "simulated trays refilled" in reply.message, reply.message
    books = inventory(ros)
    assert books["anode_rack"] == {"slots": 4, "filled": 4, "reserved": 0, "free": 4}
    overrides = short_overrides(RECIPE)
    first = [ros.send(NS, RECIPE, overrides, cell_id=f"q{i}") for i in range(2)]
    assert all(h.accepted for h in first)
    reason = rejection_reason(ros, lambda: ros.send(NS, RECIPE, overrides, cell_id="q2"))
    assert "not enough ANODE_ON_ROD parts: anode_rack has 0 free" in reason, reason
    assert "the recipe needs 2" in reason and "refill_trays" in reason, reason
    for handle in first:
        status, result = ros.result(handle, 90.0)
        assert_passed(status, result, cell)
    refill(ros)
    status, result = ros.assemble(NS, RECIPE, overrides, cell_id="q3", timeout_s=90.0)
    assert_passed(status, result, cell)
    assert status == GoalStatus.STATUS_SUCCEEDED


@pytest.mark.timeout(60)
def test_the_arm_refuses_travel_through_the_other_press_zone(cell, ros):
    """Above the pellet tray, an anode for press_b's die would pass press's die: refused."""
    from rclpy.action import ActionClient

    from press_cell.action import PlaceComponent
    from press_cell.msg import DeviceStatus
    from press_cell.nodes import qos
    from press_cell.nodes.blocking_action import call_action

    refill(ros)
    client = ActionClient(ros.node, PlaceComponent, f"/{NS}/place_component")
    # park the arm above the pellet tray: move a pellet from slot 3 to slot 7 of the tray
    reply = call_action(client, PlaceComponent.Goal(
        kind=PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET, component_id="shuffle",
        source_slot="pellet_tray/3", target_station="pellet_tray/7"), server_timeout_s=20.0,
        result_timeout_s=30.0)
    assert reply.result.success, reply.result.error_msg
    statuses = []
    ros.node.create_subscription(DeviceStatus, f"/{NS}/arm/status", statuses.append,
                                 qos.LATCHED)
    time.sleep(0.3)
    before = len(statuses)
    future = client.send_goal_async(PlaceComponent.Goal(
        kind=PlaceComponent.Goal.KIND_ANODE_ON_ROD, component_id="across",
        source_slot="anode_rack/3", target_station="press_die_b"))
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(20.0), "no answer to the place_component goal"
    handle = future.result()
    assert handle.accepted is False
    deadline = time.monotonic() + 10.0
    while not any("would cross the press zone of 'press'" in s.message
                  for s in statuses[before:]):
        assert time.monotonic() < deadline, [s.message for s in statuses[before:]]
        time.sleep(0.02)
    refill(ros)     # the moved pellet's slot is full again for the next test
