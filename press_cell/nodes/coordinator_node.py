"""Coordinator node: the ``assemble_cell`` action runs a whole cell from a named recipe.

It is a thin ROS shell around ``press_cell.control.assembly.AssemblySequence``: the sequence's
press, arm and potentiostat ports are ROS action clients (``press_cycle``, ``place_component``,
``measure_impedance``, relative to the node's namespace), so the coordinator drives the same
nodes a task planner could drive by hand.

Policy (stated, as STYLE.md asks):
- Goals are validated in the goal callback: the recipe must exist in the recipes file and
  validate together with ``overrides_yaml``; a bad recipe is rejected before anything moves
  (reason logged and published on ``~/status``).
- Goals queue: several ``assemble_cell`` goals may be accepted; they run one after another in
  the order they were accepted (one press, one arm). ``max_queue`` bounds the queue; a goal
  beyond it is rejected as BUSY.
- Before each cell the coordinator waits (``device_timeout`` s) for the three action servers;
  a missing device aborts with DEVICE_NOT_READY and nothing moves.
- Cancel is accepted at any time: the running device goal is canceled (the press releases under
  control, the arm retreats), the cell is checked safe, and the result is CANCELED with the
  step named. A device failure does the same and ends STEP_FAILED with the step and reason.
- A finished cell is published on ``~/cell_record`` (reliable) and returned in the result.
"""

import itertools
import math
import threading
import time

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool

from press_cell import __version__
from press_cell.action import AssembleCell, MeasureImpedance, PlaceComponent, PressCycle
from press_cell.config_files import config_file
from press_cell.control.assembly import (
    STEP_IDS,
    AssemblySequence,
    DeviceOutcome,
    MeasuredCell,
    plan_cell,
)
from press_cell.msg import CellRecord, DeviceStatus, PressState
from press_cell.nodes import qos
from press_cell.nodes.blocking_action import ActionCallError, call_action, wait_for_server
from press_cell.recipes import RecipeError, load_recipes, recipe_hash, recipe_segments
from press_cell.recipes.stations import load_layout
from press_cell.srv import EmergencyStop

_KIND_CODES = {"ELECTROLYTE_PELLET": PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET,
               "ANODE_ON_ROD": PlaceComponent.Goal.KIND_ANODE_ON_ROD,
               "CATHODE": PlaceComponent.Goal.KIND_CATHODE,
               "SPACER": PlaceComponent.Goal.KIND_SPACER}


def _segments_msg(recipe):
    """Return the recipe's profile as PressSegment messages."""
    from press_cell.msg import PressSegment

    kinds = {"ramp": PressSegment.KIND_RAMP, "hold": PressSegment.KIND_HOLD,
             "release": PressSegment.KIND_RELEASE}
    return [PressSegment(kind=kinds[s.kind], target_pressure=float(s.target_pressure_pa),
                         rate=float(s.rate_pa_s), duration=float(s.duration_s),
                         tolerance=float(s.tolerance_pa)) for s in recipe_segments(recipe)]


