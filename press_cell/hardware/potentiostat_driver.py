"""Abstract potentiostat driver: the contract every impedance backend (simulator, serial) fulfils.

Units are SI: frequency in Hz, impedance in Ω, AC amplitude in V (RMS, as MethodSCRIPT's
``meas_loop_eis`` takes it). A sweep runs from ``freq_max_hz`` down to ``freq_min_hz``, the usual
order for solid-state cells (fast points first, while the cell is still settling little).

Policy shared by all drivers:

* Overloaded / underloaded points do not abort a sweep: they are flagged per point in the
  returned ``Spectrum`` (``overload``, ``underload``) so the caller can drop or refit them.
  ``measure_impedance_at`` cannot carry flags and raises ``PotentiostatOverloadError`` instead.
* A sweep cancelled through ``cancel_event`` or stopped early by the instrument raises
  ``PotentiostatAbortedError``; the points measured so far travel in ``partial_spectrum``.
* A lost link raises ``PotentiostatConnectionError``; a reply that does not parse raises
  ``PotentiostatProtocolError``; an error code from the instrument raises
  ``PotentiostatDeviceError`` (a protocol error carrying the code).
"""

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

# Usual sweep for a Li | sulfide electrolyte | Li cell: ~1 MHz -> 0.1 Hz at 10 mV (SCIENCE.md, EIS)
DEFAULT_FREQ_MAX_HZ = 1e6
DEFAULT_FREQ_MIN_HZ = 0.1
DEFAULT_POINTS_PER_DECADE = 10      # [est] common lab choice
DEFAULT_AMPLITUDE_V = 0.01


class PotentiostatError(Exception):
    """Base class of every potentiostat driver error."""


class PotentiostatConnectionError(PotentiostatError):
    """The link to the potentiostat is down (port gone, unplugged, no reply within the timeout)."""


class PotentiostatProtocolError(PotentiostatError):
    """The potentiostat sent a reply that does not parse or does not fit the running script."""


class PotentiostatDeviceError(PotentiostatProtocolError):
    """The potentiostat answered with an error code (MethodSCRIPT ``!XXXX``)."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        text = f"potentiostat reported error 0x{code:04X}"
        super().__init__(f"{text}: {detail}" if detail else text)


class PotentiostatOverloadError(PotentiostatError):
    """The current exceeded the selected range: the impedance value is not trustworthy."""


class PotentiostatAbortedError(PotentiostatError):
    """The sweep stopped before its last point (cancelled by the caller or by the instrument)."""

    def __init__(self, message: str, partial_spectrum: "Spectrum | None" = None) -> None:
        super().__init__(message)
        self.partial_spectrum = partial_spectrum


@dataclass(frozen=True)
class Spectrum:
    """An impedance spectrum: one row per frequency, in measurement order.

    ``z_imag_ohm`` is the imaginary part Z'' itself (negative for capacitive behaviour), not −Z''.
    """

    frequency_hz: np.ndarray              # measured frequencies, Hz
    z_real_ohm: np.ndarray                # Z', Ω
    z_imag_ohm: np.ndarray                # Z'', Ω
    overload: np.ndarray | None = None    # bool per point: current above range (None = all False)
    underload: np.ndarray | None = None   # bool per point: current below the range's resolution
    amplitude_v: float = float("nan")     # AC amplitude used, V (RMS)
    start_stamp_s: float = float("nan")   # driver clock time of the first point, s
    duration_s: float = float("nan")      # sweep duration on the driver clock, s
    skipped_lines: int = 0                # unparseable lines skipped by a serial driver
    source: str = ""                      # backend that produced it ("sim", "methodscript")
    notes: tuple = field(default_factory=tuple)  # human-readable remarks (e.g. skipped lines)

    def __post_init__(self) -> None:
        f = np.asarray(self.frequency_hz, dtype=float)
        zr = np.asarray(self.z_real_ohm, dtype=float)
        zi = np.asarray(self.z_imag_ohm, dtype=float)
        if not (f.ndim == 1 and f.shape == zr.shape == zi.shape):
            raise ValueError(
                "frequency_hz, z_real_ohm and z_imag_ohm must be 1-D arrays of equal length, got "
                f"shapes {f.shape}, {zr.shape}, {zi.shape}")
        object.__setattr__(self, "frequency_hz", f)
        object.__setattr__(self, "z_real_ohm", zr)
        object.__setattr__(self, "z_imag_ohm", zi)
        for name in ("overload", "underload"):
            flags = getattr(self, name)
            flags = np.zeros(f.shape, bool) if flags is None else np.asarray(flags, dtype=bool)
            if flags.shape != f.shape:
                raise ValueError(f"{name} must have one flag per point, got shape {flags.shape}")
            object.__setattr__(self, name, flags)

    def __len__(self) -> int:
        return int(self.frequency_hz.size)

    @property
    def z_ohm(self) -> np.ndarray:
        """Return the complex impedance Z' + j·Z'', Ω."""
        return self.z_real_ohm + 1j * self.z_imag_ohm

    @property
    def any_overload(self) -> bool:
        """Return whether at least one point was measured out of range."""
        return bool(self.overload.any() or self.underload.any())

    def valid_points(self) -> "Spectrum":
        """Return a copy without overloaded/underloaded points."""
        keep = ~(self.overload | self.underload)
        return Spectrum(
            self.frequency_hz[keep], self.z_real_ohm[keep], self.z_imag_ohm[keep],
            self.overload[keep], self.underload[keep], self.amplitude_v, self.start_stamp_s,
            self.duration_s, self.skipped_lines, self.source, self.notes)


