"""Test support for the fault suites: a press node process, its serial emulator, the test's client.

``PressFaultRig`` starts one press node (``sim`` in paced lockstep, or a serial backend on a
``SerialEmulator``) in its own namespace and process, and gives the test the ROS side: a
``PressClient``, the ``~/state`` samples, the ``~/trace`` records, the press's ``/diagnostics``
statuses, lifecycle and parameter clients. It can SIGKILL the node and start it again with the
same arguments. ``SerialEmulator`` runs ``press_cell.hardware.press_emulator`` in its own process
(so the "hardware" outlives a killed node) and talks to its control channel.

Every wait is a bounded poll (``wait_for``); nothing here asserts a wall-time bound.
"""

import json
import os
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient

from press_cell.action import PressCycle
from press_cell.hardware import press_ascii_protocol as ap
from press_cell.msg import DeviceStatus, PressSegment, PressState, PressTrace
from press_cell.nodes.press_client import PressClient
from press_cell.nodes.qos import RECORD, TELEMETRY

REPO = Path(__file__).resolve().parents[2]
RELEASED_PA = 0.3e6             # the press counts as released below this, Pa (node: 0.1 MPa)
LIFECYCLE_RECOVERY = (Transition.TRANSITION_DEACTIVATE, Transition.TRANSITION_CLEANUP,
                      Transition.TRANSITION_CONFIGURE, Transition.TRANSITION_ACTIVATE)


def wait_for(predicate, timeout_s, what):
    """Poll ``predicate`` until it returns a true value; fail naming ``what`` after the timeout.

    ``what`` may be a callable returning the text (e.g. with a process's latest log lines).
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for "
                         f"{what() if callable(what) else what}")


def stamp_s(msg) -> float:
    """Return a message's header stamp, s."""
    return msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec


def profile_goal(target_pa, hold_s, ramp_pa_s, release_pa_s=None, part_id="f"):
    """Return a ramp / hold / release PressCycle goal on a 13 mm die (SI)."""
    goal = PressCycle.Goal(part_id=part_id, die_diameter=0.013)
    goal.segments = [
        PressSegment(kind=PressSegment.KIND_RAMP, target_pressure=float(target_pa),
                     rate=float(ramp_pa_s)),
        PressSegment(kind=PressSegment.KIND_HOLD, target_pressure=float(target_pa),
                     duration=float(hold_s), tolerance=0.02 * target_pa),
        PressSegment(kind=PressSegment.KIND_RELEASE, target_pressure=0.0,
                     rate=float(release_pa_s or ramp_pa_s))]
    return goal


