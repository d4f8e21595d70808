"""Impedance node over ROS: press-impedance coupling, goals, cancel, overload, hold monitoring.

The impedance node runs in another process. This test process plays the press: it publishes
``press/trace`` cycle records (compaction, two foil pre-presses, stack presses) and
``press/state`` samples. The same tests run against

* ``hardware: sim``: the node's simulated potentiostat learns the cell only from those
  messages (``CellBuildHistory`` inside the node), and
* ``hardware: methodscript``: the node talks MethodSCRIPT to the pty emulator running here,
  whose simulated instrument measures the "physical" cell of this process (a
  ``CellBuildHistory`` fed the same press records, as the real cell would be pressed).

Each backend shares one node process; every test builds the cell it needs.
"""

import math
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from action_msgs.msg import GoalStatus
from conftest import REPO, ros_subprocess_env
from rclpy.action import ActionClient
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor

from press_cell.action import MeasureImpedance
from press_cell.control.hold_end import HoldEndCriterion, HoldEndEvaluator
from press_cell.hardware.potentiostat_emulator import EmulatorFaults, PotentiostatEmulator
from press_cell.hardware.potentiostat_sim import (
    DEFAULT_CYCLES_PER_POINT,
    DEFAULT_POINT_OVERHEAD_S,
    SimulatedPotentiostat,
)
from press_cell.msg import (
    DeviceStatus,
    ImpedanceSample,
    ImpedanceSpectrum,
    PressCertificate,
    PressState,
    PressTrace,
)
from press_cell.nodes import qos
from press_cell.physics.cell_history import CellBuildHistory
from press_cell.recipes import load_library, load_recipes, recipe_segments
from press_cell.recipes.dry_run import ideal_trace
from press_cell.timebase import MonotonicClock

pytestmark = [pytest.mark.ros, pytest.mark.timeout(60)]

TIME_SCALE = 100.0
MPA = 1e6
R = MeasureImpedance.Result
BOOK = load_recipes()
LIBRARY = load_library()
ROD_AREA_M2 = math.pi * 12.7e-3 ** 2 / 4.0
QUICK_SWEEP = dict(frequency_max=1e6, frequency_min=1.0, points_per_decade=8, amplitude=0.01)


def recipe_trace(name, dt_s=0.1):
    """Return (time_s, pressure_pa) of a shipped recipe's ideal profile."""
    pressure_pa, step_s = ideal_trace(recipe_segments(BOOK.press[name]), dt_s)
    return np.concatenate([[0.0], np.cumsum(step_s)]), np.concatenate([[0.0], pressure_pa])


def stack_trace(pressure_pa, hold_s=60.0, ramp_s=10.0):
    """Return a ramp-hold-release stack press at 20 Hz."""
    t = np.arange(0.0, 2 * ramp_s + hold_s + 1e-9, 0.05)
    return t, np.interp(t, [0, ramp_s, ramp_s + hold_s, 2 * ramp_s + hold_s],
                        [0, pressure_pa, pressure_pa, 0])


