"""Soak: many consecutive simulated assemblies in one process, checked for thread/fd/memory leaks.

The whole cell (press, arm, impedance, coordinator; ``press_cell.nodes.bringup`` as
``press-cell demo`` runs it) is brought up once in this process with simulated devices at a
high time scale (press in unpaced lockstep), then ``--cells`` Li|Li6PS5Cl|Li assemblies run one
after another through the coordinator's ``assemble_cell`` action. The press holds are
shortened and the EIS sweep starts at 10 Hz through the goal's ``overrides_yaml`` (the same
path a lab uses), so one assembly takes a few seconds of wall time; every step still runs.

The shipped anode rack holds 4 rods (2 Li cells), so the trays are refilled after every cell
(``Refiller``): through the coordinator's ``~/refill_trays`` service (which refills the
simulated arm through its ``~/sim_refill``), or, on a cell without them, by taking the arm
node through deactivate -> cleanup -> configure -> activate (its simulated arm is rebuilt with
every slot filled). The refills are part of what is soaked.

After every assembly the process's threads (``/proc/self/task``: Python and DDS threads),
open file descriptors (``/proc/self/fd``) and resident memory (``VmRSS``) are sampled. The
figures at start (cell up), after ``--warmup`` assemblies and at the end are printed with the
least-squares slope per 100 assemblies over the post-warm-up samples. Bounds (growth from the
warm-up sample to the end):

* threads: at most ``--max-thread-growth`` (default 2)
* file descriptors: at most ``--max-fd-growth`` (default 4)
* RSS: at most ``--rss-allowance-mib`` + ``--rss-per-100-mib`` x cells/100 (default 24 MiB +
  16 MiB per 100 assemblies)
* every assembly passes its acceptance criteria (``--min-pass-fraction``, default 1.0)

Exit 0 when every bound holds, 1 when one is exceeded, 2 when the cell cannot start.
JSON goes to ``--out`` (default ``out/soak/soak.json``). ``make soak`` runs 200 cells;
``test/test_soak.py`` runs the same code for a few.

Usage: ``python bench/soak.py [--cells 200] [--warmup 20] [--time-scale 1000] [--out PATH]``
"""

import argparse
import gc
import json
import logging
import os
import platform
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

RECIPE = "li_symmetric_cell"

# Shorter holds and a 10 Hz-1 MHz sweep: the same steps and devices, a few seconds per cell.
OVERRIDES_YAML = """
press_recipes:
  li6ps5cl_370mpa_200mg: {hold_s: 2}
  li_foil_25mpa: {hold_s: 2}
  li_stack_25mpa: {hold_s: 2}
assemblies:
  li_symmetric_cell:
    steps:
      - {kind: compaction, recipe: li6ps5cl_370mpa_200mg}
      - {kind: foil_prepress, recipe: li_foil_25mpa, count: 2}
      - {kind: place, component: ELECTROLYTE_PELLET}
      - {kind: place, component: ANODE_ON_ROD, count: 2}
      - {kind: stack_press, recipe: li_stack_25mpa}
      - {kind: impedance, freq_min_hz: 10, freq_max_hz: 1.0e+6, points_per_decade: 5,
         amplitude_mv: 10}
"""


@dataclass
class Sample:
    """Process resources after ``cells`` assemblies."""

    cells: int
    threads: int            # OS threads of this process (Python + DDS + executor)
    fds: int                # open file descriptors
    rss_mib: float          # resident set size, MiB
    wall_s: float           # since the cell came up


@dataclass
class Bounds:
    """The leak bounds, growth from the warm-up sample to the end."""

    max_thread_growth: int = 2
    max_fd_growth: int = 4
    rss_allowance_mib: float = 24.0
    rss_per_100_mib: float = 16.0
    min_pass_fraction: float = 1.0

    def rss_limit_mib(self, cells: int) -> float:
        """Return the allowed RSS growth after ``cells`` post-warm-up assemblies, MiB."""
        return self.rss_allowance_mib + self.rss_per_100_mib * cells / 100.0


