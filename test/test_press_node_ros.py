"""The press node over ROS, in another process, on every backend: sim, ASCII and Modbus serial.

Each backend gets one press node process (and, for the serial drivers, the pty emulator of
``press_cell.hardware.press_emulator``) in its own namespace; the test drives it with real
action and service clients (``PressClient``) and reads ``~/state``. The simulated press runs in
unpaced lockstep (``time_scale: 0``), so minutes of press time pass in about a second; the
serial presses run in real time with short profiles.

Latencies are measured in the loop's own time: the node reports, in the result message, the
stamp at which a cancel or e-stop arrived and the stamp at which the loop trace shows the
release (or vent) beginning; the ``~/state`` samples (same time base) must agree.
"""

import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import deque

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from conftest import REPO, ros_subprocess_env  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState  # noqa: E402
from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.msg import ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402

from press_cell.action import PressCycle  # noqa: E402
from press_cell.msg import (  # noqa: E402
    DeviceStatus,
    ImpedanceSample,
    PressSegment,
    PressState,
    PressTrace,
)
from press_cell.nodes.press_client import GoalRefused, PressClient, wait_future  # noqa: E402
from press_cell.nodes.qos import RECORD, TELEMETRY  # noqa: E402
from press_cell.srv import ZoneLease  # noqa: E402

BACKENDS = ("sim", "serial_ascii", "serial_modbus")
SERIAL_RATE_HZ = 100.0
SIM_RATE_HZ = 500.0
TEST_RECIPES = """\
press_recipes:
  test_quick_100mpa:
    description: short Li6PS5Cl compaction for the simulated press
    material: Li6PS5Cl
    press: hydraulic-15t
    die: die-13mm
    mass_mg: 200
    target_pressure_mpa: 100
    ramp_mpa_s: 2
    hold_s: 10
    tolerance_pct: 1
    release_mpa_s: 20
    max_pressure_mpa: 120
  test_quick_10mpa:
    description: short cycle for the (real-time) serial presses
    material: Li6PS5Cl
    press: hydraulic-15t
    die: die-13mm
    mass_mg: 200
    target_pressure_mpa: 10
    ramp_mpa_s: 10
    hold_s: 1
    tolerance_pct: 2
    release_mpa_s: 10
    max_pressure_mpa: 30
"""
STAMPS = re.compile(r"arrived at stamp ([0-9.]+) s, (\w+) began at stamp ([0-9.]+) s "
                    r"\(loop trace\), after (\d+) loop cycle")


def seg(kind, target_pa, rate_pa_s=0.0, duration_s=0.0, tolerance_pa=0.0):
    """Return a PressSegment (SI)."""
    return PressSegment(kind=kind, target_pressure=float(target_pa), rate=float(rate_pa_s),
                        duration=float(duration_s), tolerance=float(tolerance_pa))


def profile_goal(target_pa, hold_s, rate_pa_s, part_id="t", **fields):
    """Return a ramp / hold / release goal on a 13 mm die."""
    goal = PressCycle.Goal(part_id=part_id, die_diameter=0.013, **fields)
    goal.segments = [seg(PressSegment.KIND_RAMP, target_pa, rate_pa_s),
                     seg(PressSegment.KIND_HOLD, target_pa, duration_s=hold_s,
                         tolerance_pa=0.02 * target_pa),
                     seg(PressSegment.KIND_RELEASE, 0.0, rate_pa_s)]
    return goal


