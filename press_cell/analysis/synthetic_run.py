"""Write a realistic synthetic press run as a rosbag2 bag, with the live certificates it implies.

Used by the analysis tests, the analysis benchmark and demos. Each cycle follows a
``PressProfile`` (ramp, hold, release) sampled at the loop rate; the press answers as a damped
second-order system with load-cell noise, so the trace has lag, a small overshoot and
in-band noise like a closed-loop hydraulic press. For every cycle the generator also computes
the certificate the press node would publish live (``control.certificate.compute_certificate``
on the in-memory trace) so a test can check that the bag analysis reproduces it.

Topics (``<ns>`` = ``namespace``): PressState, ControllerTiming (1 Hz), FluidPressure and
WrenchStamped (the standard mirror of each sample), DeviceStatus, ImpedanceSpectrum and
ImpedanceSample after each cycle, and /diagnostics. ``press_types=False`` writes only the
standard topics, as a lab's ``ros2 bag record`` of a foreign press would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from press_cell.analysis.bag_types import press_cell_typestore, standard_typestore
from press_cell.analysis.bag_writer import BagWriter, RecordingInfo, StorageFormat
from press_cell.analysis.cdr_columns import encode_rows
from press_cell.control.certificate import PressCertificate, PressTrace, compute_certificate
from press_cell.control.loop_runner import LoopTiming
from press_cell.control.profile import Phase, PressProfile
from press_cell.physics.eis import CellImpedanceModel, log_frequency_grid_hz
from press_cell.recipes.segments import Segment

#: 12.7 mm electrode / rod face, the geometry of the Doux et al. 2020 anchor cell, m^2.
ROD_AREA_M2 = math.pi * 0.0127**2 / 4.0
#: Closed-loop press response: natural frequency and damping [est] (a hydraulic ram with a
#: first-order lag of 0.2-1 s under a force loop settles in well under a second; SCIENCE.md).
RESPONSE_OMEGA_RAD_S = 12.0
RESPONSE_DAMPING = 0.6
#: Load-cell noise, 0.05 % of 100 MPa full scale [est] (SCIENCE.md: +-0.1-0.5 % FS accuracy).
NOISE_PA = 0.05e6
#: Ram travel per Pa of die pressure (stack compliance) [est], m/Pa.
COMPLIANCE_M_PER_PA = 2.0e-12
#: Creep of the foil during the hold: ram advance per Pa*s [est], m/(Pa*s).
CREEP_M_PER_PA_S = 2.0e-15


@dataclass(frozen=True)
class CycleSpec:
    """One synthetic cycle: ramp to a target, hold, release (SI)."""

    target_pressure_pa: float = 25e6
    ramp_rate_pa_s: float = 5e6
    hold_s: float = 4.0
    release_rate_pa_s: float = 10e6
    tolerance_frac: float = 0.02

    def segments(self) -> list[Segment]:
        """Return the profile segments of the cycle."""
        p = self.target_pressure_pa
        band = self.tolerance_frac * p
        return [
            Segment("ramp", p, self.ramp_rate_pa_s, p / self.ramp_rate_pa_s, band),
            Segment("hold", p, 0.0, self.hold_s, band),
            Segment("release", 0.0, self.release_rate_pa_s, p / self.release_rate_pa_s, band),
        ]


@dataclass
class SyntheticRun:
    """What was written: the bag path and, per cycle, the live certificate and segments."""

    path: Path
    certificates: list[PressCertificate] = field(default_factory=list)
    segments: list[list[Segment]] = field(default_factory=list)
    message_count: int = 0
    press_state_count: int = 0


def _press_response(setpoint_pa: np.ndarray, rate_hz: float) -> np.ndarray:
    """Filter the setpoint through the closed-loop response (bilinear discretisation)."""
    w, z = RESPONSE_OMEGA_RAD_S, RESPONSE_DAMPING
    b, a = signal.bilinear([w * w], [1.0, 2.0 * z * w, w * w], fs=rate_hz)
    zi = signal.lfilter_zi(b, a) * setpoint_pa[0]
    return signal.lfilter(b, a, setpoint_pa, zi=zi)[0]


def _cycle_samples(spec: CycleSpec, rate_hz: float, idle_s: float,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return one cycle plus trailing idle samples as columns (time relative to start, s)."""
    profile = PressProfile(spec.segments(), start_pressure_pa=0.0)
    n_cycle = int(math.ceil(profile.total_duration_s * rate_hz))
    n_idle = int(round(idle_s * rate_hz))
    t = np.arange(n_cycle + n_idle) / rate_hz
    setpoint = np.zeros(len(t))
    phase = np.full(len(t), int(Phase.IDLE), dtype=np.uint8)
    segment = np.full(len(t), -1, dtype=np.int32)
    for k in range(n_cycle):
        point = profile.sample(t[k])
        setpoint[k] = point.setpoint_pa
        phase[k] = int(point.phase)
        segment[k] = point.segment_index
    pressure = _press_response(setpoint, rate_hz) + rng.normal(0.0, NOISE_PA, len(t))
    ram = (2e-3 + COMPLIANCE_M_PER_PA * pressure
           + CREEP_M_PER_PA_S * np.cumsum(np.clip(pressure, 0, None)) / rate_hz)
    return {
        "t": t, "setpoint": setpoint, "pressure": pressure, "force": pressure * ROD_AREA_M2,
        "ram": ram, "valve": np.clip((setpoint - pressure) / 5e6, -1.0, 1.0),
        "phase": phase, "segment": segment, "active": segment >= 0, "profile": profile,
    }


