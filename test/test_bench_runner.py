"""The benchmark runner (bench/run_all.py): its summary table and bench.json cannot rot silently.

One real quick run of a cheap benchmark (lockstep) end to end, and the runner on canned fake
benchmark programs: one with figures, one without ``--json`` support, one that fails.
"""

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"


def load_runner():
    spec = importlib.util.spec_from_file_location("run_all_under_test", BENCH / "run_all.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def strict_json(path: Path):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


@pytest.mark.timeout(90)
def test_quick_lockstep_run_prints_table_and_writes_json(tmp_path):
    result = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--quick", "--only", "bench_lockstep",
         "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True, timeout=80)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.split("== summary", 1)[1]
    assert "x real time" in summary and "lockstep" in summary
    assert "cells per hour" in summary  # expected figure, shown even when not run
    report = strict_json(tmp_path / "bench.json")
    machine = report["machine"]
    assert machine["cores"] == os.cpu_count()
    assert machine["cpu_model"] and machine["python"].startswith("3.")
    load = report["load_average"]
    assert 0.0 <= load["load_1min_min"] <= load["load_1min_median"] <= load["load_1min_max"]
    figures = [f for f in report["figures"] if f["benchmark"] == "bench_lockstep"]
    assert {f["key"] for f in figures} == {"lockstep_500hz_speed", "lockstep_1000hz_speed"}
    for f in figures:
        assert f["unit"] == "x real time" and f["value"] > 1.0 and f["baseline"] > 1.0
        assert math.isclose(f["ratio"], f["value"] / f["baseline"], rel_tol=1e-9)
        assert f["good"]
    assert any("cells per hour" in m["figure"] for m in report["missing"])
    markdown = (tmp_path / "summary.md").read_text()
    assert "| figure | stat | value |" in markdown and "lockstep" in markdown


FAKE_GOOD = """
import argparse, sys
sys.path.insert(0, {bench!r})
from result_format import add_json_argument, figure, write_result
parser = argparse.ArgumentParser()
add_json_argument(parser)
args = parser.parse_args()
print("fake table")
write_result(args.json, "fake_good", [
    figure("fake_latency", "fake latency", 2.0, "ms", p99=8.0, baseline=1.0, baseline_p99=2.0,
           baseline_name="bare fake", good="ratio near 1"),
    figure("fake_nan", "fake not measured", float("nan"), "Hz", good="> 0"),
], {{"raw": [1.0, float("inf")]}})
"""

FAKE_NO_JSON = """
import argparse
argparse.ArgumentParser().parse_args()
print("legacy table only")
"""

FAKE_FAILING = """
import sys
print("partial output")
sys.exit(3)
"""


@pytest.mark.timeout(60)
def test_runner_on_canned_programs(tmp_path, monkeypatch, capsys):
    runner = load_runner()
    programs = {"fake_good": FAKE_GOOD.format(bench=str(BENCH)), "fake_nojson": FAKE_NO_JSON,
                "fake_failing": FAKE_FAILING}
    for name, text in programs.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.setattr(runner, "HERE", tmp_path)
    monkeypatch.setattr(runner, "BENCHMARKS", {name: ([], []) for name in programs})
    monkeypatch.setattr(runner, "EXPECTED", {"fake_future": "a figure nobody measured yet"})
    out = tmp_path / "out"
    assert runner.main(["--out", str(out)]) == 1  # one program failed
    printed = capsys.readouterr().out
    summary = printed.split("== summary", 1)[1]
    assert "fake table" in printed and "legacy table only" in printed
    latency = next(line for line in summary.splitlines() if line.startswith("fake latency"))
    assert "2 (4)" in latency  # ratio 2.0, p99 ratio 4.0
    assert "1 (2)" in latency  # baseline 1.0, baseline p99 2.0
    assert "ran, but wrote no --json figures" in summary
    assert "failed (exit 3)" in summary
    assert "a figure nobody measured yet" in summary and "not yet run" in summary
    report = strict_json(out / "bench.json")
    assert report["benchmarks"]["fake_nojson"]["exit_code"] == 0
    assert "--json" not in report["benchmarks"]["fake_nojson"]["command"]
    assert report["benchmarks"]["fake_failing"]["exit_code"] == 3
    nan_figure = next(f for f in report["figures"] if f["key"] == "fake_nan")
    assert nan_figure["value"] is None and nan_figure["ratio"] is None
    assert report["benchmarks"]["fake_good"]["details"] == {"raw": [1.0, None]}
    assert {m["benchmark"] for m in report["missing"]} == {"fake_nojson", "fake_failing",
                                                           "fake_future"}
    # A saved run prints the same table again without running anything.
    (out / "summary.md").unlink()
    assert runner.main(["--render", str(out / "bench.json")]) == 0
    rendered = capsys.readouterr().out.split("== summary", 1)[1]
    assert rendered == summary.rsplit("\nwrote ", 1)[0] + "\n"
    assert "fake latency" in (out / "summary.md").read_text()


def test_unknown_benchmark_name_is_refused(capsys):
    runner = load_runner()
    with pytest.raises(SystemExit) as exit_info:
        runner.main(["--only", "bench_does_not_exist"])
    assert exit_info.value.code == 2
    assert "bench_does_not_exist" in capsys.readouterr().err


@pytest.mark.parametrize("value, text", [(None, "-"), (0.0, "0"), (0.0219, "0.0219"),
                                         (2.0, "2"), (99.96, "99.96"), (1.116, "1.12"),
                                         (63.84, "63.84"), (473.8, "474"),
                                         (1803817.0, "1,803,817"), (0.00123, "1.23e-03")])
def test_number_format(value, text):
    assert load_runner().fmt(value) == text
