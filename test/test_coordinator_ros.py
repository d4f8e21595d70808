"""End-to-end tests of the whole-cell coordinator over ROS (issue 7).

Every cell runs in ANOTHER process: ``press-cell bringup`` (press, arm, impedance, coordinator
under one namespace, simulated: arm and potentiostat at 50x real time, the press in unpaced
lockstep). The test drives the real ``assemble_cell`` action and watches the devices' own
topics (``press/state``, ``arm/in_press_zone``). Only the full-recipe test runs the shipped
recipes unshortened; the others shorten the holds and ramps through the goal's
``overrides_yaml`` so a cell takes a few seconds.
"""

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from action_msgs.msg import GoalStatus
from conftest import SUPPORT

RELEASED_PA = 0.2e6                 # Pa, the coordinator's "released" threshold
BRINGUP_TIMEOUT_S = 40.0

# Shortened press recipes (holds of seconds; ramps within the press's 5 kN/s force rate and
# the supervisor's rate limit). The stack press entry is filled per test.
_SHORT_PRESS = {
    "li_symmetric_cell": {"li6ps5cl_370mpa_200mg": {"ramp_mpa_s": 15, "hold_s": 2,
                                                    "release_mpa_s": 20},
                          "li_foil_25mpa": {"ramp_mpa_s": 5, "hold_s": 5, "release_mpa_s": 5},
                          "li_stack_25mpa": {"ramp_mpa_s": 5, "hold_s": 5,
                                             "release_mpa_s": 5}},
    "na_symmetric_cell": {"na3ps4_370mpa_200mg": {"ramp_mpa_s": 15, "hold_s": 2,
                                                  "release_mpa_s": 20},
                          "na_foil_25mpa": {"ramp_mpa_s": 5, "hold_s": 5, "release_mpa_s": 5},
                          "na_stack_15mpa": {"ramp_mpa_s": 5, "hold_s": 5,
                                             "release_mpa_s": 5}},
}


def short_overrides(recipe, **changes):
    """Return overrides_yaml shortening ``recipe``; ``changes`` = {press recipe: {key: value}}."""
    press = {name: dict(values) for name, values in _SHORT_PRESS[recipe].items()}
    for name, values in changes.items():
        press.setdefault(name, {}).update(values)
    return yaml.safe_dump({"press_recipes": press}, default_flow_style=True)


class Bringup:
    """A ``press-cell bringup`` process whose output is drained into a list (pipe never fills)."""

    def __init__(self, start_process, namespace, *extra):
        self.namespace = namespace
        self.lines = []
        self._running = threading.Event()
        self.proc = start_process("bringup", "--namespace", namespace, "--time-scale", "50",
                                  "--no-record", "--log-level", "warn", *extra,
                                  module="press_cell.cli")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            if "running in namespace" in line:
                self._running.set()

    def wait_running(self, timeout_s=BRINGUP_TIMEOUT_S):
        """Wait until the bringup says its nodes are active."""
        deadline = time.monotonic() + timeout_s
        while not self._running.wait(0.1):
            assert self.proc.poll() is None, f"bringup exited:\n{self.log()}"
            assert time.monotonic() < deadline, f"bringup not running:\n{self.log()}"

    def log(self, lines=40):
        """Return the last lines of the process output."""
        return "\n".join(self.lines[-lines:])


@dataclass
class CellWatch:
    """What the test saw on one cell's device topics."""

    states: list = field(default_factory=list)        # PressState messages
    zone: list = field(default_factory=list)          # arm/in_press_zone values
    coordinator_status: list = field(default_factory=list)
    records: list = field(default_factory=list)       # coordinator/cell_record

    def wait_states(self, more=1, timeout_s=10.0):
        """Wait for ``more`` press samples after the ones seen now; return the latest."""
        target = len(self.states) + more
        deadline = time.monotonic() + timeout_s
        while len(self.states) < target:
            assert time.monotonic() < deadline, "no press/state samples"
            time.sleep(0.02)
        return self.states[-1]


