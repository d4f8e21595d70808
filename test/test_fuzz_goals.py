"""Bad-input fuzzing of every action's goals: each is refused with a reason or runs safely.

* PressCycle: ``press_goal.resolve_goal`` (what the press node's goal callback runs) and the
  hold-end check get random goals; a refusal is ``GoalRejected`` with a PressCycle code and a
  reason naming the field. Then ~30 fuzzed goals go over ROS to ONE press node process (sim,
  lockstep): each is rejected with a reason on ``~/status`` and the press pressure stays at 0,
  or it is accepted, cancelled and ends released.
* PlaceComponent, MeasureImpedance, AssembleCell: the goal callbacks of in-process arm,
  impedance (both inactive) and coordinator nodes get random goals (the coordinator's
  ``overrides_yaml`` gets random YAML and text); every call returns ACCEPT/REJECT, never
  raises, and a refusal names what was wrong. Nothing is executed (no execute callback runs).

Every input tried is counted (``support.fuzz_counts``, family ``goals``).
"""

import math
import os
import sys
import threading
import time
from collections import deque

import pytest
import rclpy
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rclpy.action import GoalResponse
from rclpy.executors import MultiThreadedExecutor
from support.fuzz_counts import record

from press_cell.action import AssembleCell, MeasureImpedance, PlaceComponent, PressCycle
from press_cell.control.hold_end import HoldEndError, HoldEndEvaluator
from press_cell.msg import DeviceStatus, HoldEndCriterion, PressSegment, PressState
from press_cell.nodes.impedance_node import sweep_refusal
from press_cell.nodes.press_goal import GoalLimits, GoalRejected, resolve_goal
from press_cell.nodes.qos import TELEMETRY
from press_cell.recipes import RecipeError, load_recipes
from press_cell.recipes.library import load_library

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIMITS = GoalLimits(press_capacity_n=147.1e3, default_die_rating_n=98.07e3)
MANY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RELEASED_PA = 0.5e6         # a press at rest reads below this (load-cell noise and offset)

# Numbers a goal field can hold: plausible SI values, lab-unit mistakes, and the awkward ones.
ODD_FLOATS = st.sampled_from([0.0, -0.0, -1.0, 1.0, 25.0, 370.0, 1e-9, 1e300, -1e300,
                              math.nan, math.inf, -math.inf, 5e-324])
PRESSURES = st.floats(1e3, 1e9) | ODD_FLOATS | st.floats(allow_nan=True, allow_infinity=True)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=20)


@pytest.fixture(scope="module")
def book_and_library():
    """Return the shipped recipe book and library."""
    library = load_library()
    return load_recipes(library=library), library


def segment():
    """Strategy: one PressSegment, plausible or not."""
    return st.builds(PressSegment, kind=st.integers(0, 255) | st.sampled_from([0, 1, 2]),
                     target_pressure=PRESSURES, rate=PRESSURES,
                     duration=st.floats(0.0, 3600.0) | ODD_FLOATS, tolerance=PRESSURES)


def valid_profile(target_pa, hold_s):
    """Return ramp, hold, release segments to ``target_pa`` (Pa) for ``hold_s`` (s)."""
    return [PressSegment(kind=0, target_pressure=target_pa, rate=20e6),
            PressSegment(kind=1, target_pressure=target_pa, duration=hold_s,
                         tolerance=0.02 * target_pa),
            PressSegment(kind=2, target_pressure=0.0, rate=20e6)]


def hold_end():
    """Strategy: a HoldEndCriterion, usually disabled."""
    return st.builds(HoldEndCriterion, enabled=st.booleans(), monitor_frequency=PRESSURES,
                     r_interface_below=ODD_FLOATS, dr_dt_below=ODD_FLOATS,
                     min_hold=ODD_FLOATS, max_hold=ODD_FLOATS)


def press_goal():
    """Strategy: a PressCycle goal, from entirely random to a valid one with one bad field."""
    recipe = st.sampled_from(["", "", "li_foil_25mpa", "li6ps5cl_370mpa_200mg", "no_such",
                              "LI_FOIL_25MPA"]) | TEXT
    random_goal = st.builds(
        PressCycle.Goal, part_id=TEXT, step_name=TEXT, recipe_name=recipe, recipe_hash=TEXT,
        segments=st.lists(segment(), max_size=5),
        die_diameter=st.sampled_from([0.0, 0.013, 0.0127, 13.0]) | ODD_FLOATS,
        contact_area=st.sampled_from([0.0, 1.3e-4]) | ODD_FLOATS,
        material=st.sampled_from(["", "Li", "Na", "Li6PS5Cl", "Kryptonite"]) | TEXT,
        max_pressure=st.sampled_from([0.0, 400e6]) | ODD_FLOATS, hold_end=hold_end())

    def one_bad_field(args):
        target, field, index, value = args
        goal = PressCycle.Goal(part_id="fuzz", die_diameter=0.013,
                               segments=valid_profile(target, 0.5))
        seg = goal.segments[index % 3]
        if field == "kind":
            seg.kind = int(abs(value)) % 256 if math.isfinite(value) else 7
        else:
            setattr(seg, field, value)
        return goal

    near_valid = st.tuples(st.floats(1e6, 300e6), st.sampled_from(
        ["target_pressure", "rate", "duration", "tolerance", "kind"]), st.integers(0, 2),
        PRESSURES.filter(lambda v: not math.isnan(v) and abs(v) < 1e18) | ODD_FLOATS
    ).map(one_bad_field)
    return random_goal | near_valid


