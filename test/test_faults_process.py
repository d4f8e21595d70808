"""Processes killed with SIGKILL mid-work, then restarted: the press node and the coordinator.

Press node: it drives an emulated ASCII press (its own process, comms watchdog 500 ms) and a
recorder records the cell; the node is SIGKILLed mid-hold. Asserted: the press vents itself
(its watchdog event, its state: fault E01, load released), the bag keeps the hold up to the
kill, and the restarted node comes up active with the press released and idle (it does not
resume the killed goal), then runs a new goal.

Coordinator: the devices (press, arm, impedance) run in one ``press-cell bringup`` process, the
coordinator and a recorder in their own; the coordinator is SIGKILLed while the press holds the
cell's first foil pre-press (the compaction finished before). Asserted: the devices end safe
(the orphaned press step finishes its own profile and releases; the arm is out of the press
zone), and what of the killed cell is kept: its start on the coordinator's ``~/status``, the
devices' data in the bag, its journal file (step in progress ``prepress_a``); the restarted
coordinator publishes the killed cell's record on ``~/cell_record`` as INTERRUPTED during
``prepress_a`` with the compaction certificate (the recorder keeps it in the bag), moves the
journal file to ``interrupted/``, and runs a new cell.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import yaml

rclpy = pytest.importorskip("rclpy")

from conftest import REPO, ros_subprocess_env  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from std_msgs.msg import Bool  # noqa: E402
from support.fault_press import (  # noqa: E402
    RELEASED_PA,
    LineLog,
    PressFaultRig,
    SerialEmulator,
    profile_goal,
    record_figure,
    wait_for,
)

from press_cell.action import AssembleCell  # noqa: E402
from press_cell.analysis.run import load_run  # noqa: E402
from press_cell.hardware import press_ascii_protocol as ap  # noqa: E402
from press_cell.msg import CellRecord, DeviceStatus, PressState  # noqa: E402
from press_cell.nodes import qos  # noqa: E402
from press_cell.nodes.cell_journal import INTERRUPTED_DIR, SUFFIX, read_journal_file  # noqa: E402

# Real time over a pty (press) and wall-time arm moves (coordinator) on a loaded 2-core CI
# machine: two reruns, as the other wall-time device suites have.
pytestmark = [pytest.mark.ros, pytest.mark.flaky(reruns=2, reruns_delay=1)]




def start_recorder(namespace, out_dir, env):
    """Start a recorder for ``namespace`` into ``out_dir/faults``; return (process, log)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "press_cell.nodes.recorder_node", "--ros-args", "-r",
         f"__ns:={namespace}", "-p", f"output_dir:={out_dir}", "-p", "session:=faults",
         "-p", "flush_period:=0.2", "-p", "discovery_period:=0.3"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, LineLog(proc.stdout)


def stop(proc, sig=signal.SIGINT):
    """Stop a process (SIGINT, then SIGKILL) and reap it."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.mark.timeout(120)
def test_press_node_killed_mid_hold_press_vents_and_restart_does_not_resume(rclpy_context,
                                                                              tmp_path):
    """SIGKILL mid-hold: the press's watchdog vents it; the restarted node comes up idle."""
    env = ros_subprocess_env()
    ns = f"/faults_kill_{os.getpid()}"
    emulator = SerialEmulator("ascii", env, "--watchdog-ms", "500")
    recorder, recorder_log = start_recorder(ns, tmp_path, env)
    rig = PressFaultRig(rclpy_context, ns, env, tmp_path, hardware="serial_ascii",
                        port=emulator.port)
    try:
        wait_for(lambda: recorder_log.find(f"{ns}/press/state"), 30.0, "the recorder")
        rig.wait_ready()
        handle, feedbacks = rig.start_goal(profile_goal(10e6, 60.0, 10e6, part_id="killed"))
        rig.wait_feedback(feedbacks, lambda f: f.phase == PressState.PHASE_HOLD and
                          f.time_in_segment > 0.5, "the hold")
        killed_s, killed_wall_s = time.monotonic(), time.time()
        assert rig.kill_node() == -signal.SIGKILL
        # (a) the "hardware" outlives the node and vents itself
        event_s = wait_for(lambda: emulator.event_time("watchdog", killed_s), 10.0,
                           "the press's watchdog event")
        state = wait_for(lambda: (lambda s: s if s.load.pressure_mpa < RELEASED_PA / 1e6
                                  else None)(emulator.state()), 10.0, "the press unloaded")
        assert state.fault is ap.FaultCode.WATCHDOG and state.phase is ap.Phase.FAULT
        # (c) the bag keeps the hold up to the kill
        def recorded_hold():
            pressure = load_run(tmp_path / "faults").press_state
            hold = (pressure["phase"] == PressState.PHASE_HOLD) & \
                (pressure["receive_time_s"] <= killed_wall_s)
            return (pressure["pressure_pa"][hold],) if hold.sum() >= 10 else None
        (hold,) = wait_for(recorded_hold, 10.0, "the hold in the bag")
        assert np.median(hold) == pytest.approx(10e6, rel=0.05)
        # (d) restart: the configure clears the press's watchdog latch, nothing is resumed
        seen = len(rig.client.statuses)
        rig.start_node()
        rig.client.wait_for_server(40.0)
        wait_for(lambda: any(s.state == DeviceStatus.STATE_READY
                             for s in rig.client.statuses[seen:]), 40.0,
                 lambda: "the restarted node READY\n" + rig.node_log()[-2000:])
        assert "press vented itself" in rig.node_log()
        idle_peak = rig.assert_released_and_idle(1.0)
        after = emulator.state()
        assert after.fault is ap.FaultCode.NONE and after.phase in (ap.Phase.IDLE,
                                                                   ap.Phase.VENTED)
        assert after.load.pressure_mpa < RELEASED_PA / 1e6
        status, result = rig.client.wait_result(
            rig.client.send_goal(profile_goal(3e6, 0.3, 10e6, part_id="after-kill")), 60.0)
        assert status == "succeeded", result.error_msg
        del handle      # the killed goal has no result: its server died with it
        record_figure("press node SIGKILL mid-hold (ascii)",
                      wall_s_kill_to_press_watchdog_vent=round(event_s - killed_s, 3),
                      bag_hold_samples_before_kill=int(hold.size),
                      idle_peak_after_restart_mpa=idle_peak / 1e6)
    finally:
        rig.close()
        emulator.close()
        stop(recorder)