def _wait_future(future, timeout_s):
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    assert done.wait(timeout_s), f"no answer within {timeout_s} s"
    return future.result()


class RosClient:
    """A test node spinning in its own thread, with helpers to drive and watch cells."""

    def __init__(self, context):
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        self.node = rclpy.create_node("coordinator_e2e", context=context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self._clients = {}
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def close(self):
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()

    def action(self, namespace):
        """Return the assemble_cell client of ``namespace`` once its server is up."""
        from rclpy.action import ActionClient

        from press_cell.action import AssembleCell
        from press_cell.nodes.blocking_action import wait_for_server

        if namespace not in self._clients:
            self._clients[namespace] = ActionClient(self.node, AssembleCell,
                                                    f"/{namespace}/assemble_cell")
        client = self._clients[namespace]
        assert wait_for_server(client, 30.0), f"no /{namespace}/assemble_cell server"
        return client

    def send(self, namespace, recipe, overrides="", cell_id="", feedback=None):
        """Send one goal; return the goal handle (``accepted`` tells whether it was taken)."""
        from press_cell.action import AssembleCell

        goal = AssembleCell.Goal(recipe_name=recipe, overrides_yaml=overrides, cell_id=cell_id)
        callback = (lambda msg: feedback(msg.feedback)) if feedback else None
        return _wait_future(self.action(namespace).send_goal_async(
            goal, feedback_callback=callback), 30.0)

    def result(self, handle, timeout_s):
        """Wait for an accepted goal's (status, result)."""
        response = _wait_future(handle.get_result_async(), timeout_s)
        return response.status, response.result

    def assemble(self, namespace, recipe, overrides="", cell_id="", timeout_s=60.0):
        """Run one cell to its end; return (status, result)."""
        handle = self.send(namespace, recipe, overrides, cell_id)
        assert handle.accepted, f"{recipe} rejected"
        return self.result(handle, timeout_s)

    def watch(self, namespace):
        """Subscribe to the cell's press state, arm zone flag, coordinator status and records."""
        from std_msgs.msg import Bool

        from press_cell.msg import CellRecord, DeviceStatus, PressState
        from press_cell.nodes import qos

        seen = CellWatch()
        node = self.node
        node.create_subscription(PressState, f"/{namespace}/press/state", seen.states.append,
                                 qos.TELEMETRY)
        node.create_subscription(Bool, f"/{namespace}/arm/in_press_zone",
                                 lambda msg: seen.zone.append(msg.data), qos.LATCHED)
        node.create_subscription(DeviceStatus, f"/{namespace}/coordinator/status",
                                 seen.coordinator_status.append, qos.LATCHED)
        node.create_subscription(CellRecord, f"/{namespace}/coordinator/cell_record",
                                 seen.records.append, qos.RECORD)
        seen.wait_states(timeout_s=30.0)
        return seen

    def call(self, srv_type, name, request, timeout_s=10.0):
        """Call a service and return its response."""
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout_s), f"no {name} service"
        return _wait_future(client.call_async(request), timeout_s)

    def set_parameter(self, node_name, name, value):
        """Set one string parameter of a remote node; return the SetParametersResult."""
        from rcl_interfaces.srv import SetParameters
        from rclpy.parameter import Parameter

        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self.call(SetParameters, f"{node_name}/set_parameters", request).results[0]


@pytest.fixture
def ros(rclpy_context):
    """Yield a RosClient in this test's rclpy context."""
    client = RosClient(rclpy_context)
    try:
        yield client
    finally:
        client.close()


def start_cells(start_process, *namespaces, extra=()):
    """Start one bringup per namespace (in parallel) and wait until every one runs."""
    cells = [Bringup(start_process, namespace, *extra) for namespace in namespaces]
    for cell in cells:
        cell.wait_running()
    return cells


