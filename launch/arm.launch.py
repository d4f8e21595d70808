"""Launch the arm node alone (e.g. an arm on the bench, or beside a press started elsewhere).

    ros2 launch press_cell arm.launch.py                                     # simulated
    ros2 launch press_cell arm.launch.py hardware:=dobot serial_port:=/dev/ttyUSB0
    ros2 launch press_cell arm.launch.py namespace:=cell1   # leases the zone from /cell1/press

Parameters come from config/arm.yaml (``config_dir``, default: the installed share folder)
with ``hardware``, ``serial_port`` and ``time_scale`` from the command line; the node brings
itself to active (``autostart``). ``cell.launch.py`` starts it with the rest of a cell.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def _node(context):
    hardware = LaunchConfiguration("hardware").perform(context)
    if hardware not in ("sim", "dobot"):
        raise ValueError(f"hardware:={hardware!r}: allowed values are 'sim' and 'dobot'")
    overrides = {"hardware": hardware, "autostart": True,
                 "time_scale": float(LaunchConfiguration("time_scale").perform(context))}
    if hardware == "dobot":
        overrides["serial_port"] = LaunchConfiguration("serial_port").perform(context)
    config_dir = LaunchConfiguration("config_dir").perform(context)
    return [Node(package="press_cell", executable="arm_node", name="arm",
                 namespace=LaunchConfiguration("namespace").perform(context), output="screen",
                 emulate_tty=True, parameters=[f"{config_dir}/arm.yaml", overrides])]


def generate_launch_description():
    """Declare the arguments and the arm node."""
    share = FindPackageShare("press_cell")
    return LaunchDescription([
        DeclareLaunchArgument("hardware", default_value="sim", description="sim | dobot"),
        DeclareLaunchArgument("serial_port", default_value="/dev/ttyUSB0",
                              description="serial device of the Dobot Magician"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the cell (e.g. cell1)"),
        DeclareLaunchArgument("config_dir", default_value=[share, "/config"],
                              description="folder with arm.yaml"),
        DeclareLaunchArgument("time_scale", default_value="1.0",
                              description="sim: simulated seconds per wall second"),
        OpaqueFunction(function=_node),
    ])
