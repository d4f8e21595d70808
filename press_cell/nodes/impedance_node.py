"""Lifecycle node ``impedance``: the potentiostat (EIS) as a ROS 2 device, coupled to the press.

The node translates ROS <-> the pure core (``PotentiostatDriver`` backends, ``fit_cell_spectrum``,
``CellBuildHistory``, ``interface_resistance_from_point``); it holds no physics.

Interfaces (names relative to the node ``~`` or to the cell namespace):

* action ``measure_impedance`` (MeasureImpedance): one sweep at a time. goal_callback rejects,
  with the reason logged and published on ``~/status``: busy; NaN/inf fields; frequency_min
  >= frequency_max; frequencies outside the instrument range 1 mHz..1 MHz (``FREQ_LIMITS_HZ``:
  1 MHz is the top of the shipped default sweep, 1 mHz the lowest a lab sweeps a solid cell
  [est]); points_per_decade outside 1..100; amplitude outside 1..100 mV (``AMPLITUDE_LIMITS_V``:
  above ~100 mV a Li|Li cell leaves the linear regime [est]); a sweep too short to fit (fewer
  than 10 points or 2 decades, ``circuit_fit.MIN_POINTS/MIN_DECADES``); an electrode area
  < 0 or > 1e-2 m^2. Zero frequency/points/amplitude fields take the node's default sweep,
  a zero electrode_area the node's ``electrode_area``. Feedback after every point (points
  done/total, last frequency). Cancel -> the sweep is aborted at once (MethodSCRIPT ``Z``)
  -> CANCELED with the points measured so far. Result = spectrum + fit (ASR per interface in
  ohm*m^2 and ohm*cm^2); codes: OVERLOAD (a single overloaded point cannot be fitted: fewer
  than 10 points in range), FIT_FAILED (spectrum kept in the result), ABORTED (instrument
  stopped early, protocol or device error), DISCONNECTED, NOT_ACTIVE (deactivated mid-sweep).
  A spectrum with some overloaded points that still fits succeeds with ``spectrum.overload``
  set and a note in error_msg.
* topics: ``~/spectrum`` (ImpedanceSpectrum, RECORD) for every complete sweep, with the stack
  pressure of the latest ``press/state`` (NaN if none within ``press_state_timeout``);
  ``~/monitor`` (ImpedanceSample, TELEMETRY); ``~/status`` (DeviceStatus, LATCHED);
  ``/diagnostics`` (1 Hz).
* coupling: while ``press/state`` (PressState, TELEMETRY) reports PHASE_HOLD and
  ``monitor_during_holds`` is true, the monitor thread measures one point at
  ``monitor_frequency`` every 1/``monitor_rate`` s (device time) and publishes ``~/monitor``
  with R_int = (Re Z(f_mon) - Re Z(f_ref)) / 2, Re Z at ``monitor_reference_frequency``
  (measured once at the start of each hold) standing for leads + electrolyte. Monitoring
  pauses while a sweep runs. ``control/hold_end.py`` turns these samples into an adaptive
  hold end (wired by the press cycle).

Simulation (``hardware: sim``): the simulated potentiostat measures a ``CellBuildHistory`` that
the node builds from what the press publishes, as a lab would from its records: every
``press/trace`` (PressTrace, RECORD) is replayed with the recipe named by its certificate
(from ``recipes_file``; else the certificate's material and the trace's contact area), and live
``press/state`` pressure during a cycle steps a provisional copy so holds can be monitored.
``time_scale`` plays the device faster than wall time: each point takes 1/time_scale of its
nominal time and live pressure is integrated over wall time x time_scale; it must match the
press's time scale. Steps the history does not model are logged and ignored.

Lifecycle: configure = read params, build (and for sim load recipes), connect, self-check
(FAILURE with a logged reason); activate = serve measure_impedance, monitor thread,
diagnostics; deactivate = abort a running sweep (-> NOT_ACTIVE; the cell is left at open
circuit), stop monitoring; new goals are rejected while inactive (the server stays so an
aborted goal still delivers its result); cleanup = remove the server, disconnect;
shutdown = make safe.
"""

import math
import threading
import time
from pathlib import Path

import numpy as np
from rcl_interfaces.msg import (
    SetParametersResult,
)
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.lifecycle import Node as LifecycleNode
from rclpy.lifecycle import State, TransitionCallbackReturn

