"""In-process bringup: the nodes of one cell, with the same parameter files as the launch files.

This is the path for machines without ``ros2 launch`` (the PyPI wheels do not ship ``launch``):
it reads the same ``config/<node>.yaml`` ROS parameter files that ``launch/cell.launch.py``
passes, builds the nodes in one process under one namespace, brings the lifecycle nodes to
active (``autostart``), and spins them on one MultiThreadedExecutor in a background thread.

Two presses (``presses=2``): line B's press and potentiostat run as ``press_b`` and
``impedance_b`` with the same ``press.yaml``/``impedance.yaml`` sections as ``press`` and
``impedance``, remapped onto line B's names (``LINE_B_NODES``, the same remaps as
``launch/cell.launch.py presses:=2``), and the coordinator gets both press lines
(``TWO_PRESS_LINES``). Line B's die is ``press_die_b`` of ``config/stations.yaml``.
"""

import importlib
import logging
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
import yaml
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from press_cell.config_files import config_dir

_LOG = logging.getLogger(__name__)

# node name -> (module, class); the order is the start order (devices before the coordinator).
NODE_CLASSES = {
    "press": ("press_cell.nodes.press_node", "PressNode"),
    "arm": ("press_cell.nodes.arm_node", "ArmNode"),
    "impedance": ("press_cell.nodes.impedance_node", "ImpedanceNode"),
    "recorder": ("press_cell.nodes.recorder_node", "RecorderNode"),
    "coordinator": ("press_cell.nodes.coordinator_node", "CoordinatorNode"),
}


SIM_DEVICES = ("press", "arm", "impedance")

# Line B of a two-press cell: node name -> (params-file node and class, remaps). Line A is the
# one-press cell's `press` and `impedance`, unchanged.
LINE_B_NODES = {
    "press_b": ("press", (("press_cycle", "press_b/press_cycle"),
                          ("impedance/monitor", "impedance_b/monitor"))),
    "impedance_b": ("impedance", (("measure_impedance", "impedance_b/measure_impedance"),
                                  ("press/state", "press_b/state"),
                                  ("press/trace", "press_b/trace"))),
}
TWO_PRESS_LINES = ["press:press_die:impedance", "press_b:press_die_b:impedance_b"]


def cell_nodes(nodes, presses: int = 1) -> tuple:
    """Return ``nodes`` in start order, with line B's nodes after line A's when ``presses`` is 2."""
    if presses not in (1, 2):
        raise BringupError(f"presses must be 1 or 2, got {presses}")
    names = list(nodes)
    if presses == 2:
        for extra, (base, _remaps) in LINE_B_NODES.items():
            if base in names and extra not in names:
                names.insert(names.index(base) + 1, extra)
    return tuple(names)


def sim_overrides(nodes, time_scale: float, press_time_scale: float = None) -> dict:
    """Return per-node overrides that run the devices among ``nodes`` simulated.

    Arm and impedance run ``time_scale`` simulated seconds per wall second. The press runs
    ``press_time_scale``; by default unpaced lockstep (0: its simulated clock advances as
    fast as the CPU allows, never ahead of the loop) when ``time_scale`` is above 1, because
    pacing a 500 Hz loop at 50x would ask for 25 000 loop cycles per wall second, and
    ``time_scale`` itself otherwise.
    """
    if press_time_scale is None:
        press_time_scale = 0.0 if time_scale > 1.0 else time_scale
    devices = SIM_DEVICES + tuple(LINE_B_NODES)
    overrides = {name: {"hardware": "sim", "time_scale": float(time_scale)}
                 for name in devices if name in nodes}
    for press in ("press", "press_b"):
        if press in overrides:
            overrides[press]["time_scale"] = float(press_time_scale)
    return overrides


class BringupError(RuntimeError):
    """The cell could not be brought up (unknown node, bad parameter file, failed activate)."""


@dataclass
class BringupConfig:
    """What to start: node names, namespace, parameter files and per-node overrides."""

    namespace: str = ""
    nodes: tuple = tuple(NODE_CLASSES)
    params_dir: Path = None                 # folder of <node>.yaml files (default: shipped)
    overrides: dict = field(default_factory=dict)   # node -> {param: value}
    threads: int = 8
    presses: int = 1                        # 2: add line B (press_b, impedance_b)


def _key_pattern(key: str):
    """Return a regex for a params-file node key (``/**`` any namespaces, ``*`` one token)."""
    key = key if key.startswith("/") else "/" + key
    parts = []
    for token in key.strip("/").split("/"):
        if token == "**":
            parts.append("(?:/[^/]+)*")
        else:
            parts.append("/" + re.escape(token).replace(r"\*", "[^/]+"))
    return re.compile("".join(parts) + "$")


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def load_node_parameters(path: Path, node_name: str, namespace: str = "") -> list:
    """Return the parameters a ROS params file gives ``node_name`` in ``namespace``.

    Keys follow the rcl params-file rules: ``/**/press``, ``/**``, ``/cell1/press``, ``press``;
    later matching keys override earlier ones. A missing file gives no parameters.
    """
    path = Path(path)
    if not path.is_file():
        return []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise BringupError(f"parameter file {path}: not valid YAML: {exc}") from exc
    except (ValueError, TypeError, KeyError) as exc:   # PyYAML: a tag unfit for its text
        raise BringupError(f"parameter file {path}: a value does not fit its YAML tag "
                           f"(e.g. !!bool maybe, !!float abc): {exc!r}") from exc
    if not isinstance(document, dict):
        raise BringupError(f"parameter file {path}: expected a mapping of node names")
    full_name = f"{namespace.rstrip('/')}/{node_name}" if namespace else f"/{node_name}"
    values = {}
    for key, section in document.items():
        if not _key_pattern(str(key)).match(full_name):
            continue
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise BringupError(f"parameter file {path}: section {key!r} has no ros__parameters")
        parameters = section["ros__parameters"] or {}
        if not isinstance(parameters, dict):
            raise BringupError(f"parameter file {path}: {key!r}: ros__parameters must be a "
                               f"mapping of parameter names to values, got {parameters!r}")
        values.update(_flatten(parameters))
    return [_ros_parameter(path, name, value) for name, value in values.items()]


