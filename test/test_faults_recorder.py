"""Disk full while recording: the recorder stops cleanly, says so, and nothing else notices.

Mechanism: the recorder runs in its own process with ``RLIMIT_FSIZE`` (setrlimit) at 160 KiB
and ``SIGXFSZ`` ignored, so the first write that would grow its MCAP file past the limit fails
with ``OSError(EFBIG)`` the way a full disk fails with ``ENOSPC``. A simulated press node (own
process) publishes its telemetry and runs press cycles meanwhile. Asserted: the fault on the
recorder's ``~/status`` (FAULT) and ``/diagnostics`` (ERROR, naming the error); the recorder
process still serves and stops cleanly; the bag reads (``load_run``) up to the failure; the
press node runs cycles before and after the failure unaffected.

The limit holds for every file of the process, so the recorder runs without its external log
file and with Fast DDS's UDP transport only (its shared-memory segments are files too): with
them, the C++ side sometimes aborted at exit ("terminate called") after the bag was closed.
Only the bag meets the limit, as on a disk that fills up.
"""

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import deque

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")

from conftest import REPO, ros_subprocess_env  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from support.fault_press import LineLog, PressFaultRig, profile_goal, record_figure, wait_for  # noqa: E402,E501

from press_cell.analysis.bag_reader import open_bag  # noqa: E402
from press_cell.analysis.run import load_run  # noqa: E402
from press_cell.msg import DeviceStatus  # noqa: E402
from press_cell.nodes.qos import LATCHED  # noqa: E402

pytestmark = pytest.mark.ros

FILE_LIMIT_BYTES = 160 * 1024


def _limit_file_size():
    """Run in the child before exec: cap file sizes; a write past the cap fails with EFBIG."""
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT_BYTES, FILE_LIMIT_BYTES))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)       # inherited through exec




@pytest.mark.timeout(90)
def test_disk_full_stops_the_recording_cleanly_and_the_press_runs_on(rclpy_context, tmp_path):
    """EFBIG mid-recording: bag readable up to it, fault on ~/status and /diagnostics."""
    env = ros_subprocess_env()
    ns = f"/faults_disk_{os.getpid()}"
    rig = PressFaultRig(rclpy_context, ns, env, tmp_path, state_rate_hz="100.0")
    statuses, diagnostics = deque(), deque()
    rig.node.create_subscription(DeviceStatus, "recorder/status",
                                 lambda m: statuses.append(m), LATCHED)
    rig.node.create_subscription(
        DiagnosticArray, "/diagnostics",
        lambda m: diagnostics.extend(s for s in m.status if s.name == f"{ns}/recorder: recorder"),
        10)
    recorder = subprocess.Popen(
        [sys.executable, "-X", "faulthandler", "-m", "press_cell.nodes.recorder_node",
         "--ros-args", "-r", f"__ns:={ns}", "-p", f"output_dir:={tmp_path}", "-p", "session:=full",
         "-p", "compression:=none", "-p", "chunk_size:=4096", "-p", "flush_period:=0.2",
         "-p", "discovery_period:=0.3", "--disable-external-lib-logs"],
        cwd=REPO, env=dict(env, FASTDDS_BUILTIN_TRANSPORTS="UDPv4"), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, preexec_fn=_limit_file_size)
    log = LineLog(recorder.stdout)
    try:
        wait_for(lambda: log.find(f"{ns}/press/state"), 30.0, "the recorder on ~/state")
        rig.wait_ready()
        # Cycles keep the press busy while the bag fills up.
        cycles = []
        stop = threading.Event()

        def press_cycles():
            while not stop.is_set():
                handle = rig.client.send_goal(profile_goal(20e6, 1.0, 20e6,
                                                           part_id=f"disk-{len(cycles)}"))
                cycles.append(rig.client.wait_result(handle, 60.0))

        worker = threading.Thread(target=press_cycles, daemon=True)
        worker.start()
        fault = wait_for(lambda: next((m for m in statuses
                                       if m.state == DeviceStatus.STATE_FAULT), None), 60.0,
                         lambda: "the recorder's FAULT status\n" + "\n".join(log.lines[-15:]))
        failed_wall_s = time.time()
        assert "File too large" in fault.message and "recording stopped" in fault.message
        error = wait_for(lambda: next((s for s in list(diagnostics)
                                       if s.level == DiagnosticStatus.ERROR), None), 10.0,
                         "the recorder's ERROR diagnostic")
        assert "File too large" in error.message
        # Other nodes unaffected: the press keeps running cycles after the failure.
        done_before = len(cycles)
        wait_for(lambda: len(cycles) >= done_before + 2, 60.0, "two more press cycles")
        stop.set()
        worker.join(60.0)
        assert cycles and all(status == "succeeded" for status, _ in cycles), \
            [(status, result.error_msg) for status, result in cycles if status != "succeeded"]
        assert recorder.poll() is None, "the recorder died of the full disk"
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(timeout=15) == 0, "\n".join(log.lines[-20:])
        # The bag reads up to the failure.
        bag_file = next((tmp_path / "full").glob("*.mcap"))
        assert bag_file.stat().st_size <= FILE_LIMIT_BYTES
        with open_bag(tmp_path / "full") as bag:
            problems = list(bag.problems)
        run = load_run(tmp_path / "full")
        received = run.press_state["receive_time_s"]
        assert received.size >= 50, (received.size, problems)
        assert np.all(np.diff(run.press_state["time_ns"]) > 0)
        gap_s = failed_wall_s - float(received.max())
        assert gap_s < 5.0, f"the bag ends {gap_s:.1f} s before the failure"
        record_figure("disk full (RLIMIT_FSIZE 160 KiB, EFBIG)", status=fault.message[:100],
                      press_state_samples_kept=int(received.size),
                      s_between_last_kept_sample_and_fault_report=round(gap_s, 2),
                      press_cycles_ok=len(cycles), bag_problems=problems[:2])
    finally:
        rig.close()
        if recorder.poll() is None:
            recorder.kill()
            recorder.wait(timeout=5)
