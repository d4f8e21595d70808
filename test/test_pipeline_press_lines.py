"""Two press lines, one arm: cells overlap, the arm is never shared, no die is entered loaded.

Fake device ports on a scaled clock (device seconds run 200x faster than wall seconds): a
press cycle holds its die "under pressure" for its duration, a placement takes a short time
and records which die it entered and whether that die's press was loaded at that moment.
"""

import threading
import time

import pytest

from press_cell.config_files import config_file
from press_cell.control.assembly import DeviceOutcome, MeasuredCell, plan_cell
from press_cell.control.pipeline import (
    CellPipeline,
    LinePool,
    PressLine,
    PressLineError,
    PressLineSpec,
    check_lines_against_layout,
    parse_press_lines,
)
from press_cell.recipes import load_recipes
from press_cell.recipes.stations import load_layout

LAYOUT = load_layout(config_file("stations.yaml"))
RECIPE = load_recipes().assembly["li_symmetric_cell"]
TIME_SCALE = 200.0          # device seconds per wall second
PRESS_S = {"compaction": 10.0, "prepress_a": 5.0, "prepress_b": 5.0, "stack_press": 30.0}
PLACE_S = 1.0               # device seconds per placement
MEASURE_S = 3.0


class ScaledClock:
    """Device time = wall time x TIME_SCALE since construction."""

    def __init__(self):
        self.origin = time.monotonic()

    def now(self):
        return (time.monotonic() - self.origin) * TIME_SCALE

    def sleep(self, device_s):
        time.sleep(device_s / TIME_SCALE)


class World:
    """What happened, in device seconds: press intervals per die, placements."""

    def __init__(self):
        self.clock = ScaledClock()
        self.lock = threading.Lock()
        self.loaded = {}                # die -> bool (a press cycle runs on it)
        self.press_log = []             # (die, step, start, end)
        self.place_log = []             # (die, component, start, end)
        self.arm_users = 0
        self.violations = []


class FakePress:
    def __init__(self, world, die):
        self.world, self.die = world, die

    def run_cycle(self, recipe, part_id, step_name, cancel):
        world = self.world
        with world.lock:
            world.loaded[self.die] = True
        start = world.clock.now()
        world.clock.sleep(PRESS_S[step_name])
        with world.lock:
            world.loaded[self.die] = False
            world.press_log.append((self.die, step_name, start, world.clock.now()))
        return DeviceOutcome(True, payload={"step": step_name})

    def measure(self, settings, cell_id, electrode_area_m2, cancel):
        self.world.clock.sleep(MEASURE_S)
        return DeviceOutcome(True, payload=MeasuredCell(None, None, 30.0, 1e-4))

    def make_safe(self):
        return "released"


class FakeArm:
    def __init__(self, world):
        self.world = world

    def place(self, kind, component_id, source_slot, target_station, cancel):
        world = self.world
        with world.lock:
            world.arm_users += 1
            if world.arm_users > 1:
                world.violations.append(f"two placements at once ({component_id})")
            if world.loaded.get(target_station):
                world.violations.append(f"{component_id} placed into loaded {target_station}")
        start = world.clock.now()
        world.clock.sleep(PLACE_S)
        with world.lock:
            world.arm_users -= 1
            world.place_log.append((target_station, component_id, start, world.clock.now()))
        return DeviceOutcome(True)


def _lines(world, specs):
    return [PressLine(spec, FakePress(world, spec.die_station), FakePress(world, spec.die_station),
                      FakePress(world, spec.die_station)) for spec in specs]


def _run(specs, count=4):
    """Assemble ``count`` cells on ``specs``; return (world, results)."""
    world = World()
    slots = {"ELECTROLYTE_PELLET": ("pellet_tray/0",),
             "ANODE_ON_ROD": ("anode_rack/0", "anode_rack/1")}
    plans = [plan_cell(RECIPE, "h", f"C{i}", slots) for i in range(count)]
    return world, CellPipeline(_lines(world, specs), FakeArm(world)).run(plans)


TWO = (PressLineSpec("press", "press_die", "impedance"),
       PressLineSpec("press_b", "press_die_b", "impedance_b"))


@pytest.mark.timeout(30)
def test_two_lines_overlap_and_share_the_arm_safely():
    world, results = _run(TWO)
    assert all(record.outcome == "NONE" and record.passed for _spec, record in results)
    assert [spec.press for spec, _ in results][:2] == ["press", "press_b"]
    assert not world.violations, world.violations
    # every part went to the die of the line that built its cell
    by_cell = {record.cell_id: spec.die_station for spec, record in results}
    assert all(die == by_cell[component.split("/")[0]]
               for die, component, _s, _e in world.place_log)
    # overlap: some placement ran while the other die's press held a cell
    overlapped = [(die, comp) for die, comp, p0, p1 in world.place_log
                  for other, _step, h0, h1 in world.press_log
                  if other != die and p0 < h1 and h0 < p1]
    assert overlapped, "no placement overlapped the other press's cycle"
    # the arm serves one die at a time: a cell's three placements form one block
    order = [component.split("/")[0] for _d, component, _s, _e in sorted(
        world.place_log, key=lambda entry: entry[2])]
    assert all(len(set(order[i:i + 3])) == 1 for i in range(0, len(order), 3)), order
    # placements never overlap each other
    spans = sorted((p0, p1) for _d, _c, p0, p1 in world.place_log)
    assert all(a1 <= b0 + 1e-6 for (_a0, a1), (b0, _b1) in zip(spans, spans[1:], strict=False))


@pytest.mark.timeout(30)
def test_two_lines_finish_a_queue_faster_than_one():
    one_world, one = _run(TWO[:1])
    two_world, two = _run(TWO)
    assert all(record.passed for _s, record in one + two)
    end_one = max(e for *_x, e in one_world.press_log)
    end_two = max(e for *_x, e in two_world.press_log)
    # 4 cells of ~(55 s press + 3 s placing + 3 s EIS): one press ~244 s, two ~125 s
    assert end_two < 0.7 * end_one, (end_one, end_two)
    assert {s.die_station for s, _ in one} == {"press_die"}


def test_press_line_entries_are_parsed_and_checked_against_the_layout():
    assert parse_press_lines([]) == (PressLineSpec(),)
    lines = parse_press_lines(["press:press_die", "press_b:press_die_b:impedance_b"])
    assert lines == TWO
    assert [line.press_cycle_action for line in lines] == ["press_cycle", "press_b/press_cycle"]
    assert [line.measure_action for line in lines] == ["measure_impedance",
                                                        "impedance_b/measure_impedance"]
    check_lines_against_layout(lines, LAYOUT)
    with pytest.raises(PressLineError, match="gives die 'press_die_b' to press 'press_b', "
                                             "not 'press_c'"):
        check_lines_against_layout(parse_press_lines(["press_c:press_die_b"]), LAYOUT)
    with pytest.raises(PressLineError, match="'inspection' is not a die station"):
        check_lines_against_layout(parse_press_lines(["press:inspection"]), LAYOUT)
    with pytest.raises(PressLineError, match="die_station 'press_die' is used by two lines"):
        parse_press_lines(["press:press_die", "press_b:press_die"])
    with pytest.raises(PressLineError, match="expected 'press:die_station'"):
        parse_press_lines(["press/b:press_die"])


def test_the_line_pool_hands_out_the_lowest_free_line():
    pool = LinePool(2)
    assert [pool.claim(), pool.claim(), pool.claim()] == [0, 1, None]
    pool.release(1)
    pool.release(0)
    assert pool.claim() == 0 and pool.free_count == 1
    with pytest.raises(ValueError, match="already free"):
        pool.release(1)
