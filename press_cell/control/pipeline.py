"""Press lines: one arm serving several presses, cells pipelined over them (no rclpy).

A *press line* is a press node, the die station it owns (``config/stations.yaml``: the die's
``press:`` key) and the impedance node wired to that die. One coordinator with two lines runs
two cells at once: each cell's ``AssemblySequence`` runs on its line's press and potentiostat
in its own thread, and the one arm is shared under a lock, so the arm places the parts of the
cell on press B while press A holds, and never serves two dies at once. A die under pressure
is never entered: placements go only to the line's own die, from its own sequence (never
during that line's press cycle), and the arm's zone lease comes from that die's press.

Line entries (coordinator parameter ``press_lines``) read ``press:die_station[:impedance]``;
an empty list is the one-press cell ``press:<die_station>:impedance``. ROS names: a press
node ``press`` serves ``press_cycle`` (namespace-relative, as in a one-press cell), any other
press node ``P`` serves ``P/press_cycle``; likewise ``measure_impedance`` /
``I/measure_impedance``. Bringup and the launch file remap line B's nodes that way.
"""

import dataclasses
import re
import threading
from dataclasses import dataclass

from press_cell.control.assembly import AssemblySequence, CellPlan
from press_cell.recipes.stations import CellLayout, StationKind

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class PressLineError(ValueError):
    """A press-line entry is malformed or does not match the cell layout."""


@dataclass(frozen=True)
class PressLineSpec:
    """One press line: press node, the die it owns, the impedance node wired to that die."""

    press: str = "press"
    die_station: str = "press_die"
    impedance: str = "impedance"

    @property
    def press_cycle_action(self) -> str:
        """Return the namespace-relative name of this press's ``press_cycle`` action."""
        return "press_cycle" if self.press == "press" else f"{self.press}/press_cycle"

    @property
    def measure_action(self) -> str:
        """Return the namespace-relative name of this line's ``measure_impedance`` action."""
        return "measure_impedance" if self.impedance == "impedance" else \
            f"{self.impedance}/measure_impedance"

    def __str__(self) -> str:
        """Return the parameter form ``press:die_station:impedance``."""
        return f"{self.press}:{self.die_station}:{self.impedance}"


def parse_press_lines(entries, default_die: str = "press_die") -> tuple:
    """Return the ``PressLineSpec``s of ``press:die[:impedance]`` entries (empty: one press).

    Raise ``PressLineError`` naming the entry for a bad name or a press or die used twice.
    """
    entries = [str(e).strip() for e in entries if str(e).strip()]
    if not entries:
        return (PressLineSpec(die_station=default_die),)
    lines = []
    for entry in entries:
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not all(_NAME.match(p) for p in parts):
            raise PressLineError(f"press line {entry!r}: expected 'press:die_station' or "
                                 "'press:die_station:impedance' (ROS name tokens)")
        lines.append(PressLineSpec(*parts))
    for attribute in ("press", "die_station"):
        names = [getattr(line, attribute) for line in lines]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PressLineError(f"press lines {entries}: {attribute} {twice[0]!r} is used by "
                                 "two lines; each line has its own press and die")
    return tuple(lines)


def check_lines_against_layout(lines, layout: CellLayout) -> None:
    """Raise ``PressLineError`` unless every line's die is a die owned by the line's press."""
    for line in lines:
        station = layout.stations.get(line.die_station)
        if station is None or station.kind != StationKind.DIE:
            dies = sorted(n for n, s in layout.stations.items() if s.kind == StationKind.DIE)
            raise PressLineError(f"press line {line}: {line.die_station!r} is not a die station "
                                 f"of {layout.source}; dies: {dies}")
        owner = layout.press_of(line.die_station)
        if owner != line.press:
            raise PressLineError(f"press line {line}: {layout.source} gives die "
                                 f"{line.die_station!r} to press {owner!r}, not {line.press!r}")


@dataclass(frozen=True)
class PressLine:
    """A press line's device ports (see ``control.assembly`` for the port protocols)."""

    spec: PressLineSpec
    press: object           # PressPort
    potentiostat: object    # PotentiostatPort
    safety: object          # SafetyPort


class LinePool:
    """Hand free press lines to cells, lowest line first (thread-safe)."""

    def __init__(self, count: int) -> None:
        """Start with ``count`` free lines (indices 0..count-1)."""
        if count < 1:
            raise ValueError(f"a pool needs at least one line, got {count}")
        self._free = list(range(count))
        self._lock = threading.Lock()

    def claim(self) -> int | None:
        """Return a free line index and mark it busy, or None when every line is busy."""
        with self._lock:
            return self._free.pop(0) if self._free else None

    def release(self, index: int) -> None:
        """Mark line ``index`` free again."""
        with self._lock:
            if index in self._free:
                raise ValueError(f"line {index} is already free")
            self._free.append(index)
            self._free.sort()

    @property
    def free_count(self) -> int:
        """Return how many lines are free."""
        with self._lock:
            return len(self._free)


class CellPipeline:
    """Run a queue of cells over press lines, one arm shared under a lock."""

    def __init__(self, lines, arm, arm_lock=None,
                 on_progress=None, on_pick=None) -> None:
        """``on_progress(line, plan, step, index, count, detail)``, ``on_pick(slot, outcome)``."""
        self.lines = tuple(lines)
        self.arm = arm
        self.arm_lock = arm_lock or threading.Lock()
        self._on_progress = on_progress or (lambda *args: None)
        self._on_pick = on_pick

    def run(self, plans) -> list:
        """Assemble ``plans`` in queue order on whichever line is free; return records in order.

        Each entry of the result is ``(line spec, AssemblyRecord)``; a plan's die station is
        replaced by its line's die.
        """
        queue = list(enumerate(plans))
        results = [None] * len(queue)
        lock = threading.Lock()

        def worker(line):
            while True:
                with lock:
                    if not queue:
                        return
                    index, plan = queue.pop(0)
                plan = dataclasses.replace(plan, die_station=line.spec.die_station)
                results[index] = (line.spec, self.sequence(line, plan).run())

        threads = [threading.Thread(target=worker, args=(line,), name=f"line-{line.spec.press}",
                                    daemon=True) for line in self.lines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return results

    def sequence(self, line: PressLine, plan: CellPlan) -> AssemblySequence:
        """Return the assembly sequence of ``plan`` on ``line`` with the shared arm."""
        return AssemblySequence(
            plan, line.press, self.arm, line.potentiostat, line.safety,
            on_progress=lambda *args: self._on_progress(line.spec, plan, *args),
            arm_lock=self.arm_lock, on_pick=self._on_pick)
