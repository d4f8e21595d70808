"""Shared fixtures: an rclpy context per test and helpers to start ROS processes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["support.fuzz_counts"]   # "fuzz counts" block + out/fuzz/counts.json

REPO = Path(__file__).resolve().parent.parent
SUPPORT = Path(__file__).resolve().parent / "support"


def _private_rclpy_context():
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


@pytest.fixture
def rclpy_context():
    """Initialise rclpy in a private context for one test and shut it down afterwards."""
    yield from _private_rclpy_context()


@pytest.fixture(scope="module")
def rclpy_module_context():
    """Initialise rclpy in a private context shared by the tests of one module."""
    yield from _private_rclpy_context()


def ros_subprocess_env():
    """Return the environment a child ROS process needs to join this test's DDS domain."""
    env = dict(os.environ)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def start_process():
    """Start Python helper processes; terminate (then kill) every one at teardown."""
    processes = []

    def start(*args, module=None, script=None, **popen_kwargs):
        if module:
            command = [sys.executable, "-m", module, *args]
        else:
            command = [sys.executable, str(script), *args]
        proc = subprocess.Popen(command, env=ros_subprocess_env(), cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                **popen_kwargs)
        processes.append(proc)
        return proc

    yield start
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)


# Device-node suites that run a node in another process in wall time (a press node driving an
# emulated serial press over a pty; the impedance node monitoring a published hold) can lose a
# deadline or a message's timing when CI loads both cores: the emulated press's own watchdog
# then vents (the safe reaction to a stalled link), a sample lands beside a stage boundary, or
# an arm retreat outlasts the 0.6 s test lease (see the closing note: a known race to fix).
# Those cases get two reruns; a real regression still fails all three runs.
REALTIME_MODULES = ("test_press_node_ros.py", "test_impedance_node_ros.py",
                    "test_arm_node_safety.py", "test_arm_node_placement.py",
                    "test_coordinator_ros.py")


def pytest_collection_modifyitems(config, items):
    """Give the wall-time device-node cases two reruns."""
    for item in items:
        if item.fspath.basename in REALTIME_MODULES:
            item.add_marker(pytest.mark.flaky(reruns=2, reruns_delay=1))
