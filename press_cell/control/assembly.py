"""Whole-cell assembly sequence: compaction, foil pre-press, placements, stack press, EIS, verdict.

Pure core of the coordinator: the devices are reached through three ports (press, arm,
potentiostat) whose calls block until the device has finished and take a ``threading.Event``
that asks them to stop safely (the press releases under control, the arm retreats). The
coordinator node implements the ports with ROS action clients; tests implement them directly.

Failure policy: the first step that does not succeed ends the run. The sequence then makes the
cell safe through ``ports.make_safe()`` (press released, arm out of the press zone) and reports
which step failed and why; every certificate gathered so far is kept in the record. A cancel is
the same, reported as CANCELED. A run whose every step succeeded but whose cell misses the
acceptance criteria is REJECTED, not failed: the record says which limit was missed.

Part naming: ``<cell_id>/pellet``, ``<cell_id>/anode-a``, ``<cell_id>/anode-b`` ...; the press
step names are ``compaction``, ``prepress_a``, ``prepress_b`` ..., ``stack_press``.
"""

import logging
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Protocol

from press_cell.recipes.schema import AssemblyRecipe, ImpedanceSettings, PressRecipe

_LOG = logging.getLogger(__name__)

# AssembleCell.action step constants, by the name used in feedback.
ARM_WAIT_POLL_S = 0.05     # s, how often a sequence waiting for the shared arm checks cancel

STEP_IDS = {"compaction": 0, "foil_prepress": 1, "place": 2, "stack_press": 3, "impedance": 4,
            "verdict": 5}


@dataclass(frozen=True)
class DeviceOutcome:
    """What a device port reports: success, the device's own error code and message, payload."""

    success: bool
    error_code: int = 0         # the device action's result code (PressCycle 1xx, ...)
    message: str = ""
    canceled: bool = False
    payload: object = None      # press: certificate; potentiostat: MeasuredCell


@dataclass(frozen=True)
class MeasuredCell:
    """The impedance port's payload: the raw spectrum/fit objects and the figures judged."""

    spectrum: object
    fit: object
    total_resistance_ohm: float
    interface_asr_ohm_m2: float     # per interface


class PressPort(Protocol):
    """Run press cycles (blocking)."""

    def run_cycle(self, recipe: PressRecipe, part_id: str, step_name: str,
                  cancel: threading.Event) -> DeviceOutcome:
        """Run one cycle of ``recipe``; payload = the press certificate."""


class ArmPort(Protocol):
    """Place components (blocking)."""

    def place(self, kind: str, component_id: str, source_slot: str, target_station: str,
              cancel: threading.Event) -> DeviceOutcome:
        """Move one component from ``source_slot`` to ``target_station``."""


class PotentiostatPort(Protocol):
    """Measure impedance spectra (blocking)."""

    def measure(self, settings: ImpedanceSettings, cell_id: str, electrode_area_m2: float,
                cancel: threading.Event) -> DeviceOutcome:
        """Measure and fit one spectrum; payload = ``MeasuredCell``."""


class SafetyPort(Protocol):
    """Leave the cell safe after a failure or cancel."""

    def make_safe(self) -> str:
        """Release the press and retreat the arm; return a one-line account of what was done."""


@dataclass(frozen=True)
class CellPlan:
    """One cell to build: recipe, id and where its components come from and go to."""

    cell_id: str
    recipe: AssemblyRecipe
    recipe_hash: str
    pellet_slot: str                # e.g. "pellet_tray/0"
    anode_slots: tuple              # e.g. ("anode_rack/0", "anode_rack/1")
    die_station: str = "press_die"


@dataclass
class AssemblyRecord:
    """Everything the sequence learnt about one cell (the coordinator turns it into CellRecord)."""

    cell_id: str
    recipe_name: str
    recipe_hash: str
    started_s: float                # wall-clock time.time() of the start, s
    duration_s: float = 0.0
    certificates: list = field(default_factory=list)   # (step_name, certificate)
    placed: list = field(default_factory=list)         # component ids, in order
    measured: MeasuredCell | None = None
    passed: bool = False
    verdict: str = ""
    failed_step: str = ""
    outcome: str = "UNKNOWN"        # AssembleCell result-code name
    message: str = ""


class _StepFailed(Exception):
    """A step did not succeed (internal control flow)."""

    def __init__(self, step: str, outcome: DeviceOutcome) -> None:
        super().__init__(f"{step}: {outcome.message or 'failed'} (device code "
                         f"{outcome.error_code})")
        self.step = step
        self.outcome = outcome


