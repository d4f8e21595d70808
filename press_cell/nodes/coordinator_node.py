"""Coordinator node: the ``assemble_cell`` action runs a whole cell from a named recipe.

It is a thin ROS shell around ``press_cell.control.assembly.AssemblySequence``: the sequence's
press, arm and potentiostat ports are ROS action clients (``press_cycle``, ``place_component``,
``measure_impedance``, relative to the node's namespace), so the coordinator drives the same
nodes a task planner could drive by hand.

Policy (stated, as STYLE.md asks):
- Goals are validated in the goal callback: the recipe must exist in the recipes file and
  validate together with ``overrides_yaml``; a bad recipe is rejected before anything moves
  (reason logged and published on ``~/status``).
- Goals queue: several ``assemble_cell`` goals may be accepted; they start in the order they
  were accepted, each on the next free press line (``press_lines``; one press by default, so
  one after another). With two lines the cells are pipelined: each line's sequence runs in its
  own thread, the one arm is shared under a lock, so the arm places the parts of the cell on
  press B while press A holds (see ``control/pipeline.py``). A queued goal waits without an
  executor thread (it is executed when its line is assigned). ``max_queue`` bounds the queue;
  a goal beyond it is rejected as BUSY.
- Tray inventory (``control/inventory.py``): the parts a goal's recipe picks are reserved at
  acceptance, from the slots ``tray_filled_slots`` fills at start; a goal the trays cannot
  serve is rejected as BUSY before anything moves, the reason naming the tray, the parts left,
  the parts needed and the refill service. A successful pick empties its slot, an arm report
  EMPTY_SOURCE marks the slot empty, a failed placement that took the part away (dropped,
  canceled or failed mid-move) counts the slot as empty too (never sends the arm to a slot that
  may be empty); the unused reservation of a finished, failed or canceled cell goes back.
  ``~/refill_trays`` (``nodes/refill_service.RefillTrays``: std_srvs/Trigger when installed)
  marks the slots of ``tray_filled_slots`` full again and, with a simulated arm, puts parts
  into its trays (``arm/sim_refill``). The book is published on ``~/inventory`` (std_msgs/String,
  latched, JSON) and as /diagnostics key-values.
- Before each cell the coordinator waits (``device_timeout`` s) for the three action servers;
  a missing device aborts with DEVICE_NOT_READY and nothing moves.
- Cancel is accepted at any time: the running device goal is canceled (the press releases under
  control, the arm retreats), the cell is checked safe, and the result is CANCELED with the
  step named. A device failure does the same and ends STEP_FAILED with the step and reason.
- A finished cell is published on ``~/cell_record`` (reliable) and returned in the result.
- Cell journal (``nodes/cell_journal.py``, directory ``journal_dir``): when a cell starts and
  after every finished step the record so far (certificates, placed components, recipe, cell
  id, start, ``failed_step`` = the step in progress) replaces the cell's file atomically; a
  finished cell (passed, rejected, failed, canceled) removes it after its record is published.
  At start-up every leftover file of this node is a cell interrupted by a crash (SIGKILL, power
  cut, a stop mid-cell): it is moved to ``<journal_dir>/interrupted/``, logged, and published on
  ``~/cell_record`` with passed=false, verdict ``INTERRUPTED: ...`` and ``failed_step`` = the
  step in progress, once the topic has readers and their count has not changed for
  ``INTERRUPTED_SETTLE_S`` (at most ``INTERRUPTED_WAIT_S`` after start: the topic is not
  latched, a reader that matches later, e.g. a recorder started afterwards, misses it; the
  file in ``interrupted/`` stays). An unreadable (truncated) file is logged and set aside.
  A journal that cannot be written is logged; the cell goes on.
"""

import itertools
import json
import math
import threading
import time
from pathlib import Path

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionClient, ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import Bool, String

