"""Strain-gauge load cell with a 24-bit indicator: noise, quantisation, offset, gain error.

Reading model (SI, N)::

    raw = (1 + gain_error) * true_force + zero_offset + noise
    reading = quantise(clip(raw, +-overload * FS)) - tare_offset

Sizing the defaults honestly (SCIENCE.md: strain-gauge cells are +-0.1-0.5 % FS accurate):

* Full scale is a parameter; match it to the job. A 5 kN cell suits foil pre-pressing
  (25 MPa on a 10 mm rod face is 1.96 kN); a 100 kN cell suits pellets (370 MPa on 13 mm is
  49.1 kN). ``SimulatedPress`` defaults the full scale to the press rating.
* Noise: a 2 mV/V bridge excited at 5 V gives 10 mV at full scale. A 24-bit sigma-delta
  indicator sampling at ~500 Hz has ~0.3 uV rms input noise [est, typical of 24-bit bridge
  ADC data sheets at that rate], i.e. 3e-5 of full scale rms. That is 0.15 N on a 5 kN cell
  and 3 N on a 100 kN cell: both allow +-0.5 % holds at 2 kN (+-10 N) with margin.
* Gain error 0.05 % and zero offset 0.1 % FS before tare are inside the +-0.1-0.5 % FS class
  [est]. The gain error is a calibration error: the control loop cannot see it.
* Quantisation: 24 bits over +-FS.

Presets: ``strain_gauge_params(full_scale_n)`` (the defaults) and
``analog_gauge_params(full_scale_n)`` (a dial gauge, +-2 % FS class).

All randomness comes from the ``numpy.random.Generator`` passed in, so equal seeds give
equal readings.
"""

import math
from dataclasses import dataclass

import numpy as np


class LoadCellConfigError(ValueError):
    """A load-cell parameter is out of its physical range."""


@dataclass(frozen=True)
class LoadCellParams:
    """Load-cell and indicator characteristics; see the module docstring for the sizing."""

    full_scale_n: float = 100e3             # rated capacity of the cell, N [est, matched to job]
    noise_rms_fraction_fs: float = 3e-5     # rms noise / FS at ~500 Hz [est, 24-bit indicator]
    adc_bits: int = 24                      # indicator resolution over +-FS
    gain_error: float = 5e-4                # fractional span error [est, 0.1-0.5 % FS class]
    zero_offset_fraction_fs: float = 1e-3   # zero offset before tare / FS [est]
    overload_fraction_fs: float = 1.5       # reading saturates beyond this multiple of FS [est]

    def __post_init__(self) -> None:
        """Check ranges."""
        if not (math.isfinite(self.full_scale_n) and self.full_scale_n > 0.0):
            raise LoadCellConfigError(f"full_scale_n must be > 0 N, got {self.full_scale_n!r}")
        if not (0.0 <= self.noise_rms_fraction_fs < 0.1):
            raise LoadCellConfigError(
                f"noise_rms_fraction_fs must be in [0, 0.1), got {self.noise_rms_fraction_fs!r}"
            )
        if not (8 <= int(self.adc_bits) <= 32):
            raise LoadCellConfigError(f"adc_bits must be in [8, 32], got {self.adc_bits!r}")
        if not abs(self.gain_error) < 0.1:
            raise LoadCellConfigError(f"|gain_error| must be < 0.1, got {self.gain_error!r}")
        if not self.overload_fraction_fs >= 1.0:
            raise LoadCellConfigError(
                f"overload_fraction_fs must be >= 1, got {self.overload_fraction_fs!r}"
            )

    @property
    def noise_rms_n(self) -> float:
        """Return the rms noise, N."""
        return self.noise_rms_fraction_fs * self.full_scale_n

    @property
    def resolution_n(self) -> float:
        """Return one count of the indicator, N."""
        return 2.0 * self.full_scale_n / float(2 ** int(self.adc_bits))


