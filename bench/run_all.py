"""Run every press_cell benchmark program once and collect what each printed.

`make bench` runs this. Each benchmark compares itself against a baseline measured in the same
run (bare loop, plain rosbags, bare subscriber) and prints its own table; this runner records
their output, exit code and wall time in out/bench/bench.json and prints a summary. Use
--quick for shorter windows (a smoke run).
"""

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (arguments, quick arguments)
BENCHMARKS = {
    "bench_loop_timing": (["--seconds", "10"], ["--seconds", "2"]),
    "bench_tracking": ([], ["--hold", "10"]),
    "bench_lockstep": ([], ["--repeats", "1", "--hold", "10"]),
    "bench_press_serial": ([], ["--samples", "50"]),
    "bench_press_node": (["--seconds", "60"], ["--seconds", "5", "--cycles", "3"]),
    "bench_recorder": ([], ["--seconds", "2", "--rates", "500", "2000"]),
    "bench_analysis": (["--minutes", "60"], ["--minutes", "5", "--repeat", "1"]),
}


def main():
    """Run the benchmarks; exit 1 if any of them failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short windows (smoke run)")
    parser.add_argument("--only", nargs="*", default=None, help="benchmarks to run")
    parser.add_argument("--out", default="out/bench", help="folder for bench.json and logs")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": {"python": platform.python_version(), "node": platform.node(),
                          "machine": platform.machine(), "processor": platform.processor()},
              "benchmarks": {}}
    failed = []
    for name, (full, quick) in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        command = [sys.executable, str(HERE / f"{name}.py"), *(quick if args.quick else full)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        result = subprocess.run(command, capture_output=True, text=True)
        seconds = time.monotonic() - started
        (out / f"{name}.log").write_text(result.stdout + result.stderr)
        print(result.stdout, flush=True)
        if result.returncode != 0:
            failed.append(name)
            print(f"!! {name} exited {result.returncode}:\n{result.stderr[-2000:]}", flush=True)
        report["benchmarks"][name] = {"command": command[1:], "exit_code": result.returncode,
                                      "wall_s": round(seconds, 2), "stdout": result.stdout}
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {out / 'bench.json'}; {len(report['benchmarks']) - len(failed)} ran, "
          f"{len(failed)} failed {failed if failed else ''}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
