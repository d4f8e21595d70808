"""Test support for the arm-node tests: processes, a spinning client node, small waits.

``ArmCellClient`` is the test's side of one cell namespace: a ``place_component`` action
client, latched subscriptions to the arm's ``~/in_press_zone``, ``~/gripper`` and
``~/status``, the press's ``~/state``, a parameter client for the arm and an ``estop``
publisher. Its executor spins on a background thread, so tests wait on futures and
predicates with bounded loops.
"""

import subprocess
import sys
import threading
import time
from pathlib import Path

import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from std_msgs.msg import Bool, Empty

from press_cell.action import PlaceComponent, PressCycle
from press_cell.msg import DeviceStatus, PressState
from press_cell.nodes import qos
from press_cell.srv import ResetFault, ZoneLease

REPO = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent


def start(args, env):
    """Start ``python <args>`` from the repository root; output merged and piped."""
    return subprocess.Popen([sys.executable, *args], env=env, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def stop(proc, sig_kill=False):
    """End one started process (SIGKILL if asked or if SIGTERM is ignored); return its output."""
    if proc.poll() is None:
        if sig_kill:
            proc.kill()
        else:
            proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
    return proc.stdout.read() if proc.stdout else ""


def arm_args(namespace, **params):
    """Return the arguments that start the arm node in ``namespace`` with ``params``."""
    args = ["-m", "press_cell.nodes.arm_node", "--ros-args", "-r", f"__ns:={namespace}",
            "--params-file", str(REPO / "config" / "arm.yaml"), "-p", "autostart:=true"]
    for name, value in params.items():
        if isinstance(value, (list, tuple)):
            value = "[" + ",".join(str(v) for v in value) + "]"
        elif isinstance(value, bool):
            value = str(value).lower()
        args += ["-p", f"{name}:={value}"]
    return args


def wait_for(predicate, timeout_s, what):
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout_s`` s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def wait_future(future, timeout_s, what):
    """Wait for an rclpy future spun elsewhere and return its result."""
    done = threading.Event()
    future.add_done_callback(lambda _: done.set())
    if not done.wait(timeout_s):
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
    return future.result()


class ArmCellClient:
    """The test's ROS side of one cell namespace."""

    def __init__(self, context, namespace):
        self.namespace = namespace
        self.node = rclpy.create_node("arm_test_client", namespace=namespace, context=context)
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.node)
        self.place_client = ActionClient(self.node, PlaceComponent, "place_component")
        self.press_client = ActionClient(self.node, PressCycle, "press_cycle")
        self.lease_client = self.node.create_client(ZoneLease, "press/zone_lease")
        self.reset_client = self.node.create_client(ResetFault, "arm/reset_fault")
        self.params = AsyncParameterClient(self.node, f"{namespace}/arm")
        self.estop_pub = self.node.create_publisher(Empty, "estop", qos.COMMAND)
        self.in_zone, self.gripper, self.status, self.press_states = [], [], [], []
        self.poses, self.diagnostics = [], []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics,
                                      qos.DIAGNOSTICS)
        self.node.create_subscription(PoseStamped, "arm/pose", self.poses.append,
                                      qos.TELEMETRY)
        self.node.create_subscription(Bool, "arm/in_press_zone",
                                      lambda m: self.in_zone.append(m.data), qos.LATCHED)
        self.node.create_subscription(Bool, "arm/gripper",
                                      lambda m: self.gripper.append(m.data), qos.LATCHED)
        self.node.create_subscription(DeviceStatus, "arm/status", self.status.append,
                                      qos.LATCHED)
        self.node.create_subscription(PressState, "press/state", self.press_states.append,
                                      qos.TELEMETRY)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_diagnostics(self, msg):
        for status in msg.status:
            if status.name.startswith(f"{self.namespace}/arm:"):
                self.diagnostics.append(status)

    def arm_diagnostic(self, key):
        """Return the value of ``key`` in the arm's latest DiagnosticStatus (None if none)."""
        if not self.diagnostics:
            return None
        return {kv.key: kv.value for kv in self.diagnostics[-1].values}.get(key)

    def close(self):
        """Stop spinning and destroy the node."""
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()

    def wait_arm_ready(self, timeout_s=30.0):
        """Wait until place_component and the arm's parameters are served."""
        wait_for(self.place_client.server_is_ready, timeout_s, "place_component server")
        wait_for(lambda: self.params.services_are_ready(), timeout_s, "arm parameter services")
        wait_for(lambda: self.in_zone and self.gripper, timeout_s, "latched arm telemetry")

    def send(self, kind, source, target, component_id="part", feedback=None):
        """Send a goal and return its handle (``accepted`` may be False)."""
        goal = PlaceComponent.Goal(kind=kind, component_id=component_id, source_slot=source,
                                   target_station=target)
        callback = (lambda msg: feedback.append(msg.feedback)) if feedback is not None else None
        return wait_future(self.place_client.send_goal_async(goal, feedback_callback=callback),
                           10.0, "the goal response")

    def place(self, kind, source, target, component_id="part", timeout_s=30.0):
        """Run one placement; return ``(status, result, feedback list)``."""
        feedback = []
        handle = self.send(kind, source, target, component_id, feedback)
        assert handle.accepted, f"goal {source} -> {target} was rejected"
        response = wait_future(handle.get_result_async(), timeout_s, "the placement result")
        return response.status, response.result, feedback

    def set_arm_params(self, **values):
        """Set arm parameters; return the SetParametersResult list."""
        params = [Parameter(name, value=value) for name, value in values.items()]
        return wait_future(self.params.set_parameters(params), 10.0, "set_parameters").results

    def lease(self, operation, holder="test", duration=1.0, lease_id=0):
        """Call the press's zone_lease service and return the response."""
        wait_for(lambda: self.lease_client.service_is_ready(), 20.0, "press zone_lease")
        request = ZoneLease.Request(operation=operation, holder=holder, duration=duration,
                                    lease_id=lease_id)
        return wait_future(self.lease_client.call_async(request), 10.0, "zone_lease reply")
