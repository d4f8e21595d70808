"""Shared fixtures: an rclpy context per test and helpers to start ROS processes."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SUPPORT = Path(__file__).resolve().parent / "support"


@pytest.fixture
def rclpy_context():
    """Initialise rclpy in a private context for one test and shut it down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    try:
        yield context
    finally:
        context.try_shutdown()


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
