"""Emulated serial press on a pseudo-terminal: ASCII or Modbus RTU, backed by ``SimulatedPress``.

Run::

    python -m press_cell.hardware.press_emulator --protocol ascii|modbus
        [--fault stall|garbage|unplug ...] [--latency-ms 16] [--time-scale 1] [--watchdog-ms 500]
        [--baudrate 115200 [--pace]]

The first stdout line is the path of the serial port a driver opens (a pty slave). Layout::

    driver --- host pty --- FaultyLine (relay + cable faults) --- device pty --- server
                                                                   (ASCII or pymodbus RTU)
                                                                           |
                                                   EmulatedPressDevice (sequencer, watchdog)
                                                                           |
                                                       SimulatedPress (SUPERVISORY physics)

Cable faults live in ``FaultyLine`` so they are the same for both protocols: ``unplug`` (no byte
passes either way; ``plug`` restores), ``hangup`` (the host pty is closed for good), ``stall``
(the press hears commands but its replies are lost), ``garbage`` (every reply byte except CR/LF
is replaced by noise), ``noise N`` (N random bytes once), ``latency MS`` (replies delayed, like
the 16 ms latency timer of FTDI USB-serial adapters, which holds device->host bytes).

Runtime control channel: one command per line on stdin, answered ``ok ...`` / ``error ...`` on
stdout; unsolicited ``event ...`` lines report what the press did by itself (watchdog vent,
fault latched). Commands: ``fault none|unplug|plug|hangup``, ``fault stall on|off``,
``fault garbage on|off``, ``fault noise N``, ``fault latency MS``, ``sim NAME [ARGS]`` (a
physical fault of ``SimulatedPress``), ``state``, ``quit``. End of stdin also quits, so the
emulator never outlives the test that started it.

Timing: the physics runs on a clock ``--time-scale`` times faster than wall time (phase and hold
timers are physics time); the comms watchdog counts wall time, because it is about the link.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import functools
import logging
import math
import os
import random
import select
import sys
import threading
import time
import tty

import serial

from press_cell.hardware import press_ascii_protocol as ap
from press_cell.hardware import press_modbus as mb
from press_cell.hardware.press_driver import (
    PressConnectionError,
    PressDeviceFault,
    PressDriver,
    PressError,
)
from press_cell.timebase import Clock, MonotonicClock

_LOG = logging.getLogger("press_emulator")

HOLD_BAND_FRACTION = 0.01       # press's own hold band: +-1 % of setpoint [est]
HOLD_BAND_MIN_FRACTION_FS = 0.001  # ... but never tighter than 0.1 % of load-cell FS [est]
LOADED_FRACTION_FS = 0.02       # above 2 % FS the press counts as loaded, watchdog armed [est]
UNLOADED_FRACTION_FS = 0.01     # UNLOAD ends below 1 % FS [est]
DEFAULT_MODEL = "PC-EMU-1"


class ScaledClock:
    """Monotonic wall time multiplied by ``time_scale``, starting at 0 (a ``Clock``)."""

    def __init__(self, time_scale: float = 1.0) -> None:
        if not time_scale > 0.0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        self.time_scale = float(time_scale)
        self._t0 = time.monotonic()

    def now(self) -> float:
        """Return scaled time since construction, s."""
        return (time.monotonic() - self._t0) * self.time_scale


class DeviceRefusal(Exception):
    """The emulated press refuses a command; ``code`` is the ASCII error number."""

    def __init__(self, code: ap.ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def fault_code_from_text(text: str) -> ap.FaultCode:
    """Map a ``PressReading.device_fault`` text onto the protocol's fault codes."""
    lowered = text.lower()
    for words, code in (
        (("watchdog",), ap.FaultCode.WATCHDOG),
        (("relief", "overload"), ap.FaultCode.RELIEF),
        (("sensor", "load cell", "load-cell"), ap.FaultCode.SENSOR),
        (("travel", "stroke"), ap.FaultCode.OVERTRAVEL),
    ):
        if any(word in lowered for word in words):
            return code
    return ap.FaultCode.DEVICE


