"""Impedance node in-process: deactivate mid-sweep, busy, failed configure, lost link, params."""

import threading
import time

import pytest
import rclpy
from action_msgs.msg import GoalStatus
from rclpy.action import ActionClient
from rclpy.executors import MultiThreadedExecutor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.parameter import Parameter

from press_cell.action import MeasureImpedance
from press_cell.hardware.potentiostat_emulator import PotentiostatEmulator
from press_cell.hardware.potentiostat_sim import SimulatedPotentiostat
from press_cell.msg import DeviceStatus
from press_cell.nodes import qos
from press_cell.nodes.impedance_node import ImpedanceNode
from press_cell.physics.cell_history import CellBuildHistory
from press_cell.timebase import SimulatedClock

pytestmark = [pytest.mark.ros, pytest.mark.timeout(40)]
R = MeasureImpedance.Result
LONG_SWEEP = dict(frequency_max=1e6, frequency_min=0.01, points_per_decade=10, amplitude=0.01)
QUICK_SWEEP = dict(frequency_max=1e6, frequency_min=10.0, points_per_decade=5, amplitude=0.01)


def wait_for(predicate, timeout_s, what):
    """Poll ``predicate`` until true; fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class InProcess:
    """An impedance node and a client node spun by one executor in this process."""

    def __init__(self, context, **params):
        overrides = [Parameter(name, value=value) for name, value in params.items()]
        self.node = ImpedanceNode(context=context, parameter_overrides=overrides)
        self.client_node = rclpy.create_node("impedance_client", context=context)
        self.client = ActionClient(self.client_node, MeasureImpedance, "measure_impedance")
        self.statuses = []
        self.client_node.create_subscription(DeviceStatus, "impedance/status",
                                             self.statuses.append, qos.LATCHED)
        self.executor = MultiThreadedExecutor(num_threads=4, context=context)
        self.executor.add_node(self.node)
        self.executor.add_node(self.client_node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def close(self):
        """Make the node safe and stop spinning."""
        self.node.make_safe()
        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        self.client_node.destroy_node()

    def send(self, **fields):
        """Send a goal; return (handle, feedback list)."""
        assert self.client.wait_for_server(timeout_sec=10.0)
        feedback = []
        future = self.client.send_goal_async(MeasureImpedance.Goal(cell_id="c", **fields),
                                             feedback_callback=lambda m: feedback.append(m))
        wait_for(future.done, 10.0, "the goal response")
        return future.result(), feedback

    def result(self, handle, timeout_s=20.0):
        """Wait for a goal's end; return (status, result)."""
        future = handle.get_result_async()
        wait_for(future.done, timeout_s, "the result")
        return future.result().status, future.result().result


@pytest.fixture
def sim_node(rclpy_context):
    """Yield a configured and active sim impedance node at 20x time scale."""
    bench = InProcess(rclpy_context, time_scale=20.0)
    assert bench.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert bench.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    yield bench
    bench.close()


def test_deactivate_aborts_a_running_sweep_and_refuses_goals_until_reactivated(sim_node):
    handle, feedback = sim_node.send(**LONG_SWEEP)
    assert handle.accepted
    wait_for(lambda: len(feedback) >= 3, 10.0, "a few points")
    start_s = time.monotonic()
    assert sim_node.node.trigger_deactivate() == TransitionCallbackReturn.SUCCESS
    status, result = sim_node.result(handle)
    assert time.monotonic() - start_s < 3.0
    assert status == GoalStatus.STATUS_ABORTED
    assert result.error_code == R.NOT_ACTIVE and "deactivated" in result.error_msg
    refused, _ = sim_node.send(**QUICK_SWEEP)
    assert not refused.accepted
    assert "not active" in sim_node.statuses[-1].message
    assert sim_node.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    handle, _ = sim_node.send(**QUICK_SWEEP)
    assert handle.accepted
    status, result = sim_node.result(handle)
    assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg


def test_a_second_goal_while_sweeping_is_rejected_as_busy(sim_node):
    first, _ = sim_node.send(**LONG_SWEEP)
    assert first.accepted
    second, _ = sim_node.send(**QUICK_SWEEP)
    assert not second.accepted
    assert "busy" in sim_node.statuses[-1].message
    first.cancel_goal_async()
    status, result = sim_node.result(first)
    assert status == GoalStatus.STATUS_CANCELED and result.error_code == R.CANCELED


def test_runtime_parameters_outside_the_instrument_rating_are_refused(sim_node):
    node = sim_node.node
    refused = node.set_parameters([Parameter("freq_min", value=2e6)])[0]
    assert not refused.successful
    refused = node.set_parameters_atomically([Parameter("freq_min", value=10.0),
                                              Parameter("freq_max", value=5.0)])
    assert not refused.successful and "below frequency_max" in refused.reason
    refused = node.set_parameters([Parameter("monitor_reference_frequency", value=5.0)])[0]
    assert not refused.successful and "monitor_reference_frequency" in refused.reason
    assert node.set_parameters([Parameter("amplitude", value=0.02)])[0].successful
    assert node.get_parameter("freq_min").value == pytest.approx(0.1)


def test_configure_fails_with_a_reason_when_the_port_does_not_exist(rclpy_context):
    bench = InProcess(rclpy_context, hardware="methodscript",
                      serial_port="/dev/press_cell_no_such_port")
    try:
        assert bench.node.trigger_configure() == TransitionCallbackReturn.FAILURE
        status = wait_for(lambda: next((s for s in bench.statuses
                                        if s.state == DeviceStatus.STATE_FAULT), None), 5.0,
                          "a FAULT status")
        assert "no_such_port" in status.message
    finally:
        bench.close()


def test_a_lost_link_ends_the_sweep_with_disconnected(rclpy_context):
    history = CellBuildHistory()
    history.step_live(25e6, 60.0)
    emulator = PotentiostatEmulator(SimulatedPotentiostat(history, clock=SimulatedClock()))
    emulator.start()
    bench = InProcess(rclpy_context, hardware="methodscript", serial_port=emulator.slave_path)
    try:
        assert bench.node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        assert bench.node.trigger_activate() == TransitionCallbackReturn.SUCCESS
        handle, _ = bench.send(**QUICK_SWEEP)
        status, result = bench.result(handle)
        assert status == GoalStatus.STATUS_SUCCEEDED, result.error_msg
        emulator.stop()                           # the instrument is unplugged
        handle, _ = bench.send(**QUICK_SWEEP)
        status, result = bench.result(handle)
        assert status == GoalStatus.STATUS_ABORTED
        assert result.error_code == R.DISCONNECTED, result.error_msg
    finally:
        bench.close()
        emulator.stop()
