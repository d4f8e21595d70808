"""Press-zone lease book: who may reach into the press, for how long (no rclpy, time injected).

The arm asks the press for a time-limited lease before it reaches into the press zone. The press
grants it only while it is unloaded (pressure below the zone threshold) and no cycle runs;
while the lease is held the press refuses to pressurise. A lease ends on RELEASE or when it
expires; RENEW extends it (capped). One lease at a time: a second holder is refused while the
first lease lasts. Times are seconds on a monotonic clock (the caller passes ``now_s``).
"""

import itertools
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Lease:
    """A granted lease."""

    lease_id: int
    holder: str
    expires_s: float        # monotonic time the lease ends, s


@dataclass(frozen=True)
class LeaseAnswer:
    """Outcome of a lease request (field meaning as ZoneLease.srv)."""

    granted: bool
    message: str
    lease_id: int = 0
    remaining_s: float = 0.0


class ZoneLeaseBook:
    """Grant, renew, release and expire the single press-zone lease."""

    def __init__(self, max_lease_s: float) -> None:
        """Cap every lease at ``max_lease_s`` (s, > 0)."""
        self.max_lease_s = float(max_lease_s)
        self.lease = None
        self._ids = itertools.count(1)

    @property
    def held(self) -> bool:
        """Return whether a lease is held."""
        return self.lease is not None

    def _duration(self, duration_s: float) -> float:
        if not math.isfinite(duration_s) or duration_s <= 0.0:
            return self.max_lease_s
        return min(float(duration_s), self.max_lease_s)

    def acquire(self, holder: str, duration_s: float, now_s: float, pressure_pa: float,
                threshold_pa: float, cycle_running: bool) -> LeaseAnswer:
        """Grant a lease when the zone is free, the press unloaded and no cycle runs."""
        self.expire(now_s)
        if self.lease is not None:
            return LeaseAnswer(False, f"the press zone is leased to {self.lease.holder!r} for "
                               f"{self.lease.expires_s - now_s:.1f} s more")
        if cycle_running:
            return LeaseAnswer(False, "a press cycle is running; wait for it to end")
        if not (math.isfinite(pressure_pa) and pressure_pa < threshold_pa):
            return LeaseAnswer(False, f"the press is loaded: {pressure_pa / 1e6:.3f} MPa, the "
                               f"zone opens below {threshold_pa / 1e6:.3f} MPa")
        duration = self._duration(duration_s)
        self.lease = Lease(next(self._ids), str(holder), now_s + duration)
        capped = " (capped)" if duration < duration_s else ""
        return LeaseAnswer(True, f"lease granted to {holder!r} for {duration:.1f} s{capped}",
                           self.lease.lease_id, duration)

    def renew(self, lease_id: int, duration_s: float, now_s: float) -> LeaseAnswer:
        """Extend the held lease ``lease_id`` to ``duration_s`` from now (capped)."""
        self.expire(now_s)
        if self.lease is None or self.lease.lease_id != lease_id:
            return LeaseAnswer(False, f"lease {lease_id} is not held (expired or released); "
                               "acquire a new one")
        duration = self._duration(duration_s)
        self.lease = Lease(lease_id, self.lease.holder, now_s + duration)
        return LeaseAnswer(True, f"lease {lease_id} renewed for {duration:.1f} s", lease_id,
                           duration)

    def release(self, lease_id: int, now_s: float) -> LeaseAnswer:
        """End the held lease ``lease_id``."""
        self.expire(now_s)
        if self.lease is None or self.lease.lease_id != lease_id:
            return LeaseAnswer(False, f"lease {lease_id} is not held (expired or released)",
                               lease_id)
        self.lease = None
        return LeaseAnswer(True, f"lease {lease_id} released", lease_id)

    def expire(self, now_s: float):
        """Drop the lease if it has expired; return the expired ``Lease`` or None."""
        lease = self.lease
        if lease is not None and now_s >= lease.expires_s:
            self.lease = None
            return lease
        return None

    def remaining_s(self, now_s: float) -> float:
        """Return the time left on the held lease, s (0 when none)."""
        return max(0.0, self.lease.expires_s - now_s) if self.lease is not None else 0.0