def _stamp(typestore, time_ns: int):
    """Return a ``builtin_interfaces/Time`` for ``time_ns``."""
    return typestore.types["builtin_interfaces/msg/Time"](
        sec=int(time_ns // 1_000_000_000), nanosec=int(time_ns % 1_000_000_000))


def _header(typestore, time_ns: int, frame_id: str = "press"):
    """Return a ``std_msgs/Header``."""
    return typestore.types["std_msgs/msg/Header"](stamp=_stamp(typestore, time_ns),
                                                  frame_id=frame_id)


def write_synthetic_run(
    path: str | Path,
    *,
    storage: StorageFormat | str = StorageFormat.MCAP,
    cycles: int = 1,
    spec: CycleSpec | None = None,
    rate_hz: float = 500.0,
    namespace: str = "/cell",
    press_types: bool = True,
    standard_topics: bool = True,
    spectra: bool = True,
    idle_s: float = 0.5,
    start_ns: int = 1_764_000_000_000_000_000,
    seed: int = 0,
    info: RecordingInfo | None = None,
    **writer_options,
) -> SyntheticRun:
    """Write ``cycles`` synthetic press cycles to a new bag at ``path``; see the module doc."""
    spec = spec or CycleSpec()
    rng = np.random.default_rng(seed)
    typestore = press_cell_typestore() if press_types else standard_typestore()
    types = typestore.types
    info = info or RecordingInfo(cell_id="synthetic-0001", recipe_name="synthetic",
                                 calibration_id="cal-synthetic")
    result = SyntheticRun(path=Path(path))
    period_ns = int(round(1e9 / rate_hz))
    ns = namespace.rstrip("/")
    topics = {
        "state": f"{ns}/press/state", "timing": f"{ns}/press/timing",
        "status": f"{ns}/press/status", "pressure": f"{ns}/press/pressure",
        "wrench": f"{ns}/press/wrench", "spectrum": f"{ns}/impedance/spectrum",
        "monitor": f"{ns}/impedance/monitor", "diagnostics": "/diagnostics",
    }
    with BagWriter(path, storage=storage, info=info, typestore=typestore,
                   **writer_options) as writer:
        if press_types:
            writer.add_topic(topics["state"], "press_cell/msg/PressState")
            writer.add_topic(topics["timing"], "press_cell/msg/ControllerTiming")
            writer.add_topic(topics["status"], "press_cell/msg/DeviceStatus")
            if spectra:
                writer.add_topic(topics["spectrum"], "press_cell/msg/ImpedanceSpectrum")
                writer.add_topic(topics["monitor"], "press_cell/msg/ImpedanceSample")
        if standard_topics or not press_types:
            writer.add_topic(topics["pressure"], "sensor_msgs/msg/FluidPressure")
            writer.add_topic(topics["wrench"], "geometry_msgs/msg/WrenchStamped")
        writer.add_topic(topics["diagnostics"], "diagnostic_msgs/msg/DiagnosticArray")
        if press_types:
            writer.write(topics["status"], start_ns, types["press_cell/msg/DeviceStatus"](
                header=_header(typestore, start_ns), device="press", hardware="sim",
                state=1, fault_code=0, message="ready"))
        offset_ns = start_ns
        for _ in range(cycles):
            cols = _cycle_samples(spec, rate_hz, idle_s, rng)
            n = len(cols["t"])
            time_ns = offset_ns + np.arange(n, dtype=np.int64) * period_ns
            sec = time_ns // 1_000_000_000
            nanosec = time_ns % 1_000_000_000
            timing = LoopTiming(rate=rate_hz, realtime=False, lockstep=True,
                                cycles=int((time_ns[-1] - start_ns) // period_ns), overruns=0,
                                dt_mean=1.0 / rate_hz, dt_max=1.0 / rate_hz,
                                wake_latency_p50=0.0, wake_latency_p99=0.0,
                                wake_latency_p999=0.0, wake_latency_max=0.0,
                                compute_time_p99=2e-5)
            active = cols["active"]
            trace = PressTrace(
                time_s=time_ns[active] * 1e-9, setpoint_pa=cols["setpoint"][active],
                pressure_pa=cols["pressure"][active], force_n=cols["force"][active],
                ram_position_m=cols["ram"][active], demand=cols["valve"][active],
                phase=cols["phase"][active].astype(int),
                segment_index=cols["segment"][active].astype(int),
            )
            certificate = compute_certificate(
                trace, cols["profile"], ROD_AREA_M2, loop_timing=timing,
                part_id=info.cell_id, recipe_name=info.recipe_name,
                calibration_id=info.calibration_id,
            )
            result.certificates.append(certificate)
            result.segments.append(spec.segments())
            if press_types:
                template = types["press_cell/msg/PressState"](
                    header=_header(typestore, 0), phase=0, segment_index=-1, pressure=0.0,
                    pressure_setpoint=0.0, force=0.0, ram_position=0.0, valve_command=0.0,
                    contact_area=ROD_AREA_M2, relief_open=False, zone_leased=False,
                    fault_code=0, fault_message="")
                rows = encode_rows(typestore, "press_cell/msg/PressState", template, {
                    "header.stamp.sec": sec, "header.stamp.nanosec": nanosec,
                    "phase": cols["phase"], "segment_index": cols["segment"],
                    "pressure": cols["pressure"], "pressure_setpoint": cols["setpoint"],
                    "force": cols["force"], "ram_position": cols["ram"],
                    "valve_command": cols["valve"],
                })
                for k in range(n):
                    writer.write_raw(topics["state"], int(time_ns[k]), rows[k])
                    if k % int(rate_hz) == int(rate_hz) - 1 or k == n - 1:
                        stamp_ns = int(time_ns[k])
                        writer.write(topics["timing"], stamp_ns,
                                     types["press_cell/msg/ControllerTiming"](
                                         header=_header(typestore, stamp_ns),
                                         **timing.__dict__))
            if standard_topics or not press_types:
                _write_standard(writer, typestore, topics, time_ns, sec, nanosec, cols)
            end_ns = int(time_ns[-1]) + period_ns
            if press_types and spectra:
                _write_spectrum(writer, typestore, topics, end_ns, info.cell_id,
                                spec.target_pressure_pa)
            writer.write(topics["diagnostics"], end_ns, types[
                "diagnostic_msgs/msg/DiagnosticArray"](
                    header=_header(typestore, end_ns, ""),
                    status=[types["diagnostic_msgs/msg/DiagnosticStatus"](
                        level=0, name="press: loop", message="ok", hardware_id="sim",
                        values=[])]))
            offset_ns = end_ns + period_ns
        result.message_count = writer.message_count
        result.press_state_count = writer._topics[topics["state"]].count if press_types else 0
    return result


def _write_standard(writer, typestore, topics, time_ns, sec, nanosec, cols) -> None:
    """Mirror every sample as FluidPressure (Pa) and WrenchStamped (N)."""
    types = typestore.types
    header = _header(typestore, 0)
    pressure_rows = encode_rows(
        typestore, "sensor_msgs/msg/FluidPressure",
        types["sensor_msgs/msg/FluidPressure"](header=header, fluid_pressure=0.0,
                                               variance=NOISE_PA**2),
        {"header.stamp.sec": sec, "header.stamp.nanosec": nanosec,
         "fluid_pressure": cols["pressure"]})
    vec = types["geometry_msgs/msg/Vector3"]
    wrench_rows = encode_rows(
        typestore, "geometry_msgs/msg/WrenchStamped",
        types["geometry_msgs/msg/WrenchStamped"](
            header=header, wrench=types["geometry_msgs/msg/Wrench"](
                force=vec(x=0.0, y=0.0, z=0.0), torque=vec(x=0.0, y=0.0, z=0.0))),
        {"header.stamp.sec": sec, "header.stamp.nanosec": nanosec,
         "wrench.force.z": cols["force"]})
    for k in range(len(time_ns)):
        writer.write_raw(topics["pressure"], int(time_ns[k]), pressure_rows[k])
        writer.write_raw(topics["wrench"], int(time_ns[k]), wrench_rows[k])


def _write_spectrum(writer, typestore, topics, time_ns: int, cell_id: str,
                    stack_pressure_pa: float) -> None:
    """Write one EIS spectrum and a monitor sample of the anchor Li|Li6PS5Cl|Li cell."""
    types = typestore.types
    # 25 MPa anchor: ~32 ohm total, ~30 ohm bulk (Doux et al., Adv. Energy Mater. 2020).
    model = CellImpedanceModel(r_ext_ohm=0.5, r_bulk_ohm=25.0, r_gb_ohm=5.0,
                               r_int_each_ohm=0.75)
    freq = log_frequency_grid_hz(1e6, 0.1, 10)
    z = model.impedance_ohm(freq)
    writer.write(topics["spectrum"], time_ns, types["press_cell/msg/ImpedanceSpectrum"](
        header=_header(typestore, time_ns, "potentiostat"), cell_id=cell_id,
        frequency=freq, z_real=z.real.copy(), z_imag=z.imag.copy(), amplitude=0.01,
        stack_pressure=stack_pressure_pa, overload=False))
    z1 = model.impedance_ohm([1e3])[0]
    writer.write(topics["monitor"], time_ns, types["press_cell/msg/ImpedanceSample"](
        header=_header(typestore, time_ns, "potentiostat"), frequency=1e3,
        z_real=float(z1.real), z_imag=float(z1.imag), modulus=float(abs(z1)),
        r_interface=model.r_int_each_ohm, stack_pressure=stack_pressure_pa))