def assert_released(watch, cell):
    """Assert the press reports less than the released pressure and the arm is out of the zone."""
    state = watch.wait_states(more=3)
    assert state.pressure < RELEASED_PA, \
        f"press not released: {state.pressure / 1e6:.3f} MPa\n{cell.log()}"
    assert watch.zone and watch.zone[-1] is False, f"arm in the press zone: {watch.zone[-3:]}"


def assert_passed(status, result, cell):
    """Assert a cell ran every step and passed its acceptance criteria."""
    from press_cell.action import AssembleCell

    record = result.record
    assert status == GoalStatus.STATUS_SUCCEEDED, f"{result.error_msg}\n{cell.log()}"
    assert result.success and result.error_code == AssembleCell.Result.NONE, result.error_msg
    assert record.passed, record.verdict
    assert record.verdict.startswith("PASS"), record.verdict
    assert record.failed_step == ""
    assert [c.step_name for c in record.certificates] == \
        ["compaction", "prepress_a", "prepress_b", "stack_press"]
    assert all(c.part_id.startswith(record.cell_id) for c in record.certificates)
    assert list(record.placed_components) == [f"{record.cell_id}/pellet",
                                              f"{record.cell_id}/anode-a",
                                              f"{record.cell_id}/anode-b"]
    fit = record.fit
    assert len(record.spectrum.frequency) > 10
    assert 0.0 < fit.r_total <= record.max_total_resistance
    assert 0.0 < fit.asr_interface <= record.max_interface_asr


# --------------------------------------------------------------------------- bringup options
@pytest.mark.parametrize("argv, press, others", [
    (["--time-scale", "50"], 0.0, 50.0),             # faster than real time: unpaced lockstep
    (["--time-scale", "1"], 1.0, 1.0),               # real time: the press paced with the rest
    (["--time-scale", "50", "--press-time-scale", "5"], 5.0, 50.0),
])
def test_bringup_time_scale_options(argv, press, others):
    """`press-cell bringup --time-scale` scales arm/impedance; the press gets lockstep when fast."""
    from press_cell.cli import build_parser
    from press_cell.commands.bringup import build_config

    config = build_config(build_parser().parse_args(["bringup", "--no-record", *argv]))
    assert config.overrides["press"] == {"hardware": "sim", "time_scale": press}
    assert config.overrides["arm"]["time_scale"] == others
    assert config.overrides["impedance"]["time_scale"] == others
    assert "recorder" not in config.nodes


# --------------------------------------------------------------------------- 1. full recipes
@pytest.mark.timeout(150)
def test_full_li_and_na_cells_pass_their_acceptance_criteria(start_process, ros):
    """The shipped Li and Na recipes, unshortened, give passing cells with 4 certificates."""
    from press_cell.recipes import load_recipes

    (cell,) = start_cells(start_process, "full")
    book = load_recipes()
    ids = []
    for recipe in ("li_symmetric_cell", "na_symmetric_cell"):
        status, result = ros.assemble("full", recipe, timeout_s=100.0)
        assert_passed(status, result, cell)
        record = result.record
        ids.append(record.cell_id)
        assert record.recipe_name == recipe
        # Every hold ran for its full recipe time (nothing was shortened).
        steps = {s.kind: s for s in book.assembly[recipe].steps}
        stack_hold_s = sum(s.hold_s for s in steps["stack_press"].recipe.stages)
        compaction_hold_s = sum(s.hold_s for s in steps["compaction"].recipe.stages)
        by_step = {c.step_name: c for c in record.certificates}
        assert by_step["stack_press"].hold_duration >= 0.99 * stack_hold_s
        assert by_step["compaction"].hold_duration >= 0.99 * compaction_hold_s
        assert by_step["compaction"].mean_hold_pressure == pytest.approx(370e6, rel=0.01)
    assert ids == ["full-cell-0000", "full-cell-0001"]