class EmulatedPressDevice:
    """The press's own electronics: sequencer, hold timer, comms watchdog, unit conversion.

    Protocol-neutral and thread-safe; the ASCII and Modbus servers call it. ``sim`` is a
    ``PressDriver`` in SUPERVISORY mode (``SimulatedPress``); ``clock`` is the sim's clock;
    ``link_clock`` times the comms watchdog (wall time by default; tests may pass a
    ``SimulatedClock`` to run the device in lockstep without a pty).
    """

    def __init__(
        self,
        sim: PressDriver,
        clock: Clock,
        *,
        model: str = DEFAULT_MODEL,
        die_mm: float = 13.0,
        watchdog_ms: float = 500.0,
        link_clock: Clock | None = None,
        events=None,
    ) -> None:
        self.sim = sim
        self.link_clock = link_clock or MonotonicClock()
        self.clock = clock
        self.model = model
        self.die_mm = float(die_mm)
        self.watchdog_ms = float(watchdog_ms)
        self.setpoint_mpa = 0.0
        self.ramp_mpa_s = 5.0
        self.hold_s = 0.0
        self.tare_samples = ap.DEFAULT_TARE_SAMPLES
        self.tare_offset_kn = 0.0
        self.phase = ap.Phase.IDLE
        self.fault = ap.FaultCode.NONE
        self.sample_counter = 0
        self._events = events or (lambda text: None)
        self.lock = threading.RLock()
        self._phase_start_s = clock.now()
        self._hold_start_s = math.nan
        self._ramp_end_s = math.nan
        self._relief_seen = False
        self._last_command_wall_s = self.link_clock.now()
        self._reading = sim.read()
        caps = sim.capabilities
        self.rated_n = caps.rated_force_n
        self.full_scale_n = caps.force_full_scale_n
        self.stroke_m = caps.stroke_m

    # ----- helpers -----
    @property
    def area_m2(self) -> float:
        """Return the die face area, m^2."""
        return math.pi * (self.die_mm * 1e-3) ** 2 / 4.0

    def _mpa_to_n(self, pressure_mpa: float) -> float:
        return pressure_mpa * 1e6 * self.area_m2

    def _set_phase(self, phase: ap.Phase) -> None:
        if phase is not self.phase:
            self.phase = phase
            self._phase_start_s = self.clock.now()

    def _latch(self, fault: ap.FaultCode, why: str) -> None:
        """Latch a fault, vent, and report it once."""
        if self.fault is ap.FaultCode.NONE:
            self.fault = fault
            try:
                self.sim.vent()
            except PressError as exc:       # e.g. the simulated hydraulics do not answer
                why = f"{why}; vent failed: {exc}"
            self._set_phase(ap.Phase.FAULT)
            force_n = self._reading.force_n
            self._events(f"fault E{int(fault):02d} {fault.name.lower()} vented "
                         f"force_n={force_n:.1f} reason={why}")

    def _band_n(self) -> float:
        return max(HOLD_BAND_FRACTION * self._mpa_to_n(self.setpoint_mpa),
                   HOLD_BAND_MIN_FRACTION_FS * self.full_scale_n)

    def _command_sim(self, setpoint_mpa: float) -> None:
        """Command the simulated inner loop and note when its ramp reference arrives."""
        target_n, ramp_n_s = self._mpa_to_n(setpoint_mpa), self._mpa_to_n(self.ramp_mpa_s)
        self.sim.command_setpoint(target_n, ramp_n_s)
        force_n = self._reading.force_n
        distance_n = 0.0 if math.isnan(force_n) else abs(target_n - force_n)
        self._ramp_end_s = self.clock.now() + distance_n / ramp_n_s

    # ----- periodic update (ticker thread) -----
    def tick(self) -> None:
        """Advance the sequencer: read the physics, phases, hold timer, watchdog, faults."""
        with self.lock:
            try:
                reading = self.sim.read()
            except PressConnectionError as exc:
                # The press electronics lost their own hydraulics/sensor bus (SimulatedPress
                # "comms_stall"): the last sample is stale, so say so instead of repeating it.
                self._latch(ap.FaultCode.DEVICE, f"internal bus: {exc}")
                return
            self._reading = reading
            if self.fault is not ap.FaultCode.NONE and not reading.vented:
                self.sim.vent()     # a latched fault keeps the press vented (retry a failed vent)
            self.sample_counter = (self.sample_counter + 1) & 0xFFFF
            now_s = self.clock.now()
            force_n = reading.force_n
            self._relief_seen |= reading.relief_open
            if reading.device_fault:
                self._latch(fault_code_from_text(reading.device_fault), reading.device_fault)
            elif math.isnan(force_n):
                self._latch(ap.FaultCode.SENSOR, "load cell reads NaN")
            loaded = self.phase in (ap.Phase.RAMP, ap.Phase.HOLD, ap.Phase.UNLOAD) or (
                not math.isnan(force_n) and force_n > LOADED_FRACTION_FS * self.full_scale_n)
            idle_ms = (self.link_clock.now() - self._last_command_wall_s) * 1e3
            if self.watchdog_ms > 0 and loaded and idle_ms > self.watchdog_ms \
                    and self.fault is ap.FaultCode.NONE:
                self._latch(ap.FaultCode.WATCHDOG, f"no command for {idle_ms:.0f} ms")
                return
            target_n = self._mpa_to_n(self.setpoint_mpa)
            if self.phase is ap.Phase.RAMP and now_s >= self._ramp_end_s \
                    and abs(force_n - target_n) <= self._band_n():
                self._set_phase(ap.Phase.HOLD)
                self._hold_start_s = now_s
            elif self.phase is ap.Phase.HOLD and self.hold_s > 0 \
                    and now_s - self._hold_start_s >= self.hold_s:
                self._unload()
            elif self.phase is ap.Phase.UNLOAD and \
                    force_n < UNLOADED_FRACTION_FS * self.full_scale_n:
                self._set_phase(ap.Phase.IDLE)

    def feed(self) -> None:
        """Note a valid command from the host (feeds the comms watchdog)."""
        with self.lock:
            self._last_command_wall_s = self.link_clock.now()

    # ----- reports -----
    def flags(self) -> ap.StatusFlag:
        """Return the status flags of the latest sample (RELIEF is not cleared here)."""
        flags = ap.StatusFlag(0)
        force_n = self._reading.force_n
        if self.phase in (ap.Phase.RAMP, ap.Phase.HOLD, ap.Phase.UNLOAD):
            flags |= ap.StatusFlag.RUN
        if self.phase is ap.Phase.HOLD and abs(force_n - self._mpa_to_n(self.setpoint_mpa)) \
                <= self._band_n():
            flags |= ap.StatusFlag.HOLD
        if self._reading.vented or self.phase in (ap.Phase.VENTED, ap.Phase.FAULT):
            flags |= ap.StatusFlag.VENT
        if self._relief_seen or self._reading.relief_open:
            flags |= ap.StatusFlag.RELIEF
        if self.fault is not ap.FaultCode.NONE:
            flags |= ap.StatusFlag.FAULT
        if self.fault is ap.FaultCode.WATCHDOG:
            flags |= ap.StatusFlag.WATCHDOG
        if not math.isnan(force_n) and force_n > self.rated_n:
            flags |= ap.StatusFlag.OVERLOAD
        if math.isnan(force_n):
            flags |= ap.StatusFlag.SENSOR
        return flags

    def load(self) -> ap.LoadReply:
        """Return the load line; clears the RELIEF latch like a real indicator's peak flag."""
        with self.lock:
            flags = self.flags()
            self._relief_seen = False
            reading = self._reading
            force_n = 0.0 if math.isnan(reading.force_n) else reading.force_n
            force_kn = min(max(force_n * 1e-3, ap.FORCE_KN.minimum), ap.FORCE_KN.maximum)
            pressure_mpa = min(max(force_n / self.area_m2 * 1e-6, ap.PRESSURE_MPA.minimum),
                               ap.PRESSURE_MPA.maximum)
            position_mm = min(max(reading.ram_position_m * 1e3, ap.POSITION_MM.minimum),
                              ap.POSITION_MM.maximum)
            return ap.LoadReply(force_kn, pressure_mpa, position_mm, flags)

    def state(self) -> ap.StateReply:
        """Return the full state line."""
        with self.lock:
            return ap.StateReply(
                load=self.load(), setpoint_mpa=self.setpoint_mpa, ramp_mpa_s=self.ramp_mpa_s,
                hold_s=self.hold_s, die_mm=self.die_mm, phase=self.phase,
                phase_time_s=max(0.0, self.clock.now() - self._phase_start_s), fault=self.fault,
            )

    def identity(self) -> ap.IdentityReply:
        """Return the identity."""
        return ap.IdentityReply(self.model, self.rated_n * 1e-3, self.full_scale_n * 1e-3,
                                self.stroke_m * 1e3)

    # ----- commands -----
    def set_setpoint(self, setpoint_mpa: float) -> None:
        """Set the pressure setpoint; retarget at once when running (setpoint streaming)."""
        with self.lock:
            limit_mpa = self.rated_n / self.area_m2 * 1e-6
            if not 0.0 <= setpoint_mpa <= limit_mpa:
                raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE,
                                    f"setpoint {setpoint_mpa} MPa above {limit_mpa:.1f} MPa "
                                    f"(press rating on a {self.die_mm} mm die)")
            changed = setpoint_mpa != self.setpoint_mpa
            self.setpoint_mpa = float(setpoint_mpa)
            if changed and self.phase in (ap.Phase.RAMP, ap.Phase.HOLD):
                self._command_sim(self.setpoint_mpa)
                if abs(self._reading.force_n - self._mpa_to_n(setpoint_mpa)) > self._band_n():
                    self._set_phase(ap.Phase.RAMP)

    def set_ramp(self, ramp_mpa_s: float) -> None:
        """Set the ramp rate; applies at once when running."""
        with self.lock:
            if not ap.RAMP_MPA_S.minimum <= ramp_mpa_s <= ap.RAMP_MPA_S.maximum:
                raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE, f"ramp {ramp_mpa_s} MPa/s")
            self.ramp_mpa_s = float(ramp_mpa_s)
            if self.phase in (ap.Phase.RAMP, ap.Phase.HOLD):
                self._command_sim(self.setpoint_mpa)
            elif self.phase is ap.Phase.UNLOAD:
                self._command_sim(0.0)

    def set_hold(self, hold_s: float) -> None:
        """Set the hold time (0 = hold until stop)."""
        with self.lock:
            if not 0.0 <= hold_s <= ap.HOLD_S.maximum:
                raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE, f"hold {hold_s} s")
            self.hold_s = float(hold_s)

    def set_die(self, die_mm: float) -> None:
        """Set the die diameter (refused while running)."""
        with self.lock:
            if not ap.DIE_MM.minimum <= die_mm <= ap.DIE_MM.maximum:
                raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE, f"die {die_mm} mm")
            if self.phase in (ap.Phase.RAMP, ap.Phase.HOLD, ap.Phase.UNLOAD):
                raise DeviceRefusal(ap.ErrorCode.NOT_ALLOWED_NOW, "die change while running")
            self.die_mm = float(die_mm)

    def set_watchdog(self, watchdog_ms: float) -> None:
        """Set the comms watchdog (0 = off)."""
        with self.lock:
            if not (watchdog_ms == 0 or ap.WATCHDOG_MIN_MS <= watchdog_ms <= 9999):
                raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE, f"watchdog {watchdog_ms} ms")
            self.watchdog_ms = float(watchdog_ms)

    def set_tare_samples(self, samples: int) -> None:
        """Set the number of samples the next tare averages."""
        if not 1 <= samples <= 999:
            raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE, f"tare samples {samples}")
        self.tare_samples = int(samples)

    def go(self) -> None:
        """Start (or retarget) the press's loop toward the setpoint."""
        with self.lock:
            if self.fault is not ap.FaultCode.NONE:
                raise DeviceRefusal(ap.ErrorCode.FAULT_LATCHED,
                                    f"fault E{int(self.fault):02d} latched")
            if self.phase in (ap.Phase.RAMP, ap.Phase.HOLD):
                return      # already running; SP retargets by itself
            self._command_sim(self.setpoint_mpa)
            self._set_phase(ap.Phase.RAMP)

    def _unload(self) -> None:
        self._command_sim(0.0)
        self._set_phase(ap.Phase.UNLOAD)

    def stop(self) -> None:
        """Unload at the ramp rate (no-op when not running)."""
        with self.lock:
            if self.phase in (ap.Phase.RAMP, ap.Phase.HOLD):
                self._unload()

    def vent(self) -> None:
        """Open the dump valve."""
        with self.lock:
            self.sim.vent()
            if self.phase is not ap.Phase.FAULT:
                self._set_phase(ap.Phase.VENTED)

    def tare(self, samples: int | None = None) -> float:
        """Zero the load cell when unloaded; return the offset removed, kN."""
        with self.lock:
            if math.isnan(self._reading.force_n):
                raise DeviceRefusal(ap.ErrorCode.SENSOR_FAILED, "load cell failed")
            if self.phase in (ap.Phase.RAMP, ap.Phase.HOLD, ap.Phase.UNLOAD) or \
                    abs(self._reading.force_n) > LOADED_FRACTION_FS * self.full_scale_n:
                raise DeviceRefusal(ap.ErrorCode.NOT_ALLOWED_NOW, "tare while loaded")
            offset_n = self.sim.tare(samples or self.tare_samples)
            self.tare_offset_kn = offset_n * 1e-3
            self._reading = self.sim.read()
            return self.tare_offset_kn

    def reset(self) -> None:
        """Clear a latched fault; the press stays vented."""
        with self.lock:
            if math.isnan(self._reading.force_n):
                raise DeviceRefusal(ap.ErrorCode.SENSOR_FAILED, "load cell still failed")
            reset_sim = getattr(self.sim, "reset_fault", None)
            if callable(reset_sim):
                reset_sim()
            cause = self.sim.read().device_fault
            if cause:
                raise DeviceRefusal(ap.ErrorCode.FAULT_LATCHED, f"cause persists: {cause}")
            if self.fault is not ap.FaultCode.NONE:
                self.fault = ap.FaultCode.NONE
                self._set_phase(ap.Phase.VENTED)