from press_cell.action import MeasureImpedance
from press_cell.analysis.circuit_fit import (
    MIN_DECADES,
    MIN_POINTS,
    CircuitFitError,
    fit_cell_spectrum,
)
from press_cell.config_files import config_file
from press_cell.control.hold_end import interface_resistance_from_point
from press_cell.hardware.potentiostat_driver import (
    DEFAULT_AMPLITUDE_V,
    DEFAULT_FREQ_MAX_HZ,
    DEFAULT_FREQ_MIN_HZ,
    DEFAULT_POINTS_PER_DECADE,
    PotentiostatAbortedError,
    PotentiostatConnectionError,
    PotentiostatDriver,
    PotentiostatError,
    PotentiostatOverloadError,
)
from press_cell.hardware.potentiostat_methodscript import DEFAULT_BAUDRATE, MethodScriptPotentiostat
from press_cell.hardware.potentiostat_sim import (
    DEFAULT_CYCLES_PER_POINT,
    DEFAULT_POINT_OVERHEAD_S,
    SimulatedPotentiostat,
)
from press_cell.msg import DeviceStatus, ImpedanceSample, ImpedanceSpectrum, PressState, PressTrace
from press_cell.nodes import qos
from press_cell.nodes.diagnostics import ERROR, OK, DiagnosticsPublisher, diagnostic_status
from press_cell.nodes.impedance_msgs import fit_to_msg, sample_to_msg, spectrum_to_msg
from press_cell.nodes.node_runner import run_node
from press_cell.nodes.parameter_descriptor import describe as _describe
from press_cell.physics.cell_history import CellBuildHistory, CellHistoryError, step_kind
from press_cell.physics.eis import log_frequency_grid_hz
from press_cell.recipes import RecipeError, load_library, load_recipes
from press_cell.timebase import MonotonicClock

HARDWARE_CHOICES = ("sim", "methodscript")
FREQ_LIMITS_HZ = (1e-3, 1e6)            # see the module docstring [est]
AMPLITUDE_LIMITS_V = (1e-3, 0.1)        # see the module docstring [est]
MAX_ELECTRODE_AREA_M2 = 1e-2            # 11 cm diameter: beyond any lab cell [est]
ELECTRODE_DIAMETER_M = 12.7e-3          # Doux et al. 2020 cells, the shipped rods
LIVE_PHASES = (PressState.PHASE_RAMP, PressState.PHASE_HOLD, PressState.PHASE_RELEASE)
# A hold-monitor point counts only if the stack pressure at its end is within this fraction of
# the pressure at its start (else it spans a stage change and is dropped) [est]
SAME_HOLD_FRACTION = 0.05
R = MeasureImpedance.Result


def sweep_refusal(freq_max_hz: float, freq_min_hz: float, points_per_decade: int,
                  amplitude_v: float) -> str:
    """Return why a sweep request is refused ('' if it is acceptable)."""
    values = (freq_max_hz, freq_min_hz, amplitude_v)
    if not all(math.isfinite(v) for v in values):
        return f"sweep fields must be finite, got frequency_max={freq_max_hz!r}, " \
               f"frequency_min={freq_min_hz!r}, amplitude={amplitude_v!r}"
    low, high = FREQ_LIMITS_HZ
    if not freq_min_hz < freq_max_hz:
        return f"frequency_min {freq_min_hz:g} Hz must be below frequency_max {freq_max_hz:g} Hz"
    if freq_min_hz < low or freq_max_hz > high:
        return (f"frequencies {freq_min_hz:g}..{freq_max_hz:g} Hz outside the instrument range "
                f"{low:g}..{high:g} Hz")
    if not 1 <= points_per_decade <= 100:
        return f"points_per_decade {points_per_decade} outside 1..100"
    a_low, a_high = AMPLITUDE_LIMITS_V
    if not a_low <= amplitude_v <= a_high:
        return (f"amplitude {amplitude_v * 1e3:g} mV outside {a_low * 1e3:g}..{a_high * 1e3:g} mV "
                "RMS")
    n_points = log_frequency_grid_hz(freq_max_hz, freq_min_hz, points_per_decade).size
    decades = math.log10(freq_max_hz / freq_min_hz)
    if n_points < MIN_POINTS or decades < MIN_DECADES:
        return (f"a sweep of {n_points} points over {decades:.2g} decades cannot be fitted: "
                f"need >= {MIN_POINTS} points and >= {MIN_DECADES:g} decades")
    return ""


