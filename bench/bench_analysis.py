"""Benchmark: analysis throughput on a long 500 Hz recording against plain rosbags decoding.

Generates (once, cached under /tmp) a synthetic press_cell run of ``--minutes`` minutes at
500 Hz: PressState at the loop rate (60 min = 1.8 M messages), ControllerTiming at 1 Hz, a
spectrum after every cycle. Then, each in a fresh subprocess so peak memory is its own:

- baseline: ``rosbags.rosbag2.Reader`` + ``typestore.deserialize_cdr`` of every message;
- analysis: ``load_run`` + cycles + per-cycle certificates (what ``press-cell analyze`` does,
  without the plots).

Prints messages/s, wall time and peak RSS of both, and the ratio (medians over ``--repeat``).

    .venv/bin/python bench/bench_analysis.py --minutes 60 [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run  # noqa: E402
from result_format import add_json_argument, figure, write_result  # noqa: E402

#: A realistic stack-press cycle (25 MPa, ramp 2 MPa/s, 30 s hold, release 5 MPa/s): 47.5 s of
#: profile + 2.5 s idle = 50 s, so an hour holds 72 cycles.
SPEC = CycleSpec(target_pressure_pa=25e6, ramp_rate_pa_s=2e6, hold_s=30.0,
                 release_rate_pa_s=5e6)
CYCLE_S = 50.0
IDLE_S = 2.5


def bag_path(minutes: float, storage: str) -> Path:
    """Return the cache path of the generated bag."""
    return Path(f"/tmp/press_cell_bench_{storage}_{minutes:g}min")


def ensure_bag(minutes: float, storage: str) -> tuple[Path, float]:
    """Generate the bag unless cached; return its path and generation time (0 when cached)."""
    path = bag_path(minutes, storage)
    if (path / "metadata.yaml").exists() and (path / ".complete").exists():
        return path, 0.0
    if path.exists():
        import shutil

        shutil.rmtree(path)
    cycles = max(1, int(round(minutes * 60.0 / CYCLE_S)))
    started = time.perf_counter()
    write_synthetic_run(path, storage=storage, spec=SPEC, cycles=cycles, idle_s=IDLE_S,
                        standard_topics=False)
    (path / ".complete").write_text("ok\n")
    return path, time.perf_counter() - started


def worker_baseline(path: Path) -> dict:
    """Deserialise every message with plain rosbags."""
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    started = time.perf_counter()
    count = 0
    with Reader(path) as reader:
        store = get_typestore(Stores.ROS2_KILTED)
        types = {}
        for conn in reader.connections:
            types.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
        store.register(types)
        for conn, _, data in reader.messages():
            store.deserialize_cdr(data, conn.msgtype)
            count += 1
    return {"messages": count, "seconds": time.perf_counter() - started}


def worker_analysis(path: Path) -> dict:
    """Run the analysis (load, cycles, certificates)."""
    from press_cell.analysis.run import load_run

    started = time.perf_counter()
    run = load_run(path)
    loaded = time.perf_counter()
    results = run.cycle_results()
    done = time.perf_counter()
    return {"messages": sum(t.message_count for t in run.topics.values()),
            "seconds": done - started, "load_seconds": loaded - started,
            "metrics_seconds": done - loaded, "cycles": len(results),
            "press_state": int(len(run.press_state["time_s"]))}


def run_worker(kind: str, path: Path) -> dict:
    """Run one measurement in a fresh interpreter; return its figures and peak RSS."""
    out = subprocess.run([sys.executable, __file__, "--worker", kind, "--bag", str(path)],
                         check=True, capture_output=True, text=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def figures(args, messages: int, base_s: float, ours_s: float, base_mb: float,
            ours_mb: float) -> list:
    """Return analysis throughput and peak memory against plain rosbags decoding."""
    where = f"{args.minutes:g} min 500 Hz {args.storage} bag"
    return [
        figure("analysis_throughput", f"analysis (load + cycles + certificates), {where}",
               messages / ours_s, "msg/s", baseline=messages / base_s,
               baseline_name="rosbags Reader + deserialize_cdr of every message, same run",
               good="ratio >= 1 (analysis faster than merely decoding the bag)"),
        figure("analysis_peak_rss", f"analysis peak memory, {where}", ours_mb, "MB",
               stat="peak", baseline=base_mb,
               baseline_name="rosbags decoding peak RSS, same run",
               good="< 1 GB for an hour of 500 Hz data"),
    ]


def main() -> None:
    """Generate or reuse the bag, measure both readers, print (and write JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0,
                        help="recording length to generate (default 60 = 1.8 M PressState)")
    parser.add_argument("--storage", choices=["mcap", "sqlite3"], default="mcap")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement")
    add_json_argument(parser)
    parser.add_argument("--worker", choices=["baseline", "analysis"], help=argparse.SUPPRESS)
    parser.add_argument("--bag", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        measured = (worker_baseline if args.worker == "baseline" else worker_analysis)(args.bag)
        measured["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(json.dumps(measured))
        return
    path, gen_s = ensure_bag(args.minutes, args.storage)
    size_mb = sum(f.stat().st_size for f in path.iterdir()) / 1e6
    print(f"bag: {path} ({args.storage}, {args.minutes:g} min at 500 Hz, {size_mb:.0f} MB)"
          + (f", generated in {gen_s:.1f} s" if gen_s else ", cached"))
    base = [run_worker("baseline", path) for _ in range(args.repeat)]
    ours = [run_worker("analysis", path) for _ in range(args.repeat)]
    base_s = statistics.median(b["seconds"] for b in base)
    ours_s = statistics.median(o["seconds"] for o in ours)
    messages = base[0]["messages"]
    print(f"messages: {messages} ({ours[0]['press_state']} PressState), "
          f"cycles found: {ours[0]['cycles']}")
    print(f"rosbags deserialise all : {base_s:8.2f} s  {messages / base_s:12,.0f} msg/s  "
          f"peak RSS {max(b['peak_rss_mb'] for b in base):7.0f} MB")
    print(f"press_cell analysis     : {ours_s:8.2f} s  {messages / ours_s:12,.0f} msg/s  "
          f"peak RSS {max(o['peak_rss_mb'] for o in ours):7.0f} MB")
    print(f"  of which load+decode {statistics.median(o['load_seconds'] for o in ours):.2f} s, "
          f"cycles+certificates {statistics.median(o['metrics_seconds'] for o in ours):.2f} s")
    print(f"speed ratio analysis/baseline: {base_s / ours_s:.2f}x (medians of {args.repeat})")
    base_mb = max(b["peak_rss_mb"] for b in base)
    ours_mb = max(o["peak_rss_mb"] for o in ours)
    write_result(args.json, "bench_analysis",
                 figures(args, messages, base_s, ours_s, base_mb, ours_mb),
                 {"bag": str(path), "size_mb": size_mb, "generation_s": gen_s,
                  "messages": messages, "baseline_runs": base, "analysis_runs": ours})


if __name__ == "__main__":
    main()