# --------------------------------------------------------------------------- 2. bad recipes
@pytest.mark.timeout(60)
def test_bad_recipes_are_rejected_before_anything_moves(start_process, ros):
    """An unknown recipe and an 80 MPa Li stack press are rejected; the press stays idle."""
    from press_cell.msg import PressState

    (cell,) = start_cells(start_process, "bad")
    watch = ros.watch("bad")
    bad_goals = [
        ("no_such_cell", "", "unknown assembly recipe"),
        ("li_symmetric_cell",
         "{press_recipes: {li_stack_25mpa: {target_pressure_mpa: 80, max_pressure_mpa: 100}}}",
         "li_stack_25mpa"),
    ]
    for recipe, overrides, reason in bad_goals:
        before = len(watch.coordinator_status)
        handle = ros.send("bad", recipe, overrides)
        assert handle.accepted is False, f"{recipe} {overrides} was accepted"
        deadline = time.monotonic() + 10.0
        while not any(reason in s.message for s in watch.coordinator_status[before:]):
            assert time.monotonic() < deadline, \
                f"no rejection reason on coordinator/status:\n{cell.log()}"
            time.sleep(0.02)
    watch.wait_states(more=4)       # samples from after both rejections (idle: 2 Hz keepalive)
    phases = {s.phase for s in watch.states}
    assert phases == {PressState.PHASE_IDLE}, phases
    assert max(s.pressure for s in watch.states) < RELEASED_PA
    assert not any(watch.zone), "the arm reported being in the press zone"
    assert watch.records == []


# --------------------------------------------------------------------------- 3. cancel
@pytest.mark.timeout(90)
def test_cancel_during_the_stack_press_releases_the_press(start_process, ros):
    """Canceled in the stack-press hold: CANCELED, step named, press released, arm out."""
    from press_cell.action import AssembleCell
    from press_cell.msg import PressState

    (cell,) = start_cells(start_process, "cancel")
    watch = ros.watch("cancel")
    in_stack = threading.Event()
    overrides = short_overrides("li_symmetric_cell", li_stack_25mpa={"hold_s": 300})
    handle = ros.send("cancel", "li_symmetric_cell", overrides,
                      feedback=lambda fb: fb.step_name == "stack_press" and in_stack.set())
    assert handle.accepted
    assert in_stack.wait(60.0), f"stack press never started:\n{cell.log()}"
    deadline = time.monotonic() + 30.0
    while watch.wait_states().phase != PressState.PHASE_HOLD:
        assert time.monotonic() < deadline, "stack press never reached its hold"
    assert watch.states[-1].pressure > 20e6
    _wait_future(handle.cancel_goal_async(), 10.0)
    status, result = ros.result(handle, 30.0)
    assert status == GoalStatus.STATUS_CANCELED, result.error_msg
    assert result.error_code == AssembleCell.Result.CANCELED
    assert result.record.failed_step == "stack_press"
    assert "press released" in result.error_msg and "arm out of the press zone" in \
        result.error_msg, result.error_msg
    assert not result.record.passed
    assert [c.step_name for c in result.record.certificates][:3] == \
        ["compaction", "prepress_a", "prepress_b"]
    assert_released(watch, cell)


@pytest.mark.timeout(60)
def test_cancel_with_the_arm_in_the_press_zone_retreats_it(start_process, ros):
    """Canceled while the arm places in the die: CANCELED at that placement, arm out."""
    from press_cell.action import AssembleCell

    (cell,) = start_cells(start_process, "cancelarm")
    watch = ros.watch("cancelarm")
    placing = threading.Event()
    handle = ros.send("cancelarm", "li_symmetric_cell", short_overrides("li_symmetric_cell"),
                      cell_id="ca", feedback=lambda fb: fb.step_name == "place" and placing.set())
    assert handle.accepted
    assert placing.wait(40.0), f"no placement started:\n{cell.log()}"
    deadline = time.monotonic() + 20.0
    while not (watch.zone and watch.zone[-1]):
        assert time.monotonic() < deadline, "the arm never entered the press zone"
        time.sleep(0.005)
    _wait_future(handle.cancel_goal_async(), 10.0)
    status, result = ros.result(handle, 30.0)
    assert status == GoalStatus.STATUS_CANCELED, result.error_msg
    assert result.error_code == AssembleCell.Result.CANCELED
    assert result.record.failed_step.startswith("place ca/"), result.record.failed_step
    assert "arm out of the press zone" in result.error_msg, result.error_msg
    assert_released(watch, cell)


