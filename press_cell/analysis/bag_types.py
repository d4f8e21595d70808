"""A rosbags typestore that knows press_cell's interfaces, built from the .msg/.action/.srv files.

The typestore is the ROS 2 Kilted standard store (std_msgs, sensor_msgs, geometry_msgs,
diagnostic_msgs, action_msgs, ...) plus every press_cell message, the types rosidl derives from
each action (``X_Goal``, ``X_Result``, ``X_Feedback``, ``X_FeedbackMessage``,
``X_SendGoal_Request``/``_Response``, ``X_GetResult_Request``/``_Response``). Services are not
recorded by rosbag2 as data topics and rosbags cannot name ``pkg/srv/...`` types, so the .srv files
are not loaded. No ROS installation is needed: the definitions are parsed with
``rosbags.typesys.get_types_from_msg``.

Bags carry their own definitions; the reader builds its typestore from those (see
``bag_reader``), so this module is needed only to *write* press_cell bags.
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

PACKAGE = "press_cell"

_ACTION_SERVICE_TEXT = {
    "SendGoal_Request": "unique_identifier_msgs/UUID goal_id\n{pkg}/action/{name}_Goal goal\n",
    "SendGoal_Response": "bool accepted\nbuiltin_interfaces/Time stamp\n",
    "GetResult_Request": "unique_identifier_msgs/UUID goal_id\n",
    "GetResult_Response": "int8 status\n{pkg}/action/{name}_Result result\n",
    "FeedbackMessage": (
        "unique_identifier_msgs/UUID goal_id\n{pkg}/action/{name}_Feedback feedback\n"
    ),
}


class InterfaceDefinitionsNotFound(FileNotFoundError):
    """The press_cell .msg/.action files could not be located."""


def find_interface_root() -> Path:
    """Return the folder that holds press_cell's ``msg/`` and ``action/`` folders.

    Searched in order: ``$PRESS_CELL_INTERFACES``, the source checkout (two levels above this
    file), ``share/press_cell`` under every ``$AMENT_PREFIX_PATH`` entry and under ``sys.prefix``.
    """
    candidates: list[Path] = []
    if env := os.environ.get("PRESS_CELL_INTERFACES"):
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[2])
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE)
    candidates.append(Path(sys.prefix) / "share" / PACKAGE)
    for root in candidates:
        if (root / "msg" / "PressState.msg").is_file():
            return root
    searched = ", ".join(str(c) for c in candidates)
    raise InterfaceDefinitionsNotFound(
        f"press_cell interface definitions (msg/PressState.msg) not found; searched {searched}. "
        "Set PRESS_CELL_INTERFACES to the folder that contains msg/ and action/."
    )


def _split_sections(text: str, count: int, path: Path) -> list[str]:
    """Split an .action file at its ``---`` lines into exactly ``count`` sections."""
    sections: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip() == "---":
            sections.append([])
        else:
            sections[-1].append(line)
    if len(sections) != count:
        raise ValueError(
            f"{path}: expected {count} sections separated by '---', got {len(sections)}"
        )
    return ["\n".join(s) + "\n" for s in sections]


def interface_types(root: Path | None = None) -> dict:
    """Parse every press_cell interface under ``root`` into a rosbags types dictionary."""
    root = find_interface_root() if root is None else root
    types: dict = {}
    for path in sorted((root / "msg").glob("*.msg")):
        types.update(get_types_from_msg(path.read_text(), f"{PACKAGE}/msg/{path.stem}"))
    for path in sorted((root / "action").glob("*.action")):
        name = path.stem
        goal, result, feedback = _split_sections(path.read_text(), 3, path)
        for suffix, text in (("Goal", goal), ("Result", result), ("Feedback", feedback)):
            types.update(get_types_from_msg(text, f"{PACKAGE}/action/{name}_{suffix}"))
        for suffix, template in _ACTION_SERVICE_TEXT.items():
            text = template.format(pkg=PACKAGE, name=name)
            types.update(get_types_from_msg(text, f"{PACKAGE}/action/{name}_{suffix}"))
    return types


@functools.cache
def press_cell_typestore() -> Typestore:
    """Return the ROS 2 Kilted typestore extended with press_cell's interfaces (cached)."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(interface_types())
    return store


def standard_typestore() -> Typestore:
    """Return a fresh ROS 2 Kilted typestore with the standard interfaces only."""
    return get_typestore(Stores.ROS2_KILTED)
