"""Pick-and-place sequence; the same suite runs on SimulatedArm and on DobotArm + emulator."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from press_cell.control.placement import (
    ComponentKind,
    PlacementOutcome,
    PlacementRequest,
    PlacementSequence,
    PlacementStage,
)
from press_cell.hardware.arm_dobot import DobotArm
from press_cell.hardware.arm_driver import ArmDriver
from press_cell.hardware.arm_sim import SimulatedArm
from press_cell.hardware.dobot_emulator import DobotEmulator
from press_cell.recipes.stations import CellLayout, load_layout, parse_layout
from press_cell.timebase import SimulatedClock

CONFIG = Path(__file__).resolve().parent.parent / "config" / "stations.yaml"
PELLET = ComponentKind.ELECTROLYTE_PELLET
ANODE = ComponentKind.ANODE_ON_ROD
TOL_M = 1e-3     # float32 mm on the Dobot wire: well below 1 mm


class RecordingGate:
    """Press-zone lease that records calls; refuses when told to."""

    def __init__(self, permit: bool = True) -> None:
        self.permit = permit
        self.calls: list[str] = []

    def zone_entry_permit(self) -> bool:
        self.calls.append("permit?")
        return self.permit

    def zone_exit(self) -> None:
        self.calls.append("exit")


@dataclass
class Cell:
    arm: ArmDriver
    sim: SimulatedArm            # the kinematic world behind either backend
    layout: CellLayout
    gate: RecordingGate
    poll_s: float
    feedback: list = field(default_factory=list)

    def sequence(self, **kwargs) -> PlacementSequence:
        kwargs.setdefault("on_feedback", lambda stage, pose: self.feedback.append((stage, pose)))
        return PlacementSequence(self.arm, self.layout, zone_gate=self.gate, poll_s=self.poll_s,
                                 **kwargs)

    def slot_position(self, ref: str) -> tuple:
        return self.layout.resolve_slot(ref)[2].position_m

    def assert_retreated(self) -> None:
        pose = self.arm.current_pose()
        assert pose.z_m >= self.layout.safe_z_m - TOL_M
        assert not self.layout.press_zone.contains(pose.position_m)
        granted = self.gate.calls.count("permit?") if self.gate.permit else 0
        assert granted == self.gate.calls.count("exit"), "zone lease not handed back"


@pytest.fixture(params=["sim", "dobot"])
def cell(request):
    layout = load_layout(CONFIG)
    clock = SimulatedClock()
    gate = RecordingGate()
    if request.param == "sim":
        sim = SimulatedArm(clock)
        sim.connect()
        world = Cell(sim, sim, layout, gate, poll_s=0.05)
        _stock(world)
        yield world
        return
    sim = SimulatedArm(clock, lockstep=False)
    emulator = DobotEmulator(sim, clock, time_scale=40.0)
    emulator.start()
    arm = DobotArm(emulator.port, reply_timeout_s=0.1, poll_interval_s=0.003)
    try:
        arm.connect()
        world = Cell(arm, sim, layout, gate, poll_s=0.01)
        _stock(world)
        yield world
    finally:
        arm.disconnect()
        emulator.close()


def _stock(cell: Cell) -> None:
    for ref in ("pellet_tray/0", "pellet_tray/1", "anode_rack/0", "anode_rack/1"):
        cell.sim.add_part(ref.replace("/", "-"), cell.slot_position(ref))


@pytest.mark.timeout(30)
def test_pellet_then_anode_into_the_die(cell):
    die = cell.slot_position("press_die")
    seq = cell.sequence()
    result = seq.run(PlacementRequest(PELLET, "pellet_tray-0", "pellet_tray/0", "press_die"))
    assert result.outcome == PlacementOutcome.SUCCESS, result.message
    assert cell.sim.part_positions()["pellet_tray-0"] == pytest.approx(die, abs=TOL_M)
    result = seq.run(PlacementRequest(ANODE, "anode_rack-0", "anode_rack/0", "press_die"))
    assert result.success, result.message
    assert cell.sim.part_positions()["anode_rack-0"] == pytest.approx(die, abs=TOL_M)
    assert not cell.arm.gripper_closed
    assert cell.gate.calls == ["permit?", "exit", "permit?", "exit"]
    cell.assert_retreated()
    assert result.final_pose.position_m == pytest.approx(cell.layout.park_pose.position_m,
                                                         abs=TOL_M)
    stages = [stage for stage, _ in cell.feedback]
    first = [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s][:8]
    assert first == list(PlacementStage)


@pytest.mark.timeout(30)
def test_empty_source_slot(cell):
    result = cell.sequence().run(
        PlacementRequest(PELLET, "p7", "pellet_tray/7", "press_die"))
    assert result.outcome == PlacementOutcome.EMPTY_SOURCE
    assert result.last_stage == PlacementStage.VERIFY_GRASP
    assert not cell.arm.gripper_closed
    assert "permit?" not in cell.gate.calls
    cell.assert_retreated()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("source, target, words", [
    ("oven/0", "press_die", "no station 'oven'"),
    ("pellet_tray/0", "press_dye", "no station 'press_dye'"),
    ("pellet_tray/9", "press_die", "slot must be 0..7"),
    ("pellet_tray/0", "anode_rack/2", "does not take ELECTROLYTE_PELLET"),
])
def test_unknown_station_is_refused_before_any_motion(cell, source, target, words):
    before = cell.arm.current_pose()
    result = cell.sequence().run(PlacementRequest(PELLET, "p", source, target))
    assert result.outcome == PlacementOutcome.UNKNOWN_STATION
    assert words in result.message
    assert cell.sim.motion_log == []
    assert result.final_pose.distance_to(before) < TOL_M


@pytest.mark.timeout(30)
def test_failed_grasp_leaves_the_part_and_retreats(cell):
    cell.sim.inject_grasp_failure()
    result = cell.sequence().run(PlacementRequest(PELLET, "p0", "pellet_tray/0", "press_die"))
    assert result.outcome == PlacementOutcome.GRASP_FAILED
    assert result.last_stage == PlacementStage.LIFT
    assert cell.sim.part_positions()["pellet_tray-0"] == pytest.approx(
        cell.slot_position("pellet_tray/0"))
    assert not cell.arm.gripper_closed
    cell.assert_retreated()


@pytest.mark.timeout(30)
def test_part_dropped_in_transfer(cell):
    def drop_on_transfer(stage, pose):
        if stage == PlacementStage.TRANSFER and cell.sim.held_part and not dropped:
            dropped.append(True)
            cell.sim.inject_drop(after_m=0.05)
    dropped = []
    result = cell.sequence(on_feedback=drop_on_transfer).run(
        PlacementRequest(PELLET, "p0", "pellet_tray/0", "press_die"))
    assert result.outcome == PlacementOutcome.PART_DROPPED
    assert result.last_stage == PlacementStage.TRANSFER
    assert cell.sim.part_positions()["pellet_tray-0"][2] == pytest.approx(0.0)
    assert cell.arm.gripper_closed          # never opened away from a station
    cell.assert_retreated()


@pytest.mark.timeout(30)
def test_cancel_mid_transfer_keeps_the_part_and_rises(cell):
    seq = None
    seen = []

    def cancel_while_moving(stage, pose):
        if stage == PlacementStage.TRANSFER:
            seen.append(pose)
            if len(seen) == 2:     # the second report comes while the transfer move runs
                seq.cancel()
    seq = cell.sequence(on_feedback=cancel_while_moving)
    result = seq.run(PlacementRequest(PELLET, "p0", "pellet_tray/0", "press_die"))
    assert result.outcome == PlacementOutcome.CANCELED
    assert result.last_stage == PlacementStage.TRANSFER
    assert cell.arm.gripper_closed
    assert cell.sim.held_part == "pellet_tray-0"
    assert result.final_pose.z_m >= cell.layout.safe_z_m - TOL_M
    assert not cell.layout.press_zone.contains(result.final_pose.position_m)
    assert cell.gate.calls.count("permit?") == cell.gate.calls.count("exit")


@pytest.mark.timeout(30)
def test_zone_refused_never_enters_and_returns_the_part(cell):
    cell.gate.permit = False
    result = cell.sequence().run(PlacementRequest(PELLET, "p0", "pellet_tray/0", "press_die"))
    assert result.outcome == PlacementOutcome.ZONE_DENIED
    assert result.last_stage == PlacementStage.TRANSFER
    zone = cell.layout.press_zone
    assert cell.sim.motion_log, "the arm should have fetched the part"
    assert not any(zone.intersects_segment(a.position_m, b.position_m)
                   for a, b in cell.sim.motion_log)
    assert cell.sim.part_positions()["pellet_tray-0"] == pytest.approx(
        cell.slot_position("pellet_tray/0"), abs=TOL_M)
    assert "exit" not in cell.gate.calls
    cell.assert_retreated()


@pytest.mark.timeout(30)
def test_stalled_move_is_a_motion_failure(cell):
    cell.sim.inject_stall(0.5)
    result = cell.sequence(motion_timeout_s=0.5).run(
        PlacementRequest(PELLET, "p0", "pellet_tray/0", "press_die"))
    assert result.outcome == PlacementOutcome.MOTION_FAILED
    assert "stalled" in result.message
    assert not cell.arm.is_moving


@pytest.mark.timeout(30)
def test_slot_out_of_reach_is_a_motion_failure(cell):
    text = CONFIG.read_text().replace("origin: {x_mm: 120, y_mm: 230,",
                                      "origin: {x_mm: 120, y_mm: 300,")   # 323 mm > reach
    cell.layout = parse_layout(text)
    result = cell.sequence().run(PlacementRequest(ComponentKind.SPACER, "s0", "spacer_tray/0",
                                                  "press_die"))
    assert result.outcome == PlacementOutcome.MOTION_FAILED
    assert result.last_stage == PlacementStage.APPROACH
    assert not cell.arm.gripper_closed
    cell.assert_retreated()
