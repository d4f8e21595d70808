"""Lifecycle node ``arm``: the pick-and-place robot arm as a ROS 2 device.

The node translates ROS <-> the pure core (``ArmDriver`` backends, ``PlacementSequence``,
``CellLayout``); it holds no motion logic of its own.

Interfaces (names relative to the node ``~`` or to the cell namespace):

* action ``place_component`` (PlaceComponent): one goal at a time; malformed goals (unknown
  kind, empty id, slot syntax other than ``station`` or ``station/<n>``), busy, e-stop latched
  are rejected in goal_callback with the reason logged and published on ``~/status``. A
  well-formed goal naming a station the layout does not have is accepted and ends with
  UNKNOWN_STATION, an empty slot with EMPTY_SOURCE, as the core reports them. Feedback per
  stage and every ``feedback_period`` s while moving; cancel -> the arm stops, keeps the part
  and retreats -> CANCELED.
* press interlock: before entering the press-zone box the arm takes a lease from
  ``press/zone_lease`` (see ``zone_lease_client``); refused -> the part goes back to its slot
  and the goal ends with ZONE_DENIED. With several dies (two presses), the lease comes from
  ``<press>/zone_lease`` of the press that owns the goal's target die in the layout
  (``press:`` key of the die station), and the guarded box is that die's zone.
* topics: ``~/pose`` (PoseStamped, TELEMETRY, ``pose_rate`` Hz), ``~/gripper`` (Bool closed,
  LATCHED), ``~/in_press_zone`` (Bool, LATCHED), ``~/status`` (DeviceStatus, LATCHED),
  ``/diagnostics`` (1 Hz); subscribes to ``estop`` (Empty): motion stops at once, the gripper
  stays as it is, a running goal is aborted and the arm does not move again until
  ``~/reset_fault`` (ResetFault). While stopped inside the press zone the lease is kept
  (renewed), so the press stays locked out.

Lifecycle: configure = load the layout, build the driver chosen by ``hardware`` (``sim`` or
``dobot``), connect and self-check (FAILURE with a logged reason); activate = serve goals,
start telemetry; deactivate = cancel a running placement (the arm retreats with the part held,
the gripper never opens away from a station; the goal ends NOT_ACTIVE), stop telemetry;
cleanup = release the lease, disconnect; shutdown (also SIGINT/SIGTERM in ``main``) = all of
it, while ROS still runs. The action server itself exists from the first activate to cleanup,
so a goal aborted by deactivate still delivers its result; while inactive it rejects goals.
``/diagnostics`` is published at 1 Hz and whenever the lease changes.

Simulation (``hardware: sim``): the kinematic ``SimulatedArm`` runs on a clock
``time_scale`` times faster than wall time; ``sim_filled_slots`` chooses which tray/rack
slots hold a part at configure; setting the parameter ``sim_fault`` injects one fault into the
simulated arm for the next placement (``grasp_failure``, ``drop:<m carried>``,
``stall:<fraction>``). Tests use it; on a real arm the parameter is refused.
"""

import re
import threading
import time

from geometry_msgs.msg import Pose as PoseMsg
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import (
    SetParametersResult,
)
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn
from std_msgs.msg import Bool, Empty

from press_cell.action import PlaceComponent
from press_cell.config_files import config_file
from press_cell.control.inventory import fill_slot_refs
from press_cell.control.placement import (
    ComponentKind,
    PlacementOutcome,
    PlacementRequest,
    PlacementResult,
    PlacementSequence,
    PlacementStage,
)
from press_cell.hardware.arm_dobot import BAUD_RATE, DobotArm
from press_cell.hardware.arm_driver import ArmDriver, ArmError, ArmMotionError, Pose
from press_cell.hardware.arm_sim import SimulatedArm
from press_cell.msg import DeviceStatus
from press_cell.nodes import qos
from press_cell.nodes.diagnostics import ERROR, OK, DiagnosticsPublisher, diagnostic_status
from press_cell.nodes.node_runner import run_node
from press_cell.nodes.parameter_descriptor import describe as _describe
from press_cell.nodes.refill_service import RefillTrays
from press_cell.nodes.zone_lease_client import ZoneLeaseClient
from press_cell.recipes.stations import CellLayout, StationsConfigError, load_layout
from press_cell.srv import ResetFault

