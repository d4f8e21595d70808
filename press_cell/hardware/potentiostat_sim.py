"""Simulated potentiostat: EIS spectra synthesised from the cell's present physical state.

The cell is read through ``resistance_source``: a callable returning an object with
``r_ext_ohm``, ``r_bulk_ohm``, ``r_gb_ohm`` and ``r_int_each_ohm`` (such as
``press_cell.physics.cell_resistance.CellResistances``), or an object with a ``resistances()``
method (such as ``SymmetricCell``). It is read again at every frequency point, so a cell that
creeps during a slow sweep produces the drift a real measurement would show.

Each point takes simulated time (a few periods of the excitation plus a settling overhead) on
the driver's ``Clock``: with a ``SimulatedClock`` the simulator advances the clock itself
(``clock_mode="advance"``, a full sweep runs in milliseconds) or waits for another party to
advance it (``clock_mode="wait"``, lockstep with the control loop); with a real clock it sleeps.
"""

import logging
import threading
import time
from collections.abc import Callable

import numpy as np

from press_cell.hardware.potentiostat_driver import (
    PotentiostatAbortedError,
    PotentiostatConnectionError,
    PotentiostatDriver,
    PotentiostatOverloadError,
    ProgressCallback,
    Spectrum,
    validate_sweep,
)
from press_cell.physics.eis import (
    CellImpedanceModel,
    cell_model_from_resistances,
    log_frequency_grid_hz,
)
from press_cell.timebase import Clock, MonotonicClock

_log = logging.getLogger(__name__)

# Measurement noise of a small potentiostat: relative part ~0.1-1 % of |Z| plus an absolute
# floor (EmStat-class accuracy specifications are of this order) [est].
DEFAULT_RELATIVE_NOISE = 0.002      # [est] std of Z' and Z'' noise, fraction of |Z|
DEFAULT_NOISE_FLOOR_OHM = 1e-3      # [est] std of the absolute noise floor, Ω
# Current range limits: highest range of an EmStat Pico is 5 mA (its current-range table);
# below ~1 nA the AC current is not resolved [est].
DEFAULT_MAX_CURRENT_A = 5e-3
DEFAULT_MIN_CURRENT_A = 1e-9        # [est]
# Time per point: integrate a few excitation periods plus settling overhead [est].
DEFAULT_CYCLES_PER_POINT = 2.0      # [est]
DEFAULT_POINT_OVERHEAD_S = 0.05     # [est]


def _as_resistance_callable(source) -> Callable[[], object]:
    """Return a zero-argument callable giving the present cell resistances."""
    if hasattr(source, "resistances") and callable(source.resistances):
        return source.resistances
    if callable(source):
        return source
    raise TypeError(
        "resistance_source must be a callable returning cell resistances or an object with a "
        f"resistances() method, got {type(source).__name__}")