class FaultyLine:
    """Relay bytes between the host pty and the device pty and inject cable faults."""

    def __init__(self, latency_s: float = 0.0, seed: int = 0,
                 pace_baudrate: int | None = None) -> None:
        self.host_master, host_slave = os.openpty()
        self.device_master, device_slave = os.openpty()
        for fd in (host_slave, device_slave):
            tty.setraw(fd)      # no echo, no line discipline until a driver configures it
        # Keep both slave fds open: a pty whose last slave closes returns EIO to the master.
        self._slaves = (host_slave, device_slave)
        self.host_path = os.ttyname(host_slave)
        self.device_path = os.ttyname(device_slave)
        self.latency_s = float(latency_s)
        # Pacing: replies leave at 10 bits per byte (8N1) of ``pace_baudrate``, one after the
        # other; commands (a few bytes) are passed at once. None: a pty's unlimited speed.
        self.byte_time_s = 0.0 if pace_baudrate is None else 10.0 / pace_baudrate
        self._line_free_s = 0.0
        self.unplugged = False
        self.stalled = False
        self.garbage = False
        self.hung_up = False
        self._rng = random.Random(seed)
        self._pending: collections.deque = collections.deque()     # (due_s, bytes) to host
        self._wake_r, self._wake_w = os.pipe()
        self.lock = threading.Lock()
        self._closing = False
        self.thread = threading.Thread(target=self._run, name="faulty-line", daemon=True)

    def start(self) -> None:
        """Start relaying."""
        self.thread.start()

    def inject_noise(self, count: int) -> None:
        """Send ``count`` random bytes to the host once."""
        with self.lock:
            self._pending.append((time.monotonic(), self._noise(count)))
        os.write(self._wake_w, b"x")

    def hangup(self) -> None:
        """Close the host side of the line for good (the port disappears)."""
        with self.lock:
            if not self.hung_up:
                self.hung_up = True
                # Close the master only: the slave fd we keep reserves the pty number, so no
                # new pty (of another emulator) appears under this path while a driver retries.
                os.close(self.host_master)
        os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Stop relaying and close every file descriptor of the line."""
        self._closing = True
        os.write(self._wake_w, b"x")
        if self.thread.is_alive():
            self.thread.join(timeout=1.0)
        with self.lock:
            fds = [self.device_master, *self._slaves, self._wake_r, self._wake_w]
            if not self.hung_up:
                fds.append(self.host_master)
                self.hung_up = True
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def _noise(self, count: int) -> bytes:
        return bytes(self._rng.choice(range(0x80, 0x100)) for _ in range(count))

    def _corrupt(self, data: bytes) -> bytes:
        return bytes(b if b in (0x0D, 0x0A) else self._rng.randrange(0x80, 0x100) for b in data)

    def _run(self) -> None:
        """Relay loop: host -> device immediately, device -> host after the latency."""
        while not self._closing:
            with self.lock:
                due = self._pending[0][0] if self._pending else None
                host_fd = None if self.hung_up else self.host_master
            timeout_s = 0.05 if due is None else max(0.0, due - time.monotonic())
            fds = [self.device_master, self._wake_r] + ([host_fd] if host_fd is not None else [])
            try:
                readable, _, _ = select.select(fds, [], [], timeout_s)
            except (OSError, ValueError):
                continue    # the host fd was closed by hangup() in the meantime
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
            if host_fd is not None and host_fd in readable:
                try:
                    data = os.read(host_fd, 4096)
                except OSError:
                    data = b""
                if data and not self.unplugged:
                    os.write(self.device_master, data)
            if self.device_master in readable:
                data = os.read(self.device_master, 4096)
                if not (self.unplugged or self.stalled or self.hung_up):
                    if self.garbage:
                        data = self._corrupt(data)
                    with self.lock:
                        start_s = max(time.monotonic() + self.latency_s, self._line_free_s)
                        self._line_free_s = start_s + len(data) * self.byte_time_s
                        self._pending.append((self._line_free_s, data))
            self._deliver()

    def _deliver(self) -> None:
        """Write every pending chunk whose due time has come."""
        now_s = time.monotonic()
        with self.lock:
            while self._pending and self._pending[0][0] <= now_s:
                _, data = self._pending.popleft()
                if self.hung_up:
                    continue
                try:
                    os.write(self.host_master, data)
                except OSError:
                    pass        # nobody has the port open: bytes are lost, as on a real line


class AsciiServer:
    """Serve protocol 1 on the device side of the line."""

    def __init__(self, device: EmulatedPressDevice, port_path: str, baudrate: int) -> None:
        self.device = device
        self.port = serial.Serial(port_path, baudrate=baudrate, timeout=0.005)
        self.stream_hz = 0.0
        self._next_stream_s = 0.0
        self._closing = False
        self.thread = threading.Thread(target=self._run, name="ascii-server", daemon=True)

    def start(self) -> None:
        """Start serving."""
        self.thread.start()

    def close(self) -> None:
        """Stop serving and close the device port."""
        self._closing = True
        if self.thread.is_alive():
            self.thread.join(timeout=1.0)
        self.port.close()

    def handle(self, line: bytes) -> ap.Reply | None:
        """Execute one command line; return the reply (``ERR nn`` on refusal, None: silence)."""
        dev = self.device
        try:
            command = ap.decode_command(line)
        except ap.AsciiFrameError as exc:
            return ap.ErrorReply(exc.code)
        dev.feed()
        name, value = command.name, command.value
        N = ap.CommandName
        try:
            if name is N.LOAD:
                return dev.load()
            if name is N.STATE:
                return dev.state()
            if name is N.IDENTIFY:
                return dev.identity()
            if name is N.TARE:
                return ap.TareReply(dev.tare(None if value is None else int(value)))
            setters = {N.SETPOINT: dev.set_setpoint, N.RAMP: dev.set_ramp, N.HOLD: dev.set_hold,
                       N.DIE: dev.set_die, N.WATCHDOG: dev.set_watchdog}
            actions = {N.GO: dev.go, N.STOP: dev.stop, N.VENT: dev.vent, N.RESET: dev.reset}
            if name in setters:
                setters[name](value)
            elif name in actions:
                actions[name]()
            elif name is N.STREAM:
                self.stream_hz = value
                self._next_stream_s = time.monotonic()
            return ap.OkReply()
        except DeviceRefusal as exc:
            _LOG.info("refused %r: %s", line, exc)
            return ap.ErrorReply(exc.code)
        except PressConnectionError:
            return None     # the simulated electronics stalled: no reply at all
        except PressDeviceFault:
            return ap.ErrorReply(ap.ErrorCode.FAULT_LATCHED)
        except PressError as exc:
            _LOG.info("simulated press refused %r: %s", line, exc)
            return ap.ErrorReply(ap.ErrorCode.NOT_ALLOWED_NOW)

    def _run(self) -> None:
        """Read lines, answer each; emit stream lines when streaming."""
        buffer = b""
        discarding = False
        while not self._closing:
            try:
                chunk = self.port.read(max(1, self.port.in_waiting))
            except (serial.SerialException, OSError):
                return
            buffer += chunk
            while True:
                if discarding:      # skip the rest of an overlong line, up to its CR LF
                    end = buffer.find(ap.TERMINATOR)
                    if end < 0:
                        buffer = buffer[-1:] if buffer.endswith(b"\r") else b""
                        break
                    buffer, discarding = buffer[end + len(ap.TERMINATOR):], False
                elif ap.TERMINATOR in buffer:
                    line, buffer = buffer.split(ap.TERMINATOR, 1)
                    reply = self.handle(line)
                    if reply is not None:
                        self.port.write(ap.encode_reply(reply))
                elif len(buffer) > ap.MAX_COMMAND_BYTES + buffer.endswith(b"\r"):
                    self.port.write(ap.encode_reply(ap.ErrorReply(ap.ErrorCode.LINE_TOO_LONG)))
                    discarding = True
                else:
                    break
            if self.stream_hz > 0 and time.monotonic() >= self._next_stream_s:
                self._next_stream_s += 1.0 / self.stream_hz
                self.port.write(ap.encode_reply(ap.StreamSample(self.device.load())))


class ModbusServer:
    """Serve protocol 2 (pymodbus RTU server) on the device side of the line."""

    def __init__(self, device: EmulatedPressDevice, port_path: str, baudrate: int,
                 device_id: int = mb.DEFAULT_DEVICE_ID) -> None:
        from pymodbus import FramerType
        from pymodbus.server import ModbusSerialServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self.device = device
        bits = functools.partial(SimData, datatype=DataType.BITS)
        regs = functools.partial(SimData, datatype=DataType.REGISTERS)
        sim_device = SimDevice(
            id=device_id,
            simdata=(
                [bits(0, values=[False] * mb.COIL_COUNT)],
                [bits(0, values=[False] * mb.DISCRETE_INPUT_COUNT)],
                [regs(0, values=[0] * mb.HOLDING_REGISTER_COUNT)],
                [regs(0, values=[0] * mb.INPUT_REGISTER_COUNT)],
            ),
            action=self._action,
        )
        self._server_args = (sim_device, FramerType, ModbusSerialServer, port_path, baudrate)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._server = None
        self.thread = threading.Thread(target=self._run, name="modbus-server", daemon=True)

    def start(self) -> None:
        """Start the asyncio server thread and wait until it listens on the port."""
        self.thread.start()
        if not self._ready.wait(5.0):
            raise RuntimeError("pymodbus RTU server did not start listening within 5 s")

    def close(self) -> None:
        """Shut the pymodbus server down (closes its port) and end the thread."""
        if self._loop is not None and self._server is not None and self.thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._server.shutdown(), self._loop)
            try:
                future.result(timeout=2.0)
            except (RuntimeError, TimeoutError, OSError) as exc:    # best effort
                _LOG.warning("pymodbus server shutdown: %s", exc)
            self.thread.join(timeout=2.0)

    def _run(self) -> None:
        """Run the pymodbus server in this thread's own event loop."""
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        sim_device, framer_type, server_class, port_path, baudrate = self._server_args
        server = server_class(sim_device, framer=framer_type.RTU, port=port_path,
                              baudrate=baudrate)
        self._server = server
        await server.serve_forever(background=True)
        self._ready.set()
        await server.serving

    async def _action(self, function_code, start_address, address, count, registers, values):
        """Serve one request from the device state (reads) or apply it (writes)."""
        from pymodbus.constants import ExcCodes

        dev = self.device
        dev.feed()
        try:
            if values is None and function_code in (5, 6, 15, 16):
                return None     # pymodbus checks the address range before a write
            if function_code == 4:
                self._fill_input(registers, start_address)
            elif function_code == 3:
                self._fill_holding(registers, start_address)
            elif function_code == 2:
                self._fill_discrete(registers)
            elif function_code == 1:
                registers[:] = [0] * len(registers)     # coils read back 0
            elif function_code in (5, 15):
                for offset, on in enumerate(values):
                    if on:
                        self._trigger(mb.Coil(address + offset))
            elif function_code in (6, 16):
                self._write_holding(address, list(values))
        except DeviceRefusal as exc:
            return {ap.ErrorCode.FAULT_LATCHED: ExcCodes.DEVICE_FAILURE,
                    ap.ErrorCode.SENSOR_FAILED: ExcCodes.DEVICE_FAILURE,
                    ap.ErrorCode.NOT_ALLOWED_NOW: ExcCodes.DEVICE_BUSY,
                    ap.ErrorCode.UNKNOWN_COMMAND: ExcCodes.ILLEGAL_ADDRESS}.get(
                        exc.code, ExcCodes.ILLEGAL_VALUE)
        except ValueError:
            return ExcCodes.ILLEGAL_ADDRESS
        except PressError as exc:
            _LOG.info("simulated press refused function %d: %s", function_code, exc)
            return ExcCodes.DEVICE_FAILURE
        return None

    def _fill_input(self, registers: list[int], start: int) -> None:
        dev = self.device
        state = dev.state()
        load = state.load
        values = [0] * mb.INPUT_REGISTER_COUNT
        R = mb.InputRegister
        for reg, value in ((R.FORCE_KN, load.force_kn), (R.PRESSURE_MPA, load.pressure_mpa),
                           (R.POSITION_MM, load.position_mm), (R.PHASE_TIME_S, state.phase_time_s),
                           (R.TARE_OFFSET_KN, dev.tare_offset_kn), (R.RATED_KN, dev.rated_n * 1e-3),
                           (R.FULL_SCALE_KN, dev.full_scale_n * 1e-3),
                           (R.STROKE_MM, dev.stroke_m * 1e3)):
            values[reg:reg + 2] = mb.float_to_registers(value)
        values[R.STATUS] = int(load.flags)
        values[R.FAULT] = int(state.fault)
        values[R.PHASE] = int(state.phase)
        values[R.SAMPLE_COUNTER] = dev.sample_counter
        values[R.PROTOCOL_VERSION] = ap.PROTOCOL_VERSION
        values[R.MODEL:R.MODEL + mb.MODEL_CHARS // 2] = mb.model_to_registers(dev.model)
        registers[0:len(values)] = values

    def _fill_holding(self, registers: list[int], start: int) -> None:
        dev = self.device
        H = mb.HoldingRegister
        values = [0] * mb.HOLDING_REGISTER_COUNT
        for reg, value in ((H.SETPOINT_MPA, dev.setpoint_mpa), (H.RAMP_MPA_S, dev.ramp_mpa_s),
                           (H.HOLD_S, dev.hold_s), (H.DIE_MM, dev.die_mm)):
            values[reg:reg + 2] = mb.float_to_registers(value)
        values[H.WATCHDOG_MS] = int(dev.watchdog_ms)
        values[H.TARE_SAMPLES] = dev.tare_samples
        registers[0:len(values)] = values

    def _fill_discrete(self, registers: list[int]) -> None:
        registers[0] = int(self.device.flags()) & 0xFF

    def _trigger(self, coil: mb.Coil) -> None:
        dev = self.device
        {mb.Coil.GO: dev.go, mb.Coil.STOP: dev.stop, mb.Coil.VENT: dev.vent,
         mb.Coil.TARE: dev.tare, mb.Coil.RESET: dev.reset}[coil]()

    def _write_holding(self, address: int, values: list[int]) -> None:
        """Apply a holding-register write; floats must be written whole."""
        dev = self.device
        H = mb.HoldingRegister
        setters = {H.SETPOINT_MPA: dev.set_setpoint, H.RAMP_MPA_S: dev.set_ramp,
                   H.HOLD_S: dev.set_hold, H.DIE_MM: dev.set_die}
        offset = 0
        while offset < len(values):
            reg = address + offset
            if reg in mb.HOLDING_FLOATS:
                if offset + 2 > len(values):
                    raise ValueError(f"half a float32 at {reg}")
                value = mb.registers_to_float(values[offset:offset + 2])
                if math.isnan(value):
                    raise DeviceRefusal(ap.ErrorCode.OUT_OF_RANGE, "NaN")
                setters[H(reg)](value)
                offset += 2
            elif reg == H.WATCHDOG_MS:
                dev.set_watchdog(values[offset])
                offset += 1
            elif reg == H.TARE_SAMPLES:
                dev.set_tare_samples(values[offset])
                offset += 1
            else:
                raise ValueError(f"register {reg} is the second half of a float32")


class Ticker:
    """Call ``device.tick()`` at a fixed wall rate on its own thread."""

    def __init__(self, device: EmulatedPressDevice, rate_hz: float) -> None:
        self.device = device
        self.period_s = 1.0 / rate_hz
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="press-ticker", daemon=True)

    def start(self) -> None:
        """Start ticking."""
        self.thread.start()

    def close(self) -> None:
        """Stop ticking."""
        self._stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=1.0)

    def _run(self) -> None:
        next_s = time.monotonic()
        last_error = ""
        while not self._stop.is_set():
            try:
                self.device.tick()
                last_error = ""
            except PressError as exc:
                if str(exc) != last_error:      # log each distinct failure once
                    _LOG.error("simulated press failed: %s", exc)
                    last_error = str(exc)
            next_s += self.period_s
            self._stop.wait(max(0.0, next_s - time.monotonic()))