def record_figure(case, **figures):
    """Append one measured row to $FAULT_FIGURES (JSON lines) when set: the report's table."""
    path = os.environ.get("FAULT_FIGURES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"case": case, **figures}) + "\n")


class Feedbacks(deque):
    """A goal's feedback messages, and (``result``) the future of its result."""

    result = None


class LineLog:
    """Drain a process's text output into a list on a thread (the pipe never fills)."""

    def __init__(self, stream):
        self.lines = []
        self.arrivals = []          # time.monotonic() of each line, s
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.arrivals.append(time.monotonic())
            self.lines.append(line.rstrip("\n"))

    def find(self, text):
        """Return the lines containing ``text``."""
        return [line for line in list(self.lines) if text in line]


class SerialEmulator:
    """A serial press emulator in its own process; ``control`` drives its stdin channel."""

    def __init__(self, protocol, env, *extra):
        self.protocol = protocol
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "press_cell.hardware.press_emulator", "--protocol", protocol,
             *extra], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
        self.port = self.proc.stdout.readline().strip()
        assert self.port.startswith("/dev/"), f"emulator did not report a port: {self.port!r}"
        self.log = LineLog(self.proc.stdout)
        self._lock = threading.Lock()

    def control(self, command, timeout_s=10.0):
        """Send one control command; return its ``ok ...`` / ``error ...`` reply line."""
        with self._lock:
            count = len(self.log.lines)
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()

            def reply():
                return next((line for line in self.log.lines[count:]
                             if line.startswith(("ok", "error"))), None)

            return wait_for(reply, timeout_s, f"the emulator's reply to {command!r}")

    def state(self):
        """Return the press's own ``StateReply`` (sequencer phase, fault, load)."""
        line = self.control("state")
        assert line.startswith("ok "), line
        return ap.decode_reply(line[3:].encode() + b"\r\n")

    def events(self):
        """Return the ``event ...`` lines the press reported by itself."""
        return self.log.find("event ")

    def event_time(self, text, after_s=0.0):
        """Return the arrival (time.monotonic, s) of the first event with ``text`` after a time."""
        return next((t for t, line in zip(self.log.arrivals, list(self.log.lines), strict=False)
                     if t >= after_s and line.startswith("event ") and text in line), None)

    def close(self):
        """End the emulator (end of stdin quits it)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


class PressFaultRig:
    """One press node process in ``namespace`` and the test's clients to it."""

    def __init__(self, context, namespace, env, log_dir, hardware="sim", port="", **params):
        self.namespace = namespace
        self.hardware = hardware
        self.env = env
        self.log_dir = Path(log_dir)
        self.params = {"autostart": "true", "hardware": hardware, "feedback_rate_hz": "20.0"}
        if hardware == "sim":
            self.params.update(time_scale="10.0", rate_hz="200.0", state_rate_hz="50.0")
        else:
            self.params.update(serial_port=port, rate_hz="100.0", state_rate_hz="50.0")
        self.params.update({k: str(v) for k, v in params.items()})
        self.starts = 0
        self.proc = None
        self.start_node()
        self.node = rclpy.create_node("fault_test_client", namespace=namespace, context=context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.client = PressClient(self.node, namespace=namespace)
        self.states = deque(maxlen=100_000)
        self.traces = deque(maxlen=50)
        self.diagnostics = deque(maxlen=200)
        self.node.create_subscription(PressState, "press/state", lambda m: self.states.append(m),
                                      TELEMETRY)
        self.node.create_subscription(PressTrace, "press/trace", lambda m: self.traces.append(m),
                                      RECORD)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)
        self.lifecycle = self.node.create_client(ChangeState, "press/change_state")
        self.param_client = AsyncParameterClient(self.node, f"{namespace}/press")
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()
        self.client.wait_for_server(40.0)

    # ------------------------------------------------------------------ process
    def start_node(self):
        """Start (or start again) the press node process with the rig's parameters."""
        args = [sys.executable, "-m", "press_cell.nodes.press_node", "--ros-args",
                "-r", f"__ns:={self.namespace}",
                "--params-file", str(REPO / "config" / "press.yaml")]
        for name, value in self.params.items():
            args += ["-p", f"{name}:={value}"]
        self.starts += 1
        log = open(self.log_dir / f"press_{self.hardware}_{self.starts}.log", "w")
        self.proc = subprocess.Popen(args, cwd=REPO, env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT)
        log.close()

    def kill_node(self):
        """SIGKILL the press node process (no safe-stop runs) and reap it."""
        self.proc.kill()
        return self.proc.wait(timeout=10)

    def node_log(self):
        """Return the newest press node log."""
        return (self.log_dir / f"press_{self.hardware}_{self.starts}.log").read_text()

    def close(self):
        """Stop spinning, then stop the node with SIGINT (it releases the press first)."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)

    # ------------------------------------------------------------------ ROS helpers
    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name == f"{self.namespace}/press: press":
                self.diagnostics.append(status)

    def diagnostic_values(self, status):
        """Return a DiagnosticStatus's key-values as a dict."""
        return {kv.key: kv.value for kv in status.values}

    def wait_diagnostic_fault(self, fault_name, timeout_s=15.0):
        """Wait for a press /diagnostics status at ERROR naming ``fault_name``; return it."""
        def found():
            for status in list(self.diagnostics):
                if status.level == status.ERROR and \
                        self.diagnostic_values(status).get("fault") == fault_name and \
                        fault_name in status.message:
                    return status
            return None
        return wait_for(found, timeout_s, f"/diagnostics naming {fault_name}")

    def status_state(self):
        """Return the latched ~/status state (None before the first)."""
        status = self.client.status
        return None if status is None else status.state

    def wait_ready(self, timeout_s=30.0):
        """Wait until ~/status says READY."""
        wait_for(lambda: self.status_state() == DeviceStatus.STATE_READY, timeout_s,
                 f"press READY (status {self.client.status})")

    def inject(self, text):
        """Set the press node's ``sim_fault`` parameter; return the SetParametersResult."""
        wait_for(self.param_client.services_are_ready, 20.0, "press parameter services")
        future = self.param_client.set_parameters([Parameter("sim_fault", value=text)])
        return wait_for(lambda: future.done() and future.result(), 10.0,
                        "set_parameters sim_fault").results[0]

    def transition(self, transition_id):
        """Trigger one lifecycle transition; return whether it succeeded."""
        request = ChangeState.Request()
        request.transition = Transition(id=transition_id)
        return self.client.call(self.lifecycle, request, timeout_s=60.0).success

    def lifecycle_state(self):
        """Return the node's lifecycle state label (``active``, ``inactive``, ...)."""
        # A fresh client per call: one matched to a SIGKILLed node's server may lose requests.
        client = self.node.create_client(GetState, "press/get_state")
        try:
            reply = self.client.call(client, GetState.Request(), timeout_s=30.0)
        finally:
            self.node.destroy_client(client)
        return reply.current_state.label

    def recover_by_lifecycle(self):
        """Run deactivate, cleanup, configure, activate from wherever the node is; wait READY.

        Returns the transitions run (all four from ``active``).
        """
        start = {"active": 0, "inactive": 1, "unconfigured": 2}[self.lifecycle_state()]
        for transition_id in LIFECYCLE_RECOVERY[start:]:
            assert self.transition(transition_id), f"lifecycle transition {transition_id} failed"
        self.client.wait_for_server(30.0)
        self.wait_ready()
        return LIFECYCLE_RECOVERY[start:]

    def start_goal(self, goal):
        """Send ``goal`` (must be accepted); return (handle, feedback list)."""
        feedbacks = Feedbacks()
        handle = self.client.send_goal(goal, feedback_callback=lambda m:
                                       feedbacks.append(m.feedback))
        feedbacks.result = handle.get_result_async()
        return handle, feedbacks

    def wait_feedback(self, feedbacks, predicate, what, timeout_s=30.0):
        """Wait for a feedback message matching ``predicate``; fail at once if the goal ended."""
        def seen():
            found = next((f for f in list(feedbacks) if predicate(f)), None)
            if found is None and feedbacks.result.done():
                result = feedbacks.result.result().result
                raise AssertionError(f"the goal ended before {what}: {result.error_msg}")
            return found
        return wait_for(seen, timeout_s, what)

    def trace_of(self, part_id, timeout_s=10.0):
        """Wait for and return the ~/trace record of the cycle ``part_id``."""
        return wait_for(lambda: next((t for t in list(self.traces) if t.part_id == part_id),
                                     None), timeout_s, f"~/trace of {part_id}")

    def quiet_samples(self, wall_s=0.6, timeout_s=10.0, count=10):
        """Return the ~/state samples of the next ``wall_s`` s (at least ``count``)."""
        start = len(self.states)
        time.sleep(wall_s)
        wait_for(lambda: len(self.states) - start >= count, timeout_s, "~/state samples")
        return list(self.states)[start:]

    def assert_released_and_idle(self, wall_s=0.6):
        """Assert the press sits idle and unloaded (no stale setpoint); return the peak, Pa.

        Counted from the first idle ~/state sample after the recovery, by stamp: telemetry is
        best effort, so a sample published before the recovery may still arrive in the window.
        """
        start = len(self.states)
        first = wait_for(lambda: next((s for s in list(self.states)[start:]
                                       if s.phase == PressState.PHASE_IDLE), None),
                         10.0, "an idle ~/state sample")
        samples = [s for s in self.quiet_samples(wall_s) if stamp_s(s) >= stamp_s(first)]
        assert len(samples) >= 10, f"only {len(samples)} ~/state samples after the recovery"
        bad = [(s.phase, round(s.pressure), stamp_s(s)) for s in samples
               if s.phase != PressState.PHASE_IDLE or not abs(s.pressure) < RELEASED_PA]
        assert not bad, (f"press not idle and released after recovery (first idle sample at "
                         f"{stamp_s(first):.3f} s): {bad[:5]}")
        return max(abs(s.pressure) for s in samples)