def check_press_goal(goal, book, library):
    """Resolve ``goal``; return "rejected <code>" or "accepted", asserting the refusal's form."""
    try:
        plan = resolve_goal(goal, book, library, LIMITS)
    except GoalRejected as exc:
        assert exc.code in ("INVALID_GOAL", "OVER_LIMIT"), exc.code
        assert exc.reason and len(exc.reason) > 10
        return f"rejected {exc.code}"
    assert plan.contact_area_m2 > 0.0 and math.isfinite(plan.contact_area_m2)
    assert all(math.isfinite(s.target_pressure_pa) and s.target_pressure_pa >= 0.0
               for s in plan.segments)
    assert plan.peak_pressure_pa <= plan.max_pressure_pa
    if goal.hold_end.enabled:
        try:
            HoldEndEvaluator(goal.hold_end)
        except HoldEndError as exc:
            assert str(exc)
            return "rejected hold_end"
    return "accepted"


@MANY
@given(press_goal())
def test_press_goal_resolution_refuses_with_a_code_and_reason(book_and_library, goal):
    """Any PressCycle goal resolves to a plan inside the limits or is refused with a reason."""
    book, library = book_and_library
    record("goals", "PressCycle (resolve_goal)", check_press_goal(goal, book, library))


# ------------------------------------------------------------------ in-process goal callbacks
@pytest.fixture(scope="module")
def inprocess_nodes():
    """Build inactive arm and impedance nodes and a coordinator in a private rclpy context."""
    from rclpy.context import Context

    from press_cell.nodes.arm_node import ArmNode
    from press_cell.nodes.coordinator_node import CoordinatorNode
    from press_cell.nodes.impedance_node import ImpedanceNode

    context = Context()
    rclpy.init(context=context, args=["--ros-args", "--log-level", "fatal"])
    ns = f"/fuzz_{os.getpid()}"
    nodes = {"arm": ArmNode(namespace=ns, context=context),
             "impedance": ImpedanceNode(namespace=ns, context=context),
             "coordinator": CoordinatorNode(namespace=ns, context=context)}
    yield nodes
    for node in nodes.values():
        node.destroy_node()
    context.try_shutdown()


def last_status(node):
    """Return the message of the last ~/status the node published (or "")."""
    status = getattr(node, "_last_status", None)
    return status[1] if isinstance(status, tuple) and len(status) > 1 else ""


@MANY
@given(st.builds(PlaceComponent.Goal, kind=st.integers(0, 255) | st.sampled_from([1, 2, 3, 4]),
                 component_id=TEXT | st.just("  "),
                 source_slot=st.sampled_from(["pellet_tray/3", "anode_rack/0", "tray/-1",
                                              "press_die", "/x", "a/b/c", ""]) | TEXT,
                 target_station=st.sampled_from(["press_die", "inspection", "9die"]) | TEXT))
def test_place_component_goals_are_refused_with_a_reason(inprocess_nodes, goal):
    """The arm's goal callback refuses malformed goals (INVALID_GOAL) and, inactive, every goal."""
    arm = inprocess_nodes["arm"]
    code, reason = arm._goal_refusal(goal)
    assert arm._on_goal(goal) == GoalResponse.REJECT
    assert reason, "an inactive arm must refuse"
    well_formed = code == PlaceComponent.Result.NOT_ACTIVE
    if not well_formed:
        assert code == PlaceComponent.Result.INVALID_GOAL, (code, reason)
        assert any(word in reason for word in ("kind", "component_id", "source_slot",
                                               "target_station")), reason
    record("goals", "PlaceComponent (arm callback)",
           "refused: not active" if well_formed else "refused: invalid")


SWEEP_FLOATS = st.floats(1e-4, 1e8) | ODD_FLOATS


