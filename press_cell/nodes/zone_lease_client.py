"""Press-zone gate over ROS: the arm's side of the ``ZoneLease`` interlock with the press.

``ZoneLeaseClient`` fulfils ``press_cell.control.placement.ZoneGate`` for a node:

* ``zone_entry_permit()`` refuses when ``press/state`` reports a pressure above
  ``pressure_threshold_pa`` and no newer sample at or below it arrives within
  ``FRESH_SAMPLE_WAIT_S`` (the last sample of a fast, lockstep release can be a mid-release
  one, and the idle press publishes at 2 Hz); otherwise it ACQUIREs a lease from the
  ``press/zone_lease`` service (namespace-relative) and refuses when the service does not
  answer within ``service_timeout_s``, when the press denies, or when the press's own
  reading in the reply is above the threshold. A granted lease is RENEWed by a timer at a
  third of its duration, so one lost renewal still leaves time for the next.
* ``zone_exit()`` stops renewing and RELEASEs the lease.
* ``on_change`` is called when a lease is granted, released or lost and when the first
  press state arrives (the node refreshes its diagnostics).
* A renewal the press denies (lease expired, press restarted) marks the lease lost and calls
  ``on_lease_lost`` so the node can take the arm out of the zone.

If the arm process dies, nothing renews: the press lets the lease expire by itself.

Several presses (one arm serving two dies): ``presses`` names every press node the arm may
reach into; the client keeps a lease service client and a state subscription per press
(``<press>/zone_lease``, ``<press>/state``) and ``select(press)`` chooses whose lease the next
``zone_entry_permit()`` takes: the press owning the die the placement goes to, never another.
The default ``presses=("press",)`` is the one-press cell (``press/zone_lease``, ``press/state``).

The blocking calls are made from the placement thread; the service responses and the renewal
timer run in this client's own callback group on a MultiThreadedExecutor, so waiting here
never starves them.
"""

import threading
import time
from typing import Callable

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node

from press_cell.msg import PressState
from press_cell.nodes import qos
from press_cell.srv import ZoneLease

FRESH_SAMPLE_WAIT_S = 1.0   # s, wait for a press sample below the threshold before refusing