# Short recipes (as test_coordinator_ros): a cell takes a few seconds on the simulators.
SHORT = {"press_recipes": {
    "li6ps5cl_370mpa_200mg": {"ramp_mpa_s": 15, "hold_s": 2, "release_mpa_s": 20},
    "li_foil_25mpa": {"ramp_mpa_s": 5, "hold_s": 5, "release_mpa_s": 5},
    "li_stack_25mpa": {"ramp_mpa_s": 5, "hold_s": 5, "release_mpa_s": 5}}}


class CellWatcher:
    """The test's node on one cell: assemble_cell client, press state, zone, status, records."""

    def __init__(self, context, namespace):
        self.node = rclpy.create_node("coordinator_fault_test", namespace=namespace,
                                      context=context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.action = ActionClient(self.node, AssembleCell, "assemble_cell")
        self.states, self.zone, self.status, self.records = [], [], [], []
        self.node.create_subscription(PressState, "press/state",
                                      lambda m: self.states.append(m), qos.TELEMETRY)
        self.node.create_subscription(Bool, "arm/in_press_zone",
                                      lambda m: self.zone.append(m.data), qos.LATCHED)
        self.node.create_subscription(DeviceStatus, "coordinator/status",
                                      lambda m: self.status.append(m), qos.LATCHED)
        self.node.create_subscription(CellRecord, "coordinator/cell_record",
                                      lambda m: self.records.append(m), qos.RECORD)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def send(self, overrides, feedback=None):
        """Send a li_symmetric_cell goal on a fresh client; return its accepted handle.

        Fresh: a client matched to a SIGKILLed server can lose its requests.
        """
        self.action = ActionClient(self.node, AssembleCell, "assemble_cell")
        wait_for(self.action.server_is_ready, 40.0, "the assemble_cell server")
        future = self.action.send_goal_async(
            AssembleCell.Goal(recipe_name="li_symmetric_cell", overrides_yaml=overrides),
            feedback_callback=feedback)
        handle = wait_for(lambda: future.done() and future.result(), 30.0, "the goal response")
        assert handle.accepted
        return handle

    def close(self):
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()


def start_coordinator(namespace, env, journal_dir):
    """Start the coordinator (cell journal in ``journal_dir``) in its own process."""
    # (coordinator_node.py has no ``if __name__ == "__main__"``: ``python -m`` would not run it)
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; from press_cell.nodes.coordinator_node import main; "
         "sys.exit(main())", "--ros-args", "-r",
         f"__ns:={namespace}", "--params-file", str(REPO / "config" / "coordinator.yaml"),
         "-p", f"journal_dir:={journal_dir}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, LineLog(proc.stdout)


@pytest.mark.timeout(120)
def test_coordinator_killed_mid_assembly_devices_end_safe_and_restart_runs_a_cell(
        rclpy_context, tmp_path):
    """SIGKILL mid-cell: devices end safe; the restart reports the cell INTERRUPTED, works."""
    env = ros_subprocess_env()
    ns = f"/faults_coord_{os.getpid()}"
    devices = subprocess.Popen(
        [sys.executable, "-m", "press_cell.cli", "bringup", "--namespace", ns, "--time-scale",
         "50", "--no-record", "--log-level", "warn", "--nodes", "press,arm,impedance"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    devices_log = LineLog(devices.stdout)
    recorder, recorder_log = start_recorder(ns, tmp_path, env)
    journal_dir = tmp_path / "journal"
    coordinator, coordinator_log = start_coordinator(ns, env, journal_dir)
    watch = CellWatcher(rclpy_context, ns)
    try:
        wait_for(lambda: devices_log.find("running in namespace"), 40.0, "the devices")
        wait_for(watch.action.server_is_ready, 40.0,
                 lambda: "the coordinator\n" + "\n".join(coordinator_log.lines[-20:]))
        wait_for(lambda: recorder_log.find(f"{ns}/coordinator/status"), 30.0,
                 lambda: "the recorder\n" + "\n".join(recorder_log.lines[-20:]))
        # The first foil pre-press holds 120 s of press time: the kill lands while the press
        # works on it, after the compaction finished.
        long_prepress = yaml.safe_dump({"press_recipes": {
            **SHORT["press_recipes"],
            "li_foil_25mpa": {"ramp_mpa_s": 5, "hold_s": 120, "release_mpa_s": 5}}})
        steps = []
        watch.send(long_prepress, feedback=lambda m: steps.append(m.feedback.step_name))
        wait_for(lambda: "foil_prepress" in steps and watch.states and
                 watch.states[-1].phase == PressState.PHASE_HOLD, 60.0, "the pre-press hold")
        (journal_file,) = journal_dir.glob(f"*{SUFFIX}")
        assert read_journal_file(journal_file)[0]["step"] == "prepress_a"
        killed_wall_s = time.time()
        coordinator.kill()
        assert coordinator.wait(timeout=10) == -signal.SIGKILL
        started = [s.message for s in watch.status if s.message.startswith("assembling ")]
        assert started, "the coordinator never announced the cell"
        killed_cell = started[-1].split()[1]
        # (a) devices end safe: the orphaned press goal finishes its own profile and releases
        wait_for(lambda: len(watch.states) > 5 and all(
            s.phase == PressState.PHASE_IDLE and s.pressure < RELEASED_PA
            for s in watch.states[-5:]), 60.0, "the press released and idle")
        released_wall_s = time.time()
        assert watch.zone and watch.zone[-1] is False, "the arm is in the press zone"
        # (c) what of the killed cell is kept
        run = wait_for(lambda: (lambda r: r if any(t.step_name == "compaction"
                                                  for t in r.traces) else None)(
            load_run(tmp_path / "faults")), 15.0, "the compaction trace in the bag")
        assert not [r for r in run.cell_records if r.cell_id == killed_cell], \
            "a CellRecord of the killed cell appeared before the restart"
        compaction = next(t for t in run.traces if t.step_name == "compaction")
        assert compaction.live_certificate.peak_pressure == pytest.approx(370e6, rel=0.02)
        assert read_journal_file(journal_file)[0]["certificates"] == ["compaction"]
        # (d) a restarted coordinator runs a new cell
        seen = len(watch.status)
        coordinator, coordinator_log = start_coordinator(ns, env, journal_dir)
        # its latched READY proves the new node is discovered (the killed one's endpoints may
        # linger in DDS discovery and swallow a request sent too early)
        wait_for(lambda: any(m.state == DeviceStatus.STATE_READY for m in watch.status[seen:]),
                 40.0, lambda: "the restarted coordinator\n" +
                 "\n".join(coordinator_log.lines[-20:]))
        handle = watch.send(yaml.safe_dump(SHORT))
        result_future = handle.get_result_async()
        response = wait_for(lambda: result_future.done() and result_future.result(), 90.0,
                            "the new cell's result")
        assert response.result.success, response.result.error_msg
        # (c') the restarted coordinator published the killed cell's record as INTERRUPTED
        interrupted = wait_for(lambda: [r for r in watch.records
                                        if r.verdict.startswith("INTERRUPTED")], 20.0,
                               lambda: "the interrupted record\n" +
                               "\n".join(coordinator_log.lines[-20:]))
        assert len(interrupted) == 1
        record = interrupted[0]
        assert record.cell_id == killed_cell and not record.passed
        assert record.failed_step == "prepress_a"
        assert record.verdict == ("INTERRUPTED: the coordinator stopped during prepress_a; "
                                  "record kept up to the last finished step")
        assert [c.step_name for c in record.certificates] == ["compaction"]
        assert record.certificates[0].peak_pressure == pytest.approx(370e6, rel=0.02)
        assert record.recipe_name == "li_symmetric_cell" and record.recipe_hash
        assert list(journal_dir.glob(f"*{SUFFIX}")) == [], "a journal file was left"
        assert [p.name for p in (journal_dir / INTERRUPTED_DIR).iterdir()] == [
            journal_file.name]
        bagged = wait_for(lambda: [r for r in load_run(tmp_path / "faults").cell_records
                                   if r.verdict.startswith("INTERRUPTED")], 15.0,
                          "the interrupted record in the bag")
        assert bagged[0].cell_id == killed_cell
        # the journal counts generated cell ids across restarts: the new cell gets a new id
        reused_id = response.result.record.cell_id == killed_cell
        assert not reused_id, f"the restarted coordinator reused the id {killed_cell}"
        record_figure("coordinator SIGKILL mid-prepress",
                      wall_s_kill_to_press_released=round(released_wall_s - killed_wall_s, 2),
                      killed_cell=killed_cell, kept_traces=[t.step_name for t in run.traces],
                      interrupted_certificates=[c.step_name for c in record.certificates],
                      new_cell_reused_id=reused_id)
    finally:
        watch.close()
        for proc in (coordinator, recorder, devices):
            stop(proc)