def build_simulated_press(clock: Clock, seed: int) -> PressDriver:
    """Return a connected ``SimulatedPress`` in SUPERVISORY mode on ``clock``."""
    from press_cell.hardware.press_driver import PressMode
    from press_cell.hardware.press_sim import SimulatedPress

    sim = SimulatedPress(clock, seed=seed, modes=(PressMode.SUPERVISORY,),
                         model="press_cell-emulated")
    sim.connect()
    return sim


class PressEmulator:
    """The whole emulator: line, device, server and ticker; used by the CLI and by tests."""

    def __init__(self, protocol: str, *, sim: PressDriver | None = None, time_scale: float = 1.0,
                 latency_ms: float = 0.0, watchdog_ms: float = 500.0, die_mm: float = 13.0,
                 baudrate: int = 115200, tick_hz: float = 500.0, seed: int = 0,
                 pace: bool = False, events=None) -> None:
        if protocol not in ("ascii", "modbus"):
            raise ValueError(f"protocol must be 'ascii' or 'modbus', got {protocol!r}")
        self.clock = ScaledClock(time_scale)
        self.sim = sim or build_simulated_press(self.clock, seed)
        self.device = EmulatedPressDevice(self.sim, self.clock,
                                          die_mm=die_mm, watchdog_ms=watchdog_ms, events=events)
        self.line = FaultyLine(latency_s=latency_ms * 1e-3, seed=seed,
                               pace_baudrate=baudrate if pace else None)
        server_class = AsciiServer if protocol == "ascii" else ModbusServer
        self.server = server_class(self.device, self.line.device_path, baudrate)
        self.ticker = Ticker(self.device, tick_hz)

    @property
    def port(self) -> str:
        """Return the serial port path a driver opens."""
        return self.line.host_path

    def start(self) -> PressEmulator:
        """Start all threads; return self."""
        self.ticker.start()
        self.line.start()
        self.server.start()
        return self

    def close(self) -> None:
        """Stop all threads (the process may exit afterwards)."""
        self.ticker.close()
        self.server.close()
        self.line.close()

    def control(self, text: str) -> str:
        """Execute one control-channel command; return ``ok ...`` or ``error ...``."""
        words = text.split()
        try:
            if words[:1] == ["fault"] and len(words) >= 2:
                self._fault(words[1], words[2:])
            elif words[:1] == ["sim"] and len(words) >= 2:
                self._sim_fault(words[1], words[2:])
            elif words == ["state"]:
                return "ok " + ap.encode_reply(self.device.state()).decode().strip()
            else:
                return f"error unknown control command {text.strip()!r}"
        except (ValueError, TypeError, IndexError, PressError) as exc:
            return f"error {exc}"
        return "ok " + text.strip()

    def _sim_fault(self, kind: str, args: list[str]) -> None:
        """Inject (or with ``clear``, end) a physical fault of the simulated press."""
        params = {key: float(value) for key, value in (arg.split("=", 1) for arg in args)}
        with self.device.lock:
            if kind == "clear":
                self.sim.clear_faults()
            else:
                self.sim.inject_fault(kind, **params)

    def _fault(self, name: str, args: list[str]) -> None:
        line = self.line
        switch = args[:1] != ["off"]
        if name == "none":
            line.unplugged = line.stalled = line.garbage = False
            line.latency_s = 0.0
        elif name == "unplug":
            line.unplugged = True
        elif name == "plug":
            line.unplugged = False
        elif name == "hangup":
            line.hangup()
        elif name == "stall":
            line.stalled = switch
        elif name == "garbage":
            line.garbage = switch
        elif name == "noise":
            line.inject_noise(int(args[0]) if args else 16)
        elif name == "latency":
            line.latency_s = float(args[0]) * 1e-3
        else:
            raise ValueError(f"unknown fault {name!r}; allowed: none unplug plug hangup stall "
                             "garbage noise latency")


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m press_cell.hardware.press_emulator",
        description="Emulated serial press (ASCII or Modbus RTU) on a pseudo-terminal.")
    parser.add_argument("--protocol", choices=("ascii", "modbus"), required=True)
    parser.add_argument("--fault", action="append", default=[],
                        choices=("unplug", "stall", "garbage"),
                        help="cable fault active from the start (repeatable)")
    parser.add_argument("--latency-ms", type=float, default=0.0,
                        help="reply latency, ms (FTDI adapters: 16)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="physics runs this many times faster than wall time")
    parser.add_argument("--watchdog-ms", type=float, default=500.0,
                        help="comms watchdog at power-up, ms (0 = off)")
    parser.add_argument("--die-mm", type=float, default=13.0, help="die diameter at power-up")
    parser.add_argument("--baudrate", type=int, default=115200, choices=ap.BAUD_RATES)
    parser.add_argument("--pace", action="store_true",
                        help="pace replies at --baudrate (10 bits per byte), like a real line")
    parser.add_argument("--tick-hz", type=float, default=500.0, help="press sample rate, Hz")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-level", default="WARNING")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until ``quit`` or end of stdin."""
    args = _parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    out_lock = threading.Lock()

    def say(text: str) -> None:
        with out_lock:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()

    emulator = PressEmulator(
        args.protocol, time_scale=args.time_scale, latency_ms=args.latency_ms,
        watchdog_ms=args.watchdog_ms, die_mm=args.die_mm, baudrate=args.baudrate,
        tick_hz=args.tick_hz, seed=args.seed, pace=args.pace,
        events=lambda text: say("event " + text))
    for fault in args.fault:
        emulator.control(f"fault {fault}")
    emulator.start()
    say(emulator.port)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        if line.strip():
            say(emulator.control(line))
    emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