@dataclass
class SoakReport:
    """What a soak run measured and whether it stayed inside the bounds."""

    cells: int
    passed: int
    warmup: int
    time_scale: float
    wall_s: float
    bounds: Bounds
    samples: list = field(default_factory=list)
    failures: list = field(default_factory=list)     # (cell index, error text)
    slopes_per_100: dict = field(default_factory=dict)
    violations: list = field(default_factory=list)
    refill: str = ""                                   # how the trays were refilled

    @property
    def ok(self) -> bool:
        """Return True when every bound held."""
        return not self.violations


def sample_resources(cells: int, started_s: float) -> Sample:
    """Collect garbage, then read this process's threads, fds and RSS from /proc."""
    gc.collect()
    rss_kib = 0
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kib = int(line.split()[1])
                break
    return Sample(cells=cells, threads=len(os.listdir("/proc/self/task")),
                  fds=len(os.listdir("/proc/self/fd")), rss_mib=round(rss_kib / 1024.0, 2),
                  wall_s=round(time.monotonic() - started_s, 2))


def slopes_per_100(samples: list) -> dict:
    """Return the least-squares growth per 100 assemblies of threads, fds and RSS."""
    if len(samples) < 2:
        return {"threads": 0.0, "fds": 0.0, "rss_mib": 0.0}
    cells = np.array([s.cells for s in samples], dtype=float)
    return {name: round(float(np.polyfit(cells, [getattr(s, name) for s in samples], 1)[0])
                        * 100.0, 3)
            for name in ("threads", "fds", "rss_mib")}


def check_bounds(report: SoakReport) -> list:
    """Return the violated bounds as sentences (empty when all hold)."""
    bounds = report.bounds
    start = next(s for s in report.samples if s.cells == report.warmup)
    end = report.samples[-1]
    violations = []
    if end.threads - start.threads > bounds.max_thread_growth:
        violations.append(f"threads grew {start.threads} -> {end.threads} after warm-up "
                          f"(allowed +{bounds.max_thread_growth})")
    if end.fds - start.fds > bounds.max_fd_growth:
        violations.append(f"file descriptors grew {start.fds} -> {end.fds} after warm-up "
                          f"(allowed +{bounds.max_fd_growth})")
    rss_limit = bounds.rss_limit_mib(end.cells - start.cells)
    if end.rss_mib - start.rss_mib > rss_limit:
        violations.append(f"RSS grew {start.rss_mib:.1f} -> {end.rss_mib:.1f} MiB after warm-up "
                          f"(allowed +{rss_limit:.1f} MiB for {end.cells - start.cells} cells)")
    if report.passed < bounds.min_pass_fraction * report.cells:
        violations.append(f"{report.passed}/{report.cells} assemblies passed (at least "
                          f"{bounds.min_pass_fraction:.0%} required); first failure: "
                          f"{report.failures[0] if report.failures else '-'}")
    return violations


