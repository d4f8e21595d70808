"""Lifecycle press node: the ROS face of ``PressRuntime`` (press_cycle action, telemetry, services).

Lifecycle (NODES.md): configure reads the parameters, loads the recipe file and library,
builds the driver the read-only ``hardware`` parameter names (``sim``, ``serial_ascii``,
``serial_modbus``, or a prebuilt driver passed to the constructor), connects and self-checks it
(FAILURE with a logged reason); activate starts the control loop, creates the telemetry
publishers, timers and services and starts accepting ``press_cycle`` goals; deactivate and
shutdown stop the loop, which first aborts a running cycle and vents the press; cleanup
disconnects. ``~/status``, ``/diagnostics``, ``~/estop``, the ``estop`` topic and the
``press_cycle`` action server exist in every state (the server rejects goals with NOT_ACTIVE
unless active, and so still delivers the result of a goal aborted by a deactivate); an e-stop
while inactive vents the press directly when the driver is connected.

Action policy (``press_cycle``, namespace-relative):

* Goals are resolved and checked in the goal callback (``press_goal.resolve_goal``: recipe or
  segments, units, area, material, press and die limits), then started on the runtime at once,
  which checks busy, latched fault, zone lease and limits again. A refused goal is rejected
  (``accepted == False``) with the reason logged and published on ``~/status``; it never moves
  the press.
* One goal at a time: a goal that arrives while a cycle runs is rejected (BUSY). It is not
  queued and does not preempt: a press cycle is not interruptible without a release.
* Cancels are accepted: the loop releases at the profile's release rate and the goal ends
  ``canceled`` once the pressure is released. The result message carries the stamp at which the
  cancel arrived (same time base as the ``~/state`` header stamps).
* Every goal ends succeed / canceled / abort with ``error_code``, ``error_msg`` and the press
  certificate. ``result_timeout`` (``result_timeout_s``) exceeds the longest recipe.
* Feedback at ``feedback_rate_hz`` (>= 10 Hz) from the loop's latest snapshot.

Callback groups: the action server is reentrant (execute blocks for the cycle, goal and cancel
requests are still served); e-stop and reset are in their own reentrant group; the slow timers,
the /clock timer and the other services each have a mutually exclusive group, so a busy
callback never delays a cancel or an e-stop. Run with a ``MultiThreadedExecutor`` (``main``
does). High-rate telemetry is published from a dedicated thread (``sample_streamer``: an
executor timer does not reach 500 Hz here).

Topics (relative to the node): ``~/state`` (PressState, ``state_rate_hz``), ``~/pressure``
(sensor_msgs/FluidPressure, Pa), ``~/wrench`` (geometry_msgs/WrenchStamped, N, compression is
-z, see ``press_messages``), ``~/timing`` (ControllerTiming, 1 Hz), ``~/status`` (DeviceStatus,
latched, on every change), ``~/trace`` (PressTrace, reliable, the full-rate record of each
cycle when it ends), ``/diagnostics`` (1 Hz), ``/clock`` (sim with ``publish_clock``).
Subscribes ``impedance/monitor`` (ImpedanceSample) and feeds its interface resistance to the
adaptive hold end of a goal whose ``hold_end`` is enabled.
Services: ``~/tare``, ``~/reset_fault``, ``~/estop``, ``~/zone_lease``; topic ``estop``
(std_msgs/Empty, namespace-relative).

Faults: ``/diagnostics`` names a latched fault by its PressCycle error-code name (key
``fault``, and as the message's prefix). Setting the ``sim_fault`` parameter at runtime injects
a fault into the simulated press (``press_sim_fault``; refused with the reason on a serial
press). A configure finding the press vented and latched by its own comms watchdog (after a
crash, a kill or a lost link) clears that latch and comes up idle; any other device fault
fails the configure.
"""

import datetime
import logging
import math
import sys
import threading
import time
from pathlib import Path

from geometry_msgs.msg import WrenchStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import FluidPressure
from std_msgs.msg import Empty

from press_cell.action import PressCycle
from press_cell.config_files import config_file
from press_cell.control.force_controller import ControllerGains
from press_cell.control.hold_end import HoldEndError
from press_cell.control.press_runtime import CycleRefused, PressRuntime
from press_cell.control.profile import Phase
from press_cell.control.supervisor import ERROR_CODES, SafetyLimits
from press_cell.hardware.press_driver import (
    PressDeviceFault,
    PressError,
    PressMode,
    PressWatchdogTrip,
)
from press_cell.msg import ControllerTiming, DeviceStatus, ImpedanceSample, PressState, PressTrace
from press_cell.nodes import diagnostics as diag
from press_cell.nodes.node_runner import run_node
from press_cell.nodes.press_goal import GoalLimits, GoalRejected, resolve_goal
from press_cell.nodes.press_hardware import (
    PressHardware,
    build_press_hardware,
    loop_rate_hz,
    sim_specimen,
)
from press_cell.nodes.press_messages import (
    StampMapper,
    certificate_to_msg,
    feedback_from_snapshot,
    pressure_to_msg,
    state_to_msg,
    time_from_seconds,
    timing_to_msg,
    trace_to_msg,
    wrench_to_msg,
)
from press_cell.nodes.press_parameters import (
    PRESS_PARAMETERS,
    check_parameter_change,
    declare_press_parameters,
    read_press_settings,
)
from press_cell.nodes.press_sim_fault import SimFaultError, parse_sim_fault
from press_cell.nodes.qos import COMMAND, LATCHED, RECORD, TELEMETRY
from press_cell.nodes.sample_streamer import SampleStreamer
from press_cell.nodes.zone_lease import ZoneLeaseBook
from press_cell.recipes import load_recipes
from press_cell.recipes.library import load_library
from press_cell.srv import EmergencyStop, ResetFault, Tare, ZoneLease