class _RosPorts:
    """The assembly sequence's device ports, implemented with ROS action clients."""

    def __init__(self, node, progress):
        self.node = node
        self._progress = progress
        group = ReentrantCallbackGroup()
        self.press = ActionClient(node, PressCycle, "press_cycle", callback_group=group)
        self.arm = ActionClient(node, PlaceComponent, "place_component", callback_group=group)
        self.impedance = ActionClient(node, MeasureImpedance, "measure_impedance",
                                      callback_group=group)
        self.estop = node.create_client(EmergencyStop, "press/estop", callback_group=group)
        self.press_state = None
        self.arm_in_zone = None
        node.create_subscription(PressState, "press/state", self._on_press_state,
                                 qos.TELEMETRY, callback_group=group)
        node.create_subscription(Bool, "arm/in_press_zone", self._on_arm_zone, qos.LATCHED,
                                 callback_group=group)

    def _on_press_state(self, msg):
        self.press_state = msg

    def _on_arm_zone(self, msg):
        self.arm_in_zone = msg.data

    def clients(self):
        """Return (name, client) of the three device action servers."""
        return (("press_cycle", self.press), ("place_component", self.arm),
                ("measure_impedance", self.impedance))

    # -- PressPort
    def run_cycle(self, recipe, part_id, step_name, cancel):
        """Run one press cycle of ``recipe`` (segments sent explicitly, so overrides apply)."""
        goal = PressCycle.Goal(part_id=part_id, step_name=step_name, recipe_name=recipe.name,
                               recipe_hash=recipe_hash(recipe), material=recipe.material,
                               die_diameter=float(recipe.contact_diameter_m),
                               max_pressure=float(recipe.max_pressure_pa or 0.0))
        goal.segments = _segments_msg(recipe)

        def feedback(fb):
            self._progress(f"{step_name}: {fb.pressure / 1e6:7.2f} MPa "
                           f"(set {fb.pressure_setpoint / 1e6:.2f}), {fb.time_remaining:.0f} s "
                           "left")

        return self._call(self.press, goal, cancel, feedback,
                          payload=lambda result: result.certificate)

    # -- ArmPort
    def place(self, kind, component_id, source_slot, target_station, cancel):
        """Place one component with the arm."""
        goal = PlaceComponent.Goal(kind=_KIND_CODES[kind], component_id=component_id,
                                   source_slot=source_slot, target_station=target_station)

        def feedback(fb):
            self._progress(f"arm {fb.stage_name} ({component_id})")

        return self._call(self.arm, goal, cancel, feedback)

    # -- PotentiostatPort
    def measure(self, settings, cell_id, electrode_area_m2, cancel):
        """Measure and fit one spectrum."""
        goal = MeasureImpedance.Goal(cell_id=cell_id, frequency_max=settings.freq_max_hz,
                                     frequency_min=settings.freq_min_hz,
                                     points_per_decade=int(settings.points_per_decade),
                                     amplitude=settings.amplitude_v,
                                     electrode_area=electrode_area_m2)

        def feedback(fb):
            self._progress(f"impedance {fb.points_done}/{fb.points_total} at "
                           f"{fb.frequency:.3g} Hz")

        def payload(result):
            fit = result.fit
            return MeasuredCell(result.spectrum, fit, fit.r_total, fit.asr_interface)

        return self._call(self.impedance, goal, cancel, feedback, payload=payload)

    def _call(self, client, goal, cancel, feedback, payload=None):
        try:
            reply = call_action(client, goal, cancel=cancel, feedback=feedback,
                                server_timeout_s=10.0, result_timeout_s=4 * 3600.0)
        except ActionCallError as exc:
            return DeviceOutcome(False, message=str(exc))
        result = reply.result
        return DeviceOutcome(reply.succeeded and result.success, error_code=result.error_code,
                             message=result.error_msg, canceled=reply.canceled,
                             payload=payload(result) if payload else None)

    # -- SafetyPort
    def make_safe(self, timeout_s=30.0, arm_timeout_s=10.0):
        """Confirm the press is released (vent by e-stop if not) and the arm is out of the zone.

        The canceled or failed device goals already made their device safe (the press
        releases under control, the arm retreats); this checks it on their own topics.
        """
        return f"{self._press_safe(timeout_s)}; {self._arm_safe(arm_timeout_s)}"

    def _arm_safe(self, timeout_s):
        deadline = time.monotonic() + timeout_s
        while self.arm_in_zone and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.arm_in_zone is None:
            return "arm zone state not seen"
        return "arm STILL IN THE PRESS ZONE" if self.arm_in_zone else "arm out of the press zone"

    def _press_safe(self, timeout_s):
        released_pa = self.node.get_parameter("released_pressure").value
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.press_state
            if state is not None and state.pressure < released_pa:
                return f"press released ({state.pressure / 1e6:.2f} MPa)"
            time.sleep(0.05)
        if self.estop.wait_for_service(timeout_sec=2.0):
            self.estop.call_async(EmergencyStop.Request(
                reason="coordinator: press not released after a failed step"))
            return "press did not release in time: e-stop sent (vent)"
        state = self.press_state
        seen = "no press state seen" if state is None else \
            f"last pressure {state.pressure / 1e6:.2f} MPa"
        return f"could not confirm the press is released ({seen}) and no e-stop service"