def wait_for(predicate, timeout_s, what):
    """Poll ``predicate`` until true; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_future(future, timeout_s, what):
    """Wait for a future that the background executor completes."""
    wait_for(future.done, timeout_s, what)
    return future.result()


class Bench:
    """The test's side of one cell: the press stand-in, an action client, topic recorders."""

    def __init__(self, hardware, namespace, physical_cell):
        self.hardware = hardware
        self.physical_cell = physical_cell      # None: the node's own sim cell
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("impedance_bench", namespace=namespace,
                                      context=self.context)
        self.trace_pub = self.node.create_publisher(PressTrace, "press/trace", qos.RECORD)
        self.state_pub = self.node.create_publisher(PressState, "press/state", qos.TELEMETRY)
        self.client = ActionClient(self.node, MeasureImpedance, "measure_impedance")
        self.spectra, self.samples, self.statuses = [], [], []
        self.node.create_subscription(ImpedanceSpectrum, "impedance/spectrum",
                                      self.spectra.append, qos.RECORD)
        self.node.create_subscription(ImpedanceSample, "impedance/monitor",
                                      self.samples.append, qos.TELEMETRY)
        self.node.create_subscription(DeviceStatus, "impedance/status", self.statuses.append,
                                      qos.LATCHED)
        self.cycles_sent = 0
        self.executor = MultiThreadedExecutor(num_threads=3, context=self.context)
        self.executor.add_node(self.node)
        self.spinner = threading.Thread(target=self.executor.spin, daemon=True)
        self.spinner.start()

    def close(self):
        """Stop spinning and shut this context down."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.context.try_shutdown()

    def cycles_replayed(self):
        """Return the highest replay count the node's status has reported."""
        counts = [int(m.group(1)) for s in self.statuses
                  if (m := re.search(r"(\d+) cycle\(s\) replayed", s.message))]
        return max(counts, default=0)

    # ------------------------------------------------------------------ the press stand-in
    def press_cycle(self, step_name, time_s, pressure_pa, recipe_name="", material=""):
        """Publish one finished cycle; the physical cell (methodscript) is pressed alike."""
        recipe = BOOK.press.get(recipe_name)
        msg = PressTrace(step_name=step_name, contact_area=ROD_AREA_M2, loop_rate=20.0,
                         certificate=PressCertificate(step_name=step_name,
                                                      recipe_name=recipe_name,
                                                      material=material))
        msg.time = [float(v) for v in time_s]
        msg.pressure = [float(v) for v in pressure_pa]
        if self.physical_cell is not None:
            self.physical_cell.add_cycle(step_name, time_s, pressure_pa, recipe,
                                         material=None if recipe else material,
                                         contact_area_m2=ROD_AREA_M2)
            return
        self.trace_pub.publish(msg)
        self.cycles_sent += 1
        wait_for(lambda: self.cycles_replayed() >= self.cycles_sent, 10.0,
                 f"the node to replay {step_name}")

    def build_cell(self, *stack_mpa):
        """Compaction at 370 MPa, two Li pre-presses at 25 MPa, then stack presses."""
        self.press_cycle("compaction", *recipe_trace("li6ps5cl_370mpa_200mg"),
                         "li6ps5cl_370mpa_200mg")
        for name in ("prepress_a", "prepress_b"):
            self.press_cycle(name, *recipe_trace("li_foil_25mpa"), "li_foil_25mpa")
        for pressure_mpa in stack_mpa:
            self.press_cycle("stack_press", *stack_trace(pressure_mpa * MPA), material="Li")

    def hold(self, pressure_pa, wall_s, rate_hz=50.0):
        """Publish PHASE_HOLD samples for ``wall_s``; the physical cell is held alike."""
        end_s = time.monotonic() + wall_s
        last_s = time.monotonic()
        while time.monotonic() < end_s:
            self.state_pub.publish(PressState(phase=PressState.PHASE_HOLD, pressure=pressure_pa,
                                              contact_area=ROD_AREA_M2))
            now_s = time.monotonic()
            if self.physical_cell is not None:
                self.physical_cell.step_live(pressure_pa, (now_s - last_s) * TIME_SCALE)
            last_s = now_s
            time.sleep(1.0 / rate_hz)

    def idle(self, wall_s=0.3):
        """Publish PHASE_IDLE at 0 Pa for ``wall_s``."""
        end_s = time.monotonic() + wall_s
        while time.monotonic() < end_s:
            self.state_pub.publish(PressState(phase=PressState.PHASE_IDLE, pressure=0.0,
                                              segment_index=-1))
            time.sleep(0.02)

    # ------------------------------------------------------------------ the action client
    def send(self, **fields):
        """Send a goal; return its handle (accepted or not) and the feedback list."""
        feedback = []
        goal = MeasureImpedance.Goal(cell_id=fields.pop("cell_id", "cell-1"), **fields)
        future = self.client.send_goal_async(goal, feedback_callback=lambda m: feedback.append(
            m.feedback))
        return wait_future(future, 10.0, "the goal response"), feedback

    def measure(self, **fields):
        """Run one sweep to its end; return (status, result, feedback)."""
        handle, feedback = self.send(**{**QUICK_SWEEP, **fields})
        assert handle.accepted, self.statuses[-1].message
        response = wait_future(handle.get_result_async(), 30.0, "the sweep result")
        return response.status, response.result, feedback