_LOG = logging.getLogger(__name__)

CLOCK_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.VOLATILE, history=HistoryPolicy.KEEP_LAST)

CODE_NAMES = {number: name for name, number in ERROR_CODES.items()}
STATUS_PERIOD_S = 0.05          # status/lease check timer, s
SLOW_PERIOD_S = 1.0             # ~/timing and /diagnostics, s
TARE_LOADED_FRACTION_FS = 0.02  # tare refused above 2 % of load-cell full scale
STOP_TIMEOUT_S = 30.0           # deactivate: longest wait for a release before giving up, s


def _parameter_list(overrides) -> list:
    """Return ``overrides`` (dict name -> value, or a list of Parameter) as a Parameter list."""
    if overrides is None:
        return []
    if isinstance(overrides, dict):
        return [Parameter(name, value=value) for name, value in overrides.items()]
    return list(overrides)


class PressNode(LifecycleNode):
    """Lifecycle node wrapping one press: action server, telemetry, services (see module doc)."""

    def __init__(self, *, node_name: str = "press", namespace: str = "", context=None,
                 parameter_overrides=None, driver=None, clock=None, **kwargs) -> None:
        """Declare parameters and the always-on interfaces; autostart if asked.

        ``driver`` and ``clock`` (in-process hook): a prebuilt, possibly shared press driver and
        the clock it runs on; the ``hardware`` parameter is then only reported.
        """
        super().__init__(node_name, namespace=namespace, context=context,
                         parameter_overrides=_parameter_list(parameter_overrides), **kwargs)
        declare_press_parameters(self)
        self._prebuilt = (driver, clock) if driver is not None else None
        self._lock = threading.RLock()
        self._hw = None
        self._runtime = None
        self._stamps = StampMapper(simulated=False)
        self._book = None
        self._library = None
        self._lifecycle = "unconfigured"
        self._active_entities = []
        self._action_server = None
        self._streamer = None
        self._trace_pub = None
        self._plan = None
        self._frame_id = "press_ram"
        self._cycle = None                  # (goal request, CycleHandle) of the running goal
        self._cycle_done = threading.Event()
        self._cycle_done.set()
        self._cancel_core_s = math.nan      # core clock time a cancel / e-stop arrived, s
        self._estop_core_s = math.nan
        self._leases = ZoneLeaseBook(self.get_parameter("max_lease_s").value)
        self._tare_wall_s = math.nan
        self._calibration_id = "untared"
        self._status_key = None
        self._status_note = ""
        self._last_overruns = 0
        self._effective_rate_hz = math.nan

        self._cb_action = ReentrantCallbackGroup()
        self._cb_safety = ReentrantCallbackGroup()
        self._cb_slow = MutuallyExclusiveCallbackGroup()
        self._cb_services = MutuallyExclusiveCallbackGroup()
        self._cb_clock = MutuallyExclusiveCallbackGroup()

        self._status_pub = self.create_publisher(DeviceStatus, "~/status", LATCHED)
        self._diagnostics = diag.DiagnosticsPublisher(self)
        self.create_service(EmergencyStop, "~/estop", self._on_estop_service,
                            callback_group=self._cb_safety)
        self.create_subscription(Empty, "estop", self._on_estop_topic, COMMAND,
                                 callback_group=self._cb_safety)
        self.create_timer(STATUS_PERIOD_S, self._on_status_timer, callback_group=self._cb_slow)
        self.create_timer(SLOW_PERIOD_S, self._on_diagnostics_timer,
                          callback_group=self._cb_slow)
        # The action server lives as long as the node: a goal that ends because the node
        # leaves active (aborted, NOT_ACTIVE) still gets its result delivered; goals that
        # arrive while the node is not active are rejected with that reason.
        self._action_server = ActionServer(
            self, PressCycle, "press_cycle", execute_callback=self._execute,
            goal_callback=self._on_goal, cancel_callback=self._on_cancel,
            callback_group=self._cb_action,
            result_timeout=int(self.get_parameter("result_timeout_s").value))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._publish_status(force=True)
        if self.get_parameter("autostart").value:
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ------------------------------------------------------------------ lifecycle
    def on_configure(self, state) -> TransitionCallbackReturn:
        """Read parameters, load recipes, build + connect + self-check the driver."""
        settings = read_press_settings(self)
        try:
            recipes_path = settings.recipes_file or str(config_file("recipes.yaml"))
            library = load_library(Path(recipes_path).with_name("library.yaml"))
            book = load_recipes(recipes_path, library=library)
        except Exception as exc:  # noqa: BLE001 - any load failure is reported, not raised
            self.get_logger().error(f"configure failed: recipe file or library: {exc}")
            return TransitionCallbackReturn.FAILURE
        try:
            if self._prebuilt is not None:
                hw = PressHardware.prebuilt(*self._prebuilt,
                                            time_scale=settings.time_scale or None)
            else:
                hw = build_press_hardware(settings)
            if not hw.driver.is_connected:
                hw.driver.connect()
            self._self_check_after_watchdog(hw.driver)
            caps = hw.driver.capabilities
        except (PressError, ValueError) as exc:
            self.get_logger().error(f"configure failed: press self-check: {exc}")
            if "hw" in locals() and hw.owns_driver:
                hw.driver.disconnect()
            return TransitionCallbackReturn.FAILURE
        capacity_n = settings.press_capacity_n or caps.rated_force_n
        if capacity_n > caps.rated_force_n:
            self.get_logger().error(
                f"configure failed: press_capacity_n={capacity_n:g} N exceeds the press rating "
                f"{caps.rated_force_n:g} N ({caps.model})")
            if hw.owns_driver:
                hw.driver.disconnect()
            return TransitionCallbackReturn.FAILURE
        mode = PressMode.VALVE if PressMode.VALVE in caps.modes else PressMode.SUPERVISORY
        rate_hz = loop_rate_hz(settings.rate_hz, caps.max_read_rate_hz,
                               supervisory=mode is PressMode.SUPERVISORY)
        if rate_hz < settings.rate_hz:
            self.get_logger().warning(
                f"rate_hz={settings.rate_hz:g} Hz is above what {caps.model} can be polled at; "
                f"the loop runs at {rate_hz:g} Hz")
        gains = ControllerGains(
            plant_gain_n_s=settings.gain_plant_n_s, valve_tau_s=settings.gain_valve_tau_s,
            leak_tau_s=settings.gain_leak_tau_s,
            kp_per_s=settings.gain_kp_per_s or math.nan,
            ki_per_s2=settings.gain_ki_per_s2 or math.nan)
        limits = SafetyLimits(press_capacity_n=capacity_n,
                              die_rated_force_n=settings.die_rating_n,
                              max_rate_pa_s=settings.max_rate_pa_s,
                              force_full_scale_n=caps.force_full_scale_n,
                              watchdog_s=max(0.05, 5.0 / rate_hz))
        idle_area = math.pi * settings.default_die_diameter_m ** 2 / 4.0
        runtime = PressRuntime(hw.driver, hw.clock, rate_hz=rate_hz, lockstep=hw.lockstep,
                               limits=limits, controller_gains=gains, mode=mode,
                               time_scale=hw.time_scale if hw.lockstep else None,
                               idle_contact_area_m2=idle_area,
                               # Released means below released_pa whatever the peak, so a
                               # released press can always be leased to the arm.
                               released_fraction=1e-6, released_min_pa=settings.released_pa)
        with self._lock:
            self._hw, self._runtime, self._book, self._library = hw, runtime, book, library
            self._stamps = StampMapper(simulated=hw.simulated)
            self._effective_rate_hz = rate_hz
            self._lifecycle = "inactive"
        self.get_logger().info(
            f"configured: {hw.kind} press {caps.model}, rated {caps.rated_force_n / 1e3:.1f} kN, "
            f"{mode.value} mode, loop {rate_hz:g} Hz"
            + (f", lockstep x{hw.time_scale:g}" if hw.lockstep and hw.time_scale else "")
            + (", lockstep unpaced" if hw.lockstep and not hw.time_scale else ""))
        self._publish_status(force=True)
        return TransitionCallbackReturn.SUCCESS

    def _self_check_after_watchdog(self, driver) -> None:
        """Self-check; a press its own watchdog vented (we went away) is cleared and rechecked.

        After a crash, a SIGKILL or a pulled cable the press vented itself and latched its
        watchdog fault; a configure is the explicit step that takes the press over again, so
        the latch is cleared here (nothing is re-applied: the press stays vented and idle) and
        the self-check repeated. Any other device fault still fails the configure.
        """
        try:
            driver.self_check()
        except PressWatchdogTrip as exc:
            if not hasattr(driver, "reset_fault"):
                raise
            self.get_logger().warning(f"configure: {exc}; the press vented itself while no "
                                      "controller was talking to it; latch cleared, press idle")
            driver.reset_fault()
            driver.self_check()

    def on_activate(self, state) -> TransitionCallbackReturn:
        """Start the control loop, publishers, timers, services and the action server."""
        settings = read_press_settings(self)
        try:
            self._runtime.start()
        except PressError as exc:
            self.get_logger().error(f"activate failed: {exc}")
            return TransitionCallbackReturn.FAILURE
        self._state_pub = self.create_publisher(PressState, "~/state", TELEMETRY)
        self._pressure_pub = self.create_publisher(FluidPressure, "~/pressure", TELEMETRY)
        self._wrench_pub = self.create_publisher(WrenchStamped, "~/wrench", TELEMETRY)
        self._timing_pub = self.create_publisher(ControllerTiming, "~/timing", TELEMETRY)
        self._trace_pub = self.create_publisher(PressTrace, "~/trace", RECORD)
        entities = [self._state_pub, self._pressure_pub, self._wrench_pub, self._timing_pub,
                    self._trace_pub,
                    self.create_subscription(ImpedanceSample, "impedance/monitor",
                                             self._on_monitor, TELEMETRY,
                                             callback_group=self._cb_services)]
        self._frame_id = settings.frame_id
        self._streamer = SampleStreamer(self._runtime.snapshot, self._publish_sample,
                                        settings.state_rate_hz)
        entities.append(self.create_timer(SLOW_PERIOD_S, self._on_timing_timer,
                                          callback_group=self._cb_slow))
        if self._hw.simulated and settings.publish_clock:
            # Reliable, so both best-effort (rclpy/rclcpp time sources) and reliable /clock
            # subscribers are served.
            self._clock_pub = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS)
            entities.append(self._clock_pub)
            entities.append(self.create_timer(1.0 / settings.clock_rate_hz,
                                              self._on_clock_timer,
                                              callback_group=self._cb_clock))
        entities.append(self.create_service(Tare, "~/tare", self._on_tare,
                                            callback_group=self._cb_services))
        entities.append(self.create_service(ResetFault, "~/reset_fault", self._on_reset_fault,
                                            callback_group=self._cb_safety))
        entities.append(self.create_service(ZoneLease, "~/zone_lease", self._on_zone_lease,
                                            callback_group=self._cb_services))
        with self._lock:
            self._active_entities = entities
            self._lifecycle = "active"
        self._streamer.start()
        if settings.tare_on_activate:
            self._wait_first_sample()
            ok, message, _ = self._tare(int(settings.tare_samples))
            if not ok:
                self.get_logger().warning(f"tare on activate skipped: {message}")
        self.get_logger().info("active: accepting press_cycle goals")
        self._publish_status(force=True)
        return TransitionCallbackReturn.SUCCESS

    def _wait_first_sample(self, timeout_s: float = 2.0) -> None:
        """Wait (bounded) until the loop has published a sample with a finite force."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if math.isfinite(self._runtime.snapshot().force_n):
                return
            time.sleep(0.005)

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        """Make the press safe (abort + vent), then remove the active interfaces."""
        self._make_safe()
        self._teardown_active()
        self._publish_status(force=True)
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        """Disconnect the press and drop the runtime."""
        self._disconnect()
        self._publish_status(force=True)
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        """Make the press safe and disconnect, from any state."""
        self._make_safe()
        self._teardown_active()
        self._disconnect()
        with self._lock:
            self._lifecycle = "finalized"
        self._publish_status(force=True)
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        """Make the press safe after a failed transition; return to unconfigured."""
        self._make_safe()
        self._teardown_active()
        self._disconnect()
        return TransitionCallbackReturn.SUCCESS

    def _make_safe(self) -> None:
        """Stop the loop (it aborts a running cycle and vents first) and wait for the goal."""
        runtime = self._runtime
        if runtime is not None:
            runtime.stop(timeout_s=STOP_TIMEOUT_S)
        self._cycle_done.wait(STOP_TIMEOUT_S)
        self._set_lease_held(False)
        with self._lock:
            self._leases.lease = None

    def _teardown_active(self) -> None:
        with self._lock:
            entities, self._active_entities = self._active_entities, []
            self._trace_pub = None
            streamer, self._streamer = self._streamer, None
            if self._lifecycle == "active":
                self._lifecycle = "inactive"
        if streamer is not None:
            streamer.stop()
        for entity in entities:
            kind = type(entity).__name__
            if kind == "Timer":
                self.destroy_timer(entity)
            elif kind == "Publisher":
                self.destroy_publisher(entity)
            elif kind == "Subscription":
                self.destroy_subscription(entity)
            else:
                self.destroy_service(entity)

    def _disconnect(self) -> None:
        with self._lock:
            hw, self._hw, self._runtime = self._hw, None, None
            self._lifecycle = "unconfigured"
        if hw is not None and hw.owns_driver:
            try:
                hw.driver.disconnect()
            except PressError as exc:
                self.get_logger().error(f"disconnect: {exc}")

    def close(self) -> None:
        """Make the press safe and disconnect; then stop the executor and destroy the node."""
        self._make_safe()
        self._teardown_active()
        self._disconnect()
        self._publish_status(force=True)

    # ------------------------------------------------------------------ parameters
    def _on_set_parameters(self, params) -> SetParametersResult:
        """Refuse changes that exceed a hardware rating or break a cross-field rule."""
        current = {name: self.get_parameter(name).value for name in PRESS_PARAMETERS
                   if self.has_parameter(name)}
        changes = {p.name: p.value for p in params}
        hw = self._hw
        rating, read_rate = math.nan, math.nan
        if hw is not None and hw.driver.is_connected:
            rating = hw.driver.capabilities.rated_force_n
            read_rate = hw.driver.capabilities.max_read_rate_hz
        reason = check_parameter_change(current, changes, rating, read_rate)
        if reason:
            self.get_logger().warning(f"parameter change refused: {reason}")
            return SetParametersResult(successful=False, reason=reason)
        fault_text = changes.get("sim_fault", "")
        if fault_text:
            reason = self._sim_fault_refusal(fault_text)
            if reason:
                self.get_logger().warning(f"parameter change refused: {reason}")
                return SetParametersResult(successful=False, reason=reason)
        if "max_lease_s" in changes:
            self._leases.max_lease_s = float(changes["max_lease_s"])
        streamer = self._streamer
        if "state_rate_hz" in changes and streamer is not None:
            streamer.set_rate(float(changes["state_rate_hz"]))
        return SetParametersResult(successful=True)

    def _sim_fault_refusal(self, text: str) -> str:
        """Return why ``sim_fault`` = ``text`` cannot be injected now, or "" if it can."""
        if self.get_parameter("hardware").value != "sim":
            return ("sim_fault only works with hardware: sim; inject faults into a serial "
                    "press emulator through its control channel instead")
        try:
            parse_sim_fault(text)
        except SimFaultError as exc:
            return str(exc)
        hw = self._hw
        if hw is None or not hw.owns_driver or hw.kind != "sim":
            return "sim_fault needs a configured node with its own simulated press"
        return ""

    def _on_parameters_set(self, params) -> None:
        """Inject an accepted ``sim_fault`` into the simulated press (post-set callback)."""
        for param in params:
            if param.name != "sim_fault" or not param.value:
                continue
            hw = self._hw
            if hw is None or hw.kind != "sim":
                continue
            fault = parse_sim_fault(param.value)
            if fault.kind == "clear":
                hw.driver.clear_faults()
            else:
                hw.driver.inject_fault(fault.kind, fault.duration_s, **fault.params)
            self.get_logger().warning(f"simulated press fault injected: {param.value}")

    # ------------------------------------------------------------------ action
    def _goal_limits(self) -> GoalLimits:
        capacity = self.get_parameter("press_capacity_n").value
        runtime = self._runtime
        if runtime is not None and runtime.limits is not None:
            capacity = min(capacity or math.inf, runtime.limits.press_capacity_n)
        return GoalLimits(press_capacity_n=capacity,
                          default_die_rating_n=self.get_parameter("die_rating_n").value,
                          max_rate_pa_s=self.get_parameter("max_rate_pa_s").value)

    def _reject(self, code: str, reason: str) -> GoalResponse:
        self.get_logger().warning(f"press_cycle goal rejected ({code}): {reason}")
        self._publish_status(force=True, message=f"goal rejected ({code}): {reason}")
        return GoalResponse.REJECT

    def _on_goal(self, goal) -> GoalResponse:
        """Resolve and check a goal, start it on the runtime, or reject it with the reason."""
        with self._lock:
            runtime = self._runtime
            if runtime is None or self._lifecycle != "active":
                return self._reject("NOT_ACTIVE", f"the press node is {self._lifecycle}")
            if self._cycle is not None:
                return self._reject("BUSY", "a press cycle is running (one goal at a time); "
                                    "cancel it or wait for its result")
            try:
                plan = resolve_goal(goal, self._book, self._library, self._goal_limits())
            except GoalRejected as exc:
                return self._reject(exc.code, exc.reason)
            probe = self._prepare_sim(plan)
            try:
                handle = runtime.start_cycle(
                    plan.segments, plan.contact_area_m2, part_id=plan.part_id,
                    step_name=plan.step_name,
                    max_pressure_pa=plan.max_pressure_pa, recipe_name=plan.recipe_name,
                    recipe_hash=plan.recipe_hash, calibration_id=self._calibration_id,
                    material=plan.material, thickness_probe=probe, hold_end=goal.hold_end)
            except CycleRefused as exc:
                return self._reject(exc.code, str(exc))
            except HoldEndError as exc:
                return self._reject("INVALID_GOAL", f"hold_end: {exc}")
            self._cycle = (goal, handle)
            self._plan = plan
            self._cycle_done.clear()
            self._cancel_core_s = math.nan
            self._estop_core_s = math.nan
            self._status_note = (f"cycle {plan.part_id or '(no part id)'}: "
                                 f"{plan.recipe_name or 'explicit profile'}, peak "
                                 f"{plan.peak_pressure_pa / 1e6:.1f} MPa")
        self.get_logger().info(f"press_cycle accepted: {self._status_note}")
        self._publish_status(force=True)
        return GoalResponse.ACCEPT

    def _prepare_sim(self, plan):
        """Put a specimen of the goal's material under a simulated ram; return a probe."""
        hw = self._hw
        if hw is None or not hw.owns_driver or hw.kind != "sim":
            return None
        sim = hw.driver
        if self.get_parameter("sim_load_specimen").value and plan.material:
            try:
                specimen = sim_specimen(
                    plan.material, self._library, plan.contact_area_m2,
                    self.get_parameter("sim_powder_mass_mg").value * 1e-6,
                    self.get_parameter("sim_foil_thickness_um").value * 1e-6)
                sim.load_specimen(specimen)
            except (ValueError, PressError) as exc:
                self.get_logger().warning(f"sim: specimen not loaded ({exc})")
        return lambda: sim.specimen_thickness_m

    def _on_cancel(self, goal_handle) -> CancelResponse:
        """Accept a cancel of the running goal: the loop releases under control."""
        with self._lock:
            runtime, cycle = self._runtime, self._cycle
            if cycle is None or runtime is None or cycle[0] is not goal_handle.request:
                return CancelResponse.REJECT
            self._cancel_core_s = runtime.clock.now()
            runtime.cancel()
        self.get_logger().info("press_cycle cancel accepted: controlled release")
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle):
        """Follow the running cycle with feedback until it ends; return the result."""
        with self._lock:
            cycle = self._cycle
        if cycle is None or cycle[0] is not goal_handle.request:
            goal_handle.abort()
            return PressCycle.Result(success=False, error_code=ERROR_CODES["UNKNOWN"],
                                     error_msg="internal: goal has no running cycle")
        handle = cycle[1]
        runtime = self._runtime
        period_s = 1.0 / self.get_parameter("feedback_rate_hz").value
        try:
            while not handle.done():
                goal_handle.publish_feedback(feedback_from_snapshot(runtime.snapshot()))
                handle.wait(period_s)
            outcome = handle.outcome
            result = PressCycle.Result(success=outcome.success,
                                       error_code=outcome.error_code_value,
                                       error_msg=outcome.message)
            result.certificate = certificate_to_msg(outcome.certificate, self._stamps)
            if outcome.status == "CANCELED":
                result.error_msg += self._latency_note("cancel", self._cancel_core_s,
                                                       outcome.trace, Phase.RELEASE)
            elif outcome.error_code == "ESTOP":
                result.error_msg += self._latency_note("e-stop", self._estop_core_s,
                                                       outcome.trace, Phase.VENTING)
            self._publish_trace(outcome, result.certificate)
            if outcome.status == "SUCCEEDED":
                goal_handle.succeed()
            elif outcome.status == "CANCELED" and goal_handle.is_cancel_requested:
                goal_handle.canceled()
            else:
                goal_handle.abort()
            self.get_logger().info(f"press_cycle {outcome.status.lower()}: {result.error_msg}")
            return result
        finally:
            with self._lock:
                self._cycle = None
                self._status_note = ""
                self._cycle_done.set()
            self._publish_status(force=True)

    def _publish_trace(self, outcome, certificate_msg) -> None:
        """Publish the cycle's full-rate record on ~/trace (reliable, once per cycle)."""
        plan, pub = self._plan, self._trace_pub
        if plan is None or pub is None:
            return
        try:
            pub.publish(trace_to_msg(outcome.trace, plan.segments, certificate_msg,
                                     plan.contact_area_m2, self._effective_rate_hz,
                                     self._stamps))
        except Exception as exc:  # noqa: BLE001 - a lost record must not lose the result
            self.get_logger().error(f"~/trace not published: {exc}")

    def _on_monitor(self, msg) -> None:
        """Feed the impedance monitor's interface resistance to an adaptive hold end."""
        runtime = self._runtime
        if runtime is not None and self._cycle is not None and math.isfinite(msg.r_interface):
            runtime.report_interface_resistance(float(msg.r_interface))

    def _latency_note(self, what: str, arrived_core_s: float, trace, phase: Phase) -> str:
        """Return "; <what> arrived at stamp X s, <phase> began at stamp Y s ..., after N cycles".

        N counts the loop cycles that ran between the request's arrival and the first cycle in
        the new phase: the loop's reaction in its own cycles, whatever the machine's load did
        to the wall-clock length of a cycle (a real-time loop that overran shows it in X..Y).
        """
        if not math.isfinite(arrived_core_s):
            return ""
        note = f"; {what} arrived at stamp {self._stamps.to_ros_s(arrived_core_s):.6f} s"
        after = (trace.time_s >= arrived_core_s) & (trace.phase == int(phase))
        if after.any():
            began_s = float(trace.time_s[after.argmax()])
            cycles = int(((trace.time_s >= arrived_core_s) & (trace.time_s < began_s)).sum())
            note += (f", {phase.name.lower()} began at stamp "
                     f"{self._stamps.to_ros_s(began_s):.6f} s (loop trace), after {cycles} "
                     "loop cycle(s)")
        return note

    # ------------------------------------------------------------------ telemetry
    def _publish_sample(self, snap) -> None:
        """Publish one loop sample on ~/state, ~/pressure and ~/wrench (streamer thread)."""
        frame = self._frame_id
        self._state_pub.publish(state_to_msg(snap, self._stamps, frame))
        self._pressure_pub.publish(pressure_to_msg(snap, self._stamps, frame))
        self._wrench_pub.publish(wrench_to_msg(snap, self._stamps, frame))

    def _on_timing_timer(self) -> None:
        """Publish the loop timing on ~/timing."""
        runtime = self._runtime
        if runtime is None:
            return
        timing = runtime.timing()
        self._timing_pub.publish(timing_to_msg(timing, self._now_stamp()))

    def _on_clock_timer(self) -> None:
        """Publish the simulated time on /clock."""
        hw = self._hw
        if hw is None:
            return
        self._clock_pub.publish(ClockMsg(clock=time_from_seconds(hw.clock.now())))

    def _now_stamp(self):
        runtime = self._runtime
        if runtime is None:
            return self.get_clock().now().to_msg()
        return self._stamps.stamp(runtime.clock.now())

    def _status_fields(self) -> tuple:
        """Return (state, fault_code, message) of the device now."""
        runtime = self._runtime
        if runtime is None or self._lifecycle != "active":
            return (DeviceStatus.STATE_UNCONFIGURED, 0, f"lifecycle state: {self._lifecycle}")
        if runtime.loop_error is not None:
            return (DeviceStatus.STATE_FAULT, ERROR_CODES["DEVICE_FAULT"],
                    f"control loop stopped: {runtime.loop_error}")
        snap = runtime.snapshot()
        code = int(snap.fault_code)
        if code == ERROR_CODES["ESTOP"]:
            return (DeviceStatus.STATE_ESTOP, code, snap.fault_message)
        if code == ERROR_CODES["DISCONNECTED"]:
            return (DeviceStatus.STATE_DISCONNECTED, code, snap.fault_message)
        if code:
            return (DeviceStatus.STATE_FAULT, code, snap.fault_message)
        if self._cycle is not None or snap.phase not in (Phase.IDLE,):
            return (DeviceStatus.STATE_BUSY, 0, self._status_note or snap.phase.name.lower())
        lease = self._leases.lease
        if lease is not None:
            return (DeviceStatus.STATE_READY, 0, self._status_note or
                    f"zone leased to {lease.holder!r} (lease {lease.lease_id}); press holds")
        return (DeviceStatus.STATE_READY, 0, self._status_note or "ready")

    def _publish_status(self, force: bool = False, message: str = "") -> None:
        """Publish ~/status when state or fault changed (or always with ``force``).

        Change detection looks at (state, fault code) only, so an event message (a goal
        rejection reason, passed as ``message``) stays the latched status until the device
        state changes; a burst of status messages could otherwise overwrite it (depth 1).
        """
        with self._lock:
            key = self._status_fields()
            if message:
                key = (key[0], key[1], message)
            if not force and self._status_key is not None and key[:2] == self._status_key[:2]:
                return
            self._status_key = key
            hw = self._hw
            msg = DeviceStatus(device="press", state=key[0], fault_code=key[1], message=key[2],
                               hardware=hw.kind if hw is not None else
                               self.get_parameter("hardware").value)
            msg.header.stamp = self.get_clock().now().to_msg()
            self._status_pub.publish(msg)

    def _on_status_timer(self) -> None:
        """Expire the zone lease and publish ~/status on change."""
        with self._lock:
            expired = self._leases.expire(time.monotonic())
        if expired is not None:
            self._set_lease_held(False)
            self.get_logger().info(f"zone lease {expired.lease_id} of {expired.holder!r} "
                                   "expired; the press may pressurise again")
        self._publish_status()

    def _on_diagnostics_timer(self) -> None:
        """Publish the press's /diagnostics status."""
        self._diagnostics.publish(self.get_clock().now().to_msg(), [self._diagnostic_status()])

    def _diagnostic_status(self):
        hw, runtime = self._hw, self._runtime
        name = f"{self.get_fully_qualified_name()}: press"
        if hw is None or runtime is None:
            return diag.diagnostic_status(name, self.get_parameter("hardware").value, diag.WARN,
                                          f"not configured (lifecycle {self._lifecycle})",
                                          {"lifecycle": self._lifecycle})
        connected = hw.driver.is_connected
        timing = runtime.timing()
        limits = runtime.limits
        values = {
            "lifecycle": self._lifecycle, "hardware": hw.kind, "connected": connected,
            "loop_rate_hz": self._effective_rate_hz, "loop_cycles": timing.cycles,
            "loop_overruns": timing.overruns, "realtime": timing.realtime,
            "wake_latency_p99_s": timing.wake_latency_p99,
            "calibration_id": self._calibration_id,
            "calibration_age_s": (time.monotonic() - self._tare_wall_s
                                  if math.isfinite(self._tare_wall_s) else math.nan),
        }
        if limits is not None:
            values.update(press_capacity_n=limits.press_capacity_n,
                          die_rating_n=limits.die_rated_force_n,
                          max_rate_pa_s=limits.max_rate_pa_s,
                          force_full_scale_n=limits.force_full_scale_n)
        state, code, message = self._status_fields()
        # The latched fault by its PressCycle error-code name, as the action result names it.
        values.update(fault=CODE_NAMES.get(code, "") if code else "", fault_code=code)
        level, text = diag.OK, message
        if not connected or state in (DeviceStatus.STATE_FAULT, DeviceStatus.STATE_ESTOP,
                                      DeviceStatus.STATE_DISCONNECTED):
            level = diag.ERROR
            text = message if connected else "press link is down"
            if code:
                text = f"{CODE_NAMES.get(code, code)}: {text}"
        elif timing.overruns > self._last_overruns:
            level = diag.WARN
            text = f"control loop missed {timing.overruns - self._last_overruns} deadlines"
        elif not math.isfinite(self._tare_wall_s):
            level, text = diag.WARN, "load cell not tared since configure"
        self._last_overruns = timing.overruns
        return diag.diagnostic_status(name, hw.driver.capabilities.model, level, text, values)

    # ------------------------------------------------------------------ services
    def _estop(self, reason: str) -> str:
        """Vent now: through the loop when active, directly when the loop is stopped."""
        runtime, hw = self._runtime, self._hw
        self.get_logger().error(f"E-STOP: {reason}")
        if runtime is not None and self._lifecycle == "active":
            arrived_s = runtime.clock.now()
            if self._cycle is not None and math.isnan(self._estop_core_s):
                self._estop_core_s = arrived_s
            stamp = self._stamps.to_ros_s(arrived_s)
            runtime.estop(reason)
            self._publish_status(force=True)
            return f"vent commanded; e-stop arrived at stamp {stamp:.6f} s"
        if hw is not None and hw.driver.is_connected:
            hw.driver.vent()
            return "press vented directly (node not active)"
        return "no press connected; nothing to vent"

    def _on_estop_service(self, request, response):
        """Vent the press and latch an ESTOP fault."""
        try:
            response.message = self._estop(request.reason or "~/estop service")
            response.success = True
        except PressError as exc:
            response.success, response.message = False, f"vent failed: {exc}"
        return response

    def _on_estop_topic(self, _msg) -> None:
        """Vent the press on the cell-wide estop topic."""
        try:
            self._estop("estop topic")
        except PressError as exc:
            self.get_logger().error(f"e-stop vent failed: {exc}")

    def _on_reset_fault(self, request, response):
        """Clear a latched fault once the press is released (no setpoint is re-applied)."""
        runtime = self._runtime
        if runtime is None or self._lifecycle != "active":
            response.success, response.message = False, f"press node is {self._lifecycle}"
            return response
        snap = runtime.snapshot()
        name = CODE_NAMES.get(int(snap.fault_code), "")
        note = ""
        try:
            if name == "DISCONNECTED" or not self._hw.driver.is_connected:
                if self._cycle is not None:
                    raise PressError("the aborted cycle is still being released; retry")
                note = self._reconnect(runtime) + "; "
            cleared = runtime.reset_fault()
            # A reconnect restarts the loop with a fresh supervisor: the fault latched before
            # (DISCONNECTED) is gone by then, and is what this reset cleared.
            cleared = cleared or bool(note and name)
        except (PressError, TimeoutError) as exc:
            response.success, response.message = False, str(exc)
            self._publish_status(force=True)
            return response
        response.success = True
        response.cleared_fault = f"{name}: {snap.fault_message}" if cleared else ""
        response.message = note + ("fault cleared; press idle, no setpoint applied" if cleared
                                   else "no fault was latched")
        self._status_note = ""
        self._publish_status(force=True)
        return response

    def _reconnect(self, runtime) -> str:
        """Recover a lost link: stop the loop, reconnect with backoff, self-check, restart.

        A device fault latched by the press's own comms watchdog (it vented itself when the
        link went quiet) is cleared after the reconnect, since the reset was asked for. The loop
        restarts idle with a fresh supervisor: no setpoint from before the loss is re-applied.
        """
        driver = self._hw.driver
        runtime.stop(timeout_s=5.0)
        if hasattr(driver, "reconnect"):
            driver.reconnect()
        else:
            driver.connect()
        try:
            driver.self_check()
        except PressDeviceFault:
            if not hasattr(driver, "reset_fault"):
                raise
            driver.reset_fault()
            driver.self_check()
        runtime.start()
        self._wait_first_sample()
        self.get_logger().warning("press link recovered: reconnected, self-checked, loop "
                                  "restarted idle")
        return "link recovered (reconnected, self-checked, loop restarted idle)"

    def _tare(self, samples: int) -> tuple:
        """Tare through the loop; return (success, message, offset_n)."""
        runtime = self._runtime
        if runtime is None or self._lifecycle != "active":
            return False, f"press node is {self._lifecycle}", 0.0
        snap = runtime.snapshot()
        full_scale = runtime.limits.force_full_scale_n
        if self._cycle is not None or snap.phase is not Phase.IDLE:
            return False, "press is busy (cycle, venting or fault); tare only while idle", 0.0
        if not (math.isfinite(snap.force_n) and abs(snap.force_n)
                <= TARE_LOADED_FRACTION_FS * full_scale):
            return False, (f"press is loaded ({snap.force_n:.1f} N; tare allowed within "
                           f"+-{TARE_LOADED_FRACTION_FS * full_scale:.1f} N)"), 0.0
        try:
            offset = runtime.tare(samples, timeout_s=2.0 + 2.0 * samples / self._effective_rate_hz)
        except (PressError, TimeoutError, ValueError) as exc:
            self.get_logger().warning(f"tare refused: {exc}")
            return False, str(exc), 0.0
        self._tare_wall_s = time.monotonic()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        self._calibration_id = f"tare {stamp} offset {offset:+.2f} N"
        self.get_logger().info(f"load cell tared over {samples} samples: {offset:+.2f} N")
        return True, f"tared over {samples} samples", float(offset)

    def _on_tare(self, request, response):
        """Zero the load cell over an average (refused while loaded or busy)."""
        samples = int(request.samples) or int(self.get_parameter("tare_samples").value)
        response.success, response.message, response.offset = self._tare(samples)
        return response

    def _set_lease_held(self, held: bool) -> None:
        runtime = self._runtime
        if runtime is not None:
            runtime.set_zone_lease(held)

    def _on_zone_lease(self, request, response):
        """Grant, renew or release the press-zone lease."""
        runtime = self._runtime
        snap = runtime.snapshot() if runtime is not None else None
        pressure = snap.pressure_pa if snap is not None else math.nan
        now_s = time.monotonic()
        with self._lock:
            if request.operation == ZoneLease.Request.ACQUIRE:
                busy = self._cycle is not None or (snap is not None and
                                                   snap.phase is not Phase.IDLE)
                answer = self._leases.acquire(
                    request.holder, request.duration, now_s, pressure,
                    self.get_parameter("zone_threshold_pa").value, busy)
                if answer.granted:
                    self._set_lease_held(True)
            elif request.operation == ZoneLease.Request.RENEW:
                answer = self._leases.renew(request.lease_id, request.duration, now_s)
            elif request.operation == ZoneLease.Request.RELEASE:
                answer = self._leases.release(request.lease_id, now_s)
                if answer.granted:
                    self._set_lease_held(False)
            else:
                response.granted = False
                response.message = (f"operation {request.operation} unknown; use ACQUIRE (0), "
                                    "RENEW (1) or RELEASE (2)")
                return response
        response.granted = answer.granted
        response.message = answer.message
        response.lease_id = answer.lease_id
        response.remaining = answer.remaining_s
        response.pressure = float(pressure)
        self.get_logger().info(f"zone lease: {answer.message}")
        self._publish_status()
        return response


def main(args=None) -> int:
    """Run a press node standalone until SIGINT/SIGTERM; release the press before ROS stops."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return run_node(PressNode, make_safe=lambda node: node.close(), args=args)


if __name__ == "__main__":
    sys.exit(main())
