"""Parameters of the press node: declared up front with units, ranges and read-only flags.

``PRESS_PARAMETERS`` lists them (name, default, description with unit, range, read-only); the
node declares them with ``declare_press_parameters`` and reads a snapshot with
``read_press_settings``. Connection settings are read-only. Loop, gains and limits are read at
``configure`` (changing them takes effect at the next configure); rates of telemetry, the zone
threshold, the lease cap and the tare sample count apply at once. Goal checks always use the
current press capacity and die rating. ``check_parameter_change`` refuses a runtime change
that would exceed a hardware rating or break a cross-field rule, with a reason.
"""

import math
from dataclasses import dataclass

from press_cell.nodes.parameter_descriptor import describe

HARDWARE_KINDS = ("sim", "serial_ascii", "serial_modbus")

# name: (default, description, (low, high) or None, read_only)
PRESS_PARAMETERS = {
    "hardware": ("sim", "press backend: sim | serial_ascii | serial_modbus", None, True),
    "autostart": (False, "configure and activate right after construction", None, True),
    "serial_port": ("", "serial port of the press (path or pyserial URL)", None, True),
    "serial_baudrate": (115200, "serial baud rate, bit/s", (1200, 921600), True),
    "serial_timeout_s": (0.25, "reply timeout of one serial exchange, s", (0.01, 5.0), True),
    "serial_watchdog_s": (0.5, "press-side comms watchdog (0 = off), s", (0.0, 9.999), True),
    "modbus_device_id": (1, "Modbus RTU device id", (1, 247), True),
    "rate_hz": (500.0, "control loop rate, Hz (serial presses: capped at their poll rate)",
                (1.0, 2000.0), False),
    "state_rate_hz": (100.0, "~/state, ~/pressure, ~/wrench publish rate (<= rate_hz), Hz",
                      (1.0, 2000.0), False),
    "feedback_rate_hz": (20.0, "press_cycle feedback rate, Hz", (10.0, 100.0), False),
    "gain_plant_n_s": (5.0e4, "force rate at full valve demand on a stiff load, N/s",
                       (1.0e2, 1.0e8), False),
    "gain_valve_tau_s": (0.25, "valve + ram lag, s", (0.01, 5.0), False),
    "gain_leak_tau_s": (1000.0, "leak-down time constant for the hold feed-forward, s",
                        (1.0, 1.0e7), False),
    "gain_kp_per_s": (0.0, "proportional gain, 1/s (0 = 0.5 / valve tau)", (0.0, 1.0e3), False),
    "gain_ki_per_s2": (0.0, "integral gain, 1/s^2 (0 = kp^2 / 4)", (0.0, 1.0e5), False),
    "press_capacity_n": (0.0, "press capacity used for limits, N (0 = the press's rating; "
                         "never above it)", (0.0, 1.0e7), False),
    "die_rating_n": (98070.0, "rating of a die the library does not list, N (13 mm, 10 tf)",
                     (1.0, 1.0e7), False),
    "default_die_diameter_m": (0.013, "die diameter for idle telemetry and the serial press's "
                               "MPa conversion, m", (0.001, 0.2), False),
    "max_rate_pa_s": (50.0e6, "rate-of-rise limit of the supervisor, Pa/s", (1.0e3, 1.0e9),
                      False),
    "zone_threshold_pa": (0.2e6, "pressure below which the zone lease may be granted, Pa",
                          (0.0, 1.0e8), False),
    "released_pa": (0.1e6, "a cycle ends released below this pressure (< zone_threshold_pa), "
                    "Pa", (1.0e3, 1.0e7), False),
    "max_lease_s": (60.0, "longest zone lease, s", (0.1, 3600.0), False),
    "tare_samples": (50, "default readings averaged by ~/tare", (1, 999), False),
    "tare_on_activate": (True, "tare the load cell on activate (only when unloaded)", None,
                         False),
    "recipes_file": ("", "recipe file for recipe_name goals (empty = shipped recipes.yaml); "
                     "library.yaml is read from the same folder", None, False),
    "result_timeout_s": (7200.0, "how long a finished goal's result is kept, s (longer than "
                         "the longest recipe; read at construction)", (60.0, 86400.0), True),
    "frame_id": ("press_ram", "frame of ~/state, ~/pressure, ~/wrench (+z up)", None, False),
    "time_scale": (1.0, "sim: simulated seconds per wall second (0 = as fast as the CPU "
                   "allows, lockstep)", (0.0, 1000.0), False),
    "publish_clock": (False, "sim: publish the simulated time on /clock", None, False),
    "clock_rate_hz": (100.0, "sim: /clock publish rate, wall Hz", (1.0, 1000.0), False),
    "sim_rated_force_n": (147.1e3, "sim: press rating (hydraulic-15t), N", (1.0e3, 1.0e7),
                          False),
    "sim_seed": (0, "sim: noise seed", (0, 2 ** 31 - 1), False),
    "sim_load_specimen": (True, "sim: put a specimen of the goal's material under the ram",
                          None, False),
    "sim_powder_mass_mg": (200.0, "sim: powder charge of a compaction goal, mg",
                           (1.0, 10000.0), False),
    "sim_foil_thickness_um": (100.0, "sim: foil thickness of a foil goal, um", (5.0, 2000.0),
                              False),
    "sim_fault": ("", "sim only, applied when set at runtime: inject one simulated press "
                  "fault: sensor_stuck | sensor_nan | sensor_noise_burst[:rms_n] | "
                  "leak[:tau_s] | relief_trip[:force_n] | comms_stall[:duration_s] | clear",
                  None, False),
}


