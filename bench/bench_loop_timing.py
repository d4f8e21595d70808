"""Benchmark the real-time control loop: wake latency and overruns at 500 Hz and 1 kHz.

For each rate, two loops run back to back in this process for ``--seconds`` each:

* ``bare``: a minimal absolute-deadline loop (``next += period``; sleep; record lateness)
  with no work, the baseline of what this machine and scheduler give;
* ``runtime``: ``PressRuntime`` (LoopRunner + ForceController + SafetySupervisor) driving a
  ``SimulatedPress`` in real time through a Li-foil hold, its timing from ``timing()``;
* ``+reader``: the same with a second Python thread reading ``snapshot()`` at ``--reader-hz``
  and doing ~1 ms of Python work each time, as a ROS executor would (GIL contention).

Usage: ``python bench/bench_loop_timing.py [--seconds 10] [--rates 500 1000] [--reader-hz 100]
[--json PATH]``
"""

import argparse
import dataclasses
import json
import logging
import math
import threading
import time

import numpy as np

from press_cell.control.loop_runner import request_realtime
from press_cell.control.press_runtime import PressRuntime
from press_cell.hardware.press_sim import SimulatedPress
from press_cell.physics.foil import LITHIUM, AlkaliFoil
from press_cell.recipes.segments import Segment
from press_cell.timebase import MonotonicClock
from result_format import add_json_argument, figure, write_result

MPA = 1e6


