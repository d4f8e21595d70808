"""Recorder node in-process: one bag per cell, bag metadata from the coordinator and press."""

import threading
import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter

from press_cell.analysis.bag_reader import open_bag
from press_cell.msg import CellRecord, DeviceStatus, PressCertificate, PressState
from press_cell.nodes import qos
from press_cell.nodes.recorder_node import RecorderNode

NS = "/cellsplit"


def wait_until(condition, timeout_s=10.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def cell(rclpy_context, tmp_path):
    """Yield a recorder splitting per cell, a fake coordinator and press, spun in a thread."""
    recorder = RecorderNode(namespace=NS, context=rclpy_context, parameter_overrides=[
        Parameter("output_dir", value=str(tmp_path)), Parameter("session", value="before"),
        Parameter("split_per_cell", value=True), Parameter("storage", value="sqlite3"),
        Parameter("flush_period", value=0.1), Parameter("discovery_period", value=0.1)])
    coordinator = Node("coordinator", namespace=NS, context=rclpy_context)
    press = Node("press", namespace=NS, context=rclpy_context)
    pubs = {
        "status": coordinator.create_publisher(DeviceStatus, "~/status", qos.LATCHED),
        "record": coordinator.create_publisher(CellRecord, "~/cell_record", qos.RECORD),
        "state": press.create_publisher(PressState, "~/state", qos.RECORD),
        "diagnostics": press.create_publisher(DiagnosticArray, "/diagnostics", qos.DIAGNOSTICS),
    }
    executor = MultiThreadedExecutor(num_threads=3, context=rclpy_context)
    for node in (recorder, coordinator, press):
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield recorder, pubs, tmp_path
    recorder.close()
    executor.shutdown(timeout_sec=2.0)
    for node in (recorder, coordinator, press):
        node.destroy_node()


def status(text, state=DeviceStatus.STATE_BUSY):
    return DeviceStatus(device="coordinator", hardware="ros", state=state, message=text)


@pytest.mark.timeout(60)
def test_a_bag_per_cell_with_its_metadata(cell):
    recorder, pubs, out = cell
    # Discovery found the cell's topics (latched status, record, state) and /diagnostics.
    wait_until(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()),
               what="the recorder's subscriptions")
    time.sleep(0.2)
    written = recorder.message_count

    def written_more(n, what):
        # Callbacks of different topics run in any order: wait for each step's messages.
        wait_until(lambda: recorder.message_count >= written + n, what=what)

    for k in range(3):
        pubs["state"].publish(PressState(pressure=float(k)))
    diag = DiagnosticStatus(name=f"{NS}/press: press", values=[
        KeyValue(key="calibration_id", value="tare 2026-11-26 offset +0.10 N")])
    pubs["diagnostics"].publish(DiagnosticArray(status=[diag]))
    written_more(4, "states before the cell")

    pubs["status"].publish(status("assembling cell-A (li_symmetric)"))
    wait_until(lambda: recorder.bag_path is not None and recorder.bag_path.name == "cell-A",
               what="bag cell-A")
    for k in range(5):
        pubs["state"].publish(PressState(pressure=1e6 + k))
    certificate = PressCertificate(step_name="stack_press", calibration_id="tare 1")
    pubs["record"].publish(CellRecord(cell_id="cell-A", recipe_name="li_symmetric",
                                      recipe_hash="ab" * 32, package_version="9.9.9",
                                      certificates=[certificate]))
    pubs["status"].publish(status("cell-A: PASS", DeviceStatus.STATE_READY))
    written_more(4 + 1 + 5 + 2, "cell-A's messages")

    pubs["status"].publish(status("assembling cell-B (li_symmetric)"))
    wait_until(lambda: recorder.bag_path.name == "cell-B", what="bag cell-B")
    # The same announcement again (e.g. a late latched copy) does not split.
    pubs["status"].publish(status("assembling cell-B (li_symmetric)"))
    for k in range(4):
        pubs["state"].publish(PressState(pressure=2e6 + k))
    state_topic = f"{NS}/press/state"
    time.sleep(0.3)
    recorder.close()

    assert [p.name for p in recorder.bags] == ["before", "cell-A", "cell-B"]
    with open_bag(out / "before") as bag:
        assert bag.topics[state_topic].message_count == 3
        assert bag.info.cell_id == "" and bag.info.calibration_id.startswith("tare 2026")
    with open_bag(out / "cell-A") as bag:
        info = bag.info
        assert (info.cell_id, info.recipe_name, info.recipe_hash) == (
            "cell-A", "li_symmetric", "ab" * 32)
        assert info.package_version == "9.9.9" and info.calibration_id == "tare 1"
        assert bag.topics[state_topic].message_count == 5
        assert bag.topics[f"{NS}/coordinator/cell_record"].message_count == 1
        pressures = [bag.deserialize(state_topic, d).pressure
                     for _, _, d in bag.messages([state_topic])]
        assert pressures == [1e6 + k for k in range(5)]
    with open_bag(out / "cell-B") as bag:
        assert bag.info.cell_id == "cell-B" and bag.info.recipe_hash == ""
        assert bag.topics[state_topic].message_count == 4
        # Latched status carried over from cell-A ("cell-A: PASS"), then both announcements.
        status_topic = f"{NS}/coordinator/status"
        assert bag.topics[status_topic].message_count == 3
        texts = [bag.deserialize(status_topic, d).message
                 for _, _, d in bag.messages([status_topic])]
        assert texts == ["cell-A: PASS"] + ["assembling cell-B (li_symmetric)"] * 2
