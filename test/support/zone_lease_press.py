"""Test support: a stand-in for the press's side of the zone interlock (no press physics).

Node ``press`` in each namespace given as an argument (``zone_lease_press.py /cell1 /cell2``;
one process serves several cells), offering what the arm node needs:

* ``~/zone_lease`` (ZoneLease): one lease at a time; ACQUIRE is granted only while the
  parameter ``pressure_pa`` is at or below ``zone_threshold_pa``; RENEW extends a held lease;
  RELEASE drops it; a lease not renewed within its duration expires by itself.
* ``~/state`` (PressState, TELEMETRY QoS, 20 Hz) with ``pressure`` and ``zone_leased``.
* ``press_cycle`` (PressCycle): rejected in goal_callback while a lease is held, otherwise
  succeeds at once.
* parameter ``deny_renewals``: refuse (and drop) the lease at the next RENEW, as a press that
  restarted or expired the lease would.

Prints ``ready`` once serving. Used until ``press_cell.nodes.press_node`` serves the same.
"""

import itertools
import sys
import threading
import time

import rclpy
from rclpy.action import ActionServer, GoalResponse
from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor

from press_cell.action import PressCycle
from press_cell.msg import PressState
from press_cell.nodes import qos
from press_cell.srv import ZoneLease


class ZoneLeasePress:
    """Lease book-keeping plus the ROS entities around it."""

    def __init__(self, node):
        self.node = node
        node.declare_parameter("pressure_pa", 0.0)
        node.declare_parameter("zone_threshold_pa", 2.0e5)
        node.declare_parameter("max_lease_s", 10.0)
        node.declare_parameter("deny_renewals", False)   # act as if the lease had expired
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.lease = None        # (lease_id, holder, expiry monotonic s)
        self.grants = 0
        self.released = []       # lease ids handed back by an explicit RELEASE (not expired)
        node.create_service(ZoneLease, "~/zone_lease", self.serve)
        self.state_pub = node.create_publisher(PressState, "~/state", qos.TELEMETRY)
        node.create_timer(0.05, self.publish_state)
        ActionServer(node, PressCycle, "press_cycle", execute_callback=self.execute,
                     goal_callback=self.on_goal)

    def param(self, name):
        return self.node.get_parameter(name).value

    def current_lease(self):
        with self.lock:
            if self.lease is not None and time.monotonic() > self.lease[2]:
                self.node.get_logger().info(f"lease {self.lease[0]} of {self.lease[1]} expired")
                self.lease = None
            return self.lease

    def serve(self, request, response):
        pressure = float(self.param("pressure_pa"))
        response.pressure = pressure
        lease = self.current_lease()
        duration = min(max(request.duration, 0.1), float(self.param("max_lease_s")))
        now = time.monotonic()
        with self.lock:
            if request.operation == ZoneLease.Request.ACQUIRE:
                if lease is not None:
                    response.message = f"zone already leased to {lease[1]}"
                elif pressure > float(self.param("zone_threshold_pa")):
                    response.message = f"press is pressurised ({pressure:.0f} Pa)"
                else:
                    self.lease = (next(self.ids), request.holder, now + duration)
                    self.grants += 1
                    response.granted = True
            elif request.operation == ZoneLease.Request.RENEW:
                if lease is None or lease[0] != request.lease_id:
                    response.message = f"no lease {request.lease_id} held"
                elif self.param("deny_renewals"):
                    self.lease = None
                    response.message = f"lease {request.lease_id} revoked (deny_renewals)"
                else:
                    self.lease = (lease[0], lease[1], now + duration)
                    response.granted = True
            elif request.operation == ZoneLease.Request.RELEASE:
                if lease is not None and lease[0] == request.lease_id:
                    self.lease = None
                    self.released.append(request.lease_id)
                response.granted = True
            if response.granted and self.lease is not None:
                response.lease_id = self.lease[0]
                response.remaining = self.lease[2] - now
        return response

    def publish_state(self):
        self.state_pub.publish(PressState(
            phase=PressState.PHASE_IDLE, segment_index=-1,
            pressure=float(self.param("pressure_pa")),
            zone_leased=self.current_lease() is not None))

    def on_goal(self, goal):
        if self.current_lease() is not None:
            self.node.get_logger().warning("press_cycle refused: the arm holds the zone lease")
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def execute(self, goal_handle):
        goal_handle.succeed()
        return PressCycle.Result(success=True)


def main():
    """Serve a ``press`` node in each namespace given as an argument (default: root)."""
    namespaces = [a for a in sys.argv[1:] if a.startswith("/")] or [""]
    rclpy.init()
    executor = MultiThreadedExecutor(num_threads=2)
    for namespace in namespaces:
        node = rclpy.create_node("press", namespace=namespace)
        ZoneLeasePress(node)
        executor.add_node(node)
    print("ready", flush=True)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


if __name__ == "__main__":
    main()
