"""The ROS workspace path: `colcon build` of this repository gives a usable install space."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV = Path(sys.prefix)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _entry_points():
    lines = (REPO / "entry_points.txt").read_text().splitlines()
    return [line.split("=")[0].strip() for line in lines if "=" in line and line[0] != "#"]


@pytest.fixture(scope="module")
def install_space(tmp_path_factory):
    """Build the repository with colcon in a scratch workspace; return its install prefix."""
    workspace = tmp_path_factory.mktemp("ws")
    (workspace / "src").mkdir()
    source = workspace / "src" / "press_cell"
    ignore = shutil.ignore_patterns(".venv", "build", "install", "log", ".git", "__pycache__",
                                    "msg", "action", "srv", "*.so")
    shutil.copytree(REPO, source, ignore=ignore)
    for folder in ("msg", "action", "srv"):  # interface definitions, not the generated modules
        shutil.copytree(REPO / folder, source / folder)
    env = dict(os.environ, AMENT_PREFIX_PATH=str(VENV), CMAKE_PREFIX_PATH=str(VENV))
    colcon = VENV / "bin" / "colcon"
    result = subprocess.run(
        [str(colcon), "build", "--event-handlers", "console_cohesion-",
         "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"],
        cwd=workspace, env=env, capture_output=True, text=True, timeout=580)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return workspace / "install" / "press_cell"


def test_executables_are_where_ros2_run_looks(install_space):
    for name in _entry_points():
        launcher = install_space / "lib" / "press_cell" / name
        assert launcher.is_file() and os.access(launcher, os.X_OK), f"missing {launcher}"


def test_launch_and_config_are_shared(install_space):
    share = install_space / "share" / "press_cell"
    assert (share / "package.xml").is_file()
    for folder in ("launch", "config"):
        shipped = sorted(p.name for p in (REPO / folder).iterdir()) if (REPO / folder).is_dir() \
            else []
        installed = sorted(p.name for p in (share / folder).iterdir()) if shipped else []
        assert installed == shipped


def test_installed_package_merges_interfaces_and_sources(install_space):
    site = install_space / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" \
        / "site-packages" / "press_cell"
    env = dict(os.environ, PYTHONPATH=str(site.parent))
    code = ("import press_cell, press_cell.cli, press_cell.timebase\n"
            "from press_cell.msg import PressState\n"
            "from press_cell.action import PressCycle\n"
            "from rclpy.serialization import serialize_message\n"
            "assert press_cell.__file__.startswith(%r)\n"
            "print(len(serialize_message(PressState(pressure=1.0))))\n") % str(site)
    result = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 0


def test_cli_launcher_runs_from_the_install_space(install_space):
    site = next((install_space / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site))
    launcher = install_space / "lib" / "press_cell" / "press-cell"
    result = subprocess.run([sys.executable, str(launcher), "--help"], cwd="/", env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "doctor" in result.stdout