# --------------------------------------------------------------------------- 4. step failures
@pytest.mark.timeout(60)
def test_failed_grasp_names_the_place_step(start_process, ros):
    """An injected grasp failure ends STEP_FAILED at the pellet placement; the cell is safe."""
    from press_cell.action import AssembleCell, PlaceComponent

    (cell,) = start_cells(start_process, "grasp")
    watch = ros.watch("grasp")
    applied = ros.set_parameter("/grasp/arm", "sim_fault", "grasp_failure")
    assert applied.successful, applied.reason
    status, result = ros.assemble("grasp", "li_symmetric_cell",
                                  short_overrides("li_symmetric_cell"), cell_id="g1")
    assert status == GoalStatus.STATUS_ABORTED, result.error_msg
    assert result.error_code == AssembleCell.Result.STEP_FAILED
    assert result.record.failed_step == "place g1/pellet"
    assert "place g1/pellet" in result.error_msg
    assert list(result.record.placed_components) == []
    assert len(result.record.certificates) == 3     # compaction and both pre-presses kept
    assert f"device code {PlaceComponent.Result.GRASP_FAILED})" in result.error_msg, \
        result.error_msg
    assert_released(watch, cell)


@pytest.mark.timeout(90)
def test_press_estop_during_compaction_names_compaction(start_process, ros):
    """A press fault (e-stop mid-compaction) ends STEP_FAILED at compaction, press vented.

    The press node has no sim fault hook, so the injected press fault is its ``~/estop``
    service. After ``~/reset_fault`` the same cell assembles the next cell normally.
    """
    from press_cell.action import AssembleCell
    from press_cell.msg import PressState
    from press_cell.srv import EmergencyStop, ResetFault

    (cell,) = start_cells(start_process, "pfault")
    watch = ros.watch("pfault")
    overrides = short_overrides("li_symmetric_cell", li6ps5cl_370mpa_200mg={"hold_s": 120})
    handle = ros.send("pfault", "li_symmetric_cell", overrides, cell_id="p1")
    assert handle.accepted
    deadline = time.monotonic() + 30.0
    while watch.wait_states().phase != PressState.PHASE_HOLD:
        assert time.monotonic() < deadline, "compaction never reached its hold"
    reply = ros.call(EmergencyStop, "/pfault/press/estop",
                     EmergencyStop.Request(reason="test: injected press fault"))
    assert reply.success, reply.message
    status, result = ros.result(handle, 30.0)
    assert status == GoalStatus.STATUS_ABORTED, result.error_msg
    assert result.error_code == AssembleCell.Result.STEP_FAILED
    assert result.record.failed_step == "compaction"
    assert result.error_msg.startswith("step failed: compaction"), result.error_msg
    assert list(result.record.placed_components) == []
    assert_released(watch, cell)

    reset = ros.call(ResetFault, "/pfault/press/reset_fault", ResetFault.Request())
    assert reset.success and reset.cleared_fault, reset.message
    status, result = ros.assemble("pfault", "li_symmetric_cell",
                                  short_overrides("li_symmetric_cell"), cell_id="p2")
    assert_passed(status, result, cell)