from press_cell import __version__
from press_cell.action import AssembleCell, MeasureImpedance, PlaceComponent, PressCycle
from press_cell.config_files import config_file
from press_cell.control.assembly import (
    STEP_IDS,
    AssemblySequence,
    DeviceOutcome,
    MeasuredCell,
    plan_cell,
    recipe_needs,
)
from press_cell.control.inventory import InventoryError, InventoryShortError, TrayInventory
from press_cell.control.pipeline import (
    LinePool,
    PressLineError,
    check_lines_against_layout,
    parse_press_lines,
)
from press_cell.msg import CellRecord, DeviceStatus, PressState
from press_cell.nodes import qos
from press_cell.nodes.blocking_action import ActionCallError, call_action, wait_for_server
from press_cell.nodes.cell_journal import CellJournal, default_journal_dir, interrupted_record
from press_cell.nodes.diagnostics import OK, WARN, DiagnosticsPublisher, diagnostic_status
from press_cell.nodes.refill_service import RefillTrays
from press_cell.recipes import RecipeError, load_recipes, recipe_hash, recipe_segments
from press_cell.recipes.stations import load_layout
from press_cell.srv import EmergencyStop

# Arm results after which the part is known to be still in its source slot (grasp failed or
# zone denied: the part was left or put back; refused goals never moved). Every other failed
# placement may have taken the part away: the slot counts as empty.
_PART_STILL_IN_SLOT = {PlaceComponent.Result.GRASP_FAILED, PlaceComponent.Result.ZONE_DENIED,
                       PlaceComponent.Result.INVALID_GOAL, PlaceComponent.Result.BUSY,
                       PlaceComponent.Result.UNKNOWN_STATION, PlaceComponent.Result.NOT_ACTIVE}

DISPATCH_PERIOD_S = 0.1    # s, queued goals canceled before they started are ended this often
REFILL_ARM_WAIT_S = 1.0    # s, wait for a simulated arm's sim_refill service
INTERRUPTED_SETTLE_S = 2.0  # s, ~/cell_record reader count steady before interrupted cells go out
INTERRUPTED_WAIT_S = 15.0   # s, after start-up interrupted cells go out even with no subscriber

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


def _call(client, goal, cancel, feedback, payload=None):
    """Run one device action to its end; return a DeviceOutcome."""
    try:
        reply = call_action(client, goal, cancel=cancel, feedback=feedback,
                            server_timeout_s=10.0, result_timeout_s=4 * 3600.0)
    except ActionCallError as exc:
        return DeviceOutcome(False, message=str(exc))
    result = reply.result
    return DeviceOutcome(reply.succeeded and result.success, error_code=result.error_code,
                         message=result.error_msg, canceled=reply.canceled,
                         payload=payload(result) if payload else None)


class _ArmPort:
    """The shared arm: place_component client, its zone flag and the lock of its users."""

    def __init__(self, node, group):
        self.client = ActionClient(node, PlaceComponent, "place_component", callback_group=group)
        self.lock = threading.Lock()        # one placement at a time, whichever line asks
        self.in_zone = None
        node.create_subscription(Bool, "arm/in_press_zone", self._on_zone, qos.LATCHED,
                                 callback_group=group)

    def _on_zone(self, msg):
        self.in_zone = msg.data

    def place(self, kind, component_id, source_slot, target_station, cancel, progress):
        """Place one component with the arm (the caller holds ``lock``)."""
        goal = PlaceComponent.Goal(kind=_KIND_CODES[kind], component_id=component_id,
                                   source_slot=source_slot, target_station=target_station)
        return _call(self.client, goal, cancel,
                     lambda fb: progress(f"arm {fb.stage_name} ({component_id})"))

    def safe(self, timeout_s):
        """Wait (holding the arm lock) until the arm is out of every press zone; say how it is."""
        deadline = time.monotonic() + timeout_s
        if not self.lock.acquire(timeout=timeout_s):
            return "arm busy with the other press line; zone state not checked"
        try:
            while self.in_zone and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            self.lock.release()
        if self.in_zone is None:
            return "arm zone state not seen"
        return "arm STILL IN THE PRESS ZONE" if self.in_zone else "arm out of the press zone"


