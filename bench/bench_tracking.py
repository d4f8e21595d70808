"""Benchmark tracking quality and lockstep speed on the SimulatedPress.

Three recipes (config/recipes.yaml rates, 60 s holds, +-0.5 % band) run in lockstep through
``PressRuntime``: Li foil 25 MPa and Na foil 25 MPa on a 12.7 mm rod (0.5 MPa/s up, 1 MPa/s
down), Li6PS5Cl 200 mg at 370 MPa in a 13 mm die (5 MPa/s up, 10 MPa/s down). The table gives
the certificate figures and the wall time. Speed baseline, measured in the same run: the bare
simulator stepped at the same rate with a constant valve demand (no controller, no
supervisor), so ``x real time`` can be compared with the plant's own cost.

Usage: ``python bench/bench_tracking.py [--rate 1000] [--hold 60] [--json PATH]``
"""

import argparse
import logging
import math
import time

from press_cell.control.press_runtime import PressRuntime
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.physics.compaction import LI6PS5CL, PowderCompact
from press_cell.physics.foil import LITHIUM, SODIUM, AlkaliFoil
from press_cell.recipes.segments import Segment
from press_cell.timebase import SimulatedClock
from result_format import add_json_argument, figure, write_result

MPA = 1e6
CASES = {
    "Li foil 25 MPa": (lambda: AlkaliFoil(LITHIUM, 100e-6, 12.7e-3 / 2), 25 * MPA, 0.5 * MPA,
                       1 * MPA),
    "Na foil 25 MPa": (lambda: AlkaliFoil(SODIUM, 100e-6, 12.7e-3 / 2), 25 * MPA, 0.5 * MPA,
                       1 * MPA),
    "Li6PS5Cl 370 MPa": (lambda: PowderCompact(LI6PS5CL, 200e-6, math.pi * 0.013 ** 2 / 4),
                         370 * MPA, 5 * MPA, 10 * MPA),
}


def run_case(make_specimen, target, ramp, release, hold_s, rate_hz):
    """Run one recipe in lockstep; return the certificate figures and the wall time."""
    clock = SimulatedClock()
    spec = make_specimen()
    sim = SimulatedPress(clock, specimen=spec)
    rt = PressRuntime(sim, clock, rate_hz=rate_hz, lockstep=True)
    rt.start()
    rt.tare(50)
    segs = [Segment("ramp", target, ramp), Segment("hold", target, 0.0, hold_s, 0.005 * target),
            Segment("release", 0.0, release)]
    t0 = time.perf_counter()
    out = rt.start_cycle(segs, spec.loaded_area_m2).wait(600.0)
    wall = time.perf_counter() - t0
    rt.stop()
    c = out.certificate
    return dict(status=out.status, overshoot_pct=100 * c.overshoot_fraction,
                settling_s=c.settling_time, in_band_pct=100 * c.fraction_in_band,
                ramp_error_pct=100 * c.ramp_rate_error, hold_mean_mpa=c.mean_hold_pressure / MPA,
                hold_std_mpa=c.hold_pressure_std / MPA, sim_s=c.duration, wall_s=wall,
                x_real_time=c.duration / wall, true_force_after_n=sim.plant.true_force_n)


def bare_sim_speed(rate_hz: float, sim_seconds: float) -> float:
    """Return how many times faster than real time the bare simulator steps (read + command)."""
    clock = SimulatedClock()
    sim = SimulatedPress(clock, specimen=AlkaliFoil(LITHIUM, 100e-6, 12.7e-3 / 2))
    sim.connect()
    period = 1.0 / rate_hz
    n = int(sim_seconds * rate_hz)
    t0 = time.perf_counter()
    for _ in range(n):
        clock.advance(period)
        sim.read()
        sim.command_valve(0.001)
    return sim_seconds / (time.perf_counter() - t0)


def main() -> None:
    """Run the three cases and print a table (and JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=1000.0, help="loop rate, Hz")
    parser.add_argument("--hold", type=float, default=60.0, help="hold duration, s")
    add_json_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = {}
    for name, (make, target, ramp, release) in CASES.items():
        rows[name] = run_case(make, target, ramp, release, args.hold, args.rate)
    bare = bare_sim_speed(args.rate, 20.0)
    print(f"loop {args.rate:.0f} Hz lockstep, {args.hold:g} s holds, band +-0.5 % of setpoint")
    print(f"{'case':18} {'status':9} {'overshoot %':>11} {'settle s':>8} {'in band %':>9} "
          f"{'ramp err %':>10} {'hold mean':>9} {'hold std':>8} {'sim s':>6} {'wall s':>6} "
          f"{'x real':>6}")
    for name, r in rows.items():
        print(f"{name:18} {r['status']:9} {r['overshoot_pct']:11.3f} {r['settling_s']:8.3f} "
              f"{r['in_band_pct']:9.2f} {r['ramp_error_pct']:10.2f} {r['hold_mean_mpa']:9.3f} "
              f"{r['hold_std_mpa']:8.4f} {r['sim_s']:6.1f} {r['wall_s']:6.2f} "
              f"{r['x_real_time']:6.1f}")
    print(f"bare simulator (read + command, no control) at {args.rate:.0f} Hz: "
          f"{bare:.1f} x real time")
    write_result(args.json, "bench_tracking", figures(rows, args),
                 dict(rate_hz=args.rate, hold_s=args.hold, cases=rows,
                      bare_sim_x_real_time=bare))


def figures(rows: dict, args) -> list:
    """Return overshoot, time in band and ramp-rate error of each case (no baseline exists)."""
    out = []
    for name, r in rows.items():
        tag = "tracking_" + "_".join(name.lower().split())
        where = f"{name}, {args.rate:.0f} Hz, {args.hold:g} s hold"
        out.append(figure(f"{tag}_overshoot", f"{where}: overshoot", r["overshoot_pct"], "%",
                          stat="one run", good="< 0.5 % (the hold band)"))
        out.append(figure(f"{tag}_in_band", f"{where}: hold time in +-0.5 % band",
                          r["in_band_pct"], "%", stat="one run", good=">= 99 %"))
        out.append(figure(f"{tag}_ramp_error", f"{where}: ramp-rate error",
                          r["ramp_error_pct"], "%", stat="one run", good="|error| < 2 %"))
    return out


if __name__ == "__main__":
    main()
