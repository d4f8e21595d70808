"""`press-cell press` as a user runs it: a cycle on an in-process sim, rejections, Ctrl-C."""

import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, ros_subprocess_env

PRESS = [sys.executable, "-m", "press_cell.cli", "press"]


def _run(*args, timeout_s=60):
    return subprocess.run([*PRESS, *args], cwd=REPO, env=ros_subprocess_env(), text=True,
                          capture_output=True, timeout=timeout_s)


@pytest.mark.timeout(90)
def test_sim_cycle_prints_the_certificate_as_json():
    """--sim --json runs one cycle and prints a succeeded certificate in SI units."""
    done = _run("--sim", "--time-scale", "0", "--target-mpa", "100", "--ramp-mpa-s", "2",
                "--hold-s", "10", "--material", "Li6PS5Cl", "--part-id", "cli-1", "--json",
                "--namespace", "/cli_json")
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    cert = report["certificate"]
    assert report["status"] == "succeeded" and cert["part_id"] == "cli-1"
    assert cert["target_pressure"] == pytest.approx(100e6)
    assert cert["fraction_in_band"] >= 0.99
    assert "hold" in done.stderr          # the progress line went to stderr


@pytest.mark.timeout(90)
def test_rejected_goal_and_missing_server_give_clear_errors():
    """A unit-error goal exits 2 with the node's reason; no press node exits 3."""
    rejected = _run("--sim", "--time-scale", "0", "--target-mpa", "5000",
                    "--namespace", "/cli_reject")
    assert rejected.returncode == 2
    assert "above 2 GPa" in rejected.stderr
    missing = _run("--target-mpa", "50", "--server-timeout-s", "1",
                   "--namespace", "/cli_nobody")
    assert missing.returncode == 3
    assert "no press_cycle action server at '/cli_nobody/press_cycle'" in missing.stderr


@pytest.mark.timeout(90)
def test_ctrl_c_cancels_with_a_controlled_release():
    """Ctrl-C during the hold cancels; the command waits for `canceled` and exits 1."""
    proc = subprocess.Popen([*PRESS, "--sim", "--time-scale", "5", "--target-mpa", "20",
                             "--ramp-mpa-s", "20", "--hold-s", "600", "--json",
                             "--namespace", "/cli_cancel"],
                            cwd=REPO, env=ros_subprocess_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen = ""
    deadline = time.monotonic() + 40.0
    while "hold" not in seen and time.monotonic() < deadline:
        seen += proc.stderr.read(1)
    assert "hold" in seen, seen[-500:]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err[-2000:]
    report = json.loads(out)
    assert report["status"] == "canceled" and report["error_code"] == 105
    assert "canceling: controlled release" in err
