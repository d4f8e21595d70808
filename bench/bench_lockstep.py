"""Benchmark the wall time of a lockstep press cycle against the bare simulator, same run.

Case (the issue's): a Li foil (100 um, 12.7 mm rod face) ramped to 25 MPa at 5 MPa/s, held
60 s, released at 10 MPa/s, run by ``PressRuntime`` in unpaced lockstep on ``SimulatedPress``
at 500 Hz and 1 kHz. Each figure is the median of ``--repeats`` runs.

Baselines measured in the same run, so the ratios do not depend on the machine:

* ``bare``: the same ``SimulatedPress`` and foil stepped for the same number of ticks with a
  constant valve demand (clock advance + read + command, no controller, no supervisor, no
  thread). ``cycle / bare`` is what the control loop adds to the plant.
* ``calib``: a fixed pure-Python workload (float arithmetic, attribute access and calls,
  as in the loop), so ``cycle / calib`` can be compared with figures taken on another
  machine or before a change.

Measured on the 2-core development machine (other jobs running; two interleaved runs each),
before the lockstep speed work (code of commit 85788c0) -> after it:

=======  ============  ============  =============  =============  ==========
rate     cycle s       us per tick   bare us/tick   cycle/calib    cycle/bare
=======  ============  ============  =============  =============  ==========
500 Hz   0.77 -> 0.44  22.7 -> 13.1  9.9 -> 4.8     18.3 -> 10.3   2.3 -> 2.7
1 kHz    1.55 -> 0.89  22.8 -> 13.1  10.2 -> 4.8    36.8 -> 20.6   2.2 -> 2.7
=======  ============  ============  =============  =============  ==========

(a 60 s hold is 33 961 loop ticks at 500 Hz; ``cycle/bare`` rose because the bare simulator
got faster than the control loop did).

Usage: ``python bench/bench_lockstep.py [--repeats 5] [--hold 60] [--rates 500 1000]
[--json PATH]``
"""

import argparse
import logging
import statistics
import time

from press_cell.control.press_runtime import PressRuntime
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.physics.foil import LITHIUM, AlkaliFoil
from press_cell.recipes.segments import Segment
from press_cell.timebase import SimulatedClock
from result_format import add_json_argument, figure, write_result

MPA = 1e6
ROD_RADIUS_M = 12.7e-3 / 2
TARGET_PA = 25 * MPA
RAMP_PA_S = 5 * MPA
RELEASE_PA_S = 10 * MPA
CALIB_ITERATIONS = 200_000


def foil() -> AlkaliFoil:
    """Return the benchmark specimen, a fresh 100 um Li foil on the 12.7 mm rod."""
    return AlkaliFoil(LITHIUM, 100e-6, ROD_RADIUS_M)


def run_cycle(rate_hz: float, hold_s: float) -> tuple:
    """Run one lockstep cycle; return (loop wall s, wall s with the certificate, ticks)."""
    clock = SimulatedClock()
    spec = foil()
    sim = SimulatedPress(clock, specimen=spec)
    rt = PressRuntime(sim, clock, rate_hz=rate_hz, lockstep=True, realtime=False)
    rt.start()
    rt.tare(50)
    segments = [Segment("ramp", TARGET_PA, RAMP_PA_S),
                Segment("hold", TARGET_PA, 0.0, hold_s, 0.005 * TARGET_PA),
                Segment("release", 0.0, RELEASE_PA_S)]
    t0 = time.perf_counter()
    handle = rt.start_cycle(segments, spec.loaded_area_m2)
    while not handle.done():
        time.sleep(0.005)
    loop_s = time.perf_counter() - t0
    outcome = handle.wait(600.0)
    total_s = time.perf_counter() - t0
    rt.stop()
    if outcome is None or not outcome.success:
        raise RuntimeError(f"benchmark cycle failed: {outcome and outcome.message}")
    return loop_s, total_s, len(outcome.trace)