def recipe_needs(recipe: AssemblyRecipe) -> dict:
    """Return ``{component kind: count}`` of the parts the recipe's placements pick."""
    needs = {}
    for step in recipe.steps_of("place"):
        needs[step.component] = needs.get(step.component, 0) + step.count
    return needs


def plan_cell(recipe: AssemblyRecipe, recipe_hash: str, cell_id: str, slots: dict,
              die_station: str = "press_die") -> CellPlan:
    """Return the plan of one cell whose parts come from ``slots`` = {kind: slot refs}.

    ``slots`` is what ``TrayInventory.reserve(cell_id, recipe_needs(recipe))`` kept for the
    cell; it must hold every part ``recipe_needs`` counts (raise ``ValueError`` if not).
    """
    needs = recipe_needs(recipe)
    for kind, count in needs.items():
        if len(slots.get(kind, ())) != count:
            raise ValueError(f"recipe {recipe.name!r} places {count} {kind} part(s) but "
                             f"{len(slots.get(kind, ()))} slot(s) were given: "
                             f"{list(slots.get(kind, ()))}")
    pellets = tuple(slots.get("ELECTROLYTE_PELLET", ()))
    return CellPlan(cell_id=cell_id, recipe=recipe, recipe_hash=recipe_hash,
                    pellet_slot=pellets[0] if pellets else "",
                    anode_slots=tuple(slots.get("ANODE_ON_ROD", ())),
                    die_station=die_station)