class _LinePorts:
    """One press line's device ports over ROS: its press, its potentiostat, the shared arm."""

    def __init__(self, node, spec, arm, group, progress):
        self.node = node
        self.spec = spec
        self.arm_port = arm
        self.progress = progress            # set per cell by the coordinator
        self.press = ActionClient(node, PressCycle, spec.press_cycle_action,
                                  callback_group=group)
        self.impedance = ActionClient(node, MeasureImpedance, spec.measure_action,
                                      callback_group=group)
        self.estop = node.create_client(EmergencyStop, f"{spec.press}/estop",
                                        callback_group=group)
        self.press_state = None
        node.create_subscription(PressState, f"{spec.press}/state", self._on_press_state,
                                 qos.TELEMETRY, callback_group=group)

    def _on_press_state(self, msg):
        self.press_state = msg

    def clients(self):
        """Return (name, client) of the three device action servers of this line."""
        return ((self.spec.press_cycle_action, self.press),
                ("place_component", self.arm_port.client),
                (self.spec.measure_action, self.impedance))

    # -- PressPort
    def run_cycle(self, recipe, part_id, step_name, cancel):
        """Run one press cycle of ``recipe`` (segments sent explicitly, so overrides apply)."""
        goal = PressCycle.Goal(part_id=part_id, step_name=step_name, recipe_name=recipe.name,
                               recipe_hash=recipe_hash(recipe), material=recipe.material,
                               die_diameter=float(recipe.contact_diameter_m),
                               max_pressure=float(recipe.max_pressure_pa or 0.0))
        goal.segments = _segments_msg(recipe)

        def feedback(fb):
            self.progress(f"{step_name}: {fb.pressure / 1e6:7.2f} MPa "
                          f"(set {fb.pressure_setpoint / 1e6:.2f}), {fb.time_remaining:.0f} s "
                          f"left ({self.spec.press})")

        return _call(self.press, goal, cancel, feedback,
                     payload=lambda result: result.certificate)

    # -- ArmPort
    def place(self, kind, component_id, source_slot, target_station, cancel):
        """Place one component with the shared arm."""
        return self.arm_port.place(kind, component_id, source_slot, target_station, cancel,
                                   self.progress)

    # -- PotentiostatPort
    def measure(self, settings, cell_id, electrode_area_m2, cancel):
        """Measure and fit one spectrum."""
        goal = MeasureImpedance.Goal(cell_id=cell_id, frequency_max=settings.freq_max_hz,
                                     frequency_min=settings.freq_min_hz,
                                     points_per_decade=int(settings.points_per_decade),
                                     amplitude=settings.amplitude_v,
                                     electrode_area=electrode_area_m2)

        def feedback(fb):
            self.progress(f"impedance {fb.points_done}/{fb.points_total} at "
                          f"{fb.frequency:.3g} Hz")

        def payload(result):
            fit = result.fit
            return MeasuredCell(result.spectrum, fit, fit.r_total, fit.asr_interface)

        return _call(self.impedance, goal, cancel, feedback, payload=payload)

    # -- SafetyPort
    def make_safe(self, timeout_s=30.0, arm_timeout_s=10.0):
        """Confirm the press is released (vent by e-stop if not) and the arm is out of the zone.

        The canceled or failed device goals already made their device safe (the press
        releases under control, the arm retreats); this checks it on their own topics.
        """
        return f"{self._press_safe(timeout_s)}; {self.arm_port.safe(arm_timeout_s)}"

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
    """Run ``assemble_cell`` goals on the press line(s), arm and impedance nodes of one cell."""

    def __init__(self, *, node_name="coordinator", namespace=None, context=None,
                 parameter_overrides=None):
        """Declare parameters, servers and clients (the coordinator is not a lifecycle node).

        Raise ``ValueError`` when ``press_lines``, the layout or ``tray_filled_slots`` is wrong.
        """
        super().__init__(node_name, namespace=namespace, context=context,
                         parameter_overrides=parameter_overrides or [])
        self._declare_parameters()
        self._server_group = ReentrantCallbackGroup()
        self._status_pub = self.create_publisher(DeviceStatus, "~/status", qos.LATCHED)
        self._record_pub = self.create_publisher(CellRecord, "~/cell_record", qos.RECORD)
        self._inventory_pub = self.create_publisher(String, "~/inventory", qos.LATCHED)
        self._diagnostics = DiagnosticsPublisher(self)
        self._layout = load_layout(self._path("stations_file", "stations.yaml"))
        try:
            self._specs = parse_press_lines(self.get_parameter("press_lines").value,
                                            self.get_parameter("die_station").value)
            check_lines_against_layout(self._specs, self._layout)
            self._inventory = TrayInventory(self._layout,
                                            self.get_parameter("tray_filled_slots").value)
        except (PressLineError, InventoryError) as exc:
            raise ValueError(f"coordinator: {exc}") from exc
        self._queue_lock = threading.Lock()
        self._queue = []                    # accepted goal handles waiting for a line
        self._running = {}                  # goal key -> line index (None: canceled in queue)
        self._owners = {}                   # goal key -> (inventory owner, reserved slots)
        self._pending = {}                  # id(goal request) -> the same, while accepting
        self._owner_ids = itertools.count()
        self._pool = LinePool(len(self._specs))
        self._cells_done = itertools.count(self.get_parameter("first_cell_index").value)
        self._progress_detail = ""
        group = ReentrantCallbackGroup()
        self._arm = _ArmPort(self, group)
        self._lines = [_LinePorts(self, spec, self._arm, group, self._set_detail)
                       for spec in self._specs]
        self._arm_refill = self.create_client(RefillTrays, "arm/sim_refill", callback_group=group)
        self.create_service(RefillTrays, "~/refill_trays", self._on_refill, callback_group=group)
        self._server = ActionServer(
            self, AssembleCell, "assemble_cell", execute_callback=self._execute,
            goal_callback=self._on_goal, handle_accepted_callback=self._on_accepted,
            cancel_callback=self._on_cancel, callback_group=self._server_group,
            result_timeout=24 * 3600)
        self.create_timer(DISPATCH_PERIOD_S, self._dispatch, callback_group=group)
        self.create_timer(1.0, self._publish_diagnostics, callback_group=group)
        self._journal = self._open_journal()
        self._interrupted = self._recover_interrupted()
        self._interrupted_since = time.monotonic()
        self._subscribers = (0, self._interrupted_since)   # (~/cell_record readers, since)
        if self._interrupted:
            self._interrupted_timer = self.create_timer(
                0.2, self._publish_interrupted, callback_group=group)
        self._publish_inventory()
        lines = ", ".join(str(spec) for spec in self._specs)
        self._publish_status(DeviceStatus.STATE_READY, f"ready ({len(self._specs)} press "
                             f"line(s): {lines}; trays: {self._inventory.summary()})")

    # ------------------------------------------------------------------ set-up
    def _declare_parameters(self):
        def text(name, default, description):
            self.declare_parameter(name, default, ParameterDescriptor(
                description=description, read_only=True))

        text("recipes_file", "", "recipes YAML (empty: the shipped config/recipes.yaml)")
        text("stations_file", "", "cell layout YAML (empty: the shipped config/stations.yaml)")
        text("die_station", "press_die", "station where the cell is stacked (one press line)")
        text("cell_id_prefix", "cell", "prefix of generated cell ids")
        text("press_lines", [""], "press lines 'press:die_station[:impedance]', one per press; "
             "empty: one line 'press:<die_station>:impedance'. A press other than 'press' "
             "serves <press>/press_cycle, an impedance node other than 'impedance' "
             "<impedance>/measure_impedance")
        text("tray_filled_slots", ["*"], "tray/rack slots holding a part at start and after "
             "~/refill_trays ('*' every source slot, 'station', 'station/n', 'none')")
        self.declare_parameter("first_cell_index", 0, ParameterDescriptor(
            description="lowest index of generated cell ids (<prefix>-NNNN); the cell journal "
                        "counts on from there across restarts", read_only=True))
        self.declare_parameter("device_timeout", 15.0, ParameterDescriptor(
            description="s, how long to wait for the device action servers"))
        self.declare_parameter("max_queue", 16, ParameterDescriptor(
            description="cells that may wait in the queue; more are rejected as BUSY"))
        self.declare_parameter("released_pressure", 0.2e6, ParameterDescriptor(
            description="Pa, press pressure below which the cell counts as released"))
        text("journal_dir", "", "directory of the cell journal (each running cell's record, "
             "kept after every step; leftovers after a crash are reported and moved to "
             "<journal_dir>/interrupted); empty: $ROS_HOME/press_cell/journal, "
             "~/.ros/press_cell/journal without ROS_HOME")

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

    @property
    def press_lines(self):
        """Return the ``PressLineSpec`` of every press line."""
        return self._specs

    def destroy_node(self):
        """Release the cell journal's lock (its files stay), then destroy the node."""
        if self._journal is not None:
            self._journal.close()
        return super().destroy_node()

    # ------------------------------------------------------------------ journal
    def _open_journal(self):
        """Return the cell journal, or None (logged) when its directory cannot be made."""
        directory = self.get_parameter("journal_dir").value or default_journal_dir()
        try:
            return CellJournal(Path(directory), self.get_fully_qualified_name())
        except OSError as exc:
            self.get_logger().error(f"cell journal disabled: cannot use {directory}: {exc}; "
                                    "a crash mid-cell will keep no record")
            return None

    def _recover_interrupted(self):
        """Set aside the leftover journal files; return the records of interrupted cells."""
        if self._journal is None:
            return []
        records = []
        for entry in self._journal.scan():
            try:
                kept = self._journal.set_aside(entry.path)
            except OSError as exc:
                self.get_logger().error(f"journal {entry.path}: cannot move it aside: {exc}")
                continue
            if entry.record is None:
                self.get_logger().error(
                    f"journal of cell {entry.cell_id} is unreadable ({entry.error}); set aside "
                    f"as {kept}, nothing published")
                continue
            record = interrupted_record(entry)
            record.header.stamp = self.get_clock().now().to_msg()
            steps = ", ".join(c.step_name for c in record.certificates) or "none"
            self.get_logger().warning(
                f"{record.cell_id}: interrupted by a coordinator stop during {entry.step} "
                f"(press steps finished: {steps}; placed: "
                f"{', '.join(record.placed_components) or 'none'}); journal kept as {kept}")
            records.append(record)
        return records

    def _publish_interrupted(self):
        """Publish the interrupted cells once ~/cell_record has subscribers (or waited enough)."""
        now = time.monotonic()
        count = self._record_pub.get_subscription_count()
        if count != self._subscribers[0]:
            self._subscribers = (count, now)
        settled = count > 0 and now - self._subscribers[1] >= INTERRUPTED_SETTLE_S
        if not (settled or now - self._interrupted_since >= INTERRUPTED_WAIT_S):
            return
        self._interrupted_timer.cancel()
        records, self._interrupted = self._interrupted, []
        for record in records:
            self._record_pub.publish(record)
            self.get_logger().warning(f"{record.cell_id}: published on ~/cell_record: "
                                      f"{record.verdict}")

    def _journal_step(self, recipe, record, step):
        """Keep the cell's record so far in the journal (``step`` = the step now starting)."""
        if self._journal is None:
            return
        msg = CellRecord(cell_id=record.cell_id, recipe_name=record.recipe_name,
                         package_version=__version__)
        self._fill_record(msg, record, recipe)
        msg.duration = max(0.0, time.time() - record.started_s)
        msg.passed = False
        msg.verdict = f"IN PROGRESS: {step}"
        msg.failed_step = step
        try:
            self._journal.write(msg, step)
        except OSError as exc:
            self.get_logger().error(f"{record.cell_id}: journal not written before {step}: "
                                    f"{exc}")

    def _journal_done(self, cell_id):
        """Remove a finished cell's journal file (its record has been published)."""
        if self._journal is None:
            return
        try:
            self._journal.remove(cell_id)
        except OSError as exc:
            self.get_logger().error(f"{cell_id}: journal file not removed: {exc}")

    # ------------------------------------------------------------------ inventory
    def _inventory_state(self):
        counts = self._inventory.counts()
        return {name: {"slots": c.slots, "filled": c.filled, "reserved": c.reserved,
                       "free": c.free} for name, c in counts.items()}

    def _publish_inventory(self):
        """Publish the tray book on ~/inventory (latched JSON) and /diagnostics."""
        self._inventory_pub.publish(String(data=json.dumps(self._inventory_state(),
                                                           sort_keys=True)))
        self._publish_diagnostics()

    def _publish_diagnostics(self):
        state = self._inventory_state()
        values = {}
        for name, c in state.items():
            values.update({f"{name}.filled": c["filled"], f"{name}.reserved": c["reserved"],
                           f"{name}.free": c["free"], f"{name}.slots": c["slots"]})
        with self._queue_lock:
            values["cells_queued"] = len(self._queue)
            values["cells_running"] = sum(1 for line in self._running.values()
                                          if line is not None)
        values["press_lines"] = ", ".join(str(spec) for spec in self._specs)
        empty = [name for name, c in state.items() if c["filled"] == 0]
        level, message = (WARN, f"empty: {', '.join(empty)}") if empty else (OK, "trays stocked")
        self._diagnostics.publish(self.get_clock().now().to_msg(), [diagnostic_status(
            f"{self.get_fully_qualified_name()}: trays", "coordinator", level, message,
            values)])

    def _on_pick(self, slot, outcome):
        """Follow a placement's part in the tray book."""
        if outcome.success:
            self._inventory.picked(slot)
        elif outcome.error_code == PlaceComponent.Result.EMPTY_SOURCE:
            self._inventory.found_empty(slot)
            self.get_logger().warning(f"{slot} was empty (arm EMPTY_SOURCE): marked empty; "
                                      "refill and call ~/refill_trays")
        elif outcome.error_code and outcome.error_code not in _PART_STILL_IN_SLOT:
            self._inventory.picked(slot)     # the part may have left the slot
        self._publish_inventory()

    def _on_refill(self, request, response):
        """Mark the configured slots full again; refill the simulated arm's trays too."""
        added = self._inventory.refill()
        response.success = True
        response.message = (f"trays refilled ({len(added)} slot(s) marked full): "
                            f"{self._inventory.summary()}")
        if self._arm_refill.wait_for_service(timeout_sec=REFILL_ARM_WAIT_S):
            reply = self._call_service(self._arm_refill, RefillTrays.Request())
            if reply is None:
                response.message += "; the simulated arm did not answer arm/sim_refill"
            else:
                response.message += f"; {reply.message}"
                response.success = bool(reply.success)
        self.get_logger().info(response.message)
        self._publish_inventory()
        self._publish_status(DeviceStatus.STATE_READY, response.message)
        return response

    @staticmethod
    def _call_service(client, request, timeout_s=5.0):
        done = threading.Event()
        future = client.call_async(request)
        future.add_done_callback(lambda _f: done.set())
        return future.result() if done.wait(timeout_s) else None

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

    def _reject(self, reason, state, code):
        reason = f"assemble_cell rejected: {reason}"
        self.get_logger().error(reason)
        self._publish_status(state, reason, code)
        return GoalResponse.REJECT

    def _on_goal(self, goal):
        """Accept a goal whose recipe validates and whose parts the trays hold; else reject."""
        try:
            recipe, _digest = self._load(goal)
        except (RecipeError, KeyError, OSError) as exc:
            return self._reject(exc, DeviceStatus.STATE_READY, AssembleCell.Result.INVALID_GOAL)
        with self._queue_lock:
            if len(self._queue) >= self.get_parameter("max_queue").value:
                return self._reject(f"queue full ({len(self._queue)} cells waiting)",
                                    DeviceStatus.STATE_BUSY, AssembleCell.Result.BUSY)
        owner = f"goal-{next(self._owner_ids)}:{goal.cell_id or goal.recipe_name}"
        try:
            slots = self._inventory.reserve(owner, recipe_needs(recipe))
        except (InventoryShortError, InventoryError) as exc:
            return self._reject(exc, DeviceStatus.STATE_READY, AssembleCell.Result.BUSY)
        self._pending[id(goal)] = (owner, slots)
        self._publish_inventory()
        return GoalResponse.ACCEPT

    def _on_cancel(self, _goal_handle):
        """Accept every cancel request (the running step is stopped safely)."""
        return CancelResponse.ACCEPT

    @staticmethod
    def _key(goal_handle):
        return bytes(goal_handle.goal_id.uuid)

    def _on_accepted(self, goal_handle):
        """Queue an accepted goal; it is executed when a press line is free (FIFO)."""
        key = self._key(goal_handle)
        with self._queue_lock:
            self._owners[key] = self._pending.pop(id(goal_handle.request), ("", {}))
            self._queue.append(goal_handle)
        self._dispatch()

    def _dispatch(self):
        """Start queued goals on free press lines; finish goals canceled while queued."""
        start = []
        with self._queue_lock:
            for handle in [h for h in self._queue if h.is_cancel_requested]:
                self._queue.remove(handle)
                self._running[self._key(handle)] = None
                start.append(handle)
            while self._queue and self._pool.free_count:
                handle = self._queue.pop(0)
                self._running[self._key(handle)] = self._pool.claim()
                start.append(handle)
        for handle in start:
            handle.execute()

    def _execute(self, goal_handle):
        """Assemble the cell on the press line this goal was given (or end a canceled one)."""
        key = self._key(goal_handle)
        with self._queue_lock:
            line = self._running.get(key)
            owner, slots = self._owners.get(key, ("", {}))
        try:
            return self._assemble(goal_handle, line, slots)
        finally:
            self._inventory.release(owner)
            with self._queue_lock:
                self._running.pop(key, None)
                self._owners.pop(key, None)
            if line is not None:
                self._pool.release(line)
            self._publish_inventory()
            self._dispatch()

    def _assemble(self, goal_handle, line_index, slots):
        goal = goal_handle.request
        result = AssembleCell.Result()
        result.record.recipe_name = goal.recipe_name
        result.record.package_version = __version__
        if line_index is None or goal_handle.is_cancel_requested:
            result.record.cell_id = goal.cell_id
            goal_handle.canceled()
            return self._fail(result, AssembleCell.Result.CANCELED, "canceled while queued")
        cell_id = goal.cell_id or self._generated_cell_id(self._take_cell_index())
        result.record.cell_id = cell_id
        line = self._lines[line_index]
        try:
            recipe, digest = self._load(goal)
            plan = plan_cell(recipe, digest, cell_id, slots,
                             die_station=line.spec.die_station)
        except (RecipeError, KeyError, OSError, ValueError) as exc:  # file changed since
            goal_handle.abort()
            return self._fail(result, AssembleCell.Result.INVALID_GOAL, str(exc))
        missing = self._missing_devices(line)
        if missing:
            goal_handle.abort()
            return self._fail(result, AssembleCell.Result.DEVICE_NOT_READY,
                              f"device action servers not available: {', '.join(missing)}")
        self._publish_status(DeviceStatus.STATE_BUSY, f"assembling {cell_id} ({recipe.name}) "
                             f"on {line.spec.press}")

        def progress(step, step_index, count, detail):
            if len(self._lines) > 1:
                detail = f"{detail} on {line.spec.press}"
            self._progress_detail = detail
            feedback = AssembleCell.Feedback(step=STEP_IDS[step], step_name=step,
                                             step_index=step_index, step_count=count,
                                             detail=detail)
            goal_handle.publish_feedback(feedback)
            self.get_logger().info(f"{cell_id}: step {step_index}/{count} {detail}")

        sequence = AssemblySequence(
            plan, line, line, line, line, on_progress=progress, arm_lock=self._arm.lock,
            on_pick=self._on_pick,
            on_step=lambda record, step: self._journal_step(recipe, record, step))
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
        self._journal_done(cell_id)
        if record.outcome == "CANCELED":
            goal_handle.canceled()
        elif record.outcome in ("NONE", "REJECTED"):
            goal_handle.succeed()
        else:
            goal_handle.abort()
        others_busy = len(self._specs) - self._pool.free_count - 1   # this line is still claimed
        self._publish_status(DeviceStatus.STATE_BUSY if others_busy else DeviceStatus.STATE_READY,
                             f"{cell_id}: {record.verdict}")
        self.get_logger().info(f"{cell_id}: {record.outcome} on {line.spec.press}: "
                               f"{record.verdict}")
        return result

    def _take_cell_index(self):
        """Return the next generated-cell index: counted in the journal, so across restarts."""
        first = self.get_parameter("first_cell_index").value
        if self._journal is not None:
            try:
                return self._journal.take_cell_index(first)
            except OSError as exc:
                self.get_logger().warning(f"cell journal: cannot count cell ids ({exc}); "
                                          "counting in memory")
        return next(self._cells_done)

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

    def _missing_devices(self, line):
        timeout = self.get_parameter("device_timeout").value
        return [name for name, client in line.clients()
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
