"""pip build of press_cell's Python sources (the venv path; colcon uses CMakeLists.txt).

The ROS interfaces are not built here: `make interfaces` compiles them with rosidl into the venv
and places the generated modules beside these sources (git-ignored), so that an editable install
serves both. Console scripts come from entry_points.txt, shared with CMakeLists.txt.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent


def console_scripts():
    """Return the console_scripts entries listed in entry_points.txt."""
    lines = (HERE / "entry_points.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


setup(
    name="press_cell",
    version="0.1.0",
    description="Robotic solid-state battery assembly cell for ROS 2",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["press_cell", "press_cell.*"]),
    package_data={"press_cell": ["py.typed"]},
    entry_points={"console_scripts": console_scripts()},
)
