"""Launch one assembly cell: press, arm, impedance, recorder and coordinator nodes.

    ros2 launch press_cell cell.launch.py                      # simulated cell
    ros2 launch press_cell cell.launch.py namespace:=cell2     # a second cell beside it
    ros2 launch press_cell cell.launch.py hardware:=real press_hardware:=serial_modbus
    ros2 launch press_cell cell.launch.py presses:=2           # two presses, one arm

Every node reads config/<node>.yaml from ``config_dir`` (default: the installed share folder);
lifecycle nodes bring themselves to active (``autostart``). ``hardware:=sim`` runs every device
on its simulator; ``hardware:=real`` uses press_hardware / arm_hardware / impedance_hardware.
Machines without ``ros2 launch`` run the same nodes and files with ``press-cell bringup``.

``presses:=2`` adds line B: ``press_b`` and ``impedance_b`` (die ``press_die_b`` of
stations.yaml) with the ``press``/``impedance`` sections of press.yaml/impedance.yaml (the
bringup's rules, ``press_cell.nodes.bringup.load_node_parameters``) and, when it exists,
``press_b.yaml``/``impedance_b.yaml`` for what differs (a real press's serial port), remapped
onto line B's names (``LINE_B_NODES``); the coordinator gets both press lines.
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from press_cell.nodes.bringup import LINE_B_NODES, TWO_PRESS_LINES, load_node_parameters

REAL_DEFAULTS = {"press": "serial_ascii", "arm": "dobot", "impedance": "methodscript"}
DEVICE_EXECUTABLES = {"press": "press_node", "arm": "arm_node", "impedance": "impedance_node"}


def _nodes(context):
    hardware = LaunchConfiguration("hardware").perform(context)
    if hardware not in ("sim", "real"):
        raise ValueError(f"hardware:={hardware!r}: allowed values are 'sim' and 'real'")
    namespace = LaunchConfiguration("namespace").perform(context)
    config_dir = LaunchConfiguration("config_dir").perform(context)
    time_scale = float(LaunchConfiguration("time_scale").perform(context))
    nodes = []
    for device, executable in DEVICE_EXECUTABLES.items():
        choice = "sim" if hardware == "sim" else \
            LaunchConfiguration(f"{device}_hardware").perform(context)
        overrides = {"hardware": choice, "autostart": True}
        if choice == "sim":
            overrides["time_scale"] = time_scale
        nodes.append(Node(package="press_cell", executable=executable, name=device,
                          namespace=namespace, output="screen", emulate_tty=True,
                          parameters=[f"{config_dir}/{device}.yaml", overrides]))
    if LaunchConfiguration("record").perform(context).lower() in ("true", "1", "yes"):
        nodes.append(Node(package="press_cell", executable="recorder_node", name="recorder",
                          namespace=namespace, output="screen",
                          parameters=[f"{config_dir}/recorder.yaml"]))
    presses = LaunchConfiguration("presses").perform(context)
    if presses not in ("1", "2"):
        raise ValueError(f"presses:={presses!r}: allowed values are '1' and '2'")
    coordinator = {}
    if presses == "2":
        nodes += _line_b(namespace, config_dir, hardware, time_scale, context)
        coordinator["press_lines"] = list(TWO_PRESS_LINES)
    nodes.append(Node(package="press_cell", executable="coordinator_node", name="coordinator",
                      namespace=namespace, output="screen",
                      parameters=[f"{config_dir}/coordinator.yaml", coordinator]))
    return nodes


def _line_b(namespace, config_dir, hardware, time_scale, context):
    """Return line B's press and impedance nodes (two-press cell)."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    nodes = []
    for name, (device, remaps) in LINE_B_NODES.items():
        params = {p.name: p.value for p in load_node_parameters(
            Path(config_dir) / f"{device}.yaml", device, ns)}
        choice = "sim" if hardware == "sim" else \
            LaunchConfiguration(f"{device}_hardware").perform(context)
        params.update(hardware=choice, autostart=True)
        if choice == "sim":
            params["time_scale"] = time_scale
        own_file = Path(config_dir) / f"{name}.yaml"
        files = [str(own_file)] if own_file.is_file() else []
        nodes.append(Node(package="press_cell", executable=DEVICE_EXECUTABLES[device], name=name,
                          namespace=namespace, output="screen", emulate_tty=True,
                          remappings=list(remaps), parameters=[params, *files]))
    return nodes


def generate_launch_description():
    """Declare the arguments and the cell's nodes."""
    share = FindPackageShare("press_cell")
    return LaunchDescription([
        DeclareLaunchArgument("hardware", default_value="sim",
                              description="sim: every device simulated; real: serial drivers"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of this cell (e.g. cell1)"),
        DeclareLaunchArgument("config_dir", default_value=[share, "/config"],
                              description="folder with <node>.yaml parameter files"),
        DeclareLaunchArgument("time_scale", default_value="1.0",
                              description="simulated devices run this many times real time"),
        DeclareLaunchArgument("presses", default_value="1",
                              description="1, or 2: press_b + impedance_b on die press_die_b, "
                                          "cells pipelined over both presses"),
        DeclareLaunchArgument("record", default_value="true",
                              description="record the cell's topics to a rosbag2 bag"),
        *[DeclareLaunchArgument(f"{device}_hardware", default_value=default,
                                description=f"{device} driver when hardware:=real")
          for device, default in REAL_DEFAULTS.items()],
        OpaqueFunction(function=_nodes),
    ])