def strain_gauge_params(full_scale_n: float) -> LoadCellParams:
    """Return a strain-gauge cell + 24-bit indicator of ``full_scale_n`` (N), defaults above."""
    return LoadCellParams(full_scale_n=full_scale_n)


def analog_gauge_params(full_scale_n: float) -> LoadCellParams:
    """Return an analog pressure gauge read as force, ``full_scale_n`` (N) at full dial.

    Manual lab presses often have only a dial gauge: +-1.5-2.5 % FS (SCIENCE.md [est]);
    modelled as a 2 % span error, 0.5 % FS zero error, 0.2 % FS reading scatter and a
    resolution of ~1/250 FS (a dial read to its smallest division) [est].
    """
    return LoadCellParams(full_scale_n=full_scale_n, noise_rms_fraction_fs=2e-3, adc_bits=9,
                          gain_error=0.02, zero_offset_fraction_fs=5e-3)


class LoadCell:
    """A strain-gauge load cell read through an indicator; deterministic for a given rng.

    The noise is drawn from ``rng`` in blocks of ``NOISE_BLOCK`` standard normals (one C call
    instead of one per reading) and scaled per reading: the readings are the same as with one
    ``rng.normal`` draw per reading, but the generator runs ahead of the readings taken, so it
    must not be shared with anything else.
    """

    NOISE_BLOCK = 1024

    def __init__(self, params: LoadCellParams, rng: np.random.Generator) -> None:
        self._rng = rng
        self._normals: list = []
        self._next_normal = 0
        self._extra_noise_rms_n = 0.0
        self.params = params
        self.tare_offset_n = 0.0

    # Derived constants are cached; both setters below refresh them.
    @property
    def params(self) -> LoadCellParams:
        """Return the cell's parameters."""
        return self._params

    @params.setter
    def params(self, params: LoadCellParams) -> None:
        self._params = params
        self._gain = 1.0 + params.gain_error
        self._zero_n = params.zero_offset_fraction_fs * params.full_scale_n
        self._limit_n = params.overload_fraction_fs * params.full_scale_n
        self._resolution_n = params.resolution_n
        self._noise_rms_n = math.hypot(params.noise_rms_n, self._extra_noise_rms_n)

    @property
    def extra_noise_rms_n(self) -> float:
        """Return the extra rms noise added by fault injection (noise burst), N."""
        return self._extra_noise_rms_n

    @extra_noise_rms_n.setter
    def extra_noise_rms_n(self, rms_n: float) -> None:
        self._extra_noise_rms_n = rms_n
        self._noise_rms_n = math.hypot(self._params.noise_rms_n, rms_n)

    def raw_n(self, true_force_n: float) -> float:
        """Return one untared reading of ``true_force_n`` (N), before quantisation, N."""
        noise_rms = self._noise_rms_n
        noise = 0.0
        if noise_rms > 0.0:
            i = self._next_normal
            if i >= len(self._normals):
                self._normals = self._rng.standard_normal(self.NOISE_BLOCK).tolist()
                i = 0
            self._next_normal = i + 1
            # numpy's normal(0, s) is 0 + s * standard_normal: the same number
            noise = 0.0 + noise_rms * self._normals[i]
        value = self._gain * true_force_n + self._zero_n + noise
        limit = self._limit_n
        if value < -limit:
            return -limit
        if value > limit:
            return limit
        return value

    def measure_n(self, true_force_n: float) -> float:
        """Return one tared, quantised reading of ``true_force_n`` (N), N."""
        q = self._resolution_n
        return round(self.raw_n(true_force_n) / q) * q - self.tare_offset_n

    def tare(self, true_force_n: float, samples: int = 50) -> float:
        """Zero the reading at the present load over ``samples`` readings; return offset, N."""
        if samples < 1:
            raise LoadCellConfigError(f"tare needs at least 1 sample, got {samples!r}")
        q = self._resolution_n
        readings = [round(self.raw_n(true_force_n) / q) * q for _ in range(int(samples))]
        self.tare_offset_n = float(np.mean(readings))
        return self.tare_offset_n