@MANY
@given(st.builds(MeasureImpedance.Goal, cell_id=TEXT,
                 frequency_max=st.sampled_from([0.0, 1e6, 1e5]) | SWEEP_FLOATS,
                 frequency_min=st.sampled_from([0.0, 0.1, 10.0]) | SWEEP_FLOATS,
                 points_per_decade=st.sampled_from([0, 10]) | st.integers(0, 65535),
                 amplitude=st.sampled_from([0.0, 0.01]) | st.floats(0.0, 1.0) | ODD_FLOATS,
                 electrode_area=st.sampled_from([0.0, 1.27e-4]) | st.floats(0.0, 1.0)
                 | ODD_FLOATS))
def test_measure_impedance_goals_are_refused_with_a_reason(inprocess_nodes, goal):
    """The impedance goal callback refuses bad sweeps naming the field; inactive, refuses all."""
    impedance = inprocess_nodes["impedance"]
    sweep = impedance._goal_sweep(goal)
    sweep_reason = sweep_refusal(*sweep[:4])
    reason = impedance._goal_refusal(goal)
    assert impedance._on_goal(goal) == GoalResponse.REJECT
    assert reason
    if sweep_reason:
        assert reason == sweep_reason
        assert any(word in reason for word in ("frequenc", "points", "amplitude", "sweep")), \
            reason
    record("goals", "MeasureImpedance (callback)",
           "refused: invalid sweep" if sweep_reason else
           ("refused: invalid area" if "electrode_area" in reason else "refused: not active"))


# Overrides: YAML built from the file's own vocabulary (names, keys, odd values), or raw text.
_KEYS = ["press_recipes", "assemblies", "li_foil_25mpa", "li_stack_25mpa", "li_symmetric_cell",
         "hold_s", "target_pressure_mpa", "ramp_mpa_s", "tolerance_pct", "release_mpa_s",
         "max_pressure_mpa", "stages", "steps", "kind", "recipe", "count", "cell",
         "electrode_diameter_mm", "acceptance", "material", "die", "rod", "no_such_key"]
_SCALARS = (st.none() | st.booleans() | st.integers(-10**20, 10**20) | ODD_FLOATS
            | st.floats(allow_nan=False) | st.sampled_from(["", "Li", "die-13mm", "yes", "1e3"]))
YAML_TREES = st.recursive(_SCALARS, lambda children: st.lists(children, max_size=4)
                          | st.dictionaries(st.sampled_from(_KEYS), children, max_size=4),
                          max_leaves=20)


def _override_of_known_recipe(args):
    recipe, key, value = args
    return yaml.safe_dump({"press_recipes": {recipe: {key: value}}})