class ImpedanceNode(LifecycleNode):
    """The potentiostat: measure_impedance, ~/spectrum, hold monitoring on ~/monitor.

    ``driver`` (tests, custom rigs) replaces the backend ``hardware`` would build; the node
    then keeps no simulated cell of its own and ignores ``press/trace``.
    """

    def __init__(self, *, node_name: str = "impedance", namespace: str = "", context=None,
                 parameter_overrides=None, driver: PotentiostatDriver | None = None,
                 **kwargs) -> None:
        """Declare parameters; ``kwargs`` go to rclpy's Node (e.g. ``cli_args`` remaps)."""
        super().__init__(node_name, namespace=namespace, context=context,
                         parameter_overrides=parameter_overrides or [], **kwargs)
        self._declare_parameters()
        self._driver_hook = driver
        self._driver: PotentiostatDriver | None = None
        self._history: CellBuildHistory | None = None
        self._recipes = None
        self._identity = ""
        self._action_server: ActionServer | None = None
        self._active = False
        self._timers: list = []
        self._lock = threading.Lock()           # goal admission
        self._device_lock = threading.Lock()    # one measurement on the instrument at a time
        self._busy = False
        self._idle = threading.Event()
        self._idle.set()
        self._cancel = threading.Event()
        self._stop_reason: tuple | None = None
        self._press_state: PressState | None = None
        self._press_state_wall_s = -math.inf
        self._last_live_wall_s: float | None = None
        self._monitor_thread: threading.Thread | None = None
        self._monitor_stop = threading.Event()
        self._last_status: tuple | None = None
        self._counts = {"sweeps": 0, "failed": 0, "monitor_samples": 0, "monitor_discarded": 0,
                        "monitor_errors": 0, "cycles": 0}
        self._last_asr_ohm_cm2 = math.nan

        self._action_group = ReentrantCallbackGroup()
        self._press_group = MutuallyExclusiveCallbackGroup()
        self._telemetry_group = MutuallyExclusiveCallbackGroup()
        self._status_pub = self.create_publisher(DeviceStatus, "~/status", qos.LATCHED)
        self._spectrum_pub = self.create_publisher(ImpedanceSpectrum, "~/spectrum", qos.RECORD)
        self._monitor_pub = self.create_publisher(ImpedanceSample, "~/monitor", qos.TELEMETRY)
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_subscription(PressState, "press/state", self._on_press_state, qos.TELEMETRY,
                                 callback_group=self._press_group)
        if self._param("hardware") == "sim":
            self.create_subscription(PressTrace, "press/trace", self._on_press_trace, qos.RECORD,
                                     callback_group=self._press_group)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self._publish_status(DeviceStatus.STATE_UNCONFIGURED, "unconfigured")
        if self._param("autostart"):
            if self.trigger_configure() == TransitionCallbackReturn.SUCCESS:
                self.trigger_activate()

    # ----------------------------------------------------------------- parameters
    def _declare_parameters(self) -> None:
        declare = self.declare_parameter
        f_low, f_high = FREQ_LIMITS_HZ
        declare("hardware", "sim", _describe(
            "potentiostat backend: sim (physics simulator fed by the press records) | "
            "methodscript (PalmSens MethodSCRIPT over serial)", read_only=True))
        declare("serial_port", "/dev/ttyACM0", _describe(
            "serial device or pyserial URL of the MethodSCRIPT instrument", read_only=True))
        declare("baud_rate", DEFAULT_BAUDRATE, _describe(
            "serial baud rate, 1/s (EmStat Pico: 230400)", read_only=True,
            ints=(9600, 3000000)))
        declare("electrode_area", math.pi * ELECTRODE_DIAMETER_M ** 2 / 4.0, _describe(
            "electrode area for the ASR, m^2 (default: 12.7 mm electrodes)",
            floats=(1e-6, MAX_ELECTRODE_AREA_M2)))
        declare("freq_max", DEFAULT_FREQ_MAX_HZ, _describe(
            "default sweep: highest frequency, Hz", floats=FREQ_LIMITS_HZ))
        declare("freq_min", DEFAULT_FREQ_MIN_HZ, _describe(
            "default sweep: lowest frequency, Hz", floats=FREQ_LIMITS_HZ))
        declare("points_per_decade", DEFAULT_POINTS_PER_DECADE, _describe(
            "default sweep: points per decade, 1", ints=(1, 100)))
        declare("amplitude", DEFAULT_AMPLITUDE_V, _describe(
            "default sweep and monitor: AC amplitude, V RMS", floats=AMPLITUDE_LIMITS_V))
        declare("r_ext", 0.5, _describe(
            "lead/fixture resistance used by the fit when the bulk arc lies above the sweep, "
            "ohm (from a short-circuit calibration)", floats=(0.0, 100.0)))
        declare("recipes_file", "", _describe(
            "sim only: recipes YAML to resolve the press certificates' recipe names; empty = "
            "the shipped file; read at configure"))
        declare("time_scale", 1.0, _describe(
            "sim only: simulated seconds per wall second (match the press's)", read_only=True,
            floats=(0.1, 10000.0)))
        declare("sim_seed", 0, _describe(
            "sim only: measurement-noise seed", read_only=True, ints=(0, 2 ** 31 - 1)))
        declare("monitor_during_holds", True, _describe(
            "measure |Z| at monitor_frequency while the press holds"))
        declare("monitor_frequency", 10.0, _describe(
            "hold monitor frequency, Hz; well below the interface arc (R_int estimate)",
            floats=(f_low, f_high)))
        declare("monitor_reference_frequency", f_high, _describe(
            "hold monitor: frequency whose Re Z stands for leads + electrolyte, Hz",
            floats=(f_low, f_high)))
        declare("monitor_rate", 1.0, _describe(
            "hold monitor samples per second of device time, Hz", floats=(0.001, 100.0)))
        declare("press_state_timeout", 1.0, _describe(
            "press/state older than this is unknown (no monitoring, NaN stack pressure), s "
            "of wall time", floats=(0.05, 60.0)))
        declare("autostart", False, _describe(
            "configure and activate right after construction", read_only=True))

    def _param(self, name: str):
        return self.get_parameter(name).value

    def _validate_parameters(self, params: list) -> SetParametersResult:
        """Refuse runtime values outside the instrument's rating or cross-field rules."""
        values = {p.name: p.value for p in params}
        freq_max = values.get("freq_max", self._param("freq_max"))
        freq_min = values.get("freq_min", self._param("freq_min"))
        ppd = values.get("points_per_decade", self._param("points_per_decade"))
        amplitude = values.get("amplitude", self._param("amplitude"))
        reason = sweep_refusal(float(freq_max), float(freq_min), int(ppd), float(amplitude))
        if reason:
            return SetParametersResult(successful=False, reason=f"default sweep: {reason}")
        monitor = values.get("monitor_frequency", self._param("monitor_frequency"))
        reference = values.get("monitor_reference_frequency",
                               self._param("monitor_reference_frequency"))
        if not reference > monitor:
            return SetParametersResult(successful=False, reason=(
                f"monitor_reference_frequency {reference:g} Hz must be above "
                f"monitor_frequency {monitor:g} Hz"))
        return SetParametersResult(successful=True)

    def _time_scale(self) -> float:
        return float(self._param("time_scale")) if self._param("hardware") == "sim" else 1.0

    # ----------------------------------------------------------------- lifecycle
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        """Build the backend chosen by ``hardware``, connect and self-check it."""
        hardware = self._param("hardware")
        if hardware not in HARDWARE_CHOICES:
            return self._configure_failed(
                f"hardware {hardware!r} is not one of {', '.join(HARDWARE_CHOICES)}")
        try:
            driver = self._build_driver(hardware)
        except (OSError, RecipeError, ValueError) as exc:
            return self._configure_failed(f"cannot build the {hardware} potentiostat: {exc}")
        try:
            driver.connect()
            identity = driver.self_check()
        except PotentiostatError as exc:
            driver.disconnect()
            return self._configure_failed(f"{hardware} potentiostat failed to connect or "
                                          f"self-check: {exc}")
        self._driver = driver
        self._identity = identity
        self._publish_status(DeviceStatus.STATE_READY, f"configured: {identity}")
        self.get_logger().info(f"configured: {identity}")
        return TransitionCallbackReturn.SUCCESS

    def _configure_failed(self, reason: str) -> TransitionCallbackReturn:
        self.get_logger().error(f"configure failed: {reason}")
        self._publish_status(DeviceStatus.STATE_FAULT, f"configure failed: {reason}")
        return TransitionCallbackReturn.FAILURE

    def _build_driver(self, hardware: str) -> PotentiostatDriver:
        if self._driver_hook is not None:
            return self._driver_hook
        if hardware == "methodscript":
            return MethodScriptPotentiostat(self._param("serial_port"),
                                            baudrate=self._param("baud_rate"))
        recipes_path = self._param("recipes_file") or str(config_file("recipes.yaml"))
        library = load_library(Path(recipes_path).with_name("library.yaml"))
        self._recipes = load_recipes(recipes_path, library=library)
        self._history = CellBuildHistory(library=library)
        scale = self._time_scale()
        # a point takes 1/time_scale of its nominal time on the wall clock
        return SimulatedPotentiostat(self._history, clock=MonotonicClock(),
                                     seed=self._param("sim_seed"),
                                     cycles_per_point=DEFAULT_CYCLES_PER_POINT / scale,
                                     point_overhead_s=DEFAULT_POINT_OVERHEAD_S / scale,
                                     clock_mode="wait")

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        """Start serving measure_impedance, the hold monitor and diagnostics."""
        if self._action_server is None:
            # kept while inactive (goals rejected) so a goal aborted by deactivate still
            # delivers its result; destroyed at cleanup
            self._action_server = ActionServer(
                self, MeasureImpedance, "measure_impedance",
                execute_callback=self._execute, goal_callback=self._on_goal,
                cancel_callback=self._on_cancel, callback_group=self._action_group,
                result_timeout=3600)
        self._active = True
        self._timers = [self.create_timer(1.0, self._publish_diagnostics,
                                          callback_group=self._telemetry_group)]
        self._monitor_stop.clear()
        self._monitor_thread = threading.Thread(target=self._monitor_loop,
                                                name="impedance-monitor", daemon=True)
        self._monitor_thread.start()
        self._publish_status(DeviceStatus.STATE_READY, "active")
        self.get_logger().info("active: measure_impedance is served")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        """Abort a running sweep (cell left at open circuit), stop monitoring."""
        self._active = False
        self._stop_running_goal(R.NOT_ACTIVE, "the impedance node was deactivated")
        self._teardown_active()
        self._publish_status(DeviceStatus.STATE_READY, "inactive")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        """Stop serving goals and disconnect the instrument."""
        self._destroy_action_server()
        self._disconnect()
        self._publish_status(DeviceStatus.STATE_UNCONFIGURED, "unconfigured")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        """Make safe: abort a sweep, stop monitoring, disconnect."""
        self.make_safe()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: State) -> TransitionCallbackReturn:
        """Abort any sweep after a failed transition."""
        self._cancel.set()
        self._publish_status(DeviceStatus.STATE_FAULT, "lifecycle error; sweep aborted")
        return TransitionCallbackReturn.SUCCESS

    def make_safe(self) -> None:
        """Abort any sweep, stop monitoring and disconnect (the instrument's cell goes off)."""
        self._active = False
        self._stop_running_goal(R.NOT_ACTIVE, "the impedance node shut down")
        self._teardown_active()
        self._destroy_action_server()
        self._disconnect()

    def _stop_running_goal(self, code: int, message: str) -> None:
        if not self._idle.is_set():
            self._stop_reason = (code, message)
            self._cancel.set()
            if not self._idle.wait(timeout=30.0):
                self.get_logger().error("the running sweep did not end within 30 s")

    def _teardown_active(self) -> None:
        self._monitor_stop.set()
        if self._monitor_thread is not None:
            self._monitor_thread.join(timeout=10.0)
            self._monitor_thread = None
        for timer in self._timers:
            self.destroy_timer(timer)
        self._timers = []

    def _destroy_action_server(self) -> None:
        if self._action_server is not None:
            self._action_server.destroy()
            self._action_server = None

    def _disconnect(self) -> None:
        if self._driver is not None:
            try:
                self._driver.disconnect()
            except PotentiostatError as exc:
                self.get_logger().error(f"disconnect failed: {exc}")
            self._driver = None

    # ----------------------------------------------------------------- action
    def _goal_sweep(self, goal) -> tuple:
        """Return (freq_max Hz, freq_min Hz, points/decade, amplitude V, area m^2) of a goal."""
        return (goal.frequency_max or float(self._param("freq_max")),
                goal.frequency_min or float(self._param("freq_min")),
                goal.points_per_decade or int(self._param("points_per_decade")),
                goal.amplitude or float(self._param("amplitude")),
                goal.electrode_area or float(self._param("electrode_area")))

    def _goal_refusal(self, goal) -> str:
        freq_max, freq_min, ppd, amplitude, area = self._goal_sweep(goal)
        reason = sweep_refusal(freq_max, freq_min, ppd, amplitude)
        if reason:
            return reason
        if not (math.isfinite(area) and 0.0 < area <= MAX_ELECTRODE_AREA_M2):
            return (f"electrode_area {area!r} m^2 outside (0, {MAX_ELECTRODE_AREA_M2:g}] "
                    "(0 = the node's electrode_area)")
        if self._driver is None or not self._active:
            return "the impedance node is not active (lifecycle state)"
        if self._busy:
            return "busy: another sweep is running (one goal at a time)"
        return ""

    def _on_goal(self, goal) -> GoalResponse:
        """Accept a valid sweep when idle; reject with a logged and published reason."""
        with self._lock:
            reason = self._goal_refusal(goal)
            if not reason:
                self._busy = True
                self._idle.clear()
                self._cancel.clear()
                return GoalResponse.ACCEPT
        self.get_logger().warning(f"measure_impedance goal {goal.cell_id!r} rejected: {reason}")
        state = self._last_status[0] if self._last_status else DeviceStatus.STATE_READY
        self._publish_status(state, f"goal {goal.cell_id!r} rejected: {reason}",
                             fault_code=R.INVALID_GOAL, force=True)
        return GoalResponse.REJECT

    def _on_cancel(self, goal_handle) -> CancelResponse:
        """Accept the cancel: the running sweep is aborted at the next point."""
        self.get_logger().info("measure_impedance cancel requested")
        self._cancel.set()
        return CancelResponse.ACCEPT

    def _execute(self, goal_handle) -> MeasureImpedance.Result:
        """Run one sweep, fit it, publish the spectrum and end the goal with its result."""
        goal = goal_handle.request
        self._stop_reason = None
        freq_max, freq_min, ppd, amplitude, area = self._goal_sweep(goal)
        self._publish_status(DeviceStatus.STATE_BUSY,
                             f"sweeping {goal.cell_id or 'cell'}: {freq_max:g}..{freq_min:g} Hz")

        def progress(done: int, total: int, freq_hz: float) -> None:
            if goal_handle.is_active:
                goal_handle.publish_feedback(MeasureImpedance.Feedback(
                    points_done=done, points_total=total, frequency=float(freq_hz)))

        try:
            result = self._measure(goal, goal_handle, (freq_max, freq_min, ppd, amplitude),
                                   area, progress)
        finally:
            with self._lock:
                self._busy = False
            self._idle.set()
        self._counts["sweeps" if result.success else "failed"] += 1
        self.get_logger().info(f"measure_impedance {goal.cell_id!r}: code {result.error_code}: "
                               f"{result.error_msg}")
        self._publish_status(DeviceStatus.STATE_READY, result.error_msg,
                             fault_code=0 if result.success else result.error_code)
        return result

    def _measure(self, goal, goal_handle, sweep: tuple, area_m2: float,
                 progress) -> MeasureImpedance.Result:
        """Sweep and fit; translate core exceptions into result codes."""
        result = R()
        stamp = self.get_clock().now().to_msg()
        stack_pressure_pa = self.stack_pressure_pa()        # at the start of the sweep
        try:
            with self._device_lock:
                spectrum = self._driver.measure_eis(*sweep, progress_cb=progress,
                                                    cancel_event=self._cancel)
        except PotentiostatAbortedError as exc:
            if exc.partial_spectrum is not None:
                result.spectrum = spectrum_to_msg(exc.partial_spectrum, goal.cell_id,
                                                  stack_pressure_pa, stamp)
            return self._end_stopped(goal_handle, result, str(exc))
        except PotentiostatConnectionError as exc:
            return self._end(goal_handle, result, R.DISCONNECTED, str(exc))
        except PotentiostatOverloadError as exc:
            return self._end(goal_handle, result, R.OVERLOAD, str(exc))
        except PotentiostatError as exc:
            return self._end(goal_handle, result, R.ABORTED, f"instrument error: {exc}")
        result.spectrum = spectrum_to_msg(spectrum, goal.cell_id, stack_pressure_pa, stamp)
        self._spectrum_pub.publish(result.spectrum)
        try:
            fit = fit_cell_spectrum(spectrum, electrode_area_m2=area_m2,
                                    r_ext_ohm=float(self._param("r_ext")))
        except CircuitFitError as exc:
            too_few_in_range = spectrum.any_overload and len(spectrum.valid_points()) < MIN_POINTS
            code = R.OVERLOAD if too_few_in_range else R.FIT_FAILED
            return self._end(goal_handle, result, code, f"fit failed: {exc}")
        result.fit = fit_to_msg(fit)
        self._last_asr_ohm_cm2 = fit.asr_int_ohm_cm2
        text = (f"R_int {fit.r_int_ohm:.4g} +- {fit.r_int_std_ohm:.2g} ohm per interface, ASR "
                f"{fit.asr_int_ohm_cm2:.3g} ohm cm^2, R_total {fit.r_total_ohm:.4g} ohm")
        if spectrum.any_overload:
            text += (f"; {int(spectrum.overload.sum() + spectrum.underload.sum())} "
                     "overloaded point(s) left out of the fit")
        if fit.notes:
            text += "; " + "; ".join(fit.notes)
        result.success = True
        result.error_code = R.NONE
        result.error_msg = text
        goal_handle.succeed()
        return result

    def _end_stopped(self, goal_handle, result, message: str) -> MeasureImpedance.Result:
        """End a sweep that stopped early: canceled, deactivated or stopped by the device."""
        if self._stop_reason is not None:
            code, why = self._stop_reason
            return self._end(goal_handle, result, code, f"{why}; {message}")
        if goal_handle.is_cancel_requested:
            result.error_code, result.error_msg = R.CANCELED, f"canceled: {message}"
            goal_handle.canceled()
            return result
        return self._end(goal_handle, result, R.ABORTED, message)

    @staticmethod
    def _end(goal_handle, result, code: int, message: str) -> MeasureImpedance.Result:
        result.success = False
        result.error_code = code
        result.error_msg = message
        goal_handle.abort()
        return result

    # ----------------------------------------------------------------- press coupling
    def stack_pressure_pa(self) -> float:
        """Return the latest fresh press pressure, Pa (NaN when none is fresh)."""
        state = self._press_state
        age_s = time.monotonic() - self._press_state_wall_s
        if state is None or age_s > float(self._param("press_state_timeout")):
            return math.nan
        return float(state.pressure)

    def _press_holds(self) -> bool:
        return (self._press_state is not None
                and self._press_state.phase == PressState.PHASE_HOLD
                and math.isfinite(self.stack_pressure_pa()))

    def _on_press_state(self, msg: PressState) -> None:
        """Keep the latest press sample; in sim, step the provisional cell with live pressure."""
        now_s = time.monotonic()
        last_s = self._last_live_wall_s
        self._press_state, self._press_state_wall_s = msg, now_s
        history = self._history
        if history is None or msg.phase not in LIVE_PHASES or not math.isfinite(msg.pressure):
            self._last_live_wall_s = None
            return
        self._last_live_wall_s = now_s
        if last_s is None:
            return
        dt_wall_s = min(now_s - last_s, float(self._param("press_state_timeout")))
        try:
            history.step_live(max(0.0, msg.pressure), dt_wall_s * self._time_scale())
        except CellHistoryError as exc:
            self.get_logger().warning(f"live pressure not applied: {exc}",
                                      throttle_duration_sec=10.0)

    def _on_press_trace(self, msg: PressTrace) -> None:
        """Replay a finished press cycle into the simulated cell (sim only)."""
        history = self._history
        if history is None:
            return
        step_name = msg.step_name or msg.certificate.step_name
        if step_kind(step_name) is None:
            self.get_logger().info(f"press cycle {step_name!r} ignored: not a cell step")
            return
        name = msg.certificate.recipe_name
        recipe = self._recipes.press.get(name) if self._recipes is not None else None
        if name and recipe is None:
            self.get_logger().warning(f"press cycle {step_name!r}: recipe {name!r} not in "
                                      "recipes_file; using the certificate's material")
        try:
            text = history.add_cycle(
                step_name, np.asarray(msg.time), np.asarray(msg.pressure), recipe,
                material=None if recipe is not None else (msg.certificate.material or None),
                contact_area_m2=msg.contact_area or None)
        except CellHistoryError as exc:
            self.get_logger().error(f"press cycle {step_name!r} not replayed: {exc}")
            return
        self._counts["cycles"] = history.cycles_replayed
        self.get_logger().info(f"simulated cell: {text}")
        state = self._last_status[0] if self._last_status else DeviceStatus.STATE_READY
        self._publish_status(state, f"simulated cell: {history.summary()}")

    # ----------------------------------------------------------------- hold monitor
    def _monitor_loop(self) -> None:
        """Measure one point per period while the press holds (own thread, absolute deadlines)."""
        next_s = time.monotonic()
        r_series_ohm = math.nan
        while not self._monitor_stop.is_set():
            period_s = 1.0 / (float(self._param("monitor_rate")) * self._time_scale())
            next_s += period_s
            now_s = time.monotonic()
            if next_s < now_s - period_s:       # overrun (a sweep held the device): resync
                next_s = now_s
            if self._monitor_stop.wait(max(0.0, next_s - now_s)):
                return
            if not (self._param("monitor_during_holds") and self._press_holds()):
                r_series_ohm = math.nan
                continue
            # the stack pressure of the hold being measured, not of whatever follows it
            stack_pressure_pa = self.stack_pressure_pa()
            if not self._device_lock.acquire(blocking=False):
                continue                        # a sweep owns the instrument
            try:
                amplitude = float(self._param("amplitude"))
                freq_hz = float(self._param("monitor_frequency"))
                if not math.isfinite(r_series_ohm):
                    r_series_ohm = self._driver.measure_impedance_at(
                        float(self._param("monitor_reference_frequency")), amplitude).real
                z_ohm = self._driver.measure_impedance_at(freq_hz, amplitude)
            except (PotentiostatError, ValueError) as exc:
                self._counts["monitor_errors"] += 1
                self.get_logger().warning(f"hold monitor point failed: {exc}",
                                          throttle_duration_sec=5.0)
                continue
            finally:
                self._device_lock.release()
            if not self._same_hold(stack_pressure_pa):
                # the press left the hold (or changed stage) while the point was measured: the
                # point belongs to no single stack pressure, and is dropped
                self._counts["monitor_discarded"] += 1
                continue
            self._counts["monitor_samples"] += 1
            self._monitor_pub.publish(sample_to_msg(
                freq_hz, z_ohm, interface_resistance_from_point(z_ohm, r_series_ohm),
                stack_pressure_pa, self.get_clock().now().to_msg()))

    def _same_hold(self, stack_pressure_pa: float) -> bool:
        """Return whether the press still holds ``stack_pressure_pa`` (Pa, within 5 %)."""
        now_pa = self.stack_pressure_pa()
        return self._press_holds() and abs(now_pa - stack_pressure_pa) <= \
            SAME_HOLD_FRACTION * max(abs(stack_pressure_pa), 1e6)   # NaN: False

    # ----------------------------------------------------------------- status, diagnostics
    def _publish_status(self, state: int, message: str, fault_code: int = 0,
                        force: bool = False) -> None:
        key = (state, message, fault_code)
        if key == self._last_status and not force:
            return
        self._last_status = key
        msg = DeviceStatus(device="potentiostat", hardware=str(self._param("hardware")),
                           state=state, fault_code=fault_code, message=message)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._status_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        """Publish one DiagnosticStatus for the potentiostat on /diagnostics."""
        hardware = self._param("hardware")
        hardware_id = self._param("serial_port") if hardware == "methodscript" else "sim"
        connected = self._driver is not None and self._driver.is_connected
        level = OK if connected else ERROR
        message = ("sweeping" if self._busy else "idle") if connected else "disconnected"
        values = {"hardware": hardware, "identity": self._identity,
                  "last_asr_ohm_cm2": f"{self._last_asr_ohm_cm2:.4g}",
                  "press_holding": str(self._press_holds())}
        values.update({key: str(value) for key, value in self._counts.items()})
        if self._history is not None:
            values["simulated_cell"] = self._history.summary()
        self._diagnostics.publish(self.get_clock().now().to_msg(), [diagnostic_status(
            f"{self.get_fully_qualified_name()}: potentiostat", hardware_id, level, message,
            values)])


def main(args=None) -> int:
    """Run the impedance node standalone until SIGINT/SIGTERM; abort a sweep first."""
    return run_node(ImpedanceNode, make_safe=lambda node: node.make_safe(), args=args)


if __name__ == "__main__":
    main()
