"""Adaptive end of a press hold from single-frequency impedance monitoring (no rclpy).

Semantics of ``msg/HoldEndCriterion.msg``: while the stack is held, the impedance node measures
|Z| at one frequency and estimates the per-interface resistance R_int from it; the hold ends

* never before ``min_hold_s`` (the foil needs time to creep into the electrolyte),
* as soon as R_int < ``r_interface_below_ohm`` (0 = unused), or
* as soon as |dR_int/dt| < ``dr_dt_below_ohm_s`` (0 = unused), the slope being the
  least-squares slope over the last ``slope_window_s`` of samples (the contact has stopped
  improving), and
* always at ``max_hold_s``.

A disabled criterion never ends a hold (the press uses the segment duration). Samples with a
non-finite R_int (an overloaded point) are ignored by the R criteria; the time bounds still hold.

Use in the press cycle (one evaluator per hold)::

    evaluator = HoldEndEvaluator(goal.hold_end)     # the message or a HoldEndCriterion
    ...
    if evaluator.update(time_in_hold_s, r_interface_ohm):
        end_hold(evaluator.reason)

``interface_resistance_from_point`` turns one monitored point into R_int given the series
resistance (leads + electrolyte), e.g. Re Z at a high reference frequency.
"""

import math
from dataclasses import dataclass

import numpy as np

# Window of the dR/dt estimate: long enough to average monitor noise at ~1 sample/s, short
# against the 1-5 min holds of a stack press [est].
DEFAULT_SLOPE_WINDOW_S = 10.0
MIN_SLOPE_SAMPLES = 3               # fewest samples a slope is computed from


class HoldEndError(ValueError):
    """A hold-end criterion or sample is invalid; the message says what is allowed."""