OVERRIDES = (YAML_TREES.map(lambda tree: yaml.safe_dump(tree, allow_unicode=True))
             | st.tuples(st.sampled_from(["li_foil_25mpa", "li6ps5cl_370mpa_200mg"]),
                         st.sampled_from(_KEYS[5:13]), _SCALARS).map(_override_of_known_recipe)
             | st.text(max_size=120)
             | st.sampled_from(["{", "- - -", "a: &x [*x]", "!!python/object:os.system x",
                                "press_recipes: !!binary AAAA", "\t\tpress_recipes:", "%YAML 9",
                                "press_recipes: {li_foil_25mpa: {hold_s: .nan}}",
                                "assemblies: {li_symmetric_cell: {steps: []}}"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["li_symmetric_cell", "na_symmetric_cell", "", "no_such_cell"]) | TEXT,
       OVERRIDES)
def test_assemble_cell_goals_load_or_are_refused_with_a_reason(inprocess_nodes, name, overrides):
    """The coordinator's goal check loads a valid recipe and refuses the rest with a reason.

    ``_load`` is what the goal callback runs first; for a refused goal the callback itself is
    called too (it must reject). An accepted goal's callback is not called: it would reserve
    tray parts that only an executed goal gives back.
    """
    coordinator = inprocess_nodes["coordinator"]
    goal = AssembleCell.Goal(recipe_name=name, cell_id="fuzz", overrides_yaml=overrides)
    try:
        coordinator._load(goal)
    except (RecipeError, KeyError, OSError) as exc:
        assert coordinator._on_goal(goal) == GoalResponse.REJECT
        text = str(exc)
        assert text and ("recipe" in text or "<overrides>" in text or ":" in text), text
        record("goals", "AssembleCell (coordinator)", f"refused: {type(exc).__name__}")
        return
    record("goals", "AssembleCell (coordinator)", "loads (would be accepted)")


# ------------------------------------------------------------------ over ROS, one press process
class PressUnderFuzz:
    """One press node process (sim, lockstep) and a client recording its ~/state pressure."""

    def __init__(self, context, ns):
        import subprocess

        from conftest import ros_subprocess_env

        from press_cell.nodes.press_client import PressClient

        args = [sys.executable, "-m", "press_cell.nodes.press_node", "--ros-args",
                "-r", f"__ns:={ns}", "--params-file", os.path.join(REPO, "config", "press.yaml"),
                "-p", "autostart:=true", "-p", "hardware:=sim", "-p", "time_scale:=0.0",
                "-p", "state_rate_hz:=100.0", "--log-level", "error"]
        self.proc = subprocess.Popen(args, cwd=REPO, env=ros_subprocess_env(),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.node = rclpy.create_node("press_fuzz_client", context=context)
        self.executor = MultiThreadedExecutor(num_threads=3, context=context)
        self.executor.add_node(self.node)
        self.client = PressClient(self.node, namespace=ns)
        self.states = deque(maxlen=100_000)
        self.node.create_subscription(PressState, f"{ns}/press/state",
                                      lambda msg: self.states.append(
                                          (time.monotonic(), msg.pressure)), TELEMETRY)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.client.wait_for_server(60.0)
        self.last_accepted_end = None

    def pressure_since(self, since):
        """Return the largest |pressure| on ~/state after ``since`` (monotonic s), Pa."""
        return max((abs(p) for t, p in list(self.states) if t >= since), default=0.0)

    def wait_released(self, since, timeout_s=30.0):
        """Wait for a ~/state sample after ``since`` below RELEASED_PA and status READY."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fresh = [p for t, p in list(self.states) if t > since]
            status = self.client.status
            if fresh and abs(fresh[-1]) < RELEASED_PA and status is not None \
                    and status.state == DeviceStatus.STATE_READY:
                return
            if status is not None and status.state in (DeviceStatus.STATE_FAULT,
                                                       DeviceStatus.STATE_ESTOP):
                self.client.reset_fault()
            time.sleep(0.02)
        raise AssertionError(f"press not released and READY within {timeout_s} s: "
                             f"{self.client.status}")

    def close(self):
        """Stop the client and the node process (SIGINT: it makes the press safe)."""
        self.executor.shutdown(timeout_sec=2.0)
        self.thread.join(timeout=5.0)
        self.node.destroy_node()
        self.proc.send_signal(2)
        try:
            self.proc.wait(timeout=10)
        except Exception:   # noqa: BLE001 - then kill it
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture(scope="module")
def press_under_fuzz():
    """Start one press node process for the ROS fuzz cases."""
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    rig = PressUnderFuzz(context, f"/fuzz_press_{os.getpid()}")
    yield rig
    rig.close()
    context.try_shutdown()


def ros_goal():
    """Strategy: goals to send over ROS, about one in four valid (those run, then cancel)."""
    valid = st.tuples(st.floats(2e6, 50e6), st.floats(0.1, 2.0)).map(
        lambda a: PressCycle.Goal(part_id="fuzz-ok", die_diameter=0.013,
                                  segments=valid_profile(*a)))
    return st.sampled_from([0, 1, 2, 3]).flatmap(lambda k: valid if k == 0 else press_goal())


@pytest.mark.ros
@pytest.mark.timeout(240)
@settings(max_examples=20, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(goal=ros_goal())
def test_fuzzed_goals_over_ros_are_rejected_without_motion_or_run_safely(press_under_fuzz, goal):
    """A rejected goal leaves the press at 0 Pa with a reason; an accepted one ends released."""
    from press_cell.nodes.press_client import GoalRefused

    rig = press_under_fuzz
    if rig.last_accepted_end is None:
        rig.wait_released(0.0, 60.0)         # the first ~/state sample and READY
    sent = time.monotonic()
    try:
        handle = rig.client.send_goal(goal, timeout_s=30.0)
    except GoalRefused as exc:
        assert exc.reason.startswith("goal rejected (") and len(exc.reason) > 25, exc.reason
        time.sleep(0.1)         # let a wrongly started cycle show on ~/state (>= 100 Hz)
        peak = rig.pressure_since(sent)
        assert peak < RELEASED_PA, f"pressure rose to {peak:.3g} Pa after a rejected goal"
        assert rig.client.status.state == DeviceStatus.STATE_READY, rig.client.status
        record("goals", "PressCycle over ROS", "rejected, no motion")
        return
    rig.client.cancel(handle, timeout_s=10.0)
    status, result = rig.client.wait_result(handle, timeout_s=120.0)
    assert status in ("canceled", "succeeded", "aborted"), status
    if status != "succeeded":
        assert result.error_code != PressCycle.Result.NONE and result.error_msg
    rig.last_accepted_end = time.monotonic()
    rig.wait_released(rig.last_accepted_end, 30.0)
    record("goals", "PressCycle over ROS", f"accepted, {status}, released")
