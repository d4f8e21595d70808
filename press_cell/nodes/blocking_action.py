"""Call a ROS action from a worker thread and block until it ends, with cancel and timeouts.

Used by the coordinator's device ports and by the CLI: the caller's thread waits on
``threading.Event`` objects while an executor (spinning in another thread) serves the futures,
so the node's executor is never blocked. A set ``cancel`` event sends a cancel request to the
server and keeps waiting for the server's final result (the server makes the device safe
before it reports ``canceled``).
"""

import threading
import time
from dataclasses import dataclass

from action_msgs.msg import GoalStatus


class ActionCallError(Exception):
    """The action could not be called: no server, goal rejected, or no result in time."""


@dataclass(frozen=True)
class ActionReply:
    """How an action call ended."""

    status: int             # action_msgs/GoalStatus.STATUS_*
    result: object          # the action's Result message

    @property
    def succeeded(self) -> bool:
        """Return whether the goal ended SUCCEEDED."""
        return self.status == GoalStatus.STATUS_SUCCEEDED

    @property
    def canceled(self) -> bool:
        """Return whether the goal ended CANCELED."""
        return self.status == GoalStatus.STATUS_CANCELED


def _wait_future(future, timeout_s: float, cancel: threading.Event = None):
    """Wait for an rclpy future from a thread that is not spinning; return whether it is done."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    deadline = time.monotonic() + timeout_s
    while not done.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0.0 or (cancel is not None and cancel.is_set()):
            return future.done()
        done.wait(min(remaining, 0.05))
    return True


def wait_for_server(client, timeout_s: float) -> bool:
    """Return whether ``client``'s server appeared within ``timeout_s`` (polls discovery)."""
    deadline = time.monotonic() + timeout_s
    while not client.server_is_ready():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def call_action(client, goal, *, cancel: threading.Event = None, feedback=None,
                server_timeout_s: float = 10.0, result_timeout_s: float = 3600.0,
                cancel_grace_s: float = 60.0) -> ActionReply:
    """Send ``goal`` through ``client`` and block until the server reports the end.

    ``feedback`` receives each feedback message. ``cancel`` (optional) asks the server to
    cancel; the call then waits up to ``cancel_grace_s`` for the final result. Raises
    ``ActionCallError`` when the server is absent, the goal is rejected, or no result arrives.
    """
    name = client._action_name
    if not wait_for_server(client, server_timeout_s):
        raise ActionCallError(f"no '{name}' action server within {server_timeout_s:g} s "
                              "(is the node running and active?)")
    callback = (lambda msg: feedback(msg.feedback)) if feedback else None
    send_future = client.send_goal_async(goal, feedback_callback=callback)
    if not _wait_future(send_future, server_timeout_s):
        raise ActionCallError(f"'{name}' did not answer the goal within {server_timeout_s:g} s")
    handle = send_future.result()
    if handle is None or not handle.accepted:
        raise ActionCallError(f"'{name}' rejected the goal (the server logs and publishes the "
                              "reason on its ~/status topic)")
    result_future = handle.get_result_async()
    if not _wait_future(result_future, result_timeout_s, cancel):
        if cancel is None or not cancel.is_set():
            raise ActionCallError(f"'{name}' gave no result within {result_timeout_s:g} s")
        handle.cancel_goal_async()
        if not _wait_future(result_future, cancel_grace_s):
            raise ActionCallError(f"'{name}' did not finish within {cancel_grace_s:g} s of "
                                  "the cancel request")
    response = result_future.result()
    return ActionReply(status=response.status, result=response.result)