def bare_loop(rate_hz: float, seconds: float) -> dict:
    """Run an empty absolute-deadline loop; return its latency statistics (s)."""
    realtime = request_realtime()
    period = 1.0 / rate_hz
    n = int(seconds * rate_hz)
    late = np.empty(n)
    overruns = 0
    next_s = time.monotonic() + period
    for i in range(n):
        delay = next_s - time.monotonic()
        if delay > 0.0:
            time.sleep(delay)
        woke = time.monotonic()
        late[i] = woke - next_s
        next_s += period
        if time.monotonic() > next_s:
            missed = int((time.monotonic() - next_s) // period) + 1
            overruns += missed
            next_s += missed * period
    return dict(cycles=n, overruns=overruns, realtime=realtime,
                p50=float(np.percentile(late, 50)), p99=float(np.percentile(late, 99)),
                p999=float(np.percentile(late, 99.9)), max=float(late.max()),
                compute_p99=0.0)


def busy_reader(rt, stop, reader_hz: float) -> None:
    """Stand in for a ROS executor: read snapshots and do Python work at ``reader_hz``."""
    period = 1.0 / reader_hz
    while not stop.is_set():
        snap = rt.snapshot()
        # ~1 ms of pure-Python work per read (message building, serialisation) [est].
        payload = [json.dumps(dataclasses.asdict(snap), default=str) for _ in range(20)]
        del payload
        time.sleep(period)


def runtime_loop(rate_hz: float, seconds: float, reader_hz: float = 0.0) -> dict:
    """Run PressRuntime on a real-time SimulatedPress through a foil hold; return its timing.

    With ``reader_hz`` > 0 a second Python thread reads snapshots and works meanwhile.
    """
    clock = MonotonicClock()
    foil = AlkaliFoil(LITHIUM, 100e-6, 12.7e-3 / 2)
    sim = SimulatedPress(clock, specimen=foil)
    rt = PressRuntime(sim, clock, rate_hz=rate_hz, lockstep=False)
    rt.start()
    rt.tare(50)
    segments = [Segment("ramp", 10 * MPA, 10 * MPA),
                Segment("hold", 10 * MPA, 0.0, seconds + 60.0, 0.1 * MPA),
                Segment("release", 0.0, 10 * MPA)]
    handle = rt.start_cycle(segments, foil.loaded_area_m2)
    stop = threading.Event()
    reader = None
    if reader_hz > 0.0:
        reader = threading.Thread(target=busy_reader, args=(rt, stop, reader_hz), daemon=True)
        reader.start()
    time.sleep(seconds)
    timing = rt.timing()
    stop.set()
    if reader is not None:
        reader.join()
    phase = rt.snapshot().phase.name
    rt.cancel()
    handle.wait(10.0)
    rt.stop()
    return dict(cycles=timing.cycles, overruns=timing.overruns, realtime=timing.realtime,
                p50=timing.wake_latency_p50, p99=timing.wake_latency_p99,
                p999=timing.wake_latency_p999, max=timing.wake_latency_max,
                compute_p99=timing.compute_time_p99, dt_mean=timing.dt_mean,
                dt_max=timing.dt_max, phase_at_sample=phase)


def main() -> None:
    """Run the benchmark and print a table (and JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="duration per loop, s")
    parser.add_argument("--rates", type=float, nargs="+", default=[500.0, 1000.0],
                        help="loop rates, Hz")
    parser.add_argument("--reader-hz", type=float, default=100.0,
                        help="rate of the busy snapshot reader in the '+reader' variant, Hz")
    add_json_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for rate in args.rates:
        variants = (("bare", lambda r, t: bare_loop(r, t)),
                    ("runtime", lambda r, t: runtime_loop(r, t)),
                    ("+reader", lambda r, t: runtime_loop(r, t, args.reader_hz)))
        for name, fn in variants:
            result = fn(rate, args.seconds)
            result.update(rate_hz=rate, loop=name)
            rows.append(result)
    print(f"{'rate':>6} {'loop':>8} {'cycles':>7} {'overruns':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'p99.9 ms':>8} {'max ms':>7} {'compute p99 ms':>14} {'rt':>3}")
    for r in rows:
        print(f"{r['rate_hz']:6.0f} {r['loop']:>8} {r['cycles']:7d} {r['overruns']:8d} "
              f"{1e3 * r['p50']:7.3f} {1e3 * r['p99']:7.3f} {1e3 * r['p999']:8.3f} "
              f"{1e3 * r['max']:7.3f} {1e3 * r['compute_p99']:14.3f} "
              f"{'yes' if r['realtime'] else 'no':>3}")
    for rate in args.rates:
        bare = next(r for r in rows if r["rate_hz"] == rate and r["loop"] == "bare")
        for variant in ("runtime", "+reader"):
            run = next(r for r in rows if r["rate_hz"] == rate and r["loop"] == variant)
            ratio = run["p99"] / bare["p99"] if bare["p99"] > 0 else math.inf
            print(f"{rate:.0f} Hz {variant}: p99 wake latency = {ratio:.2f} x bare loop; "
                  f"overruns {run['overruns']} of {run['cycles']} cycles")
    write_result(args.json, "bench_loop_timing", figures(rows, args), rows)


def figures(rows: list, args) -> list:
    """Return the named figures: wake latency and overruns of each loop against the bare loop."""
    out = []
    for rate in args.rates:
        bare = next(r for r in rows if r["rate_hz"] == rate and r["loop"] == "bare")
        period_ms = 1e3 / rate
        for variant, label in (("runtime", "press runtime"),
                               ("+reader", "press runtime + busy reader thread")):
            run = next(r for r in rows if r["rate_hz"] == rate and r["loop"] == variant)
            tag = f"loop_{rate:.0f}hz_{variant.strip('+')}"
            out.append(figure(
                f"{tag}_wake", f"{rate:.0f} Hz {label}: wake latency", 1e3 * run["p50"], "ms",
                p99=1e3 * run["p99"], baseline=1e3 * bare["p50"], baseline_p99=1e3 * bare["p99"],
                baseline_name="bare absolute-deadline loop, same run",
                good=f"p99 ratio near 1 and p99 << period ({period_ms:g} ms)"))
            out.append(figure(
                f"{tag}_overruns", f"{rate:.0f} Hz {label}: overruns in {args.seconds:g} s",
                run["overruns"], "cycles", stat="count", baseline=bare["overruns"],
                baseline_name="bare loop overruns, same run",
                good=f"0 of {run['cycles']} cycles"))
    return out


if __name__ == "__main__":
    main()
