"""Benchmark the recorder node: messages kept and CPU used at rising message rates.

For each rate, a publisher process sends PressState (the press's telemetry QoS: best effort,
keep last 50) in 10 ms bursts for ``--seconds``; at the same time a recorder process
(``press_cell.nodes.recorder_node``, MCAP) and a baseline process (a bare rclpy raw subscriber
with the same QoS that only counts) listen. Printed per rate: messages sent, received by the
baseline, written to the bag by the recorder (read back from the bag), and the recorder's CPU
time per message. Baseline and recorder run in the same round, so machine load affects both.

    .venv/bin/python bench/bench_recorder.py --rates 500 2000 5000 --seconds 3 [--json PATH]
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from press_cell.analysis.bag_reader import open_bag  # noqa: E402
from result_format import add_json_argument, figure, write_result  # noqa: E402

PUBLISHER = """
import sys, time, rclpy
from press_cell.msg import PressState
from press_cell.nodes.qos import TELEMETRY
topic, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rclpy.init()
node = rclpy.create_node("bench_publisher")
pub = node.create_publisher(PressState, topic, TELEMETRY)
deadline = time.monotonic() + 30
while pub.get_subscription_count() < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(1.0)
sent, start = 0, time.monotonic()
msg = PressState(phase=1, segment_index=0)
while time.monotonic() - start < seconds:
    due = int((time.monotonic() - start) * rate)
    while sent < due:
        msg.pressure = float(sent)
        pub.publish(msg)
        sent += 1
    time.sleep(0.01)
print(sent, flush=True)
time.sleep(1.0)
"""

BASELINE = """
import sys, time, rclpy
from press_cell.msg import PressState
from press_cell.nodes.qos import TELEMETRY
from rclpy.qos import QoSProfile
topic = sys.argv[1]
rclpy.init()
node = rclpy.create_node("bench_baseline")
count = [0]
qos = QoSProfile(depth=200, reliability=TELEMETRY.reliability)
node.create_subscription(PressState, topic, lambda d: count.__setitem__(0, count[0] + 1), qos,
                         raw=True)
print("ready", flush=True)
try:
    rclpy.spin(node)
except BaseException:
    pass
print(count[0], flush=True)
"""


def cpu_s(pid):
    """Return user + system CPU time of process ``pid``, s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_rate(rate, seconds, out_dir, env):
    ns = f"/benchrec{random.randrange(10**6)}"
    topic = f"{ns}/press/state"
    python = sys.executable
    recorder = subprocess.Popen(
        [python, "-m", "press_cell.nodes.recorder_node", "--ros-args", "-r", f"__ns:={ns}",
         "-p", f"output_dir:={out_dir}", "-p", f"session:=r{rate}",
         "-p", "discovery_period:=0.2"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    baseline = subprocess.Popen([python, "-c", BASELINE, topic], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, text=True)
    baseline.stdout.readline()
    publisher = subprocess.Popen([python, "-c", PUBLISHER, topic, str(rate), str(seconds)],
                                 cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    cpu_before = cpu_s(recorder.pid)
    sent = int(publisher.stdout.readline())
    cpu_used = cpu_s(recorder.pid) - cpu_before
    publisher.wait(timeout=30)
    for proc in (recorder, baseline):
        proc.send_signal(signal.SIGINT)
    received = int(baseline.communicate(timeout=30)[0].split()[-1])
    recorder.wait(timeout=30)
    with open_bag(Path(out_dir) / f"r{rate}") as bag:
        written = bag.topics[topic].message_count if topic in bag.topics else 0
    return {"rate_hz": rate, "sent": sent, "baseline_received": received,
            "recorder_written": written,
            "recorder_vs_baseline": written / received if received else float("nan"),
            "recorder_cpu_us_per_msg": 1e6 * cpu_used / written if written else float("nan")}


def figures(rows: list, seconds: float) -> list:
    """Return per rate the messages the recorder kept against the bare subscriber, and CPU."""
    out = []
    for r in rows:
        out.append(figure(
            f"recorder_{r['rate_hz']}hz_kept", f"recorder at {r['rate_hz']} Hz: messages in bag"
            f" ({seconds:g} s)", r["recorder_written"], "msgs", stat="count",
            baseline=r["baseline_received"],
            baseline_name="bare rclpy raw subscriber (counts only), same round",
            good="ratio >= 0.99 (the recorder keeps what a bare subscriber gets)"))
    top = rows[-1]
    out.append(figure(
        f"recorder_{top['rate_hz']}hz_cpu", f"recorder CPU per message at {top['rate_hz']} Hz",
        top["recorder_cpu_us_per_msg"], "us/msg", stat="mean",
        good="< 200 us (a 500 Hz stream costs < 10 % of a core)"))
    return out


def main():
    """Run the benchmark and print a table (and write the JSON when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[500, 2000, 5000])
    parser.add_argument("--seconds", type=float, default=3.0)
    add_json_argument(parser)
    args = parser.parse_args()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    with tempfile.TemporaryDirectory() as out_dir:
        rows = [one_rate(rate, args.seconds, out_dir, env) for rate in args.rates]
    print(f"{'rate Hz':>8} {'sent':>7} {'baseline':>9} {'recorder':>9} {'rec/base':>9} "
          f"{'rec CPU us/msg':>15}")
    for r in rows:
        print(f"{r['rate_hz']:>8} {r['sent']:>7} {r['baseline_received']:>9} "
              f"{r['recorder_written']:>9} {r['recorder_vs_baseline']:>9.3f} "
              f"{r['recorder_cpu_us_per_msg']:>15.1f}")
    write_result(args.json, "bench_recorder", figures(rows, args.seconds), rows)


if __name__ == "__main__":
    main()
