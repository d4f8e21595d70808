"""Run every press_cell benchmark program once and print one summary table of their figures.

`make bench` runs this. Each benchmark compares itself against a baseline measured in the same
run (bare loop, bare rclpy server, plain rosbags, bare subscriber) and writes its named figures
with ``--json PATH`` (convention in bench/result_format.py). This runner prints each program's
own table, then ONE summary table (figure, value, p99, unit, baseline, ratio, what "good" is),
and writes out/bench/bench.json (machine: cores, CPU model, Python, load average sampled during
the run; every figure; each program's details and output) and out/bench/summary.md (the table
in markdown). A figure that was expected but not measured is shown as "not yet run".

    .venv/bin/python bench/run_all.py [--quick] [--only bench_lockstep ...] [--out out/bench]
    .venv/bin/python bench/run_all.py --render out/bench/bench.json   # reprint a saved run
"""

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# name -> (arguments, quick arguments)
BENCHMARKS = {
    "bench_loop_timing": (["--seconds", "10"], ["--seconds", "2"]),
    "bench_tracking": ([], ["--hold", "10"]),
    "bench_lockstep": ([], ["--repeats", "1", "--hold", "10"]),
    "bench_press_serial": ([], ["--samples", "50"]),
    "bench_press_node": (["--seconds", "30"], ["--seconds", "5", "--cycles", "3"]),
    "bench_recorder": ([], ["--seconds", "2", "--rates", "500", "2000"]),
    "bench_analysis": (["--minutes", "60"], ["--minutes", "5", "--repeat", "1"]),
    "bench_cells_per_hour": (["--cells", "4"], ["--cells", "2", "--short"]),
}

# Figures the issue asks for whose benchmark may not exist yet: name -> row shown until it runs.
EXPECTED = {
    "bench_cells_per_hour": "cells per hour in simulation, one press vs two pipelined",
}

# Order of the summary table (the order); benchmarks not named here come last.
ORDER = ("bench_loop_timing", "bench_tracking", "bench_press_node", "bench_lockstep",
         "bench_analysis", "bench_cells_per_hour", "bench_press_serial", "bench_recorder")

LOAD_SAMPLE_PERIOD_S = 5.0
COLUMNS = ("figure", "stat", "value", "p99", "unit", "baseline (p99)", "ratio (p99)", "good")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or platform's guess)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str:
    """Return the repository's HEAD commit (with '+dirty' when it has local changes)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True,
                              capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, text=True, capture_output=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_info() -> dict:
    """Return what the figures depend on: cores, CPU, Python, OS, commit."""
    return {"cores": os.cpu_count(), "cpu_model": cpu_model(),
            "python": platform.python_version(), "implementation": platform.python_implementation(),
            "os": f"{platform.system()} {platform.release()}", "machine": platform.machine(),
            "hostname": platform.node(), "commit": git_commit(),
            "ros_domain_id": os.environ.get("ROS_DOMAIN_ID", ""),
            "rmw": os.environ.get("RMW_IMPLEMENTATION", "")}


class LoadSampler:
    """Sample the 1-minute load average every few seconds while the benchmarks run."""

    def __init__(self, period_s: float = LOAD_SAMPLE_PERIOD_S) -> None:
        """Prepare the sampler (``start`` begins sampling)."""
        self.period_s = period_s
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            self.samples.append(os.getloadavg()[0])
            if self._stop.wait(self.period_s):
                return

    def start(self) -> "LoadSampler":
        """Start sampling; return self."""
        self._thread.start()
        return self

    def stop(self) -> dict:
        """Stop sampling; return min / median / max of the 1-minute load average."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.samples.append(os.getloadavg()[0])
        return {"load_1min_min": min(self.samples),
                "load_1min_median": statistics.median(self.samples),
                "load_1min_max": max(self.samples), "samples": len(self.samples),
                "sample_period_s": self.period_s}


