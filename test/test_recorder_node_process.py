"""Recorder node in its own process: both storage formats, clean stop and SIGKILL.

Four recorders record the same PressState talker at once (MCAP and sqlite3, each stopped with
SIGINT and killed with SIGKILL), so the whole matrix costs one discovery round. A second talker
outside the recorders' namespace checks that discovery keeps to the cell.
"""

import signal
import threading
import time

import pytest
from conftest import SUPPORT

from press_cell.analysis.bag_reader import open_bag
from press_cell.analysis.run import load_run

NS = "/cellrec"


class Output:
    """Collect a process's output lines on a thread (select() misses lines Python buffered)."""

    def __init__(self, proc):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc):
        for line in proc.stdout:
            self.lines.append(line)

    def wait_for(self, text, timeout_s):
        """Wait until a line contains ``text``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            time.sleep(0.05)
        raise AssertionError(f"no line with {text!r} within {timeout_s} s; got:\n"
                             + "".join(self.lines))


@pytest.mark.timeout(60)
def test_recorders_stopped_and_killed_leave_readable_bags(start_process, tmp_path):
    talker = start_process(f"{NS}/press/state", script=SUPPORT / "press_state_talker.py")
    start_process("/elsewhere/press/state", script=SUPPORT / "press_state_talker.py")
    Output(talker).wait_for("ready", 20)
    recorders = {}
    for storage in ("mcap", "sqlite3"):
        for how in ("int", "kill"):
            name = f"{storage}_{how}"
            recorders[name] = start_process(
                "--ros-args", "-r", f"__ns:={NS}", "-p", f"output_dir:={tmp_path}",
                "-p", f"session:={name}", "-p", f"storage:={storage}",
                "-p", "flush_period:=0.2", "-p", "discovery_period:=0.3",
                module="press_cell.nodes.recorder_node")
    outputs = {name: Output(proc) for name, proc in recorders.items()}
    for output in outputs.values():
        output.wait_for(f"recording {NS}/press/state", 20)
    time.sleep(1.5)   # ~75 samples at 50 Hz
    for name, proc in recorders.items():
        proc.send_signal(signal.SIGINT if name.endswith("int") else signal.SIGKILL)
    for name, proc in recorders.items():
        code = proc.wait(timeout=10)
        assert code == (0 if name.endswith("int") else -9), (name, "".join(outputs[name].lines))

    for name in recorders:
        storage = name.split("_")[0]
        with open_bag(tmp_path / name) as bag:
            assert bag.storage == storage
            state = bag.topics.get(f"{NS}/press/state")
            assert state is not None, sorted(bag.topics)
            assert "/elsewhere/press/state" not in bag.topics
            if name.endswith("int"):
                assert not bag.recovered and bag.problems == [], bag.problems
                if storage == "mcap":   # the Foxglove path: decodes from the embedded schemas
                    from mcap_ros2.reader import read_ros2_messages

                    decoded = [m.ros_msg.pressure for m in read_ros2_messages(
                        str(bag.storage_files[0]), topics=[f"{NS}/press/state"])]
                    assert len(decoded) == state.message_count
                assert state.message_count >= 40
                # The talker offers reliable: the bag keeps what it offered.
                assert state.qos[0].reliability.name == "RELIABLE"
                assert bag.info.package_version
            else:
                # Killed: everything up to the last flush (0.2 s) is there.
                assert state.message_count >= 30, (name, state.message_count, bag.problems)
        run = load_run(tmp_path / name)
        pressure = run.press_state["pressure_pa"]
        assert len(pressure) >= 30
        # The talker's pressure rises by 0.1 MPa per sample: order and spacing survived.
        steps = set((pressure[1:] - pressure[:-1]).round(-3))
        assert steps <= {1.0e5, 2.0e5, 3.0e5}, steps