# --------------------------------------------------------------------------- 5. two cells
@pytest.mark.timeout(90)
def test_two_namespaced_cells_assemble_concurrently(start_process, ros):
    """/cell1 (Li) and /cell2 (Na) run at the same time; each record holds only its own parts."""
    cells = dict(zip(("cell1", "cell2"), start_cells(start_process, "cell1", "cell2"),
                     strict=True))
    watches = {ns: ros.watch(ns) for ns in cells}
    recipes = {"cell1": "li_symmetric_cell", "cell2": "na_symmetric_cell"}
    # The Na stack keeps its shipped 600 s hold: a thin Na foil needs it to pass.
    overrides = {"cell1": short_overrides("li_symmetric_cell"),
                 "cell2": short_overrides("na_symmetric_cell", na_stack_15mpa={"hold_s": 600})}
    handles = {ns: ros.send(ns, recipe, overrides[ns]) for ns, recipe in recipes.items()}
    assert all(h.accepted for h in handles.values())
    results = {ns: ros.result(handle, 60.0) for ns, handle in handles.items()}
    materials = {"cell1": {"Li6PS5Cl", "Li"}, "cell2": {"Na3PS4", "Na"}}
    spans = []
    for ns, (status, result) in results.items():
        assert_passed(status, result, cells[ns])
        record = result.record
        assert record.cell_id == f"{ns}-cell-0000"
        assert record.recipe_name == recipes[ns]
        assert {c.material for c in record.certificates} == materials[ns]
        deadline = time.monotonic() + 5.0
        while not watches[ns].records:
            assert time.monotonic() < deadline, f"no record on /{ns}/coordinator/cell_record"
            time.sleep(0.02)
        assert [r.cell_id for r in watches[ns].records] == [record.cell_id]
        start_s = record.started.sec + record.started.nanosec * 1e-9
        spans.append((start_s, start_s + record.duration))
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, f"the two cells did not overlap in time: {spans}"


# --------------------------------------------------------------------------- 6. planner queue
@pytest.fixture
def roomy_rack_params(tmp_path):
    """Return a params folder whose arm and coordinator use a layout with 8 anode rods.

    The shipped anode rack holds 4 rods, two cells' worth; the simulated rack is filled
    once at configure, so a queue of three cells needs a bigger rack.
    """
    from press_cell.config_files import config_dir

    shipped = Path(config_dir())
    layout = yaml.safe_load((shipped / "stations.yaml").read_text(encoding="utf-8"))
    layout["stations"]["anode_rack"].update(rows=2, pitch_y_mm=25)
    stations = tmp_path / "stations.yaml"
    stations.write_text(yaml.safe_dump(layout), encoding="utf-8")
    for node in ("press", "arm", "impedance", "coordinator"):
        params = yaml.safe_load((shipped / f"{node}.yaml").read_text(encoding="utf-8"))
        if node in ("arm", "coordinator"):
            params[f"/**/{node}"]["ros__parameters"]["stations_file"] = str(stations)
        (tmp_path / f"{node}.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    return tmp_path


@pytest.mark.timeout(120)
def test_planner_in_another_process_queues_three_cells(start_process, roomy_rack_params):
    """Three goals sent at once by a planner process run one after another, in order."""
    (cell,) = start_cells(start_process, "queue",
                          extra=("--params-dir", str(roomy_rack_params)))
    planner = start_process("--namespace", "queue", "--recipe", "li_symmetric_cell",
                            "--count", "3", "--overrides", short_overrides("li_symmetric_cell"),
                            "--timeout", "90", script=SUPPORT / "planner_queue.py")
    out, _ = planner.communicate(timeout=110)
    assert planner.returncode == 0, f"{out}\n{cell.log()}"
    rows = json.loads(out.strip().splitlines()[-1])
    assert len(rows) == 3
    assert all(r["accepted"] and r["answered"] and r["success"] for r in rows), \
        json.dumps(rows, indent=1)
    assert all(r["passed"] and r["certificates"] == 4 for r in rows)
    # Queue policy: the goals run in the order they were sent (= accepted), one at a time.
    assert [r["record_cell_id"] for r in rows] == \
        ["queue-cell-0000", "queue-cell-0001", "queue-cell-0002"], rows
    for before, after in zip(rows, rows[1:], strict=False):
        assert after["accepted_stamp_s"] < before["started_s"] + before["duration_s"], \
            "the goals were not waiting in the queue together"
        assert after["started_s"] >= before["started_s"] + before["duration_s"] - 0.05, rows
