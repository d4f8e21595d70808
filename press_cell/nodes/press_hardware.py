"""Build the press driver and clock the press node's ``hardware`` parameter asks for (no rclpy).

* ``sim``: ``SimulatedPress`` on a ``SimulatedClock``; the control loop runs in lockstep with it,
  paced at ``time_scale`` simulated seconds per wall second (0 = unpaced, as fast as the CPU
  runs; the loop then parks while idle, so simulated time only moves while a cycle runs).
* ``serial_ascii`` / ``serial_modbus``: ``AsciiSerialPress`` / ``ModbusPress`` on
  ``serial_port``, real time on a ``MonotonicClock`` shared by driver and loop (the supervisor's
  watchdog compares the sample stamps with the loop clock).

A prebuilt driver (the bringup shares one simulated workcell between devices) is passed in as
``PressHardware.prebuilt(driver, clock)``.
"""

import math
from dataclasses import dataclass

from press_cell.hardware.press_driver import PressDriver
from press_cell.timebase import MonotonicClock, SimulatedClock


class HardwareConfigError(ValueError):
    """The hardware parameters do not describe a press that can be built."""


@dataclass
class PressHardware:
    """A driver, the clock the loop runs on, and how the loop is paced."""

    driver: PressDriver
    clock: object
    lockstep: bool
    time_scale: float | None        # lockstep pacing (simulated s per wall s); None = unpaced
    kind: str                       # sim | serial_ascii | serial_modbus | prebuilt
    owns_driver: bool               # the node built it (and may load specimens into a sim)

    @property
    def simulated(self) -> bool:
        """Return whether the loop runs on a simulated clock."""
        return hasattr(self.clock, "advance")

    @classmethod
    def prebuilt(cls, driver: PressDriver, clock=None, time_scale: float | None = None):
        """Wrap a driver built elsewhere; lockstep when ``clock`` is a ``SimulatedClock``.

        Without a clock the loop runs in real time on a ``MonotonicClock``.
        """
        clock = clock if clock is not None else MonotonicClock()
        lockstep = hasattr(clock, "advance")
        return cls(driver, clock, lockstep, time_scale if lockstep else None, "prebuilt",
                   False)


def build_press_hardware(settings) -> PressHardware:
    """Return the ``PressHardware`` for ``settings`` (a ``PressSettings``)."""
    kind = settings.hardware
    if kind == "sim":
        from press_cell.hardware.press_sim import SimulatedPress

        scale = float(settings.time_scale)
        clock = SimulatedClock(time_scale=scale if scale > 0.0 else 1.0)
        driver = SimulatedPress(clock, rated_force_n=float(settings.sim_rated_force_n),
                                seed=int(settings.sim_seed))
        return PressHardware(driver, clock, True, scale if scale > 0.0 else None, kind, True)
    if kind in ("serial_ascii", "serial_modbus"):
        port = str(settings.serial_port)
        if not port:
            raise HardwareConfigError(f"hardware={kind} needs serial_port (a device path such "
                                      "as /dev/ttyUSB0 or a pyserial URL)")
        clock = MonotonicClock()
        common = dict(baudrate=int(settings.serial_baudrate),
                      die_diameter_m=float(settings.default_die_diameter_m),
                      timeout_s=float(settings.serial_timeout_s),
                      watchdog_s=float(settings.serial_watchdog_s), clock=clock)
        if kind == "serial_ascii":
            from press_cell.hardware.press_ascii import AsciiSerialPress

            driver = AsciiSerialPress(port, **common)
        else:
            from press_cell.hardware.press_modbus import ModbusPress

            driver = ModbusPress(port, device_id=int(settings.modbus_device_id), **common)
        return PressHardware(driver, clock, False, None, kind, True)
    raise HardwareConfigError(f"hardware={kind!r}; allowed: sim, serial_ascii, serial_modbus")


def loop_rate_hz(requested_hz: float, max_read_rate_hz: float, supervisory: bool) -> float:
    """Return the loop rate to run, Hz: the request, capped by what the press can serve.

    A valve press is read once per cycle: cap at its read-rate ceiling. A supervisory (serial)
    press is read and, while a cycle streams, also sent a setpoint in the same cycle: cap at
    half the ceiling (measured: the Modbus emulator at 200 Hz overran 1 cycle in 10).
    """
    if math.isfinite(max_read_rate_hz) and max_read_rate_hz > 0.0:
        ceiling = max_read_rate_hz / 2.0 if supervisory else max_read_rate_hz
        return min(float(requested_hz), float(ceiling))
    return float(requested_hz)


def sim_specimen(material: str, library, contact_area_m2: float, powder_mass_kg: float,
                 foil_thickness_m: float):
    """Return a simulated specimen of library ``material`` on ``contact_area_m2``, or None.

    Powders become a ``PowderCompact`` of ``powder_mass_kg`` in the die; foils an
    ``AlkaliFoil`` of ``foil_thickness_m`` on the rod face. Unknown or empty names give None.
    """
    if material in library.powders:
        from press_cell.physics.compaction import MATERIALS, PowderCompact

        physics = MATERIALS[library.powders[material].physics_material]
        return PowderCompact(physics, powder_mass_kg, contact_area_m2)
    if material in library.foils:
        from press_cell.physics import foil

        metal = getattr(foil, library.foils[material].physics_material)
        radius_m = math.sqrt(contact_area_m2 / math.pi)
        return foil.AlkaliFoil(metal, foil_thickness_m, radius_m)
    return None