HARDWARE_CHOICES = ("sim", "dobot")
KIND_BY_CODE = {
    PlaceComponent.Goal.KIND_ELECTROLYTE_PELLET: ComponentKind.ELECTROLYTE_PELLET,
    PlaceComponent.Goal.KIND_ANODE_ON_ROD: ComponentKind.ANODE_ON_ROD,
    PlaceComponent.Goal.KIND_CATHODE: ComponentKind.CATHODE,
    PlaceComponent.Goal.KIND_SPACER: ComponentKind.SPACER,
}
STOP_TIMEOUT_S = 60.0      # deactivate / shutdown: longest wait for a placement to end, s
RESULT_GRACE_S = 0.2       # shutdown: time for the executor to deliver the last result, s
_SLOT_SYNTAX = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(/[0-9]+)?$")
_SIM_FAULT_SYNTAX = re.compile(r"^(grasp_failure|drop:[0-9.eE+-]+|stall:[0-9.eE+-]+)$")


def pose_to_msg(pose: Pose) -> PoseMsg:
    """Convert a core ``Pose`` (m, quaternion x, y, z, w) to ``geometry_msgs/Pose``."""
    msg = PoseMsg()
    msg.position.x, msg.position.y, msg.position.z = pose.position_m
    (msg.orientation.x, msg.orientation.y, msg.orientation.z,
     msg.orientation.w) = pose.orientation_xyzw
    return msg


class ScaledClock:
    """Wall-clock time played ``time_scale`` times faster: the simulated arm's clock, s."""

    def __init__(self, time_scale: float) -> None:
        if not time_scale > 0.0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._origin_s = time.monotonic()

    def now(self) -> float:
        """Return simulated seconds since construction."""
        return (time.monotonic() - self._origin_s) * self.time_scale


