"""press_cell: a ROS 2 package that runs a robotic solid-state battery assembly cell."""

__version__ = "0.1.0"