class Rig:
    """One press node process (plus emulator) and the test's clients to it."""

    def __init__(self, backend, context, recipes_path, log_dir):
        self.backend = backend
        self.lockstep = backend == "sim"        # the sim runs unpaced lockstep (time_scale 0)
        self.ns = f"/t_{backend}_{os.getpid()}"
        self.emulator = None
        params = {"autostart": "true", "hardware": backend, "recipes_file": recipes_path,
                  "feedback_rate_hz": "20.0"}
        if backend == "sim":
            params.update(time_scale="0.0", rate_hz=str(SIM_RATE_HZ), state_rate_hz="200.0")
            self.rate_hz = SIM_RATE_HZ
        else:
            self.emulator = subprocess.Popen(
                [sys.executable, "-m", "press_cell.hardware.press_emulator", "--protocol",
                 backend.split("_")[1]], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=ros_subprocess_env())
            port = self.emulator.stdout.readline().strip()
            assert port.startswith("/dev/"), f"emulator did not report a port: {port!r}"
            params.update(serial_port=port, rate_hz=str(SERIAL_RATE_HZ), state_rate_hz="100.0")
            self.rate_hz = SERIAL_RATE_HZ
        args = [sys.executable, "-m", "press_cell.nodes.press_node", "--ros-args",
                "-r", f"__ns:={self.ns}", "--params-file", str(REPO / "config" / "press.yaml")]
        for name, value in params.items():
            args += ["-p", f"{name}:={value}"]
        self.log_path = log_dir / f"press_node_{backend}.log"
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(args, cwd=REPO, env=ros_subprocess_env(),
                                         stdout=log, stderr=subprocess.STDOUT)
        self.context = context
        self.node = rclpy.create_node(f"press_test_{backend}", context=context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.client = PressClient(self.node, namespace=self.ns)
        self.states = deque(maxlen=200_000)
        self.node.create_subscription(PressState, f"{self.ns}/press/state",
                                      lambda msg: self.states.append(msg), TELEMETRY)
        self.traces = deque(maxlen=20)
        self.node.create_subscription(PressTrace, f"{self.ns}/press/trace",
                                      lambda msg: self.traces.append(msg), RECORD)
        self.monitor = self.node.create_publisher(ImpedanceSample,
                                                  f"{self.ns}/impedance/monitor", TELEMETRY)
        self.diagnostics = deque(maxlen=50)
        self.node.create_subscription(DiagnosticArray, "/diagnostics",
                                      lambda msg: self.diagnostics.append(msg), 10)
        self.lifecycle = self.node.create_client(ChangeState, f"{self.ns}/press/change_state")
        self.set_params = self.node.create_client(SetParameters,
                                                  f"{self.ns}/press/set_parameters")
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.client.wait_for_server(30.0)

    @property
    def period_s(self):
        """Return the loop period, s."""
        return 1.0 / self.rate_hz

    def run(self, goal, timeout_s=60.0, feedback=None):
        """Send a goal and wait for its end; return (status, result)."""
        handle = self.client.send_goal(goal, feedback_callback=feedback)
        return self.client.wait_result(handle, timeout_s)

    def wait_phase(self, feedbacks, phase, timeout_s=30.0):
        """Wait until a feedback in ``feedbacks`` shows ``phase``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(f.phase == phase for f in list(feedbacks)):
                return
            time.sleep(0.01)
        raise AssertionError(f"no feedback with phase {phase} within {timeout_s} s")

    def wait_idle(self, timeout_s=30.0):
        """Wait until ~/status says READY; a latched fault is reset (at most once a second).

        The fault may be one an earlier test left, or a serial link that missed its deadline
        on a loaded machine before this test began (the press then vents: the safe reaction).
        """
        latched = (DeviceStatus.STATE_FAULT, DeviceStatus.STATE_ESTOP,
                   DeviceStatus.STATE_DISCONNECTED)
        deadline = time.monotonic() + timeout_s
        last_reset = -math.inf
        while time.monotonic() < deadline:
            status = self.client.status
            if status is not None and status.state == DeviceStatus.STATE_READY:
                return
            if status is not None and status.state in latched \
                    and time.monotonic() - last_reset > 1.0:
                last_reset = time.monotonic()
                self.client.reset_fault(timeout_s=10.0)
            time.sleep(0.02)
        raise AssertionError(f"press not READY within {timeout_s} s: {self.client.status}")

    def transition(self, transition_id):
        """Trigger a lifecycle transition; return whether it succeeded."""
        request = ChangeState.Request()
        request.transition = Transition(id=transition_id)
        response = self.client.call(self.lifecycle, request, timeout_s=60.0)
        return response.success

    def close(self):
        """Stop the node (SIGINT: it makes the press safe) and the emulator."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        if self.emulator is not None:
            self.emulator.stdin.close()
            try:
                self.emulator.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.emulator.kill()




@pytest.fixture(scope="module")
def recipes_path(tmp_path_factory):
    """Write the short test recipes beside a copy of the shipped library."""
    folder = tmp_path_factory.mktemp("press_recipes")
    shutil.copy(REPO / "config" / "library.yaml", folder / "library.yaml")
    path = folder / "recipes.yaml"
    path.write_text(TEST_RECIPES)
    return str(path)


@pytest.fixture(scope="module", params=BACKENDS)
def rig(request, rclpy_module_context, recipes_path, tmp_path_factory):
    """Start a press node for one backend (log in the pytest tmp folder); stop it after."""
    rig = Rig(request.param, rclpy_module_context, recipes_path, tmp_path_factory.mktemp("logs"))
    yield rig
    rig.close()


def _hold_goal(rig, part_id):
    """Return a goal that holds long enough to be interrupted (sim: 600 s of press time)."""
    if rig.backend == "sim":
        return profile_goal(50e6, 600.0, 25e6, part_id=part_id)
    return profile_goal(10e6, 60.0, 20e6, part_id=part_id)


@pytest.mark.timeout(120)
def test_recipe_runs_and_certificate_meets_tracking_figures(rig):
    """A named recipe runs to success; the certificate carries the recipe and its figures."""
    recipe = "test_quick_100mpa" if rig.backend == "sim" else "test_quick_10mpa"
    rig.wait_idle()
    arrivals = []
    t0 = time.monotonic()
    status, result = rig.run(PressCycle.Goal(part_id="pellet-1", recipe_name=recipe),
                             feedback=lambda m: arrivals.append(time.monotonic()))
    wall_s = time.monotonic() - t0
    cert = result.certificate
    assert status == "succeeded", result.error_msg
    assert result.success and result.error_code == PressCycle.Result.NONE
    assert (cert.part_id, cert.recipe_name, cert.material) == ("pellet-1", recipe, "Li6PS5Cl")
    assert len(cert.recipe_hash) == 64
    assert cert.calibration_id.startswith("tare")
    assert cert.contact_area == pytest.approx(math.pi * 0.013 ** 2 / 4, rel=1e-6)
    gaps = list(np.diff(arrivals))
    assert len(arrivals) >= 5 and sorted(gaps)[len(gaps) // 2] <= 0.1, \
        f"feedback slower than 10 Hz: {len(arrivals)} in {wall_s:.1f} s"
    # The full-rate record of the cycle arrives on ~/trace and carries the same certificate.
    deadline = time.monotonic() + 5.0
    while not any(t.part_id == "pellet-1" for t in rig.traces) and time.monotonic() < deadline:
        time.sleep(0.02)
    trace = [t for t in rig.traces if t.part_id == "pellet-1"][-1]
    assert len(trace.time) == len(trace.pressure) == len(trace.phase) > 100
    assert trace.certificate.peak_pressure == cert.peak_pressure == max(trace.pressure)
    assert trace.loop_rate == rig.rate_hz and len(trace.segments) == 3
    if rig.backend == "sim":
        # The press-core tracking figures.
        assert cert.target_pressure == pytest.approx(100e6)
        assert cert.overshoot_fraction <= 0.005
        assert cert.fraction_in_band >= 0.99
        assert cert.settling_time <= 1.0
        assert abs(cert.ramp_rate_error) <= 0.02
        assert cert.thickness_change < 0.0          # the powder compacted
    else:
        # The emulated supervisory presses ramp and brake onto the streamed segment end with
        # their own loop; over the serial link they land on 10 MPa ~0.1-0.3 s after the
        # ramp ends, so a 1 s hold reaches the target (peak within the 2 % goal tolerance).
        assert cert.peak_pressure == pytest.approx(10e6, rel=0.02)
        assert cert.hold_duration == pytest.approx(1.0, abs=0.2)


INVALID_GOALS = [
    ("negative pressure", lambda: profile_goal(-50e6, 1.0, 10e6), "negative"),
    ("NaN", lambda: profile_goal(float("nan"), 1.0, 10e6), "finite"),
    ("over die rating", lambda: profile_goal(800e6, 1.0, 10e6), "OVER_LIMIT"),
    ("unknown material", lambda: profile_goal(50e6, 1.0, 10e6, material="Unobtainium"),
     "unknown material"),
    ("zero area", lambda: _with(profile_goal(50e6, 1.0, 10e6), die_diameter=0.0),
     "zero contact area"),
    ("MPa given as Pa", lambda: profile_goal(25.0, 1.0, 10e6), "looks like MPa"),
    ("MPa scaled twice", lambda: profile_goal(25e12, 1.0, 10e6), "above 2 GPa"),
    ("unknown recipe", lambda: PressCycle.Goal(recipe_name="no_such_recipe"), "unknown recipe"),
]


def _with(goal, **fields):
    for name, value in fields.items():
        setattr(goal, name, value)
    return goal


@pytest.mark.timeout(60)
def test_invalid_goals_rejected_with_reason_and_no_motion(rig):
    """Every invalid goal is rejected (reason on ~/status) and the press does not move."""
    rig.wait_idle()
    start = len(rig.states)
    for label, make, expected in INVALID_GOALS:
        with pytest.raises(GoalRefused) as refused:
            rig.client.send_goal(make())
        assert expected in refused.value.reason, f"{label}: {refused.value.reason}"
    # An idle unpaced simulation repeats its parked sample every 0.5 s: wait for one.
    deadline = time.monotonic() + 2.0
    while len(rig.states) - start < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    samples = list(rig.states)[start:]
    assert samples, "no ~/state samples received"
    assert all(s.phase == PressState.PHASE_IDLE for s in samples)
    assert max(abs(s.pressure) for s in samples) < 0.5e6


@pytest.mark.timeout(120)
def test_cancel_mid_hold_releases_within_two_loop_periods(rig):
    """Cancel mid-hold: controlled release starts within two loop periods; ends canceled.

    While the cycle runs, a second goal and a zone lease are refused.
    """
    rig.wait_idle()
    feedbacks = deque()
    handle = rig.client.send_goal(_hold_goal(rig, "cancel-1"), feedback_callback=lambda m:
                                  feedbacks.append(m.feedback))
    rig.wait_phase(feedbacks, PressState.PHASE_HOLD)
    with pytest.raises(GoalRefused) as refused:
        rig.client.send_goal(profile_goal(10e6, 1.0, 10e6))
    assert "BUSY" in refused.value.reason
    lease = rig.client.lease(ZoneLease.Request.ACQUIRE, "test_arm", 5.0)
    assert not lease.granted and "cycle is running" in lease.message
    assert rig.client.cancel(handle).return_code == 0
    status, result = rig.client.wait_result(handle, 60.0)
    assert status == "canceled", result.error_msg
    assert result.error_code == PressCycle.Result.CANCELED
    assert result.certificate.part_id == "cancel-1"
    match = STAMPS.search(result.error_msg)
    assert match and match.group(2) == "release", result.error_msg
    arrived_s, began_s = float(match.group(1)), float(match.group(3))
    assert 0.0 <= began_s - arrived_s
    # Within two loop periods, counted in the loop's own cycles: on a loaded CI machine a
    # real-time serial loop can overrun, which stretches a cycle, not the reaction.
    assert int(match.group(4)) <= 2, result.error_msg
    if rig.lockstep:
        assert began_s - arrived_s <= 2.0 * rig.period_s + 1e-9
    # ~/state (same time base) agrees: no hold sample after the release must have begun.
    late = [s for s in rig.states
            if s.header.stamp.sec + 1e-9 * s.header.stamp.nanosec > arrived_s + 2 * rig.period_s
            and s.header.stamp.sec + 1e-9 * s.header.stamp.nanosec < arrived_s + 1.0]
    assert all(s.phase != PressState.PHASE_HOLD for s in late)
    rig.wait_idle()
    assert abs(rig.states[-1].pressure) < 1.0e6


@pytest.mark.timeout(120)
def test_estop_vents_within_one_loop_period_and_latches(rig):
    """E-stop mid-cycle vents within one loop period, aborts ESTOP, latches until reset."""
    rig.wait_idle()
    feedbacks = deque()
    handle = rig.client.send_goal(_hold_goal(rig, "estop-1"), feedback_callback=lambda m:
                                  feedbacks.append(m.feedback))
    rig.wait_phase(feedbacks, PressState.PHASE_HOLD)
    response = rig.client.estop("test")
    assert response.success, response.message
    status, result = rig.client.wait_result(handle, 60.0)
    assert status == "aborted" and result.error_code == PressCycle.Result.ESTOP
    match = STAMPS.search(result.error_msg)
    assert match and match.group(2) == "venting", result.error_msg
    assert 0.0 <= float(match.group(3)) - float(match.group(1))
    assert int(match.group(4)) <= 1, result.error_msg
    if rig.lockstep:
        assert float(match.group(3)) - float(match.group(1)) <= rig.period_s + 1e-9
    deadline = time.monotonic() + 5.0
    while rig.client.status.state != DeviceStatus.STATE_ESTOP and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.client.status.state == DeviceStatus.STATE_ESTOP
    with pytest.raises(GoalRefused) as refused:
        rig.client.send_goal(profile_goal(10e6, 1.0, 10e6))
    assert "ESTOP" in refused.value.reason
    reset = rig.client.reset_fault()
    assert reset.success and "ESTOP" in reset.cleared_fault, reset.message
    rig.wait_idle()


@pytest.mark.timeout(60)
def test_zone_lease_blocks_goals_and_expires(rig):
    """A held zone lease refuses goals; it renews, expires, and the press runs again."""
    rig.wait_idle()
    lease = rig.client.lease(ZoneLease.Request.ACQUIRE, "test_arm", 2.0)
    assert lease.granted, lease.message
    assert lease.remaining == pytest.approx(2.0)
    with pytest.raises(GoalRefused) as refused:
        rig.client.send_goal(profile_goal(10e6, 0.5, 10e6))
    assert "ZONE_OCCUPIED" in refused.value.reason
    renewed = rig.client.lease(ZoneLease.Request.RENEW, duration_s=0.8, lease_id=lease.lease_id)
    assert renewed.granted, renewed.message
    time.sleep(1.2)
    gone = rig.client.lease(ZoneLease.Request.RELEASE, lease_id=lease.lease_id)
    assert not gone.granted and "expired" in gone.message
    status, result = rig.run(profile_goal(5e6, 0.5, 10e6, part_id="after-lease"))
    assert status == "succeeded", result.error_msg


def _counts(pid):
    return (len(os.listdir(f"/proc/{pid}/task")), len(os.listdir(f"/proc/{pid}/fd")))


@pytest.mark.timeout(120)
def test_lifecycle_cycled_three_times_leaves_no_thread_or_fd(rig):
    """deactivate/cleanup/configure/activate x3: same threads and fds; the press still works."""
    def cycle_lifecycle():
        for transition in (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                           Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE):
            assert rig.transition(transition), f"transition {transition} failed"
        rig.client.wait_for_server(30.0)
        rig.wait_idle()

    rig.wait_idle()
    # Warm-up: the executor's worker pool grows lazily up to its size; one cycle and one
    # goal bring it to steady state, so what is counted next is what the lifecycle leaves.
    cycle_lifecycle()
    rig.run(profile_goal(5e6, 0.5, 10e6, part_id="warm-up"))
    rig.wait_idle()
    before = _counts(rig.proc.pid)
    for _ in range(3):
        cycle_lifecycle()
    after = _counts(rig.proc.pid)
    # A thread left per cycle shows as +3; the executor's pool may still add one worker.
    assert after[0] - before[0] < 3, f"threads {before[0]} -> {after[0]}"
    assert after[1] <= before[1], f"fds {before[1]} -> {after[1]}"
    status, result = rig.run(profile_goal(5e6, 0.5, 10e6, part_id="after-lifecycle"))
    assert status == "succeeded", result.error_msg


@pytest.mark.timeout(30)
def test_parameter_change_above_press_rating_refused(rig):
    """Raising press_capacity_n above the connected press's rating is refused with a reason."""
    request = SetParameters.Request()
    request.parameters = [ParameterMsg(name="press_capacity_n", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=1.0e6))]
    response = rig.client.call(rig.set_params, request)
    assert not response.results[0].successful
    assert "rating" in response.results[0].reason
    request.parameters = [ParameterMsg(name="zone_threshold_pa", value=ParameterValue(
        type=ParameterType.PARAMETER_DOUBLE, double_value=0.3e6))]
    assert wait_future(rig.set_params.call_async(request), 10.0, "set").results[0].successful


@pytest.mark.timeout(60)
def test_hold_end_criterion_ends_the_hold_from_impedance_monitor(rig):
    """An enabled hold_end ends the hold once impedance/monitor reports R_int below the limit."""
    rig.wait_idle()
    max_hold_s = 600.0 if rig.backend == "sim" else 20.0
    goal = _hold_goal(rig, "hold-end-1")
    goal.hold_end.enabled = True
    goal.hold_end.monitor_frequency = 10.0
    goal.hold_end.r_interface_below = 5.0
    goal.hold_end.min_hold = 0.5
    goal.hold_end.max_hold = max_hold_s
    feedbacks = deque()
    handle = rig.client.send_goal(goal, feedback_callback=lambda m: feedbacks.append(m.feedback))
    rig.wait_phase(feedbacks, PressState.PHASE_HOLD)
    stop = threading.Event()

    def feed():
        while not stop.is_set():
            rig.monitor.publish(ImpedanceSample(frequency=10.0, r_interface=1.0))
            time.sleep(0.02)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        status, result = rig.client.wait_result(handle, 60.0)
    finally:
        stop.set()
        feeder.join()
    assert status == "succeeded", result.error_msg
    assert "hold ended by criterion" in result.error_msg
    assert 0.5 <= result.certificate.hold_duration < 0.5 * max_hold_s


CABLE_FAULTS = {"unplug": ("fault unplug", "fault plug"),
                "stall": ("fault stall on", "fault stall off"),
                "garbage": ("fault garbage on", "fault garbage off")}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("fault", sorted(CABLE_FAULTS))
def test_cable_fault_reports_disconnected_and_recovers_without_stale_setpoint(rig, fault):
    """A cable fault mid-hold: DISCONNECTED, the press vents; reset reconnects, press idle."""
    if rig.emulator is None:
        pytest.skip("cable faults are injected by the serial press emulator")
    inject, clear = CABLE_FAULTS[fault]
    rig.wait_idle()
    feedbacks = deque()
    handle = rig.client.send_goal(_hold_goal(rig, f"{fault}-1"), feedback_callback=lambda m:
                                  feedbacks.append(m.feedback))
    rig.wait_phase(feedbacks, PressState.PHASE_HOLD)
    rig.emulator.stdin.write(inject + "\n")
    rig.emulator.stdin.flush()
    status, result = rig.client.wait_result(handle, 30.0)
    assert status == "aborted" and result.error_code == PressCycle.Result.DISCONNECTED
    deadline = time.monotonic() + 5.0
    while rig.client.status.state != DeviceStatus.STATE_DISCONNECTED and \
            time.monotonic() < deadline:
        time.sleep(0.02)
    assert rig.client.status.state == DeviceStatus.STATE_DISCONNECTED
    refused = rig.client.reset_fault(timeout_s=30.0)    # fault still on: reconnect fails
    assert not refused.success and refused.message
    rig.emulator.stdin.write(clear + "\n")
    rig.emulator.stdin.flush()
    recovered = rig.client.reset_fault(timeout_s=30.0)
    assert recovered.success and "link recovered" in recovered.message, recovered.message
    rig.wait_idle()
    # No stale setpoint: the press sits unloaded and idle after the recovery.
    start = len(rig.states)
    time.sleep(0.6)
    recent = [(s.phase, round(s.pressure)) for s in list(rig.states)[start:]]
    assert recent and all(phase == PressState.PHASE_IDLE and abs(p) < 1e6
                          for phase, p in recent), recent
    status, result = rig.run(profile_goal(5e6, 0.5, 10e6, part_id=f"after-{fault}"))
    assert status == "succeeded", result.error_msg


@pytest.mark.timeout(30)
def test_diagnostics_report_connection_limits_overruns_and_calibration_age(rig):
    """/diagnostics carries this press's link, limits, loop overruns and calibration age."""
    rig.wait_idle()
    name = f"{rig.ns}/press: press"
    rig.diagnostics.clear()
    deadline = time.monotonic() + 5.0
    status = None
    while status is None and time.monotonic() < deadline:
        for array in list(rig.diagnostics):
            status = next((s for s in array.status if s.name == name), status)
        time.sleep(0.05)
    assert status is not None, "no /diagnostics status from the press"
    values = {kv.key: kv.value for kv in status.values}
    assert values["connected"] == "true" and values["hardware"] == rig.backend
    assert float(values["die_rating_n"]) == pytest.approx(98070.0)
    assert float(values["loop_rate_hz"]) == rig.rate_hz
    assert int(values["loop_overruns"]) >= 0
    assert 0.0 <= float(values["calibration_age_s"]) < 600.0


@pytest.mark.timeout(90)
def test_deactivate_mid_hold_aborts_and_releases_the_press(rig):
    """Leaving active during a hold aborts the goal (NOT_ACTIVE) and leaves no pressure on."""
    rig.wait_idle()
    feedbacks = deque()
    handle = rig.client.send_goal(_hold_goal(rig, "deactivate-1"), feedback_callback=lambda m:
                                  feedbacks.append(m.feedback))
    rig.wait_phase(feedbacks, PressState.PHASE_HOLD)
    assert rig.transition(Transition.TRANSITION_DEACTIVATE)
    status, result = rig.client.wait_result(handle, 30.0)
    assert status == "aborted" and result.error_code == PressCycle.Result.NOT_ACTIVE
    trace = None
    deadline = time.monotonic() + 5.0
    while trace is None and time.monotonic() < deadline:
        trace = next((t for t in rig.traces if t.part_id == "deactivate-1"), None)
        time.sleep(0.02)
    assert trace is not None and abs(trace.pressure[-1]) < 1e6, "press left loaded"
    assert rig.client.status.state == DeviceStatus.STATE_UNCONFIGURED
    assert rig.transition(Transition.TRANSITION_ACTIVATE)
    rig.client.wait_for_server(30.0)
    rig.wait_idle()