def _ros_parameter(path: Path, name: str, value) -> Parameter:
    """Return ``Parameter(name, value)``; a value ROS cannot hold is a BringupError."""
    try:
        return Parameter(name, value=value)
    except (TypeError, ValueError) as exc:
        raise BringupError(
            f"parameter file {path}: {name}: {value!r} is not a ROS parameter value (allowed: "
            "bool, int, float, string, or a list of one of them)") from exc


class CellBringup:
    """Start, spin and stop the nodes of one cell in this process."""

    def __init__(self, config: BringupConfig, context=None) -> None:
        """Prepare (nothing starts until ``start``)."""
        unknown = [n for n in config.nodes if n not in NODE_CLASSES and n not in LINE_B_NODES]
        if unknown:
            raise BringupError(f"unknown node(s) {unknown}; known: {list(NODE_CLASSES)}")
        self.config = config
        self.node_names = cell_nodes(config.nodes, config.presses)
        self.context = context
        self.nodes = {}
        self._executor = None
        self._thread = None

    def _parameters(self, name: str) -> list:
        params_dir = Path(self.config.params_dir or config_dir())
        ns = self.config.namespace if self.config.namespace.startswith("/") or \
            not self.config.namespace else "/" + self.config.namespace
        base = LINE_B_NODES[name][0] if name in LINE_B_NODES else name
        params = load_node_parameters(params_dir / f"{base}.yaml", base, ns)
        overrides = dict(self.config.overrides.get(name, {}))
        if name == "coordinator" and self.config.presses == 2:
            overrides.setdefault("press_lines", list(TWO_PRESS_LINES))
        params = [p for p in params if p.name not in overrides]
        params += [Parameter(key, value=value) for key, value in overrides.items()]
        return params

    def start(self) -> None:
        """Build every node, bring lifecycle nodes to active, and spin in a thread."""
        self._executor = MultiThreadedExecutor(num_threads=self.config.threads,
                                               context=self.context)
        for name in self.node_names:
            base, remaps = LINE_B_NODES.get(name, (name, ()))
            module_name, class_name = NODE_CLASSES[base]
            cls = getattr(importlib.import_module(module_name), class_name)
            line_b = {}   # line B's device nodes: their own name and the topic remaps
            if base != name:
                line_b = dict(node_name=name, cli_args=["--ros-args"] + [
                    arg for src, dst in remaps for arg in ("-r", f"{src}:={dst}")])
            try:
                node = cls(namespace=self.config.namespace or None, context=self.context,
                           parameter_overrides=self._parameters(name), **line_b)
            except (ValueError, OSError, rclpy.exceptions.ParameterException) as exc:
                # bad parameter values or a config file the node could not read/parse
                raise BringupError(f"node {name!r} could not be created: {exc}") from exc
            self.nodes[name] = node
            self._executor.add_node(node)
        self._thread = threading.Thread(target=self._spin, name="bringup-executor", daemon=True)
        self._thread.start()
        for name, node in self.nodes.items():
            if hasattr(node, "trigger_configure") and not self._autostarted(node):
                self._activate(name, node)

    @staticmethod
    def _autostarted(node) -> bool:
        try:
            return bool(node.get_parameter("autostart").value)
        except rclpy.exceptions.ParameterNotDeclaredException:
            return False

    @staticmethod
    def _activate(name, node) -> None:
        from rclpy.lifecycle import TransitionCallbackReturn

        for transition in (node.trigger_configure, node.trigger_activate):
            if transition() != TransitionCallbackReturn.SUCCESS:
                raise BringupError(f"node {name!r}: {transition.__name__} failed (see its log)")

    def _spin(self) -> None:
        try:
            self._executor.spin()
        except rclpy.executors.ExternalShutdownException:
            pass

    def stop(self) -> None:
        """Stop spinning, shut lifecycle nodes down (press released first), destroy nodes.

        The executor stops before any node tears its entities down: an executor still
        waiting on an action server that a shutdown transition destroys would fail.
        """
        if self._executor is not None:
            self._executor.shutdown(timeout_sec=5.0)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        for name in reversed(list(self.nodes)):
            node = self.nodes[name]
            shutdown = getattr(node, "trigger_shutdown", None)
            if shutdown is not None:
                try:
                    shutdown()
                except Exception as exc:  # noqa: BLE001 - keep stopping the others
                    _LOG.error("node %s did not shut down cleanly: %s", name, exc)
        for node in self.nodes.values():
            node.destroy_node()
        self.nodes = {}
