"""Launch files: every executable, parameter file and parameter they name exists.

`launch` is not installable here, so the files are evaluated with recording stand-ins
(test/support/launch_recorder.py) for the static checks, and with the real `launch_ros`
wherever it is importable (a ROS install).
"""

import importlib
import sys
from pathlib import Path

import pytest

from press_cell.nodes.bringup import LINE_B_NODES, NODE_CLASSES, load_node_parameters

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "test" / "support"))
from launch_recorder import evaluate  # noqa: E402

LAUNCH_FILES = sorted((REPO / "launch").glob("*.launch.py"))
ENTRY_POINTS = {line.split("=")[0].strip()
                for line in (REPO / "entry_points.txt").read_text().splitlines()
                if "=" in line and not line.startswith("#")}
VARIANTS = {
    "cell.launch.py": [{}, {"hardware": "real"}, {"namespace": "cell2", "record": "false"},
                       {"presses": "2"}, {"presses": "2", "hardware": "real",
                                          "namespace": "cell3"}],
    "press.launch.py": [{}, {"hardware": "serial_modbus"}],
    "arm.launch.py": [{}, {"hardware": "dobot"}],
    "impedance.launch.py": [{}, {"hardware": "methodscript"}],
}


def _nodes():
    for path in LAUNCH_FILES:
        for arguments in VARIANTS.get(path.name, [{}]):
            for node in evaluate(path, REPO, arguments):
                yield path.name, arguments, node


NODES = list(_nodes())


def test_every_launch_file_is_covered():
    assert {p.name for p in LAUNCH_FILES} == set(VARIANTS)
    assert {"press", "arm", "impedance", "recorder", "coordinator"} <= \
        {node["name"] for _f, _a, node in NODES}


@pytest.mark.parametrize("launch_file, arguments, node", NODES,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_executable_and_parameter_files_exist(launch_file, arguments, node):
    assert node["package"] == "press_cell"
    assert node["executable"] in ENTRY_POINTS, f"{node['executable']} is not an executable"
    for entry in node["parameters"]:
        if isinstance(entry, str):
            assert Path(entry).is_file(), f"{launch_file} names a missing file {entry}"


@pytest.fixture(scope="module")
def declared_parameters(tmp_path_factory):
    """Return node name -> set of parameters the node class declares."""
    import rclpy
    from rclpy.context import Context
    from rclpy.parameter import Parameter

    scratch = {"recorder": [Parameter("output_dir", value=str(tmp_path_factory.mktemp("bags")))]}

    context = Context()
    rclpy.init(context=context)
    declared = {}
    try:
        for name, (module_name, class_name) in NODE_CLASSES.items():
            cls = getattr(importlib.import_module(module_name), class_name)
            node = cls(namespace="/launch_check", context=context,
                       parameter_overrides=scratch.get(name, []))
            declared[name] = set(node._parameters)
            node.destroy_node()
    finally:
        context.try_shutdown()
    return declared


@pytest.mark.parametrize("launch_file, arguments, node", NODES,
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_parameter_named_is_declared_by_the_node(launch_file, arguments, node,
                                                       declared_parameters):
    names = set()
    for entry in node["parameters"]:
        if isinstance(entry, str):
            names |= {p.name for p in load_node_parameters(Path(entry), node["name"],
                                                           "/" + (node["namespace"] or ""))}
        else:
            names |= set(entry)
    declared = declared_parameters[LINE_B_NODES.get(node["name"], (node["name"],))[0]]
    unknown = names - declared
    assert not unknown, f"{launch_file} sets undeclared parameters of {node['name']}: {unknown}"


def _cell(arguments):
    return {node["name"]: node for f, a, node in NODES if f == "cell.launch.py" and a == arguments}


def test_two_presses_add_line_b_remapped_onto_its_own_names():
    """presses:=2 adds press_b and impedance_b with the bringup's remaps and both press lines."""
    from press_cell.nodes.bringup import TWO_PRESS_LINES

    one, two = _cell({}), _cell({"presses": "2"})
    assert set(two) - set(one) == {"press_b", "impedance_b"}
    for name, (device, remaps) in LINE_B_NODES.items():
        node = two[name]
        assert node["executable"] == one[device]["executable"]
        assert dict(node["remappings"]) == dict(remaps)
        params = node["parameters"][0]
        assert params["hardware"] == "sim" and params["autostart"] is True
        # the device's own section of <device>.yaml, e.g. the press's loop rate
        shipped = {p.name: p.value for p in load_node_parameters(
            REPO / "config" / f"{device}.yaml", device, "")}
        assert {k: v for k, v in params.items() if k in shipped and k not in
                ("hardware", "autostart", "time_scale")} == \
            {k: v for k, v in shipped.items() if k not in ("hardware", "autostart",
                                                           "time_scale")}
    assert two["press_b"]["remappings"] and "remappings" not in one["press"]
    assert two["coordinator"]["parameters"][1] == {"press_lines": TWO_PRESS_LINES}
    assert one["coordinator"]["parameters"][1] == {}
    real = _cell({"presses": "2", "hardware": "real", "namespace": "cell3"})
    assert real["press_b"]["parameters"][0]["hardware"] == "serial_ascii"
    assert real["impedance_b"]["namespace"] == "cell3"


def test_real_launch_evaluates_where_launch_ros_is_installed():
    launch_ros = pytest.importorskip("launch_ros", reason="ROS launch is not on PyPI; this "
                                     "check runs in a ROS 2 install")
    from launch import LaunchContext
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    for path in LAUNCH_FILES:
        source = PythonLaunchDescriptionSource(str(path))
        description = source.get_launch_description(LaunchContext())
        assert description.entities, f"{path.name} declares nothing"
    assert launch_ros