def _descriptor(name: str, default, description: str, bounds, read_only: bool):
    is_int = isinstance(default, int) and not isinstance(default, bool)
    return describe(description, read_only=read_only, name=name,
                    floats=bounds if isinstance(default, float) else None,
                    ints=bounds if is_int else None)


def declare_press_parameters(node) -> None:
    """Declare every press parameter on ``node`` with its descriptor."""
    for name, (default, description, bounds, read_only) in PRESS_PARAMETERS.items():
        node.declare_parameter(name, default, _descriptor(name, default, description, bounds,
                                                          read_only))


@dataclass(frozen=True)
class PressSettings:
    """The press node's parameters at one instant (names as the parameters, SI)."""

    values: dict

    def __getattr__(self, name):
        """Return parameter ``name``."""
        try:
            return self.values[name]
        except KeyError as exc:
            raise AttributeError(name) from exc


def read_press_settings(node) -> PressSettings:
    """Return the current parameter values of ``node``."""
    return PressSettings({name: node.get_parameter(name).value for name in PRESS_PARAMETERS})


def check_parameter_change(current: dict, changes: dict, press_rating_n: float,
                           max_read_rate_hz: float) -> str:
    """Return why ``changes`` (name -> value) must be refused, or "" to accept.

    ``press_rating_n`` (N) and ``max_read_rate_hz`` (Hz) describe the connected press (NaN when
    none is connected).
    """
    merged = dict(current)
    merged.update(changes)
    if "hardware" in changes and changes["hardware"] not in HARDWARE_KINDS:
        return f"hardware={changes['hardware']!r}; allowed: {', '.join(HARDWARE_KINDS)}"
    capacity = merged.get("press_capacity_n", 0.0)
    if math.isfinite(press_rating_n) and capacity > press_rating_n:
        return (f"press_capacity_n={capacity:g} N exceeds the connected press's rating "
                f"{press_rating_n:g} N")
    rate = merged.get("rate_hz", 0.0)
    if math.isfinite(max_read_rate_hz) and "rate_hz" in changes and rate > max_read_rate_hz:
        return (f"rate_hz={rate:g} Hz exceeds what the connected press can be polled at "
                f"({max_read_rate_hz:g} Hz)")
    if merged.get("released_pa", 0.0) >= merged.get("zone_threshold_pa", math.inf):
        return (f"released_pa={merged['released_pa']:g} Pa must stay below zone_threshold_pa="
                f"{merged['zone_threshold_pa']:g} Pa, or a released press could not be leased")
    if merged.get("state_rate_hz", 0.0) > merged.get("rate_hz", math.inf):
        return (f"state_rate_hz={merged['state_rate_hz']:g} Hz exceeds rate_hz="
                f"{merged['rate_hz']:g} Hz: telemetry cannot be faster than the loop")
    return ""