class Refiller:
    """Fill every tray and rack slot again between assemblies.

    With the tray inventory (``~/refill_trays`` on the coordinator, ``~/sim_refill`` on the
    simulated arm) both services are called; an arm without ``~/sim_refill`` is taken through
    deactivate -> cleanup -> configure -> activate instead, which rebuilds its simulated arm
    with every slot filled.
    """

    SERVICES = ("arm/sim_refill", "coordinator/refill_trays")

    def __init__(self, bringup, node, namespace: str = "") -> None:
        """Find the refill services of the cell (waits up to 3 s for each)."""
        self.bringup = bringup
        self.node = node
        self.clients = {}
        try:
            from press_cell.nodes.refill_service import RefillTrays
        except ImportError:         # a cell without the tray inventory
            return
        for name in self.SERVICES:
            client = node.create_client(RefillTrays, f"{namespace}/{name}")
            if client.wait_for_service(timeout_sec=3.0):
                self.clients[name] = (client, RefillTrays)
            else:
                node.destroy_client(client)

    def refill(self) -> None:
        """Refill the coordinator's inventory and the arm's simulated slots.

        The coordinator's ``refill_trays`` refills the simulated arm too; ``arm/sim_refill``
        alone serves a cell whose coordinator has no inventory.
        """
        if not self.clients:
            self._reconfigure_arm()
            return
        names = ["coordinator/refill_trays"] if "coordinator/refill_trays" in self.clients \
            else list(self.clients)
        for name in names:
            client, srv_type = self.clients[name]
            future = client.call_async(srv_type.Request())
            deadline = time.monotonic() + 10.0
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.005)
            response = future.result() if future.done() else None
            if response is None or not response.success:
                raise RuntimeError(f"{name} failed: "
                                   f"{response.message if response else 'no answer in 10 s'}")

    def method(self) -> str:
        """Return how the trays are refilled, for the report."""
        if "coordinator/refill_trays" in self.clients:
            return "the coordinator's refill_trays service"
        if self.clients:
            return "the arm's sim_refill service"
        return "arm lifecycle reconfigure"

    def _reconfigure_arm(self) -> None:
        from rclpy.lifecycle import TransitionCallbackReturn

        arm = self.bringup.nodes["arm"]
        for transition in (arm.trigger_deactivate, arm.trigger_cleanup, arm.trigger_configure,
                           arm.trigger_activate):
            if transition() != TransitionCallbackReturn.SUCCESS:
                raise RuntimeError(f"arm {transition.__name__} failed during the refill")


def run_soak(cells: int, warmup: int, time_scale: float, bounds: Bounds,
             progress=None) -> SoakReport:
    """Bring a simulated cell up in this process and run ``cells`` assemblies; return the report.

    The action and service clients live on a node of their own, created before it is spun:
    rclpy registers an ActionClient with its node before the client is fully built, so one
    created on a node an executor is spinning can crash that executor
    (``AttributeError: 'ActionClient' object has no attribute '_lock'``).
    """
    import rclpy
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor

    from press_cell.action import AssembleCell
    from press_cell.commands.assemble import sim_bringup_config
    from press_cell.nodes.blocking_action import call_action
    from press_cell.nodes.client_session import ClientSession

    report = SoakReport(cells=cells, passed=0, warmup=warmup, time_scale=time_scale,
                        wall_s=0.0, bounds=bounds)
    started = time.monotonic()
    session = ClientSession("press_cell_soak", "", sim_bringup_config("", time_scale, ""),
                            log_level="error")
    with session:
        node = rclpy.create_node("press_cell_soak_client", context=session.context)
        client = ActionClient(node, AssembleCell, "assemble_cell")
        refiller = Refiller(session.bringup, node)
        executor = SingleThreadedExecutor(context=session.context)
        executor.add_node(node)
        spinner = threading.Thread(target=executor.spin, name="soak-client", daemon=True)
        spinner.start()
        report.refill = refiller.method()
        try:
            up = time.monotonic()
            report.samples.append(sample_resources(0, up))
            for index in range(cells):
                goal = AssembleCell.Goal(recipe_name=RECIPE, overrides_yaml=OVERRIDES_YAML)
                reply = call_action(client, goal, server_timeout_s=30.0, result_timeout_s=300.0)
                if reply.result.success:
                    report.passed += 1
                else:
                    report.failures.append((index, f"{reply.result.error_code}: "
                                                   f"{reply.result.error_msg}"))
                refiller.refill()
                report.samples.append(sample_resources(index + 1, up))
                if progress is not None:
                    progress(report)
        finally:
            executor.shutdown(timeout_sec=5.0)
            spinner.join(timeout=5.0)
            node.destroy_node()
    report.wall_s = round(time.monotonic() - started, 2)
    report.slopes_per_100 = slopes_per_100([s for s in report.samples if s.cells >= warmup])
    report.violations = check_bounds(report)
    return report