class SimulatedPotentiostat(PotentiostatDriver):
    """A potentiostat that measures a simulated cell (no hardware)."""

    def __init__(self, resistance_source, clock: Clock | None = None, seed: int | None = 0,
                 relative_noise: float = DEFAULT_RELATIVE_NOISE,
                 noise_floor_ohm: float = DEFAULT_NOISE_FLOOR_OHM,
                 max_current_a: float = DEFAULT_MAX_CURRENT_A,
                 min_current_a: float = DEFAULT_MIN_CURRENT_A,
                 cycles_per_point: float = DEFAULT_CYCLES_PER_POINT,
                 point_overhead_s: float = DEFAULT_POINT_OVERHEAD_S,
                 clock_mode: str | None = None,
                 model_factory: Callable[[object], CellImpedanceModel] | None = None) -> None:
        if relative_noise < 0 or noise_floor_ohm < 0:
            raise ValueError("noise levels must be >= 0")
        if not 0 < min_current_a < max_current_a:
            raise ValueError(
                f"need 0 < min_current_a < max_current_a, got {min_current_a!r}, {max_current_a!r}")
        if cycles_per_point <= 0 or point_overhead_s < 0:
            raise ValueError("cycles_per_point must be > 0 and point_overhead_s >= 0")
        self._resistances = _as_resistance_callable(resistance_source)
        self._clock = clock if clock is not None else MonotonicClock()
        if clock_mode is None:
            clock_mode = "advance" if hasattr(self._clock, "advance") else "wait"
        if clock_mode not in ("advance", "wait"):
            raise ValueError(f"clock_mode must be 'advance' or 'wait', got {clock_mode!r}")
        if clock_mode == "advance" and not hasattr(self._clock, "advance"):
            raise ValueError("clock_mode='advance' needs a clock with advance() (SimulatedClock)")
        self._clock_mode = clock_mode
        self._rng = np.random.default_rng(seed)
        self.relative_noise = float(relative_noise)
        self.noise_floor_ohm = float(noise_floor_ohm)
        self.max_current_a = float(max_current_a)
        self.min_current_a = float(min_current_a)
        self.cycles_per_point = float(cycles_per_point)
        self.point_overhead_s = float(point_overhead_s)
        self._model_factory = model_factory or cell_model_from_resistances
        self._connected = False
        self._lock = threading.Lock()

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> None:
        """Mark the simulated instrument connected."""
        self._connected = True

    def disconnect(self) -> None:
        """Mark the simulated instrument disconnected; idempotent."""
        self._connected = False

    @property
    def is_connected(self) -> bool:
        """Return whether ``connect`` was called and ``disconnect`` not since."""
        return self._connected

    def self_check(self) -> str:
        """Check the simulated cell can be read; return an identity string."""
        self._require_connected()
        model = self.present_model()
        return f"SimulatedPotentiostat (cell DC resistance {model.dc_resistance_ohm:.3g} ohm)"

    # -- measurement ------------------------------------------------------------------------

    def present_model(self) -> CellImpedanceModel:
        """Return the equivalent circuit of the cell as it is now."""
        return self._model_factory(self._resistances())

    def point_duration_s(self, freq_hz: float) -> float:
        """Return how long one point at ``freq_hz`` takes, s."""
        return self.cycles_per_point / freq_hz + self.point_overhead_s

    def measure_point(self, freq_hz: float, amplitude_v: float,
                      cancel_event: threading.Event | None = None) -> tuple[complex, bool, bool]:
        """Measure one point: let its time pass, then return (Z in Ω, overload, underload).

        Raise ``PotentiostatAbortedError`` if ``cancel_event`` is set while waiting.
        """
        self._require_connected()
        self._let_time_pass(self.point_duration_s(freq_hz), cancel_event)
        z_true = complex(self.present_model().impedance_ohm(np.array([freq_hz]))[0])
        with self._lock:
            noise = self._rng.standard_normal(4)
        z = (z_true + abs(z_true) * self.relative_noise * complex(noise[0], noise[1])
             + self.noise_floor_ohm * complex(noise[2], noise[3]))
        current_a = amplitude_v / max(abs(z_true), 1e-300)
        return z, current_a > self.max_current_a, current_a < self.min_current_a

    def measure_eis(self, freq_max_hz: float, freq_min_hz: float, points_per_decade: int,
                    amplitude_v: float, progress_cb: ProgressCallback | None = None,
                    cancel_event: threading.Event | None = None) -> Spectrum:
        """Sweep from freq_max_hz down to freq_min_hz; see ``PotentiostatDriver.measure_eis``."""
        validate_sweep(freq_max_hz, freq_min_hz, points_per_decade, amplitude_v)
        self._require_connected()
        freqs = log_frequency_grid_hz(freq_max_hz, freq_min_hz, points_per_decade)
        z = np.full(freqs.size, np.nan + 0j)
        overload = np.zeros(freqs.size, bool)
        underload = np.zeros(freqs.size, bool)
        start_s = self._clock.now()
        for index, freq in enumerate(freqs):
            try:
                z[index], overload[index], underload[index] = self.measure_point(
                    freq, amplitude_v, cancel_event)
            except PotentiostatAbortedError as exc:
                partial = Spectrum(freqs[:index], z[:index].real, z[:index].imag,
                                   overload[:index], underload[:index], amplitude_v, start_s,
                                   self._clock.now() - start_s, source="sim")
                raise PotentiostatAbortedError(
                    f"sweep cancelled after {index} of {freqs.size} points", partial) from exc
            if progress_cb is not None:
                progress_cb(index + 1, freqs.size, float(freq))
        if overload.any() or underload.any():
            _log.warning("EIS sweep: %d overloaded and %d underloaded points",
                         int(overload.sum()), int(underload.sum()))
        return Spectrum(freqs, z.real, z.imag, overload, underload, amplitude_v, start_s,
                        self._clock.now() - start_s, source="sim")

    def measure_impedance_at(self, freq_hz: float, amplitude_v: float) -> complex:
        """Return the impedance at one frequency, Ω; raise on overload/underload."""
        if not (np.isfinite(freq_hz) and freq_hz > 0):
            raise ValueError(f"freq_hz must be finite and > 0, got {freq_hz!r}")
        if not 0.0 < amplitude_v <= 1.0:
            raise ValueError(f"amplitude_v must be in (0, 1] V, got {amplitude_v!r}")
        z, overload, underload = self.measure_point(freq_hz, amplitude_v)
        if overload or underload:
            kind = "overload" if overload else "underload"
            raise PotentiostatOverloadError(
                f"{kind} at {freq_hz:g} Hz: |Z| = {abs(z):.3g} ohm at {amplitude_v:g} V gives a "
                f"current outside {self.min_current_a:g}..{self.max_current_a:g} A")
        return z

    # -- internals --------------------------------------------------------------------------

    def _require_connected(self) -> None:
        if not self._connected:
            raise PotentiostatConnectionError("simulated potentiostat is not connected")

    def _let_time_pass(self, duration_s: float, cancel_event: threading.Event | None) -> None:
        """Advance or wait for the clock to move on by ``duration_s``, honouring a cancel."""
        if cancel_event is not None and cancel_event.is_set():
            raise PotentiostatAbortedError("measurement cancelled")
        if self._clock_mode == "advance":
            self._clock.advance(duration_s)
            return
        deadline_s = self._clock.now() + duration_s
        scale = getattr(self._clock, "time_scale", 1.0)
        while True:
            remaining_s = deadline_s - self._clock.now()
            if remaining_s <= 0:
                return
            if cancel_event is not None:
                if cancel_event.wait(min(remaining_s / scale, 0.02)):
                    raise PotentiostatAbortedError("measurement cancelled")
            else:
                time.sleep(min(remaining_s / scale, 0.02))