class CoordinatorNode(Node):
    """Run ``assemble_cell`` goals on the press, arm and impedance nodes of one cell."""

    def __init__(self, *, node_name="coordinator", namespace=None, context=None,
                 parameter_overrides=None):
        """Declare parameters, servers and clients (the coordinator is not a lifecycle node)."""
        super().__init__(node_name, namespace=namespace, context=context,
                         parameter_overrides=parameter_overrides or [])
        self._declare_parameters()
        self._server_group = ReentrantCallbackGroup()
        self._status_pub = self.create_publisher(DeviceStatus, "~/status", qos.LATCHED)
        self._record_pub = self.create_publisher(CellRecord, "~/cell_record", qos.RECORD)
        self._queue_lock = threading.Condition()
        self._queue = []
        self._cells_done = itertools.count(self.get_parameter("first_cell_index").value)
        self._progress_detail = ""
        self._ports = _RosPorts(self, self._set_detail)
        self._server = ActionServer(
            self, AssembleCell, "assemble_cell", execute_callback=self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel, callback_group=self._server_group,
            result_timeout=24 * 3600)
        self._layout = load_layout(self._path("stations_file", "stations.yaml"))
        self._publish_status(DeviceStatus.STATE_READY, "ready")

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self):
        def text(name, default, description):
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True))

        text("recipes_file", "", "recipes YAML (empty: the shipped config/recipes.yaml)")
        text("stations_file", "", "cell layout YAML (empty: the shipped config/stations.yaml)")
        text("die_station", "press_die", "station where the cell is stacked")
        text("cell_id_prefix", "cell", "prefix of generated cell ids")
        self.declare_parameter("first_cell_index", 0, ParameterDescriptor(
            description="index of the first generated cell id (slots rotate with it)",
            read_only=True))
        self.declare_parameter("device_timeout", 15.0, ParameterDescriptor(
            description="s, how long to wait for the device action servers"))
        self.declare_parameter("max_queue", 16, ParameterDescriptor(
            description="cells that may wait in the queue; more are rejected as BUSY"))
        self.declare_parameter("released_pressure", 0.2e6, ParameterDescriptor(
            description="Pa, press pressure below which the cell counts as released"))

    def _path(self, parameter, default_name):
        value = self.get_parameter(parameter).value
        return value if value else str(config_file(default_name))

    def _publish_status(self, state, message, code=0):
        msg = DeviceStatus(device="coordinator", hardware="ros", state=state, fault_code=code,
                           message=message)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _set_detail(self, text):
        self._progress_detail = text

    # ------------------------------------------------------------------ action callbacks
    def _load(self, goal):
        """Return (assembly recipe, hash) for a goal or raise RecipeError/KeyError."""
        book = load_recipes(self._path("recipes_file", "recipes.yaml"),
                            overrides_yaml=goal.overrides_yaml)
        if goal.recipe_name not in book.assembly:
            raise KeyError(f"unknown assembly recipe {goal.recipe_name!r}; known: "
                           f"{', '.join(sorted(book.assembly))}")
        recipe = book.assembly[goal.recipe_name]
        return recipe, recipe_hash(recipe)

    def _on_goal(self, goal):
        """Accept a goal whose recipe loads and validates; reject it with the reason if not."""
        try:
            self._load(goal)
        except (RecipeError, KeyError, OSError) as exc:
            reason = f"assemble_cell rejected: {exc}"
            self.get_logger().error(reason)
            self._publish_status(DeviceStatus.STATE_READY, reason,
                                 AssembleCell.Result.INVALID_GOAL)
            return GoalResponse.REJECT
        with self._queue_lock:
            if len(self._queue) >= self.get_parameter("max_queue").value:
                reason = f"assemble_cell rejected: queue full ({len(self._queue)} cells waiting)"
                self.get_logger().error(reason)
                self._publish_status(DeviceStatus.STATE_BUSY, reason, AssembleCell.Result.BUSY)
                return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_cancel(self, _goal_handle):
        """Accept every cancel request (the running step is stopped safely)."""
        return CancelResponse.ACCEPT

    def _on_accepted(self, goal_handle):
        """Queue an accepted goal, then start its execution (it waits for its turn).

        The queue place is taken here, in the order goals are accepted: execute callbacks
        are tasks of a multi-threaded executor and may start in any order.
        """
        with self._queue_lock:
            self._queue.append(goal_handle)
        goal_handle.execute()

    def _execute(self, goal_handle):
        """Wait for this goal's turn in the queue, then assemble the cell."""
        with self._queue_lock:
            while self._queue[0] is not goal_handle and not goal_handle.is_cancel_requested:
                self._queue_lock.wait(0.1)
        try:
            return self._assemble(goal_handle)
        finally:
            with self._queue_lock:
                self._queue.remove(goal_handle)
                self._queue_lock.notify_all()

    def _assemble(self, goal_handle):
        goal = goal_handle.request
        result = AssembleCell.Result()
        index = next(self._cells_done)
        cell_id = goal.cell_id or self._generated_cell_id(index)
        result.record.cell_id = cell_id
        result.record.recipe_name = goal.recipe_name
        result.record.package_version = __version__
        if goal_handle.is_cancel_requested:
            goal_handle.canceled()
            return self._fail(result, AssembleCell.Result.CANCELED, "canceled while queued")
        try:
            recipe, digest = self._load(goal)
        except (RecipeError, KeyError, OSError) as exc:  # the file changed since acceptance
            goal_handle.abort()
            return self._fail(result, AssembleCell.Result.INVALID_GOAL, str(exc))
        missing = self._missing_devices()
        if missing:
            goal_handle.abort()
            return self._fail(result, AssembleCell.Result.DEVICE_NOT_READY,
                              f"device action servers not available: {', '.join(missing)}")
        trays = self._layout.stations
        plan = plan_cell(recipe, digest, cell_id, index,
                         pellet_slots=len(trays["pellet_tray"].slot_poses),
                         anode_slots=len(trays["anode_rack"].slot_poses),
                         die_station=self.get_parameter("die_station").value)
        self._publish_status(DeviceStatus.STATE_BUSY, f"assembling {cell_id} ({recipe.name})")

        def progress(step, step_index, count, detail):
            self._progress_detail = detail
            feedback = AssembleCell.Feedback(step=STEP_IDS[step], step_name=step,
                                             step_index=step_index, step_count=count,
                                             detail=detail)
            goal_handle.publish_feedback(feedback)
            self.get_logger().info(f"{cell_id}: step {step_index}/{count} {detail}")

        sequence = AssemblySequence(plan, self._ports, self._ports, self._ports, self._ports,
                                    on_progress=progress)
        done = threading.Event()
        watcher = threading.Thread(target=self._watch_cancel, args=(goal_handle, sequence, done),
                                   daemon=True)
        watcher.start()
        try:
            record = sequence.run()
        finally:
            done.set()
        self._fill_record(result.record, record, recipe)
        result.error_code = getattr(AssembleCell.Result, record.outcome)
        result.error_msg = record.message
        result.success = record.outcome == "NONE"
        self._record_pub.publish(result.record)
        if record.outcome == "CANCELED":
            goal_handle.canceled()
        elif record.outcome in ("NONE", "REJECTED"):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        self._publish_status(DeviceStatus.STATE_READY, f"{cell_id}: {record.verdict}")
        self.get_logger().info(f"{cell_id}: {record.outcome}: {record.verdict}")
        return result

    def _generated_cell_id(self, index):
        """Return ``<prefix>-<index>``, led by the namespace when the cell runs in one.

        Two namespaced cells number their cells independently; the namespace keeps their
        generated ids (and so part ids, records and bags) apart: ``cell1-cell-0000``.
        """
        cell_id = f"{self.get_parameter('cell_id_prefix').value}-{index:04d}"
        namespace = self.get_namespace().strip("/").replace("/", "-")
        return f"{namespace}-{cell_id}" if namespace else cell_id

    def _watch_cancel(self, goal_handle, sequence, done):
        while not done.wait(0.05):
            if goal_handle.is_cancel_requested:
                sequence.cancel()
                return

    def _missing_devices(self):
        timeout = self.get_parameter("device_timeout").value
        return [name for name, client in self._ports.clients()
                if not wait_for_server(client, timeout)]

    def _fail(self, result, code, message):
        result.success = False
        result.error_code = code
        result.error_msg = message
        result.record.verdict = "NOT JUDGED: " + message
        self.get_logger().error(f"{result.record.cell_id}: {message}")
        self._publish_status(DeviceStatus.STATE_READY, message, code)
        return result

    def _fill_record(self, msg, record, recipe):
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.recipe_hash = record.recipe_hash
        msg.started.sec = int(record.started_s)
        msg.started.nanosec = int((record.started_s % 1.0) * 1e9)
        msg.duration = float(record.duration_s)
        msg.certificates = [cert for _name, cert in record.certificates]
        msg.placed_components = list(record.placed)
        if record.measured is not None:
            msg.spectrum = record.measured.spectrum
            msg.fit = record.measured.fit
        msg.max_interface_asr = float(recipe.acceptance.max_interface_asr_ohm_m2)
        msg.max_total_resistance = float(recipe.acceptance.max_total_resistance_ohm)
        msg.passed = bool(record.passed)
        msg.verdict = record.verdict
        msg.failed_step = record.failed_step
        if not math.isfinite(msg.duration):
            msg.duration = 0.0


def main(args=None):
    """Run the coordinator node until interrupted."""
    rclpy.init(args=args)
    node = CoordinatorNode()
    executor = MultiThreadedExecutor(num_threads=6)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
