"""Assembly sequence: order of steps, failure and cancel handling, verdict (no ROS)."""

import threading

import pytest

from press_cell.control.assembly import (
    AssemblySequence,
    DeviceOutcome,
    MeasuredCell,
    plan_cell,
    recipe_needs,
)
from press_cell.recipes import load_recipes, recipe_hash

BOOK = load_recipes()
LI_SLOTS = {"ELECTROLYTE_PELLET": ("pellet_tray/0",),
            "ANODE_ON_ROD": ("anode_rack/0", "anode_rack/1")}


class ScriptedCell:
    """Ports that log every call and fail where told (the sequencing logic under test)."""

    def __init__(self, fail_at=None, r_total=32.0, asr_ohm_m2=1.2e-4, cancel_at=None):
        self.calls = []
        self.fail_at = fail_at
        self.cancel_at = cancel_at
        self.r_total = r_total
        self.asr = asr_ohm_m2
        self.made_safe = 0
        self.sequence = None

    def _maybe(self, label):
        self.calls.append(label)
        if label == self.cancel_at:
            self.sequence.cancel()
            return DeviceOutcome(False, error_code=105, message="canceled", canceled=True)
        if label == self.fail_at:
            return DeviceOutcome(False, error_code=205, message=f"injected failure at {label}")
        return None

    def run_cycle(self, recipe, part_id, step_name, cancel):
        return self._maybe(step_name) or DeviceOutcome(True, payload={"part": part_id,
                                                                      "recipe": recipe.name})

    def place(self, kind, component_id, source_slot, target_station, cancel):
        return self._maybe(f"place {component_id} from {source_slot}") or DeviceOutcome(True)

    def measure(self, settings, cell_id, electrode_area_m2, cancel):
        return self._maybe("impedance") or DeviceOutcome(
            True, payload=MeasuredCell(None, None, self.r_total, self.asr))

    def make_safe(self):
        self.made_safe += 1
        return "press released, arm retreated"


def _run(cell, recipe_name="li_symmetric_cell", picks=None):
    recipe = BOOK.assembly[recipe_name]
    plan = plan_cell(recipe, recipe_hash(recipe), "C1", LI_SLOTS)
    progress = []
    picks = [] if picks is None else picks
    sequence = AssemblySequence(plan, cell, cell, cell, cell,
                                on_progress=lambda *a: progress.append(a),
                                on_pick=lambda slot, outcome: picks.append(
                                    (slot, outcome.success)))
    cell.sequence = sequence
    return sequence.run(), progress


def test_steps_run_in_recipe_order_and_the_cell_passes():
    cell = ScriptedCell()
    record, progress = _run(cell)
    assert cell.calls == ["compaction", "prepress_a", "prepress_b",
                          "place C1/pellet from pellet_tray/0",
                          "place C1/anode-a from anode_rack/0",
                          "place C1/anode-b from anode_rack/1", "stack_press", "impedance"]
    assert record.outcome == "NONE" and record.passed
    assert [name for name, _ in record.certificates] == ["compaction", "prepress_a",
                                                         "prepress_b", "stack_press"]
    assert record.placed == ["C1/pellet", "C1/anode-a", "C1/anode-b"]
    assert record.verdict.startswith("PASS")
    assert [p[1] for p in progress] == list(range(1, 10)) and progress[-1][0] == "verdict"
    assert cell.made_safe == 0


@pytest.mark.parametrize("fail_at", ["compaction", "prepress_b", "place C1/anode-a from "
                                     "anode_rack/0", "stack_press", "impedance"])
def test_a_failing_step_is_named_the_cell_is_made_safe_and_data_kept(fail_at):
    cell = ScriptedCell(fail_at=fail_at)
    record, _ = _run(cell)
    assert record.outcome == "STEP_FAILED"
    assert record.failed_step.startswith(fail_at.split(" from")[0])
    assert f"injected failure at {fail_at}" in record.message
    assert cell.made_safe == 1
    assert cell.calls[-1] == fail_at, "nothing may run after the failing step"
    done = cell.calls.index(fail_at)
    assert len(record.certificates) == sum(1 for c in cell.calls[:done]
                                           if not c.startswith(("place", "impedance")))


def test_cancel_during_stack_press_reports_canceled_and_makes_safe():
    cell = ScriptedCell(cancel_at="stack_press")
    record, _ = _run(cell)
    assert record.outcome == "CANCELED" and record.failed_step == "stack_press"
    assert cell.made_safe == 1 and "impedance" not in cell.calls


def test_a_cell_over_the_limits_is_rejected_with_the_limit_named():
    cell = ScriptedCell(r_total=55.0, asr_ohm_m2=9e-4)
    record, _ = _run(cell)
    assert record.outcome == "REJECTED" and not record.passed
    assert "total resistance 55.0 ohm > limit 40.0 ohm" in record.verdict
    assert "interface ASR 9.00 ohm cm^2 > limit 5.00" in record.verdict


def test_the_plan_takes_the_slots_it_is_given_and_refuses_a_short_list():
    recipe = BOOK.assembly["li_symmetric_cell"]
    assert recipe_needs(recipe) == {"ELECTROLYTE_PELLET": 1, "ANODE_ON_ROD": 2}
    plan = plan_cell(recipe, "h", "C2", {"ELECTROLYTE_PELLET": ("pellet_tray/5",),
                                         "ANODE_ON_ROD": ("anode_rack/3", "anode_rack/1")})
    assert plan.pellet_slot == "pellet_tray/5"
    assert plan.anode_slots == ("anode_rack/3", "anode_rack/1")
    with pytest.raises(ValueError, match="places 2 ANODE_ON_ROD part"):
        plan_cell(recipe, "h", "C3", {"ELECTROLYTE_PELLET": ("pellet_tray/0",),
                                      "ANODE_ON_ROD": ("anode_rack/0",)})


def test_every_placement_is_reported_to_the_inventory_hook():
    picks = []
    _run(ScriptedCell(fail_at="place C1/anode-b from anode_rack/1"), picks=picks)
    assert picks == [("pellet_tray/0", True), ("anode_rack/0", True), ("anode_rack/1", False)]


@pytest.mark.timeout(10)
def test_a_cancel_while_waiting_for_the_shared_arm_ends_the_wait():
    cell = ScriptedCell()
    recipe = BOOK.assembly["li_symmetric_cell"]
    arm_lock = threading.Lock()
    arm_lock.acquire()          # the other press line is placing
    sequence = AssemblySequence(plan_cell(recipe, "h", "C1", LI_SLOTS), cell, cell, cell,
                                cell, arm_lock=arm_lock)
    threading.Timer(0.3, sequence.cancel).start()
    record = sequence.run()
    assert record.outcome == "CANCELED" and record.failed_step == "place C1/pellet"
    assert "waiting for the arm" in record.message
    assert not any(c.startswith("place") for c in cell.calls)
    assert cell.made_safe == 1 and arm_lock.locked()     # the other line still holds it


def test_cancel_is_thread_safe_before_start():
    cell = ScriptedCell()
    recipe = BOOK.assembly["na_symmetric_cell"]
    sequence = AssemblySequence(plan_cell(recipe, "h", "C9", {
        "ELECTROLYTE_PELLET": ("pellet_tray/0",), "ANODE_ON_ROD": ("anode_rack/0",
                                                                    "anode_rack/1")}),
        cell, cell, cell, cell)
    threading.Thread(target=sequence.cancel).start()
    sequence.cancel()
    record = sequence.run()
    assert record.outcome == "CANCELED" and cell.calls == []
