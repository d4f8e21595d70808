"""Client side of the press node: run press cycles and call its services from another node.

``PressClient`` wraps the ``press_cycle`` action client, the press services and the latched
``~/status``; it is used by ``press-cell press``, the tests and the benchmark. The node it is
built on must be spun by an executor in another thread (every wait here polls a future with a
bounded timeout, never spins).

    client = PressClient(node, namespace="/cell1")
    client.wait_for_server(10.0)
    handle = client.send_goal(goal, feedback_callback=print)  # raises GoalRefused with reason
    status, result = client.wait_result(handle, timeout_s=600.0)
"""

import threading
import time

from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.qos import QoSProfile

from press_cell.action import PressCycle
from press_cell.msg import DeviceStatus
from press_cell.nodes.qos import LATCHED
from press_cell.srv import EmergencyStop, ResetFault, Tare, ZoneLease

STATUS_NAMES = {GoalStatus.STATUS_SUCCEEDED: "succeeded", GoalStatus.STATUS_CANCELED: "canceled",
                GoalStatus.STATUS_ABORTED: "aborted", GoalStatus.STATUS_UNKNOWN: "unknown"}


class PressClientError(RuntimeError):
    """The press node did not answer in time (no server, no reply)."""


class GoalRefused(PressClientError):
    """The press node rejected a goal; ``reason`` is what it published on ~/status."""

    def __init__(self, reason: str) -> None:
        """Keep the reason."""
        super().__init__(f"press_cycle goal rejected: {reason}")
        self.reason = reason


def wait_future(future, timeout_s: float, what: str):
    """Wait until ``future`` is done (spun elsewhere); return its result or raise on timeout."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise PressClientError(f"{what}: no answer within {timeout_s:g} s")
        time.sleep(0.002)
    return future.result()


class PressClient:
    """Action, service and status client of one press node."""

    def __init__(self, node, namespace: str = "", press_name: str = "press") -> None:
        """Create the clients on ``node``; names resolve as ``<namespace>/press_cycle`` etc."""
        ns = namespace.rstrip("/")
        self.node = node
        self.prefix = f"{ns}/{press_name}"
        self.action_name = f"{ns}/press_cycle"
        self.action = ActionClient(node, PressCycle, self.action_name)
        self.tare_client = node.create_client(Tare, f"{self.prefix}/tare")
        self.reset_client = node.create_client(ResetFault, f"{self.prefix}/reset_fault")
        self.estop_client = node.create_client(EmergencyStop, f"{self.prefix}/estop")
        self.lease_client = node.create_client(ZoneLease, f"{self.prefix}/zone_lease")
        self._status_lock = threading.Lock()
        self._status_event = threading.Condition(self._status_lock)
        self.statuses = []
        # Latched (reliable, transient local) like the publisher, but a deeper reader queue so
        # a goal rejection followed at once by a state change is not overwritten unseen.
        status_qos = QoSProfile(depth=20, reliability=LATCHED.reliability,
                                durability=LATCHED.durability, history=LATCHED.history)
        node.create_subscription(DeviceStatus, f"{self.prefix}/status", self._on_status,
                                 status_qos)

    def _on_status(self, msg) -> None:
        with self._status_event:
            self.statuses.append(msg)
            self._status_event.notify_all()

    @property
    def status(self):
        """Return the latest ``DeviceStatus`` received, or None."""
        with self._status_lock:
            return self.statuses[-1] if self.statuses else None

    def wait_for_server(self, timeout_s: float) -> None:
        """Wait for the press_cycle action server; raise ``PressClientError`` naming it."""
        if not self.action.wait_for_server(timeout_sec=timeout_s):
            raise PressClientError(f"no press_cycle action server at {self.action_name!r}"
                                   f" within {timeout_s:g} s (is the press node running and "
                                   "active, in this namespace and ROS_DOMAIN_ID?)")

    def send_goal(self, goal, feedback_callback=None, timeout_s: float = 30.0):
        """Send ``goal``; return the accepted goal handle or raise ``GoalRefused``."""
        with self._status_lock:
            seen = len(self.statuses)
        future = self.action.send_goal_async(goal, feedback_callback=feedback_callback)
        handle = wait_future(future, timeout_s, "press_cycle goal request")
        if handle.accepted:
            return handle
        raise GoalRefused(self._rejection_reason(seen, timeout_s=1.0))

    def _rejection_reason(self, seen: int, timeout_s: float) -> str:
        """Return the rejection note the node published after ``seen`` status messages."""
        deadline = time.monotonic() + timeout_s
        with self._status_event:
            while True:
                for msg in self.statuses[seen:]:
                    if msg.message.startswith("goal rejected"):
                        return msg.message
                remaining = deadline - time.monotonic()
                if remaining <= 0.0:
                    return "(no reason received on ~/status)"
                self._status_event.wait(remaining)

    def wait_result(self, handle, timeout_s: float):
        """Wait for the goal's end; return (status name, PressCycle.Result)."""
        response = wait_future(handle.get_result_async(), timeout_s, "press_cycle result")
        return STATUS_NAMES.get(response.status, str(response.status)), response.result

    def cancel(self, handle, timeout_s: float = 5.0):
        """Ask for a controlled release of the goal; return the cancel response."""
        return wait_future(handle.cancel_goal_async(), timeout_s, "press_cycle cancel")

    def call(self, client, request, timeout_s: float = 10.0):
        """Call one of the press services (waits for it first); return the response."""
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise PressClientError(f"service {client.srv_name!r} not available within "
                                   f"{timeout_s:g} s")
        return wait_future(client.call_async(request), timeout_s, client.srv_name)

    def estop(self, reason: str = "", timeout_s: float = 5.0):
        """Call ``~/estop``; return the response."""
        return self.call(self.estop_client, EmergencyStop.Request(reason=reason), timeout_s)

    def reset_fault(self, timeout_s: float = 5.0):
        """Call ``~/reset_fault``; return the response."""
        return self.call(self.reset_client, ResetFault.Request(), timeout_s)

    def tare(self, samples: int = 0, timeout_s: float = 10.0):
        """Call ``~/tare``; return the response."""
        return self.call(self.tare_client, Tare.Request(samples=samples), timeout_s)

    def lease(self, operation: int, holder: str = "", duration_s: float = 0.0,
              lease_id: int = 0, timeout_s: float = 5.0):
        """Call ``~/zone_lease``; return the response."""
        request = ZoneLease.Request(operation=operation, holder=holder, duration=duration_s,
                                    lease_id=lease_id)
        return self.call(self.lease_client, request, timeout_s)