def run_benchmark(script: Path, arguments: list, json_path: Path) -> dict:
    """Run one benchmark program with ``--json json_path``; return its outcome and figures.

    A program that does not accept ``--json`` (argparse exits 2 at once) is run again without
    it and reported with no figures, so the table says so instead of failing.
    """
    json_path.unlink(missing_ok=True)
    command = [sys.executable, str(script), *arguments, "--json", str(json_path)]
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if result.returncode == 2 and "unrecognized arguments: --json" in result.stderr:
        command = command[:-2]
        result = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    shown = os.path.relpath(script, REPO) if script.is_relative_to(REPO) else str(script)
    outcome = {"command": [shown, *command[2:]],
               "exit_code": result.returncode, "wall_s": round(time.monotonic() - started, 2),
               "stdout": result.stdout, "stderr_tail": result.stderr[-2000:],
               "figures": [], "details": None}
    if json_path.exists():
        try:
            data = json.loads(json_path.read_text())
            outcome["figures"] = list(data.get("figures", []))
            outcome["details"] = data.get("details")
        except (json.JSONDecodeError, AttributeError) as exc:
            outcome["json_error"] = f"{json_path}: {exc}"
    return outcome


def fmt(value) -> str:
    """Format a number with 3 significant digits (4 from 10 to 100, thousands grouped)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.4g}"  # 99.96 % in band must not print as 100
    if magnitude == 0 or magnitude >= 0.01:
        return f"{value:.3g}"
    return f"{value:.2e}"


def _pair(value, p99) -> str:
    return fmt(value) if p99 is None else f"{fmt(value)} ({fmt(p99)})"


def summary_rows(benchmarks: dict, selected) -> list:
    """Return the summary table rows (one per figure; a placeholder row per missing benchmark).

    ``benchmarks`` maps name -> run outcome (``run_benchmark``); ``selected`` is the set of
    names this run was asked to run (None = all).
    """
    rows = []
    names = sorted(set(benchmarks) | set(EXPECTED) | set(BENCHMARKS),
                   key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        outcome = benchmarks.get(name)
        if outcome is None:
            if name not in EXPECTED:
                continue  # a registered benchmark left out with --only
            why = ("not yet run (benchmark not written yet)" if name not in BENCHMARKS
                   else "not run (left out with --only)")
            rows.append({"benchmark": name,
                         "cells": (EXPECTED[name], "", "not yet run", "", "", "", "", why)})
            continue
        if outcome["exit_code"] or not outcome["figures"]:
            why = (f"failed (exit {outcome['exit_code']})" if outcome["exit_code"]
                   else "ran, but wrote no --json figures")
            status = "failed" if outcome["exit_code"] else "no figures"
            rows.append({"benchmark": name, "cells": (EXPECTED.get(name, name), "", status,
                                                      "", "", "", "", why)})
        for f in outcome["figures"]:
            baseline = _pair(f.get("baseline"), f.get("baseline_p99"))
            ratio = _pair(f.get("ratio"), f.get("ratio_p99"))
            rows.append({"benchmark": name, "key": f.get("key"),
                         "cells": (f.get("name", f.get("key", "?")), f.get("stat", ""),
                                   fmt(f.get("value")),
                                   "" if f.get("p99") is None else fmt(f.get("p99")),
                                   f.get("unit", ""), baseline, ratio, f.get("good", ""))})
    return rows


def render_text(rows: list) -> str:
    """Return the rows as a fixed-width text table."""
    cells = [COLUMNS] + [r["cells"] for r in rows]
    widths = [max(len(str(c[i])) for c in cells) for i in range(len(COLUMNS))]
    widths[-1] = len(COLUMNS[-1])  # the last column is free text: do not pad it
    lines = []
    for index, row in enumerate(cells):
        lines.append("  ".join(str(c).ljust(w) if i in (0, 1, 4, 7) else str(c).rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list) -> str:
    """Return the rows as a markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r["cells"]) + " |")
    return "\n".join(lines)