def format_table(report: SoakReport) -> str:
    """Return the report as a plain-text table."""
    marks = {"start": report.samples[0],
             f"after warm-up ({report.warmup})":
                 next(s for s in report.samples if s.cells == report.warmup),
             "end": report.samples[-1]}
    lines = [f"soak: {report.cells} assemblies of {RECIPE} at {report.time_scale:g}x, "
             f"{report.passed} passed, {report.wall_s:.1f} s wall "
             f"({report.wall_s / max(report.cells, 1):.2f} s per assembly); trays refilled "
             f"after each cell by {report.refill}",
             f"{'':<22}{'cells':>7}{'threads':>9}{'fds':>6}{'RSS MiB':>10}{'wall s':>9}"]
    for label, s in marks.items():
        lines.append(f"{label:<22}{s.cells:>7}{s.threads:>9}{s.fds:>6}{s.rss_mib:>10.1f}"
                     f"{s.wall_s:>9.1f}")
    slope = report.slopes_per_100
    lines.append(f"{'slope per 100 cells':<22}{'':>7}{slope['threads']:>9.2f}"
                 f"{slope['fds']:>6.2f}{slope['rss_mib']:>10.2f}")
    b = report.bounds
    lines.append(f"bounds after warm-up: threads +{b.max_thread_growth}, fds +{b.max_fd_growth}, "
                 f"RSS +{b.rss_allowance_mib:g} MiB + {b.rss_per_100_mib:g} MiB per 100 cells, "
                 f"pass >= {b.min_pass_fraction:.0%}")
    lines.append("result: " + ("within bounds" if report.ok else
                               "BOUND EXCEEDED: " + "; ".join(report.violations)))
    return "\n".join(lines)


def report_json(report: SoakReport) -> dict:
    """Return the report as a JSON-ready dict."""
    return {"recipe": RECIPE, "cells": report.cells, "passed": report.passed,
            "warmup": report.warmup, "time_scale": report.time_scale,
            "wall_s": report.wall_s, "bounds": asdict(report.bounds),
            "samples": [asdict(s) for s in report.samples], "failures": report.failures,
            "slopes_per_100": report.slopes_per_100, "violations": report.violations,
            "refill": report.refill,
            "ok": report.ok,
            "machine": {"python": platform.python_version(), "machine": platform.machine(),
                        "cpus": os.cpu_count()}}


def main(argv=None) -> int:
    """Run the soak, print the table, write the JSON; exit 1 when a bound is exceeded."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=200, help="assemblies to run (200)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="assemblies before the leak baseline is taken (20)")
    parser.add_argument("--time-scale", type=float, default=1000.0,
                        help="simulated seconds per wall second of arm and potentiostat")
    parser.add_argument("--out", default="out/soak/soak.json", help="JSON report path")
    defaults = Bounds()
    parser.add_argument("--max-thread-growth", type=int, default=defaults.max_thread_growth)
    parser.add_argument("--max-fd-growth", type=int, default=defaults.max_fd_growth)
    parser.add_argument("--rss-allowance-mib", type=float, default=defaults.rss_allowance_mib)
    parser.add_argument("--rss-per-100-mib", type=float, default=defaults.rss_per_100_mib)
    parser.add_argument("--min-pass-fraction", type=float, default=defaults.min_pass_fraction)
    parser.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < args.cells:
        parser.error("--warmup must be >= 0 and below --cells")
    logging.getLogger().setLevel(logging.ERROR)
    # a private DDS domain unless the caller chose one: the in-process cell talks to nothing else
    os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    bounds = Bounds(args.max_thread_growth, args.max_fd_growth, args.rss_allowance_mib,
                    args.rss_per_100_mib, args.min_pass_fraction)

    def progress(report):
        s = report.samples[-1]
        print(f"  cell {s.cells:>4}/{report.cells}: {report.passed} passed, threads {s.threads},"
              f" fds {s.fds}, RSS {s.rss_mib:.1f} MiB, {s.wall_s:.1f} s", flush=True)
        if report.failures and report.failures[-1][0] == s.cells - 1:
            print(f"    failed: {report.failures[-1][1]}", flush=True)

    try:
        report = run_soak(args.cells, args.warmup, args.time_scale, bounds,
                          None if args.quiet else progress)
    except Exception as exc:  # noqa: BLE001 - the cell could not start or an action failed
        print(f"soak: the cell could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(format_table(report), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report_json(report), indent=1))
    print(f"wrote {out}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
