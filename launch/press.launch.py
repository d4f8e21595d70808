"""Launch the press node alone (a press on the bench, or beside an arm started elsewhere).

    ros2 launch press_cell press.launch.py                                  # simulated press
    ros2 launch press_cell press.launch.py hardware:=serial_ascii serial_port:=/dev/ttyUSB0
    ros2 launch press_cell press.launch.py namespace:=cell1 time_scale:=20.0

Parameters come from ``params_file`` (default: config/press.yaml in the installed share
folder) with ``hardware``, ``serial_port`` and ``time_scale`` from the command line; the node
configures and activates itself (``autostart``). Written against launch / launch_ros of ROS 2
(not installable in this repository's venv; ``press-cell bringup`` is the in-process path).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    """Declare the arguments and the press node."""
    default_params = PathJoinSubstitution([FindPackageShare("press_cell"), "config",
                                           "press.yaml"])
    return LaunchDescription([
        DeclareLaunchArgument("hardware", default_value="sim",
                              choices=["sim", "serial_ascii", "serial_modbus"],
                              description="press backend"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of the cell (e.g. cell1)"),
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="press parameters (ROS params file)"),
        DeclareLaunchArgument("serial_port", default_value="/dev/ttyUSB0",
                              description="serial device of a serial press"),
        DeclareLaunchArgument("time_scale", default_value="1.0",
                              description="sim: simulated seconds per wall second"),
        Node(
            package="press_cell",
            executable="press_node",
            name="press",
            namespace=LaunchConfiguration("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=[
                LaunchConfiguration("params_file"),
                {
                    "hardware": LaunchConfiguration("hardware"),
                    "serial_port": LaunchConfiguration("serial_port"),
                    "time_scale": ParameterValue(LaunchConfiguration("time_scale"),
                                                 value_type=float),
                    "autostart": True,
                },
            ],
        ),
    ])