class EstopLatchedArm(ArmDriver):
    """An ``ArmDriver`` that refuses motion and gripper changes while an e-stop is latched."""

    def __init__(self, arm: ArmDriver) -> None:
        self.inner = arm
        self._latched = threading.Event()

    @property
    def latched(self) -> bool:
        """Return whether the e-stop latch is set."""
        return self._latched.is_set()

    def latch(self) -> None:
        """Set the latch and stop the arm now; the gripper keeps its state."""
        self._latched.set()
        self.inner.stop()

    def unlatch(self) -> None:
        """Clear the latch (after the operator's reset)."""
        self._latched.clear()

    def _refuse_when_latched(self, what: str) -> None:
        if self._latched.is_set():
            raise ArmMotionError(f"emergency stop latched: {what} refused until ~/reset_fault")

    def connect(self) -> None:
        """Connect the wrapped arm."""
        self.inner.connect()

    def disconnect(self) -> None:
        """Disconnect the wrapped arm."""
        self.inner.disconnect()

    @property
    def is_connected(self) -> bool:
        """Return whether the wrapped arm is connected."""
        return self.inner.is_connected

    def self_check(self) -> None:
        """Self-check the wrapped arm."""
        self.inner.self_check()

    def move_to(self, pose: Pose, speed_m_s: float) -> None:
        """Queue a move (m/s) unless the e-stop is latched."""
        self._refuse_when_latched("motion")
        self.inner.move_to(pose, speed_m_s)

    @property
    def is_moving(self) -> bool:
        """Return whether the wrapped arm moves."""
        return self.inner.is_moving

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` (s) for the wrapped arm."""
        return self.inner.wait_until_idle(timeout_s)

    def current_pose(self) -> Pose:
        """Return the wrapped arm's pose."""
        return self.inner.current_pose()

    def grip(self) -> None:
        """Close the gripper unless the e-stop is latched."""
        self._refuse_when_latched("grip")
        self.inner.grip()

    def release(self) -> None:
        """Open the gripper unless the e-stop is latched."""
        self._refuse_when_latched("release")
        self.inner.release()

    @property
    def gripper_closed(self) -> bool:
        """Return the wrapped gripper state."""
        return self.inner.gripper_closed

    def grasp_detected(self) -> bool:
        """Return the wrapped payload sensor."""
        return self.inner.grasp_detected()

    def stop(self) -> None:
        """Stop the wrapped arm."""
        self.inner.stop()


class ArmNode(LifecycleNode):
    """The robot arm: place_component, telemetry, press-zone lease, e-stop."""

    def __init__(self, *, namespace: str = "", context=None, parameter_overrides=None,
                 sim_arm: SimulatedArm | None = None) -> None:
        """Declare parameters and the always-on interfaces; autostart if asked.

        ``sim_arm`` (sim hook): use this prebuilt ``SimulatedArm`` (its clock, its parts)
        instead of building one; ``time_scale`` and ``sim_filled_slots`` are then ignored.
        """
        super().__init__("arm", namespace=namespace, context=context,
                         parameter_overrides=parameter_overrides or [])
        self._declare_parameters()
        self._sim_arm_hook = sim_arm
        self._sim_arm: SimulatedArm | None = None
        self._arm: EstopLatchedArm | None = None
        self._layout: CellLayout | None = None
        self._sequence: PlacementSequence | None = None
        self._gate: ZoneLeaseClient | None = None
        self._action_server: ActionServer | None = None
        self._active = False
        self._telemetry_timers: list = []
        self._lock = threading.Lock()
        self._telemetry_lock = threading.Lock()
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._stop_reason: tuple | None = None   # (error_code, message) for the running goal
        self._goal_handle = None
        self._last_gripper: bool | None = None
        self._last_in_zone: bool | None = None
        self._last_status: tuple | None = None
        self._telemetry_fault = ""
        self._placements = {"succeeded": 0, "failed": 0}
        self._refills = 0            # sim: parts added by ~/sim_refill (unique part ids)

        self._action_group = ReentrantCallbackGroup()
        self._safety_group = MutuallyExclusiveCallbackGroup()
        self._telemetry_group = MutuallyExclusiveCallbackGroup()
        self._status_pub = self.create_publisher(DeviceStatus, "~/status", qos.LATCHED)
        self._pose_pub = self.create_publisher(PoseStamped, "~/pose", qos.TELEMETRY)
        self._gripper_pub = self.create_publisher(Bool, "~/gripper", qos.LATCHED)
        self._zone_pub = self.create_publisher(Bool, "~/in_press_zone", qos.LATCHED)
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_subscription(Empty, "estop", self._on_estop, qos.COMMAND,
                                 callback_group=self._safety_group)
        self.create_service(ResetFault, "~/reset_fault", self._on_reset_fault,
                            callback_group=self._safety_group)
        if self._param("hardware") == "sim":
            self.create_service(RefillTrays, "~/sim_refill", self._on_sim_refill,
                                callback_group=self._safety_group)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._publish_status(DeviceStatus.STATE_UNCONFIGURED, "unconfigured")
        if self.get_parameter("autostart").value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ----------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        declare = self.declare_parameter
        declare("hardware", "sim", _describe(
            "arm backend: sim (kinematic simulator) | dobot (Dobot Magician, serial)",
            read_only=True))
        declare("serial_port", "/dev/ttyUSB0", _describe(
            "serial device or pyserial URL of the Dobot", read_only=True))
        declare("baud_rate", BAUD_RATE, _describe(
            "serial baud rate, 1/s; the Dobot Magician protocol fixes it at 115200",
            read_only=True, ints=(9600, 1000000)))
        declare("vacuum_sensor_eio", 10, _describe(
            "Dobot EIO input wired to the vacuum switch", read_only=True, ints=(1, 20)))
        declare("stations_file", "", _describe(
            "cell layout YAML (config/stations.yaml format); empty = the shipped file; "
            "read at configure"))
        declare("travel_speed", 0.10, _describe(
            "speed of moves at the safe height, m/s", floats=(0.001, 0.3)))
        declare("fine_speed", 0.02, _describe(
            "speed of the final approach, descent and lift, m/s; <= travel_speed",
            floats=(0.001, 0.1)))
        declare("motion_timeout", 30.0, _describe(
            "longest single move before it counts as stalled, s of arm time",
            floats=(0.5, 600.0)))
        declare("feedback_period", 0.05, _describe(
            "period of action feedback while moving, s (<= 0.1 s: >= 10 Hz)",
            floats=(0.01, 0.1)))
        declare("zone_pressure_threshold", 2.0e5, _describe(
            "refuse press-zone entry while the press reports more than this, Pa",
            floats=(0.0, 5.0e6)))
        declare("lease_duration", 3.0, _describe(
            "requested press-zone lease duration, s; renewed every third of it",
            floats=(0.3, 60.0)))
        declare("lease_service_timeout", 2.0, _describe(
            "how long to wait for the press's zone_lease service, s", floats=(0.1, 30.0)))
        declare("pose_rate", 20.0, _describe(
            "rate of ~/pose, Hz; read at activate", floats=(1.0, 100.0)))
        declare("time_scale", 1.0, _describe(
            "sim only: simulated seconds per wall second", read_only=True,
            floats=(0.1, 1000.0)))
        declare("sim_filled_slots", ["*"], _describe(
            "sim only: tray/rack slots holding a part at configure ('station/n', 'station' "
            "for all its slots, '*' for every source slot, 'none' for no part)",
            read_only=True))
        declare("sim_fault", "", _describe(
            "sim only: setting it injects one fault for the next placement: grasp_failure | "
            "drop:<m carried before the part falls> | stall:<fraction of the next move>"))
        declare("autostart", False, _describe(
            "configure and activate right after construction", read_only=True))

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _validate_parameters(self, params: list) -> SetParametersResult:
        """Refuse runtime values that break cross-field rules or the backend."""
        values = {p.name: p.value for p in params}
        travel = values.get("travel_speed", self._param("travel_speed"))
        fine = values.get("fine_speed", self._param("fine_speed"))
        if fine > travel:
            return SetParametersResult(successful=False, reason=(
                f"fine_speed {fine} m/s must not exceed travel_speed {travel} m/s"))
        if "sim_fault" in values and values["sim_fault"]:
            fault = values["sim_fault"]
            if self._param("hardware") != "sim":
                return SetParametersResult(successful=False, reason=(
                    "sim_fault only works with hardware: sim; inject faults into the Dobot "
                    "emulator instead"))
            if not _SIM_FAULT_SYNTAX.match(fault):
                return SetParametersResult(successful=False, reason=(
                    f"sim_fault {fault!r}: allowed grasp_failure, drop:<m>, stall:<fraction "
                    "in [0, 1)>"))
            if self._sim_arm is None:
                return SetParametersResult(successful=False, reason=(
                    "sim_fault needs a configured node (no simulated arm yet)"))
            if fault.startswith("stall:") and not 0.0 <= float(fault[6:]) < 1.0:
                return SetParametersResult(successful=False, reason=(
                    f"sim_fault {fault!r}: the stall fraction must be in [0, 1)"))
        return SetParametersResult(successful=True)

    def _apply_parameters(self, params: list) -> None:
        """Apply accepted runtime changes (speeds, timeouts, lease settings, sim faults).

        Speeds and timeouts apply from the next placement, lease settings from the next
        press-zone entry.
        """
        for param in params:
            if param.name == "sim_fault" and param.value and self._sim_arm is not None:
                kind, _, value = param.value.partition(":")
                if kind == "grasp_failure":
                    self._sim_arm.inject_grasp_failure(1)
                elif kind == "drop":
                    self._sim_arm.inject_drop(float(value))
                elif kind == "stall":
                    self._sim_arm.inject_stall(float(value))
                self.get_logger().warning(f"simulated fault injected: {param.value}")
        if self._sequence is not None:
            self._configure_sequence_speeds()
        gate = self._gate
        if gate is not None:   # takes effect at the next zone entry
            gate.pressure_threshold_pa = float(self._param("zone_pressure_threshold"))
            gate.lease_duration_s = float(self._param("lease_duration"))
            gate.service_timeout_s = float(self._param("lease_service_timeout"))

    def _configure_sequence_speeds(self) -> None:
        sequence = self._sequence
        sequence.travel_speed_m_s = float(self._param("travel_speed"))
        sequence.fine_speed_m_s = float(self._param("fine_speed"))
        sequence.motion_timeout_s = float(self._param("motion_timeout"))
        # the sequence polls in arm time; the simulated clock runs time_scale times faster
        scale = self._param("time_scale") if self._param("hardware") == "sim" else 1.0
        sequence.poll_s = float(self._param("feedback_period")) * scale

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Load the layout, build, connect and self-check the driver."""
        hardware = self._param("hardware")
        if hardware not in HARDWARE_CHOICES:
            return self._configure_failed(
                f"hardware {hardware!r} is not one of {', '.join(HARDWARE_CHOICES)}")
        try:
            path = self._param("stations_file") or str(config_file("stations.yaml"))
            layout = load_layout(path)
        except (OSError, StationsConfigError) as exc:
            return self._configure_failed(f"cannot load the cell layout: {exc}")
        try:
            arm = self._build_driver(hardware, layout)
        except ValueError as exc:
            return self._configure_failed(str(exc))
        try:
            arm.connect()
            arm.self_check()
        except ArmError as exc:
            try:
                arm.disconnect()
            except ArmError:
                pass
            return self._configure_failed(f"{hardware} arm failed to connect or self-check: "
                                          f"{exc}")
        self._layout = layout
        self._arm = EstopLatchedArm(arm)
        self._gate = ZoneLeaseClient(
            self, holder=self.get_fully_qualified_name(),
            lease_duration_s=self._param("lease_duration"),
            pressure_threshold_pa=self._param("zone_pressure_threshold"),
            service_timeout_s=self._param("lease_service_timeout"),
            presses=layout.presses,
            entry_blocked=self._zone_entry_blocked,
            on_change=self._publish_diagnostics,
            on_lease_lost=self._on_lease_lost)
        self._sequence = PlacementSequence(self._arm, layout, zone_gate=self._gate,
                                           on_feedback=self._on_stage)
        self._configure_sequence_speeds()
        self._last_gripper = self._last_in_zone = None
        self._publish_status(DeviceStatus.STATE_READY, f"configured ({hardware}, layout {path})")
        self.get_logger().info(f"configured: {hardware} arm, layout {path}")
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.get_logger().error(f"configure failed: {reason}")
        self._publish_status(DeviceStatus.STATE_FAULT, f"configure failed: {reason}")
        return TransitionCallbackReturn.FAILURE

    def _build_driver(self, hardware: str, layout: CellLayout) -> ArmDriver:
        if hardware == "dobot":
            if self._param("baud_rate") != BAUD_RATE:
                raise ValueError(f"baud_rate {self._param('baud_rate')}: the Dobot Magician "
                                 f"speaks {BAUD_RATE} only")
            return DobotArm(self._param("serial_port"),
                            vacuum_sensor_eio=self._param("vacuum_sensor_eio"))
        sim = self._sim_arm_hook or SimulatedArm(
            ScaledClock(self._param("time_scale")), lockstep=False,
            home_pose=layout.park_pose)
        if self._sim_arm_hook is None:
            for slot, position in self._filled_slots(layout).items():
                sim.add_part(slot, position)
        self._sim_arm = sim
        return sim

    def _filled_slots(self, layout: CellLayout) -> dict:
        """Return ``{slot ref: position (m)}`` of the parts ``sim_filled_slots`` asks for."""
        try:
            refs = fill_slot_refs(layout, self._param("sim_filled_slots"))
        except ValueError as exc:
            raise ValueError(f"sim_filled_slots: {exc}") from None
        return {ref: layout.resolve_slot(ref)[2].position_m for ref in refs}

    def _on_sim_refill(self, request, response):
        """Sim only: put a part into every ``sim_filled_slots`` slot that has none now."""
        sim, layout = self._sim_arm, self._layout
        if sim is None or layout is None:
            response.message = "not configured: no simulated trays to refill"
            return response
        added = []
        for ref, position in self._filled_slots(layout).items():
            if sim.part_near(position) is None:
                self._refills += 1
                sim.add_part(f"{ref}#refill{self._refills}", position)
                added.append(ref)
        response.success = True
        response.message = (f"simulated trays refilled: {len(added)} part(s) added"
                            f"{' (' + ', '.join(added) + ')' if added else ''}")
        self.get_logger().info(response.message)
        return response

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Serve place_component goals and start the telemetry timers."""
        if self._action_server is None:
            self._action_server = ActionServer(
                self, PlaceComponent, "place_component",
                execute_callback=self._execute,
                goal_callback=self._on_goal,
                cancel_callback=self._on_cancel,
                callback_group=self._action_group,
                result_timeout=3600)
        self._active = True
        period_s = 1.0 / float(self._param("pose_rate"))
        self._telemetry_timers = [
            self.create_timer(period_s, self._publish_telemetry,
                              callback_group=self._telemetry_group),
            self.create_timer(1.0, self._publish_diagnostics,
                              callback_group=self._telemetry_group),
        ]
        self._publish_telemetry()
        self._publish_status(self._idle_state(), "active")
        self.get_logger().info("active: place_component is served")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Cancel a running placement (the arm retreats holding its part), stop telemetry.

        The action server stays until cleanup so the aborted goal's result is delivered;
        while inactive it rejects goals.
        """
        self._active = False
        self._stop_running_goal(PlaceComponent.Result.NOT_ACTIVE, "the arm node was deactivated")
        if self._arm is not None:
            try:
                self._arm.stop()
            except ArmError as exc:
                self.get_logger().error(f"stop on deactivate failed: {exc}")
        self._teardown_active()
        self._publish_status(DeviceStatus.STATE_READY, "inactive")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Release the lease and disconnect the driver."""
        self._disconnect()
        self._publish_status(DeviceStatus.STATE_UNCONFIGURED, "unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Make safe: cancel a placement, stop, release the lease, disconnect."""
        self.make_safe()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Stop the arm after a failed transition."""
        if self._arm is not None:
            try:
                self._arm.stop()
            except ArmError:
                pass
        self._publish_status(DeviceStatus.STATE_FAULT, "lifecycle error; arm stopped")
        return TransitionCallbackReturn.SUCCESS

    def make_safe(self) -> None:
        """Cancel any placement, stop the arm, hand back the lease and disconnect."""
        if self._stop_running_goal(PlaceComponent.Result.NOT_ACTIVE, "the arm node shut down"):
            time.sleep(RESULT_GRACE_S)   # the executor sends the result after execute returns
        self._teardown_active()
        self._disconnect()

    def _stop_running_goal(self, code: int, message: str) -> bool:
        """Cancel a running placement, wait for it to end; return whether one was running."""
        if self._sequence is None or self._idle.is_set():
            return False
        self._stop_reason = (code, message)
        self._sequence.cancel()
        if not self._idle.wait(timeout=STOP_TIMEOUT_S):
            self.get_logger().error(f"the running placement did not end within "
                                    f"{STOP_TIMEOUT_S} s")
        return True

    def _teardown_active(self) -> None:
        self._active = False
        for timer in self._telemetry_timers:
            self.destroy_timer(timer)
        self._telemetry_timers = []

    def _disconnect(self) -> None:
        if self._action_server is not None:
            self._action_server.destroy()
            self._action_server = None
        if self._gate is not None:
            self._gate.close()
            self._gate = None
        if self._arm is not None:
            try:
                self._arm.disconnect()
            except ArmError as exc:
                self.get_logger().error(f"disconnect failed: {exc}")
            self._arm = None
        self._sim_arm = None
        self._sequence = None

    # ----------------------------------------------------------------- action
    def _goal_refusal(self, goal: PlaceComponent.Goal) -> tuple:
        """Return ``(result code, reason)`` why the goal is refused, or ``(NONE, "")``."""
        codes = PlaceComponent.Result
        if goal.kind not in KIND_BY_CODE:
            allowed = ", ".join(f"{code} ({kind.value})" for code, kind in KIND_BY_CODE.items())
            return codes.INVALID_GOAL, f"unknown component kind {goal.kind}; allowed: {allowed}"
        if not goal.component_id.strip():
            return codes.INVALID_GOAL, "component_id is empty"
        for field, ref in (("source_slot", goal.source_slot),
                           ("target_station", goal.target_station)):
            if not _SLOT_SYNTAX.match(ref):
                return codes.INVALID_GOAL, (f"{field} {ref!r} is not 'station' or "
                                            "'station/<slot number>'")
        if self._arm is None or self._sequence is None or not self._active:
            return codes.NOT_ACTIVE, "the arm node is not active; configure and activate it"
        if self._arm.latched:
            return codes.MOTION_FAILED, "emergency stop latched; call ~/reset_fault first"
        if self._busy:
            return codes.BUSY, "busy: another placement is running (one goal at a time)"
        crossing = self._foreign_zone_travel(goal)
        if crossing:
            return codes.ZONE_DENIED, crossing
        return codes.NONE, ""

    def _foreign_zone_travel(self, goal: PlaceComponent.Goal) -> str:
        """Return why the goal's travel would cross another press's zone ('' if it does not).

        The arm holds only the lease of the target die's press; the layout check covers the
        travel from every slot and the park pose to each die, this covers the first leg from
        wherever the arm stands (e.g. above a tray after a failed pick).
        """
        layout = self._layout
        try:
            here = self._arm.current_pose().position_m
            source = layout.resolve_slot(goal.source_slot)[2].position_m
            target = layout.resolve_slot(goal.target_station)[2].position_m
        except (ArmError, LookupError):
            return ""           # the sequence reports an unknown slot or a dead arm itself
        for start, end, leg in ((here, source, "from its position to the source"),
                                (source, target, "from the source to the target")):
            presses = layout.foreign_zones_crossed(start, end, goal.target_station)
            if presses:
                return (f"the travel {leg} would cross the press zone of {presses[0]!r}, whose "
                        f"lease the arm does not hold for {goal.target_station!r}; move the "
                        "arm away first")
        return ""

    def _on_goal(self, goal: PlaceComponent.Goal) -> GoalResponse:
        """Accept a well-formed goal when idle; reject with a logged reason otherwise."""
        with self._lock:
            code, reason = self._goal_refusal(goal)
            if not reason:
                self._stop_reason = None
                self._busy = True
                self._idle.clear()
                return GoalResponse.ACCEPT
        self.get_logger().warning(f"place_component goal {goal.component_id!r} rejected: "
                                  f"{reason}")
        state = self._last_status[0] if self._last_status else DeviceStatus.STATE_READY
        self._publish_status(state, f"goal {goal.component_id!r} rejected: {reason}",
                             fault_code=code, force=True)
        return GoalResponse.REJECT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        """Accept the cancel: the arm stops, keeps the part and retreats."""
        self.get_logger().info("place_component cancel requested")
        if self._sequence is not None:
            self._sequence.cancel()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> PlaceComponent.Result:
        """Run one placement on the core sequence and end the goal with its result."""
        goal = goal_handle.request
        self._goal_handle = goal_handle
        self._publish_status(DeviceStatus.STATE_BUSY,
                             f"placing {goal.component_id} from {goal.source_slot} to "
                             f"{goal.target_station}")
        try:
            # the lease and the guarded box of the die this placement goes to
            self._gate.select(self._layout.press_of(goal.target_station))
            self._sequence.layout = self._layout.for_target(goal.target_station)
            outcome = self._sequence.run(PlacementRequest(
                KIND_BY_CODE[goal.kind], goal.component_id, goal.source_slot,
                goal.target_station))
            self._publish_telemetry()    # latched flags agree with the result the client gets
            result = self._to_result(outcome, goal_handle)
        finally:
            self._goal_handle = None
            with self._lock:
                self._busy = False
            self._idle.set()
        key = "succeeded" if result.success else "failed"
        self._placements[key] += 1
        self.get_logger().info(f"place_component {goal.component_id!r}: "
                               f"code {result.error_code}: {result.error_msg}")
        fault = 0 if result.success else result.error_code
        self._publish_status(self._idle_state(), result.error_msg, fault_code=fault)
        return result

    def _to_result(self, outcome: PlacementResult, goal_handle) -> PlaceComponent.Result:
        result = PlaceComponent.Result(success=outcome.success, error_msg=outcome.message)
        if outcome.final_pose is not None:
            result.final_pose = pose_to_msg(outcome.final_pose)
        code = (PlaceComponent.Result.NONE if outcome.success
                else getattr(PlaceComponent.Result, outcome.outcome.name))
        stop_reason = self._stop_reason
        lease_lost = self._gate.lease_lost_reason if self._gate is not None else ""
        if outcome.outcome == PlacementOutcome.ZONE_DENIED and self._gate.last_refusal:
            result.error_msg = f"{outcome.message} ({self._gate.last_refusal})"
        if not outcome.success and stop_reason is not None:
            code, why = stop_reason
            result.error_msg = f"{why}; {outcome.message}"
        elif outcome.outcome == PlacementOutcome.CANCELED and lease_lost:
            code = PlaceComponent.Result.ZONE_DENIED
            result.error_msg = f"{lease_lost}; {outcome.message}"
        elif (outcome.outcome == PlacementOutcome.MOTION_FAILED and self._arm is not None
              and not self._arm.is_connected):
            code = PlaceComponent.Result.DISCONNECTED
        result.error_code = code
        if outcome.success:
            goal_handle.succeed()
        elif code == PlaceComponent.Result.CANCELED and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return result

    def _on_stage(self, stage: PlacementStage, pose: Pose) -> None:
        """Publish action feedback for the running goal (called by the sequence)."""
        goal_handle = self._goal_handle
        if goal_handle is None or not goal_handle.is_active:
            return
        if goal_handle.is_cancel_requested or self._stop_reason is not None:
            # a cancel or e-stop that came before run() started (run clears the flag)
            self._sequence.cancel()
        feedback = PlaceComponent.Feedback(
            stage=getattr(PlaceComponent.Feedback, f"STAGE_{stage.name}"),
            stage_name=stage.value, pose=pose_to_msg(pose),
            in_press_zone=self._layout.in_any_press_zone(pose.position_m))
        goal_handle.publish_feedback(feedback)

    # ----------------------------------------------------------------- safety
    def _zone_entry_blocked(self) -> str:
        """Return why the arm may not enter the press zone now ('' if it may)."""
        if self._arm is not None and self._arm.latched:
            return "emergency stop latched"
        return ""

    def _on_lease_lost(self, reason: str) -> None:
        """Take the arm out of the press zone: the press may pressurise again."""
        if self._sequence is not None and not self._idle.is_set():
            self._stop_reason = (PlaceComponent.Result.ZONE_DENIED, reason)
            self._sequence.cancel()

    def _on_estop(self, msg: Empty) -> None:
        """Stop the arm now, keep the gripper as it is, abort any goal; latch until reset."""
        if self._arm is None:
            self.get_logger().warning("e-stop received while unconfigured: no arm to stop")
            return
        self.get_logger().error("e-stop received: arm stopped, goals aborted")
        self._stop_reason = (PlaceComponent.Result.MOTION_FAILED,
                             "emergency stop: motion stopped, gripper state kept")
        if self._sequence is not None:   # first, so the stopped move reads as canceled
            self._sequence.cancel()
        try:
            self._arm.latch()
        except ArmError as exc:
            self.get_logger().error(f"stop after e-stop failed: {exc}")
        self._publish_status(DeviceStatus.STATE_ESTOP, "emergency stop latched; "
                             "~/reset_fault to resume", force=True)

    def _on_reset_fault(self, request, response):
        """Clear the e-stop latch once the arm self-checks."""
        if self._arm is None:
            response.message = "not configured"
            return response
        if not self._idle.is_set():
            response.message = "a placement is still ending; retry"
            return response
        cleared = "ESTOP" if self._arm.latched else ""
        try:
            self._arm.self_check()
        except ArmError as exc:
            response.message = f"self-check failed: {exc}"
            return response
        self._arm.unlatch()
        response.success = True
        response.cleared_fault = cleared
        response.message = "ready"
        self._telemetry_fault = ""
        self._publish_status(self._idle_state(), "fault reset", force=True)
        return response

    # ----------------------------------------------------------------- telemetry
    def _idle_state(self) -> int:
        if self._arm is not None and self._arm.latched:
            return DeviceStatus.STATE_ESTOP
        if self._telemetry_fault:
            return DeviceStatus.STATE_DISCONNECTED
        return DeviceStatus.STATE_BUSY if self._busy else DeviceStatus.STATE_READY

    def _publish_status(self, state: int, message: str, fault_code: int = 0,
                        force: bool = False) -> None:
        key = (state, message, fault_code)
        if key == self._last_status and not force:
            return
        self._last_status = key
        msg = DeviceStatus(device="arm", hardware=str(self._param("hardware")), state=state,
                           fault_code=fault_code, message=message)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _publish_telemetry(self) -> None:
        """Publish pose; gripper and in-zone flags when they change."""
        with self._telemetry_lock:
            self._publish_telemetry_locked()

    def _publish_telemetry_locked(self) -> None:
        arm, layout = self._arm, self._layout
        if arm is None or layout is None:
            return
        try:
            pose = arm.current_pose()
        except ArmError as exc:
            if not self._telemetry_fault:
                self._telemetry_fault = str(exc)
                self.get_logger().error(f"cannot read the arm pose: {exc}")
                self._publish_status(DeviceStatus.STATE_DISCONNECTED, str(exc),
                                     fault_code=PlaceComponent.Result.DISCONNECTED)
            return
        if self._telemetry_fault:
            self._telemetry_fault = ""
            self._publish_status(self._idle_state(), "arm answers again")
        msg = PoseStamped(pose=pose_to_msg(pose))
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = layout.frame_id
        self._pose_pub.publish(msg)
        gripper = bool(arm.gripper_closed)
        if gripper != self._last_gripper:
            self._last_gripper = gripper
            self._gripper_pub.publish(Bool(data=gripper))
        in_zone = layout.in_any_press_zone(pose.position_m)
        if in_zone != self._last_in_zone:
            self._last_in_zone = in_zone
            self._zone_pub.publish(Bool(data=in_zone))

    def _publish_diagnostics(self) -> None:
        """Publish one DiagnosticStatus for the arm on /diagnostics."""
        hardware_id = self._param("serial_port") if self._param("hardware") == "dobot" else "sim"
        if self._arm is not None and self._arm.latched:
            level, message = ERROR, "emergency stop latched"
        elif self._telemetry_fault:
            level, message = ERROR, self._telemetry_fault
        else:
            level, message = OK, "placing" if self._busy else "idle"
        gate = self._gate
        pressure = gate.press_pressure_pa if gate is not None else None
        values = {
            "hardware": self._param("hardware"),
            "in_press_zone": str(bool(self._last_in_zone)),
            "zone_lease_held": str(gate is not None and gate.holds_lease),
            "press_pressure_pa": "unknown" if pressure is None else f"{pressure:.0f}",
            "placements_succeeded": str(self._placements["succeeded"]),
            "placements_failed": str(self._placements["failed"]),
        }
        retries = getattr(self._arm.inner if self._arm else None, "retry_count", None)
        if retries is not None:
            values["serial_retries"] = str(retries)
        self._diagnostics.publish(self.get_clock().now().to_msg(), [diagnostic_status(
            f"{self.get_fully_qualified_name()}: arm", hardware_id, level, message, values)])


def main(args=None) -> int:
    """Run the arm node standalone until SIGINT/SIGTERM; retreat and release the lease first."""
    return run_node(ArmNode, make_safe=lambda node: node.make_safe(), args=args)


if __name__ == "__main__":
    main()