def run_bare(rate_hz: float, ticks: int) -> float:
    """Step the bare simulator ``ticks`` times at ``rate_hz``; return the wall time, s."""
    clock = SimulatedClock()
    sim = SimulatedPress(clock, specimen=foil())
    sim.connect()
    period_s = 1.0 / rate_hz
    t0 = time.perf_counter()
    for _ in range(ticks):
        clock.advance(period_s)
        sim.read()
        sim.command_valve(0.001)
    return time.perf_counter() - t0


class _Calib:
    def __init__(self) -> None:
        self.x = 0.0

    def step(self, u: float) -> float:
        self.x += (u - self.x) * 0.01
        return min(1.0, max(-1.0, self.x * 2.0))


def run_calib() -> float:
    """Run the fixed pure-Python workload; return its wall time, s."""
    c = _Calib()
    t0 = time.perf_counter()
    acc = 0.0
    for i in range(CALIB_ITERATIONS):
        acc += c.step(0.5 if i & 1 else -0.25)
    return time.perf_counter() - t0


def main() -> None:
    """Measure and print the table (and JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--hold", type=float, default=60.0, help="hold duration, s")
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 1000.0],
                        help="loop rates, Hz")
    add_json_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    calib = statistics.median(run_calib() for _ in range(args.repeats))
    rows = {}
    for rate in args.rates:
        runs = [run_cycle(rate, args.hold) for _ in range(args.repeats)]
        ticks = runs[0][2]
        loop_s = statistics.median(r[0] for r in runs)
        total_s = statistics.median(r[1] for r in runs)
        bare_s = statistics.median(run_bare(rate, ticks) for _ in range(args.repeats))
        rows[rate] = dict(ticks=ticks, loop_s=loop_s, with_certificate_s=total_s,
                          bare_s=bare_s, us_per_tick=1e6 * loop_s / ticks,
                          bare_us_per_tick=1e6 * bare_s / ticks, cycle_over_bare=loop_s / bare_s,
                          cycle_over_calib=loop_s / calib)
    print(f"Li foil 25 MPa (5 MPa/s), {args.hold:g} s hold, release 10 MPa/s; lockstep, "
          f"median of {args.repeats}; calib {1e3 * calib:.1f} ms")
    print(f"{'rate Hz':>7} {'ticks':>6} {'cycle s':>8} {'+cert s':>8} {'us/tick':>8} "
          f"{'bare s':>7} {'bare us':>8} {'cycle/bare':>10} {'cycle/calib':>11}")
    for rate, r in rows.items():
        print(f"{rate:7.0f} {r['ticks']:6d} {r['loop_s']:8.3f} {r['with_certificate_s']:8.3f} "
              f"{r['us_per_tick']:8.1f} {r['bare_s']:7.3f} {r['bare_us_per_tick']:8.1f} "
              f"{r['cycle_over_bare']:10.2f} {r['cycle_over_calib']:11.2f}")
    write_result(args.json, "bench_lockstep", figures(rows, args),
                 dict(hold_s=args.hold, repeats=args.repeats, calib_s=calib,
                      rates={str(k): v for k, v in rows.items()}))


def figures(rows: dict, args) -> list:
    """Return the lockstep speed (simulated s per wall s) of each rate against the bare sim."""
    out = []
    for rate, r in rows.items():
        sim_s = r["ticks"] / rate
        out.append(figure(
            f"lockstep_{rate:.0f}hz_speed",
            f"lockstep Li 25 MPa cycle ({args.hold:g} s hold), {rate:.0f} Hz: speed",
            sim_s / r["loop_s"], "x real time", baseline=sim_s / r["bare_s"],
            baseline_name="bare simulator, same ticks, no controller",
            good="> 20 x (a 60 s hold in < 3 s); ratio 1 = the loop costs nothing"))
    return out


if __name__ == "__main__":
    main()