ProgressCallback = Callable[[int, int, float], None]
"""Called after each point with (points done, points total, frequency just measured in Hz)."""


class PotentiostatDriver(ABC):
    """A potentiostat able to run an EIS sweep, simulated or real."""

    @abstractmethod
    def connect(self) -> None:
        """Open the link; raise ``PotentiostatConnectionError`` with a reason on failure."""

    @abstractmethod
    def disconnect(self) -> None:
        """Stop any running measurement, switch the cell off and close the link; idempotent."""

    @property
    @abstractmethod
    def is_connected(self) -> bool:
        """Return whether the link is up."""

    @abstractmethod
    def self_check(self) -> str:
        """Check the instrument answers sensibly; return its identity, raise on a problem."""

    @abstractmethod
    def measure_eis(self, freq_max_hz: float, freq_min_hz: float, points_per_decade: int,
                    amplitude_v: float, progress_cb: ProgressCallback | None = None,
                    cancel_event: threading.Event | None = None) -> Spectrum:
        """Sweep from freq_max_hz down to freq_min_hz at amplitude_v (V RMS); return the spectrum.

        Blocks until the sweep ends. Raises ``PotentiostatAbortedError`` when ``cancel_event``
        is set or the instrument stops early.
        """

    @abstractmethod
    def measure_impedance_at(self, freq_hz: float, amplitude_v: float) -> complex:
        """Return the impedance at one frequency (Hz) and amplitude (V RMS), Ω."""


def validate_sweep(freq_max_hz: float, freq_min_hz: float, points_per_decade: int,
                   amplitude_v: float) -> None:
    """Raise ``ValueError`` naming the bad argument of an EIS sweep request."""
    if not (np.isfinite(freq_max_hz) and np.isfinite(freq_min_hz)):
        raise ValueError("sweep frequencies must be finite")
    if not 0.0 < freq_min_hz < freq_max_hz:
        raise ValueError(
            f"need 0 < freq_min_hz < freq_max_hz, got freq_min_hz={freq_min_hz!r}, "
            f"freq_max_hz={freq_max_hz!r}")
    if int(points_per_decade) != points_per_decade or not 1 <= points_per_decade <= 100:
        raise ValueError(
            f"points_per_decade must be an integer in 1..100, got {points_per_decade!r}")
    if not 0.0 < amplitude_v <= 1.0:
        raise ValueError(f"amplitude_v must be in (0, 1] V, got {amplitude_v!r}")