@dataclass(frozen=True)
class HoldEndCriterion:
    """When to end a hold early (SI units); see the module docstring for the rules."""

    enabled: bool = False
    monitor_frequency_hz: float = 10.0  # Hz, frequency of the single-frequency monitor
    r_interface_below_ohm: float = 0.0  # Ω, 0 = unused
    dr_dt_below_ohm_s: float = 0.0      # Ω/s, 0 = unused
    min_hold_s: float = 0.0             # s
    max_hold_s: float = math.inf        # s

    def __post_init__(self) -> None:
        """Check ranges (only an enabled criterion must be complete)."""
        for name in ("r_interface_below_ohm", "dr_dt_below_ohm_s", "min_hold_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise HoldEndError(f"{name} must be finite and >= 0, got {value!r}")
        if not self.enabled:
            return
        if not (math.isfinite(self.monitor_frequency_hz) and self.monitor_frequency_hz > 0.0):
            raise HoldEndError(f"monitor_frequency_hz must be finite and > 0 Hz, got "
                               f"{self.monitor_frequency_hz!r}")
        if not (self.max_hold_s > 0.0 and self.max_hold_s >= self.min_hold_s):
            raise HoldEndError(f"need 0 < max_hold_s and min_hold_s <= max_hold_s, got "
                               f"min_hold_s={self.min_hold_s!r}, max_hold_s={self.max_hold_s!r}")

    @classmethod
    def from_fields(cls, fields) -> "HoldEndCriterion":
        """Build from anything with the fields of ``msg/HoldEndCriterion`` (e.g. the message)."""
        return cls(enabled=bool(fields.enabled),
                   monitor_frequency_hz=float(fields.monitor_frequency),
                   r_interface_below_ohm=float(fields.r_interface_below),
                   dr_dt_below_ohm_s=float(fields.dr_dt_below),
                   min_hold_s=float(fields.min_hold),
                   max_hold_s=float(fields.max_hold))


class HoldEndEvaluator:
    """Feed (time in hold, R_int) samples; ``update`` says when the hold should end.

    Not thread-safe; cheap (O(window) per sample), safe to call from a control loop at the
    monitor rate. Once it has said "end", it keeps saying so with the same ``reason``.
    """

    def __init__(self, criterion, slope_window_s: float = DEFAULT_SLOPE_WINDOW_S) -> None:
        """Take a ``HoldEndCriterion`` or anything with the message's fields (``HoldEndError``)."""
        if not isinstance(criterion, HoldEndCriterion):
            criterion = HoldEndCriterion.from_fields(criterion)
        if not (math.isfinite(slope_window_s) and slope_window_s > 0.0):
            raise HoldEndError(f"slope_window_s must be finite and > 0 s, got {slope_window_s!r}")
        self.criterion = criterion
        self.slope_window_s = float(slope_window_s)
        self._times_s: list[float] = []
        self._r_ohm: list[float] = []
        self._last_t_s = -math.inf
        self.reason = ""                # why the hold ended ("" while it goes on)
        self.ended_at_s = math.nan      # time in hold when it ended, s
        self.slope_ohm_s = math.nan     # latest dR/dt estimate, Ω/s (NaN until known)

    @property
    def ended(self) -> bool:
        """Return whether the criterion has ended the hold."""
        return bool(self.reason)

    def reset(self) -> None:
        """Forget every sample (a new hold begins)."""
        self.__init__(self.criterion, self.slope_window_s)

    def update(self, t_s: float, r_interface_ohm: float) -> bool:
        """Add a sample at ``t_s`` (s since the hold began) of R_int (Ω); return whether to end."""
        if self.ended:
            return True
        if not math.isfinite(t_s) or t_s < self._last_t_s:
            raise HoldEndError(f"sample times must be finite and non-decreasing, got {t_s!r} "
                               f"after {self._last_t_s!r}")
        self._last_t_s = float(t_s)
        crit = self.criterion
        if not crit.enabled:
            return False
        if math.isfinite(r_interface_ohm):
            self._times_s.append(float(t_s))
            self._r_ohm.append(float(r_interface_ohm))
            self._drop_old(t_s)
            self.slope_ohm_s = self._slope()
        if t_s >= crit.max_hold_s:
            return self._end(t_s, f"max_hold {crit.max_hold_s:g} s reached")
        if t_s < crit.min_hold_s or not math.isfinite(r_interface_ohm):
            return False
        if crit.r_interface_below_ohm > 0.0 and r_interface_ohm < crit.r_interface_below_ohm:
            return self._end(t_s, f"r_interface {r_interface_ohm:.4g} ohm < "
                                  f"{crit.r_interface_below_ohm:g} ohm")
        if (crit.dr_dt_below_ohm_s > 0.0 and math.isfinite(self.slope_ohm_s)
                and abs(self.slope_ohm_s) < crit.dr_dt_below_ohm_s):
            return self._end(t_s, f"|dR/dt| {abs(self.slope_ohm_s):.3g} ohm/s < "
                                  f"{crit.dr_dt_below_ohm_s:g} ohm/s over "
                                  f"{self.slope_window_s:g} s")
        return False

    def _end(self, t_s: float, reason: str) -> bool:
        self.reason = f"{reason} at {t_s:.3g} s"
        self.ended_at_s = float(t_s)
        return True

    def _drop_old(self, t_s: float) -> None:
        """Keep the samples of the window plus the one just before it (the window's start)."""
        start_s = t_s - self.slope_window_s
        while len(self._times_s) > 1 and self._times_s[1] <= start_s:
            del self._times_s[0]
            del self._r_ohm[0]

    def _slope(self) -> float:
        """Return the least-squares dR/dt over a fully covered window, Ω/s, else NaN."""
        times = np.asarray(self._times_s)
        if times.size < MIN_SLOPE_SAMPLES or times[-1] - times[0] < self.slope_window_s:
            return math.nan
        dt = times - times.mean()
        denominator = float(dt @ dt)
        if denominator <= 0.0:
            return math.nan
        return float(dt @ (np.asarray(self._r_ohm) - np.mean(self._r_ohm)) / denominator)


def interface_resistance_from_point(z_ohm: complex, r_series_ohm: float) -> float:
    """Return one interface's resistance (Ω) from Z at a low monitor frequency.

    Well below the interface arc's relaxation frequency Re Z ≈ R_series + 2 R_int, so
    R_int ≈ (Re Z − R_series) / 2. ``r_series_ohm`` (Ω) is leads + electrolyte, e.g. Re Z at
    a high reference frequency or a fit's high-frequency intercept. The estimate is low by
    the interface capacitance's share at the monitor frequency (about Q ω^α cos(απ/2) R_int
    relative: < 5 % for R_int up to ~500 Ω at 10 Hz with the interface CPE of
    ``press_cell.physics.eis``) and clipped at 0. Returns NaN for non-finite inputs.
    """
    if not (math.isfinite(z_ohm.real) and math.isfinite(r_series_ohm)):
        return math.nan
    return max(0.0, (z_ohm.real - r_series_ohm) / 2.0)
