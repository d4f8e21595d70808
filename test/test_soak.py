"""Shortened soak: the code of ``make soak`` (bench/soak.py) for a few assemblies, same bounds.

``make soak`` runs 200 simulated assemblies in one process and fails when threads, file
descriptors or memory grow past the stated bounds after the warm-up. Here the same program runs
4 assemblies (2 of warm-up) in a child process, so nothing this test process did can hide or
fake a leak; a unit check shows the bound check flags a leaking series.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SOAK_PATH = REPO / "bench" / "soak.py"
CELLS = 4
WARMUP = 2


def load_soak():
    """Import bench/soak.py (bench/ is a folder of programs, not a package)."""
    spec = importlib.util.spec_from_file_location("press_cell_bench_soak", SOAK_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_short_soak_assembles_every_cell_without_leaking(tmp_path):
    """Four assemblies pass; threads, fds and RSS stay inside make soak's bounds."""
    from conftest import ros_subprocess_env

    out = tmp_path / "soak.json"
    run = subprocess.run([sys.executable, str(SOAK_PATH), "--cells", str(CELLS),
                          "--warmup", str(WARMUP), "--quiet", "--out", str(out)],
                         cwd=REPO, env=ros_subprocess_env(), capture_output=True, text=True,
                         timeout=220)
    assert run.returncode == 0, f"soak exited {run.returncode}:\n{run.stdout}\n{run.stderr[-3000:]}"
    report = json.loads(out.read_text())
    assert report["ok"] and not report["violations"]
    assert report["passed"] == CELLS, report["failures"]
    assert [s["cells"] for s in report["samples"]] == list(range(CELLS + 1))
    start, end = report["samples"][WARMUP], report["samples"][-1]
    assert end["threads"] - start["threads"] <= report["bounds"]["max_thread_growth"]
    assert end["fds"] - start["fds"] <= report["bounds"]["max_fd_growth"]
    assert "within bounds" in run.stdout and "slope per 100 cells" in run.stdout


def test_bound_check_flags_a_leaking_series():
    """A thread, an fd and 1 MiB per assembly after warm-up, and a failed cell, are all caught."""
    soak = load_soak()
    samples = [soak.Sample(cells=i, threads=30 + max(0, i - 2), fds=20 + max(0, i - 2),
                           rss_mib=150.0 + 1.0 * i, wall_s=float(i)) for i in range(0, 61)]
    report = soak.SoakReport(cells=60, passed=59, warmup=2, time_scale=1000.0, wall_s=60.0,
                             bounds=soak.Bounds(), samples=samples,
                             failures=[(7, "404: step failed")])
    report.slopes_per_100 = soak.slopes_per_100(samples[2:])
    violations = soak.check_bounds(report)
    assert len(violations) == 4, violations
    assert any(v.startswith("threads grew 30 -> 88") for v in violations)
    assert any(v.startswith("file descriptors grew") for v in violations)
    assert any("RSS grew" in v for v in violations)     # 58 MiB > 24 + 16 * 0.58
    assert any("59/60 assemblies passed" in v for v in violations)
    assert report.slopes_per_100["threads"] == pytest.approx(100.0)
    steady = [soak.Sample(i, 36, 21, 200.0 + 0.05 * i, float(i)) for i in range(0, 61)]
    report.samples, report.passed, report.failures = steady, 60, []
    assert soak.check_bounds(report) == []