class ZoneLeaseClient:
    """Hold the press-zone lease for one arm node (``ZoneGate`` over ROS)."""

    def __init__(
        self,
        node: Node,
        *,
        holder: str,
        lease_duration_s: float,
        pressure_threshold_pa: float,
        service_timeout_s: float = 2.0,
        presses: tuple = ("press",),
        on_change: Callable[[], None] | None = None,
        entry_blocked: Callable[[], str] | None = None,
        on_lease_lost: Callable[[str], None] | None = None,
    ) -> None:
        if not lease_duration_s > 0.0:
            raise ValueError(f"lease_duration_s must be > 0 s, got {lease_duration_s!r}")
        if not service_timeout_s > 0.0:
            raise ValueError(f"service_timeout_s must be > 0 s, got {service_timeout_s!r}")
        self._node = node
        self.holder = holder
        self.lease_duration_s = float(lease_duration_s)
        self.pressure_threshold_pa = float(pressure_threshold_pa)
        self.service_timeout_s = float(service_timeout_s)
        self._on_change = on_change
        self._entry_blocked = entry_blocked
        self._log = node.get_logger().get_child("zone_lease")
        self._on_lease_lost = on_lease_lost
        self._lock = threading.Lock()
        self._lease_id: int | None = None
        self._renew_timer = None
        self._renew_sent_s: float | None = None
        if not presses:
            raise ValueError("presses must name at least one press node")
        self._pressures: dict = {press: None for press in presses}   # press -> Pa or None
        self._sample = threading.Condition()
        self.last_refusal = ""          # why the last zone_entry_permit() said no
        self.lease_lost_reason = ""     # set when a renewal was denied while inside
        self._group = MutuallyExclusiveCallbackGroup()
        self._clients = {press: node.create_client(ZoneLease, f"{press}/zone_lease",
                                                   callback_group=self._group)
                         for press in presses}
        self._state_subs = [node.create_subscription(
            PressState, f"{press}/state",
            lambda msg, press=press: self._on_press_state(press, msg), qos.TELEMETRY,
            callback_group=self._group) for press in presses]
        self.press = presses[0]         # whose lease the next entry takes (see select)
        self._client = self._clients[self.press]

    def select(self, press: str) -> None:
        """Take the next press-zone lease from ``press`` (not while a lease is held)."""
        if press not in self._clients:
            raise ValueError(f"no press {press!r} known to the zone-lease client; known: "
                             f"{sorted(self._clients)}")
        with self._lock:
            if self._lease_id is not None and press != self.press:
                raise RuntimeError(f"a lease of {self.press!r} is still held")
            self.press, self._client = press, self._clients[press]

    # ----------------------------------------------------------------- state
    @property
    def holds_lease(self) -> bool:
        """Return whether a lease is held (granted and not released or lost)."""
        with self._lock:
            return self._lease_id is not None

    @property
    def press_pressure_pa(self) -> float | None:
        """Return the selected press's latest pressure, Pa (None before its first sample)."""
        return self._pressures[self.press]

    def _on_press_state(self, press: str, msg: PressState) -> None:
        """Keep the latest pressure (Pa) of each press for the entry check."""
        first = self._pressures[press] is None
        with self._sample:
            self._pressures[press] = float(msg.pressure)
            self._sample.notify_all()
        if first:
            self._notify()

    # ----------------------------------------------------------------- ZoneGate
    def zone_entry_permit(self) -> bool:
        """Take the press-zone lease; return False (reason in ``last_refusal``) if refused."""
        self.lease_lost_reason = ""
        blocked = self._entry_blocked() if self._entry_blocked is not None else ""
        if blocked:
            return self._refuse(blocked)
        with self._sample:
            self._sample.wait_for(lambda: not self._above_threshold(), FRESH_SAMPLE_WAIT_S)
            pressure = self._pressures[self.press]
        if self._above_threshold():
            return self._refuse(f"{self.press} reports {pressure / 1e6:.3f} MPa, above the zone "
                                f"threshold {self.pressure_threshold_pa / 1e6:.3f} MPa")
        if not self._client.wait_for_service(timeout_sec=self.service_timeout_s):
            return self._refuse(f"press zone-lease service {self._client.service_name!r} not "
                                f"available within {self.service_timeout_s} s")
        reply = self._call(ZoneLease.Request(operation=ZoneLease.Request.ACQUIRE,
                                             holder=self.holder,
                                             duration=self.lease_duration_s))
        if reply is None:
            return self._refuse(f"press zone-lease service did not answer within "
                                f"{self.service_timeout_s} s")
        if not reply.granted:
            return self._refuse(f"press denied the zone lease: {reply.message}")
        if not reply.pressure <= self.pressure_threshold_pa:   # NaN: pressure unknown
            # the press granted by its own threshold; ours is stricter
            self._send_release(reply.lease_id)
            return self._refuse(f"press granted at {reply.pressure / 1e6:.3f} MPa, above the "
                                f"arm's threshold {self.pressure_threshold_pa / 1e6:.3f} MPa")
        period_s = max(0.05, min(reply.remaining, self.lease_duration_s) / 3.0)
        with self._lock:
            self._lease_id = int(reply.lease_id)
            self._renew_timer = self._node.create_timer(period_s, self._renew,
                                                        callback_group=self._group)
        self.last_refusal = ""
        self._log.info(f"zone lease {reply.lease_id} granted for {reply.remaining:.2f} s "
                       f"(renewing every {period_s:.2f} s)")
        self._notify()
        return True

    def _above_threshold(self) -> bool:
        pressure = self._pressures[self.press]
        return pressure is not None and not pressure <= self.pressure_threshold_pa  # NaN too

    def zone_exit(self) -> None:
        """Stop renewing and hand the lease back to the press."""
        lease_id = self._drop_lease()
        if lease_id is not None:
            self._send_release(lease_id)
            self._log.info(f"zone lease {lease_id} released")
        self._notify()

    def close(self) -> None:
        """Release any lease and destroy the ROS entities of this client."""
        self.zone_exit()
        for subscription in self._state_subs:
            self._node.destroy_subscription(subscription)
        for client in self._clients.values():
            self._node.destroy_client(client)

    # ----------------------------------------------------------------- internals
    def _refuse(self, reason: str) -> bool:
        self.last_refusal = reason
        self._log.warning(f"press-zone entry refused: {reason}")
        return False

    def _notify(self) -> None:
        if self._on_change is not None:
            self._on_change()

    def _drop_lease(self) -> int | None:
        with self._lock:
            lease_id, self._lease_id = self._lease_id, None
            self._renew_sent_s = None
            timer, self._renew_timer = self._renew_timer, None
        if timer is not None:
            timer.cancel()
            self._node.destroy_timer(timer)
        return lease_id

    def _call(self, request: ZoneLease.Request) -> ZoneLease.Response | None:
        done = threading.Event()
        future = self._client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(self.service_timeout_s):
            self._client.remove_pending_request(future)
            return None
        return future.result()

    def _send_release(self, lease_id: int) -> None:
        if self._client.service_is_ready():
            self._client.call_async(ZoneLease.Request(
                operation=ZoneLease.Request.RELEASE, holder=self.holder, lease_id=lease_id))
        else:
            self._log.warning(f"press zone-lease service gone; lease {lease_id} will expire "
                              "by itself")

    def _renew(self) -> None:
        """Renew the held lease (timer callback, non-blocking)."""
        now_s = time.monotonic()
        with self._lock:
            lease_id, pending_since_s = self._lease_id, self._renew_sent_s
            if lease_id is None:
                return
            if pending_since_s is None:
                self._renew_sent_s = now_s
        if pending_since_s is not None:
            if now_s - pending_since_s > self.lease_duration_s:
                self._lease_lost(f"the press did not answer the renewal of lease {lease_id} "
                                 f"within {self.lease_duration_s} s; it has expired")
            return
        future = self._client.call_async(ZoneLease.Request(
            operation=ZoneLease.Request.RENEW, holder=self.holder,
            duration=self.lease_duration_s, lease_id=lease_id))
        sent_s = now_s

        def on_reply(fut) -> None:
            with self._lock:
                self._renew_sent_s = None
                current = self._lease_id
            reply = fut.result()
            if current != lease_id or reply is None:
                return
            if not reply.granted:
                self._lease_lost(f"press denied the renewal of lease {lease_id}: "
                                 f"{reply.message}")
            elif time.monotonic() - sent_s > self.lease_duration_s / 3.0:
                self._log.warning(f"zone lease renewal took {time.monotonic() - sent_s:.2f} s")

        future.add_done_callback(on_reply)

    def _lease_lost(self, reason: str) -> None:
        self._drop_lease()
        self.lease_lost_reason = reason
        self._log.error(f"zone lease lost while inside: {reason}")
        self._notify()
        if self._on_lease_lost is not None:
            self._on_lease_lost(reason)