def machine_line(report: dict) -> str:
    """Return one line naming the machine, load and date of the run."""
    m, load = report["machine"], report["load_average"]
    return (f"{report['date_utc']}, {m['cores']} cores {m['cpu_model']}, {m['implementation']} "
            f"{m['python']}, {m['os']}, commit {m['commit']}; 1-min load average during the run "
            f"{load['load_1min_min']:.2f}-{load['load_1min_max']:.2f} "
            f"(median {load['load_1min_median']:.2f})"
            + (" [--quick]" if report["quick"] else ""))


def build_report(benchmarks: dict, machine: dict, load: dict, quick: bool, selected,
                 date_utc: str) -> dict:
    """Return the bench.json content: machine, load, the flat figure list, each benchmark."""
    rows = summary_rows(benchmarks, selected)
    figures = [dict(f, benchmark=name) for name, o in benchmarks.items() for f in o["figures"]]
    missing = [{"benchmark": r["benchmark"], "figure": r["cells"][0], "status": r["cells"][1]}
               for r in rows if "key" not in r]
    return {"date_utc": date_utc, "quick": quick, "only": sorted(selected) if selected else None,
            "machine": machine, "load_average": load, "figures": figures, "missing": missing,
            "benchmarks": benchmarks}


def print_summary(report: dict, rows: list, folder: Path) -> None:
    """Print the summary table and write summary.md into ``folder``."""
    (folder / "summary.md").write_text(f"{machine_line(report)}\n\n{render_markdown(rows)}\n")
    print("== summary (baseline = the bare thing measured in the same run; ratio = value / "
          "baseline; p99 and its ratio in parentheses)")
    print(machine_line(report))
    print(render_text(rows))


def render_saved(path: Path) -> int:
    """Print the summary of a saved bench.json (no benchmark runs); rewrite its summary.md."""
    report = json.loads(path.read_text())
    only = report.get("only")
    print_summary(report, summary_rows(report["benchmarks"], set(only) if only else None),
                  path.parent)
    return 0


def main(argv=None) -> int:
    """Run the benchmarks, print the summary; exit 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    parser.add_argument("--only", nargs="*", default=None, help="benchmarks to run")
    parser.add_argument("--out", default="out/bench", help="folder for bench.json and logs")
    parser.add_argument("--render", metavar="BENCH_JSON",
                        help="run nothing: print the summary of an earlier run's bench.json and "
                             "rewrite the summary.md beside it")
    args = parser.parse_args(argv)
    if args.render:
        return render_saved(Path(args.render))
    if args.only:
        unknown = sorted(set(args.only) - set(BENCHMARKS))
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The ROS benchmarks talk across processes: keep their DDS traffic on this host and, unless
    # told otherwise, off the default domain a lab cell may be using.
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randrange(100, 200)))
    date_utc = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sampler = LoadSampler().start()
    benchmarks = {}
    for name, (full, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        arguments = quick if args.quick else full
        print(f"== {name}: {' '.join(arguments)}", flush=True)
        outcome = run_benchmark(HERE / f"{name}.py", arguments, out / f"{name}.json")
        (out / f"{name}.log").write_text(outcome["stdout"] + outcome["stderr_tail"])
        print(outcome["stdout"], flush=True)
        if outcome["exit_code"] != 0:
            print(f"!! {name} exited {outcome['exit_code']}:\n{outcome['stderr_tail']}",
                  flush=True)
        benchmarks[name] = outcome
    report = build_report(benchmarks, machine_info(), sampler.stop(), args.quick,
                          set(args.only) if args.only else None, date_utc)
    rows = summary_rows(benchmarks, set(args.only) if args.only else None)
    (out / "bench.json").write_text(json.dumps(report, indent=1) + "\n")
    print_summary(report, rows, out)
    failed = [name for name, o in benchmarks.items() if o["exit_code"] != 0]
    print(f"wrote {out / 'bench.json'} and {out / 'summary.md'}; "
          f"{len(benchmarks) - len(failed)} ran, {len(failed)} failed {failed if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