@pytest.fixture(scope="module", params=["sim", "methodscript"])
def bench(request):
    """Start the impedance node on ``hardware`` (sim, or methodscript on the emulator)."""
    hardware = request.param
    namespace = f"/imp_{hardware}_{int(time.time() * 1000) % 100000}"
    params = {"autostart": "true", "time_scale": str(TIME_SCALE), "hardware": hardware}
    emulator = physical = None
    if hardware == "methodscript":
        physical = CellBuildHistory(library=LIBRARY)
        instrument = SimulatedPotentiostat(
            physical, clock=MonotonicClock(), seed=1, clock_mode="wait",
            cycles_per_point=DEFAULT_CYCLES_PER_POINT / TIME_SCALE,
            point_overhead_s=DEFAULT_POINT_OVERHEAD_S / TIME_SCALE)
        emulator = PotentiostatEmulator(instrument).start()
        params.update(serial_port=emulator.slave_path, monitor_rate="10.0")
    else:
        params.update(monitor_rate=str(10.0 / TIME_SCALE))    # 10 samples per wall second
    args = [sys.executable, "-m", "press_cell.nodes.impedance_node", "--ros-args",
            "-r", f"__ns:={namespace}", "--params-file", str(REPO / "config" / "impedance.yaml")]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    proc = subprocess.Popen(args, env=ros_subprocess_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    bench = Bench(hardware, namespace, physical)
    bench.emulator = emulator
    try:
        assert bench.client.wait_for_server(timeout_sec=20.0), "no measure_impedance server"
        if hardware == "sim":
            wait_for(lambda: bench.trace_pub.get_subscription_count() > 0, 10.0,
                     "the node's press/trace subscription")
        wait_for(lambda: bench.state_pub.get_subscription_count() > 0, 10.0,
                 "the node's press/state subscription")
        yield bench
    finally:
        bench.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        if emulator is not None:
            emulator.stop()
        if request.node.session.testsfailed:
            sys.stderr.write(proc.stdout.read()[-4000:])


def test_stack_at_25_mpa_measures_a_lower_interface_asr_than_at_5_mpa(bench):
    bench.build_cell(5)
    status_5, result_5, feedback = bench.measure(cell_id="after-5")
    assert status_5 == GoalStatus.STATUS_SUCCEEDED, result_5.error_msg
    bench.press_cycle("stack_press", *stack_trace(25 * MPA), material="Li")
    status_25, result_25, _ = bench.measure(cell_id="after-25")
    assert status_25 == GoalStatus.STATUS_SUCCEEDED, result_25.error_msg
    asr_5, asr_25 = result_5.fit.asr_interface, result_25.fit.asr_interface
    assert asr_25 < 0.2 * asr_5
    assert 0.3 < result_25.fit.asr_interface_ohm_cm2 < 3.0       # ~1 ohm cm^2 (Doux 2020)
    assert result_25.fit.asr_interface_ohm_cm2 == pytest.approx(asr_25 * 1e4)
    assert result_25.fit.electrode_area == pytest.approx(ROD_AREA_M2)
    assert result_25.fit.r_total == pytest.approx(32.0, rel=0.15)
    # progress reached every point; the spectra went out on ~/spectrum
    total = len(result_5.spectrum.frequency)
    # Feedback is sampled (a late message may be superseded); the count must rise to the end.
    done = [f.points_done for f in feedback]
    assert done == sorted(done) and all(f.points_total == total for f in feedback)
    assert total == 49 and done[-1] >= total - 10
    wait_for(lambda: {s.cell_id for s in bench.spectra} >= {"after-5", "after-25"}, 5.0,
             "both spectra on ~/spectrum")
    published = next(s for s in bench.spectra if s.cell_id == "after-25")
    assert list(published.z_real) == list(result_25.spectrum.z_real)


@pytest.mark.parametrize("fields, words", [
    (dict(frequency_min=1e3, frequency_max=10.0), "below frequency_max"),
    (dict(frequency_max=1e7), "instrument range"),
    (dict(frequency_min=1e-4), "instrument range"),
    (dict(points_per_decade=101), "points_per_decade"),
    (dict(amplitude=0.5), "amplitude"),
    (dict(amplitude=math.nan), "finite"),
    (dict(frequency_min=math.nan), "finite"),
    (dict(frequency_max=1e6, frequency_min=1e5, points_per_decade=5), "cannot be fitted"),
    (dict(electrode_area=math.inf), "electrode_area"),
])
def test_invalid_goals_are_rejected_with_the_reason_on_status(bench, fields, words):
    handle, _ = bench.send(cell_id=f"bad-{words}", **{**QUICK_SWEEP, **fields})
    assert not handle.accepted
    message = wait_for(lambda: next((s.message for s in bench.statuses
                                     if f"bad-{words}" in s.message), None), 5.0,
                       "the rejection on ~/status")
    assert "rejected" in message and words in message


def test_cancel_mid_sweep_aborts_promptly_with_the_partial_spectrum(bench):
    bench.build_cell(25)
    handle, feedback = bench.send(cell_id="canceled", frequency_max=1e6, frequency_min=0.01,
                                  points_per_decade=10, amplitude=0.01)
    assert handle.accepted
    wait_for(lambda: feedback and feedback[-1].points_done >= 5, 10.0, "five points")
    start_s = time.monotonic()
    wait_future(handle.cancel_goal_async(), 5.0, "the cancel response")
    response = wait_future(handle.get_result_async(), 10.0, "the canceled result")
    assert time.monotonic() - start_s < 2.0          # the full sweep would take ~10 s
    assert response.status == GoalStatus.STATUS_CANCELED
    assert response.result.error_code == R.CANCELED
    assert 5 <= len(response.result.spectrum.frequency) < feedback[-1].points_total
    # the instrument is free again
    status, result, _ = bench.measure(cell_id="after-cancel")
    assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg


def test_a_shorted_cell_overloads_the_instrument(bench):
    bench.build_cell(80)          # Li creeps through the porous pellet at 75 MPa (Doux 2020)
    status, result, _ = bench.measure(cell_id="shorted")
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.OVERLOAD, result.error_msg
    assert result.spectrum.overload and len(result.spectrum.frequency) == 49


@pytest.mark.parametrize("bench", ["methodscript"], indirect=True)
def test_emulator_overload_fault_flags_the_spectrum(bench):
    bench.build_cell(25)
    bench.emulator.faults = EmulatorFaults(overload_above_hz=1e5)
    try:
        status, result, _ = bench.measure(cell_id="overload-fault")
    finally:
        bench.emulator.faults = EmulatorFaults()
    assert result.spectrum.overload
    if status == GoalStatus.STATUS_SUCCEEDED:       # fitted on the points below 100 kHz
        assert "overloaded point" in result.error_msg
        assert 0.3 < result.fit.asr_interface_ohm_cm2 < 3.0
    else:
        assert result.error_code == R.OVERLOAD


def test_hold_is_monitored_and_the_samples_end_an_adaptive_hold_early(bench):
    bench.build_cell()            # pellet and anodes; the stack is pressed live below
    bench.idle()
    before = len(bench.samples)
    bench.hold(5 * MPA, wall_s=1.2)         # a staged hold: 120 s at 5 MPa, then 25 MPa
    bench.hold(25 * MPA, wall_s=1.2)
    bench.idle(0.5)
    after_idle = len(bench.samples)
    samples = bench.samples[before:]
    stage_5 = [s for s in samples if s.stack_pressure == pytest.approx(5 * MPA)]
    stage_25 = [s for s in samples if s.stack_pressure == pytest.approx(25 * MPA)]
    assert len(stage_5) >= 2 and len(stage_25) >= 2     # ~10 each on a quiet machine
    assert len(stage_5) + len(stage_25) == len(samples)
    assert all(s.frequency == pytest.approx(10.0) for s in samples)
    assert all(math.isfinite(s.r_interface) and s.r_interface >= 0.0 for s in samples)
    r_5 = np.median([s.r_interface for s in stage_5])
    r_25 = np.median([s.r_interface for s in stage_25])
    assert r_5 > 10.0 * r_25                 # Doux 2020: ~46 vs ~1 ohm per interface
    assert r_25 < 3.0
    # fed to the hold-end evaluator, the monitor ends a 300 s hold once the stack reaches
    # 25 MPa: after the 120 s at 5 MPa, well before max_hold
    evaluator = HoldEndEvaluator(HoldEndCriterion(enabled=True, monitor_frequency_hz=10.0,
                                                  r_interface_below_ohm=5.0, min_hold_s=10.0,
                                                  max_hold_s=300.0))

    def stamp_s(sample):
        return sample.header.stamp.sec + sample.header.stamp.nanosec * 1e-9

    for sample in samples:
        if evaluator.update((stamp_s(sample) - stamp_s(samples[0])) * TIME_SCALE,
                            sample.r_interface):
            break
    assert evaluator.ended and "r_interface" in evaluator.reason
    # It ends at the first sample taken at 25 MPa (not during the 5 MPa stage), long before
    # max_hold; timed from the samples themselves, so a loaded machine cannot flake it.
    first_25_s = (stamp_s(stage_25[0]) - stamp_s(samples[0])) * TIME_SCALE
    assert evaluator.ended_at_s == pytest.approx(first_25_s)
    assert 10.0 < evaluator.ended_at_s < 250.0
    time.sleep(0.3)
    assert len(bench.samples) == after_idle         # no monitoring outside holds
