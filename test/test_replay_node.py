"""`press-cell replay`: a subscriber in another process sees the bag's messages, in order.

The bag is a synthetic press run (PressState and FluidPressure best effort as the press offers
them, latched DeviceStatus, /diagnostics). Replay runs at 10x with /clock; the subscriber
counts what arrives per topic and keeps the order of the pressure values.
"""

import json
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import REPO, ros_subprocess_env

from press_cell.analysis.bag_reader import open_bag
from press_cell.analysis.synthetic_run import CycleSpec, write_synthetic_run
from press_cell.cli import main as cli_main

MPA = 1e6
NS = "/replaycell"
TOPICS = {
    f"{NS}/press/state": "PressState",
    f"{NS}/press/pressure": "FluidPressure",
    f"{NS}/press/status": "DeviceStatus",
    "/diagnostics": "DiagnosticArray",
}

SUBSCRIBER = textwrap.dedent('''
    """Count replayed messages per topic and keep the pressure order; print JSON at the end."""
    import json, sys, time
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, DurabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import FluidPressure
    from diagnostic_msgs.msg import DiagnosticArray
    from press_cell.msg import PressState, DeviceStatus

    ns, expected = sys.argv[1], int(sys.argv[2])
    rclpy.init()
    node = rclpy.create_node("replay_listener")
    got = {"state": [], "pressure": [], "status": 0, "diagnostics": 0, "clock": []}
    last = [time.monotonic()]
    def keep(key, value):
        last[0] = time.monotonic()
        if isinstance(got[key], list):
            got[key].append(value)
        else:
            got[key] += 1
    fast = QoSProfile(depth=5000, reliability=ReliabilityPolicy.BEST_EFFORT)
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(PressState, ns + "/press/state",
                             lambda m: keep("state", m.pressure), fast)
    node.create_subscription(FluidPressure, ns + "/press/pressure",
                             lambda m: keep("pressure", m.fluid_pressure), fast)
    node.create_subscription(DeviceStatus, ns + "/press/status",
                             lambda m: keep("status", 1), latched)
    node.create_subscription(DiagnosticArray, "/diagnostics",
                             lambda m: keep("diagnostics", 1), 100)
    node.create_subscription(Clock, "/clock",
                             lambda m: keep("clock", m.clock.sec + m.clock.nanosec * 1e-9),
                             QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT))
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        total = len(got["state"]) + len(got["pressure"]) + got["status"] + got["diagnostics"]
        if total >= expected and time.monotonic() - last[0] > 0.5:
            break
    print(json.dumps(got), flush=True)
''')


@pytest.fixture(scope="module")
def bag(tmp_path_factory):
    spec = CycleSpec(target_pressure_pa=20 * MPA, ramp_rate_pa_s=20 * MPA, hold_s=1.0,
                     release_rate_pa_s=20 * MPA)
    path = tmp_path_factory.mktemp("replay") / "bag"
    write_synthetic_run(path, cycles=2, spec=spec, rate_hz=100.0, namespace=NS, spectra=False)
    return path


def replay(bag, *args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "press_cell.cli", "replay", str(bag), *args],
                            env=ros_subprocess_env(), cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.timeout(90)
def test_replay_at_10x_reproduces_counts_order_and_clock(bag, start_process, tmp_path):
    with open_bag(bag) as recorded:
        counts = {t: recorded.topics[t].message_count for t in TOPICS}
        order = [recorded.deserialize(t, d).pressure
                 for t, _, d in recorded.messages([f"{NS}/press/state"])]
        start_s, end_s = recorded.start_ns * 1e-9, recorded.end_ns * 1e-9
    script = tmp_path / "listener.py"
    script.write_text(SUBSCRIBER)
    listener = start_process(NS, str(sum(counts.values())), script=script)
    assert listener.stdout.readline().strip() == "ready"
    began = time.monotonic()
    player = replay(bag, "--rate", "10", "--clock", "--wait-for-subscribers", "20",
                    "--topics", *TOPICS)
    _, err = player.communicate(timeout=60)
    assert player.returncode == 0, err
    played_s = time.monotonic() - began
    out, _ = listener.communicate(timeout=40)
    got = json.loads(out.strip().splitlines()[-1])
    assert len(got["state"]) == counts[f"{NS}/press/state"]
    assert len(got["pressure"]) == counts[f"{NS}/press/pressure"]
    assert got["status"] == counts[f"{NS}/press/status"]
    assert got["diagnostics"] == counts["/diagnostics"]
    assert got["state"] == order                       # recorded order, nothing reordered
    # /clock carries the recorded time line, forwards.
    clock = got["clock"]
    assert len(clock) >= 10 and clock == sorted(clock)
    assert start_s - 1e-6 <= clock[0] and clock[-1] <= end_s + 1e-6
    # 10x: the recorded span played in a tenth of it (plus process start and discovery).
    assert played_s < (end_s - start_s) / 10 + 15


@pytest.mark.timeout(60)
def test_loop_stops_cleanly_on_ctrl_c(bag):
    player = replay(bag, "--loop", "--rate", "5")
    # Read until playback starts (the test timeout bounds the wait).
    line = ""
    while "playing" not in line:
        line = player.stderr.readline()
        assert line, "replay ended before playing"
    assert "in a loop" in line, line
    time.sleep(0.5)
    player.send_signal(signal.SIGINT)
    _, err = player.communicate(timeout=20)
    assert player.returncode == 0, err
    assert "stopped" in err and "Traceback" not in err


def test_unknown_topic_or_missing_bag_is_one_line_exit_2(bag, tmp_path, capsys):
    assert cli_main(["replay", str(bag), "--topics", "/nope"]) == 2
    err = capsys.readouterr().err
    assert "/nope" in err and len(err.strip().splitlines()) == 1
    assert cli_main(["replay", str(tmp_path / "none")]) == 2
    assert "no such bag" in capsys.readouterr().err
    assert cli_main(["replay", str(bag), "--rate", "0"]) == 2
    assert "rate must be > 0" in capsys.readouterr().err


def test_message_classes_are_found_by_type_name():
    from sensor_msgs.msg import FluidPressure

    from press_cell.action import PressCycle
    from press_cell.nodes.message_types import UnknownMessageType, message_class

    assert message_class("sensor_msgs/msg/FluidPressure") is FluidPressure
    assert message_class("press_cell/action/PressCycle_FeedbackMessage") is \
        PressCycle.Impl.FeedbackMessage
    assert message_class("press_cell/action/PressCycle_Goal") is PressCycle.Goal
    for bad in ("sensor_msgs/msg/NoSuchType", "no_such_pkg/msg/X", "FluidPressure"):
        with pytest.raises(UnknownMessageType):
            message_class(bad)