class AssemblySequence:
    """Run one cell's assembly recipe on a press, an arm and a potentiostat."""

    def __init__(self, plan: CellPlan, press: PressPort, arm: ArmPort,
                 potentiostat: PotentiostatPort, safety: SafetyPort, on_progress=None,
                 arm_lock: threading.Lock = None, on_pick=None, on_step=None) -> None:
        """Prepare the run; ``on_progress(step, index, count, detail)`` reports each sub-step.

        ``arm_lock`` (optional) is held over each run of consecutive placements (a cell's
        pellet and anodes as one block), so several sequences sharing an arm (two presses,
        pipelined) never command it at the same time and the arm finishes one die before it
        serves the other; a cancel while waiting for it ends the wait; it is given back before
        ``make_safe``. ``on_pick(source_slot, outcome)`` (optional) is told how every
        placement ended, so a tray inventory can follow the parts. ``on_step(record, label)``
        (optional) is called before each sub-step with the record so far (every earlier
        sub-step finished; the first call is the cell's start), so a journal can keep it.
        """
        self.plan = plan
        self.press = press
        self.arm = arm
        self.potentiostat = potentiostat
        self.safety = safety
        self._on_progress = on_progress or (lambda *args: None)
        self._arm_lock = arm_lock or threading.Lock()
        self._on_pick = on_pick or (lambda slot, outcome: None)
        self._on_step = on_step or (lambda record, label: None)
        self._cancel = threading.Event()
        self._substeps = self._expand()

    @property
    def step_count(self) -> int:
        """Return the number of sub-steps (press cycles, placements, measurement, verdict)."""
        return len(self._substeps)

    def cancel(self) -> None:
        """Ask the run to stop at once, leaving the cell safe (thread-safe, never blocks)."""
        self._cancel.set()

    def _expand(self) -> list:
        """Turn the recipe's steps into (kind, label, callable) sub-steps."""
        plan = self.plan
        letters = iter(string.ascii_lowercase)
        anode_ids = [f"{plan.cell_id}/anode-{next(letters)}" for _ in plan.anode_slots]
        anode_queue = list(zip(anode_ids, plan.anode_slots, strict=True))
        prepress_ids = iter(anode_ids)
        substeps = []
        for step in plan.recipe.steps:
            for _ in range(step.count):
                if step.kind == "compaction":
                    substeps.append(("compaction", "compaction", self._press_step(
                        step.recipe, f"{plan.cell_id}/pellet", "compaction")))
                elif step.kind == "foil_prepress":
                    part = next(prepress_ids)
                    name = "prepress_" + part.rsplit("-", 1)[1]
                    substeps.append(("foil_prepress", name,
                                     self._press_step(step.recipe, part, name)))
                elif step.kind == "place":
                    if step.component == "ANODE_ON_ROD":
                        component, slot = anode_queue.pop(0)
                    else:
                        component, slot = f"{plan.cell_id}/pellet", plan.pellet_slot
                    substeps.append(("place", f"place {component}", self._place_step(
                        step.component, component, slot)))
                elif step.kind == "stack_press":
                    substeps.append(("stack_press", "stack_press", self._press_step(
                        step.recipe, plan.cell_id, "stack_press")))
                elif step.kind == "impedance":
                    substeps.append(("impedance", "impedance", self._measure_step(
                        step.impedance)))
        substeps.append(("verdict", "verdict", self._verdict))
        return substeps

    def _press_step(self, recipe, part_id, step_name):
        def run(record):
            outcome = self.press.run_cycle(recipe, part_id, step_name, self._cancel)
            if outcome.payload is not None:
                record.certificates.append((step_name, outcome.payload))
            return outcome
        return run

    def _place_step(self, kind, component_id, slot):
        def run(record):
            outcome = self.arm.place(kind, component_id, slot, self.plan.die_station,
                                     self._cancel)
            self._on_pick(slot, outcome)
            if outcome.success:
                record.placed.append(component_id)
            return outcome
        return run

    def _measure_step(self, settings):
        def run(record):
            outcome = self.potentiostat.measure(settings, self.plan.cell_id,
                                                self.plan.recipe.electrode_area_m2, self._cancel)
            if outcome.success:
                record.measured = outcome.payload
            return outcome
        return run

    def _verdict(self, record) -> DeviceOutcome:
        criteria = self.plan.recipe.acceptance
        measured = record.measured
        if measured is None:
            record.passed = False
            record.verdict = "no impedance measurement in the recipe: cannot judge the cell"
            return DeviceOutcome(True)
        problems = []
        if not measured.total_resistance_ohm <= criteria.max_total_resistance_ohm:
            problems.append(f"total resistance {measured.total_resistance_ohm:.1f} ohm > limit "
                            f"{criteria.max_total_resistance_ohm:.1f} ohm")
        asr_cm2 = measured.interface_asr_ohm_m2 * 1e4
        limit_cm2 = criteria.max_interface_asr_ohm_m2 * 1e4
        if not asr_cm2 <= limit_cm2:
            problems.append(f"interface ASR {asr_cm2:.2f} ohm cm^2 > limit {limit_cm2:.2f} "
                            "ohm cm^2")
        record.passed = not problems
        figures = (f"R_total {measured.total_resistance_ohm:.1f} ohm (limit "
                   f"{criteria.max_total_resistance_ohm:.1f}), interface ASR {asr_cm2:.2f} "
                   f"ohm cm^2 (limit {limit_cm2:.2f})")
        record.verdict = ("PASS: " + figures) if record.passed else \
            ("FAIL: " + "; ".join(problems))
        return DeviceOutcome(True)

    def run(self) -> AssemblyRecord:
        """Run every sub-step in order; return the record (never raises for device failures)."""
        plan = self.plan
        record = AssemblyRecord(cell_id=plan.cell_id, recipe_name=plan.recipe.name,
                                recipe_hash=plan.recipe_hash, started_s=time.time())
        start = time.monotonic()
        count = len(self._substeps)
        holds_arm = False
        try:
            for index, (kind, label, action) in enumerate(self._substeps, start=1):
                if self._cancel.is_set():
                    raise _StepFailed(label, DeviceOutcome(False, canceled=True,
                                                           message="canceled"))
                if holds_arm and kind != "place":
                    self._arm_lock.release()
                    holds_arm = False
                if kind == "place" and not holds_arm:
                    holds_arm = self._take_arm(label)
                self._on_progress(kind, index, count, label)
                self._on_step(record, label)
                outcome = action(record)
                if not outcome.success:
                    raise _StepFailed(label, outcome)
            record.outcome = "NONE" if record.passed else "REJECTED"
            record.message = record.verdict
        except _StepFailed as failure:
            record.failed_step = failure.step
            canceled = failure.outcome.canceled or self._cancel.is_set()
            record.outcome = "CANCELED" if canceled else "STEP_FAILED"
            if holds_arm:       # make_safe checks the arm under the same lock
                self._arm_lock.release()
                holds_arm = False
            safe = self.safety.make_safe()
            record.message = (f"{'canceled during' if canceled else 'step failed:'} "
                              f"{failure.step}: {failure.outcome.message or 'no reason given'}"
                              f" (device code {failure.outcome.error_code}); {safe}")
            record.verdict = "NOT JUDGED: " + record.message
            _LOG.warning("cell %s: %s", plan.cell_id, record.message)
        finally:
            if holds_arm:
                self._arm_lock.release()
        record.duration_s = time.monotonic() - start
        return record

    def _take_arm(self, label: str) -> bool:
        """Wait for the shared arm (True when taken); raise _StepFailed on a cancel."""
        while not self._arm_lock.acquire(timeout=ARM_WAIT_POLL_S):
            if self._cancel.is_set():
                raise _StepFailed(label, DeviceOutcome(
                    False, canceled=True, message="canceled while waiting for the arm"))
        return True
