"""Where press_cell's shipped configuration files are, in a checkout and in a ROS install.

Looked up in order: ``$PRESS_CELL_CONFIG_DIR``; the ``config/`` folder beside the package in a
source checkout (the venv path installs the package in editable mode); the package's share
folder in a ROS install (``share/press_cell/config``, found through the ament index, or
relative to the installed package for an install space that is not sourced).
"""

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


class ConfigNotFoundError(FileNotFoundError):
    """A shipped configuration file could not be found."""


def _candidates():
    env = os.environ.get("PRESS_CELL_CONFIG_DIR")
    if env:
        yield Path(env)
    yield _PACKAGE_DIR.parent / "config"
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )
        try:
            yield Path(get_package_share_directory("press_cell")) / "config"
        except PackageNotFoundError:
            pass
    except ImportError:
        pass
    # <prefix>/lib/pythonX.Y/site-packages/press_cell -> <prefix>/share/press_cell/config
    yield _PACKAGE_DIR.parents[3] / "share" / "press_cell" / "config"


def config_dir() -> Path:
    """Return the folder holding the shipped configuration files."""
    for candidate in _candidates():
        if (candidate / "library.yaml").is_file():
            return candidate
    searched = ", ".join(str(c) for c in _candidates())
    raise ConfigNotFoundError(f"press_cell's config folder was not found (searched {searched});"
                              " set PRESS_CELL_CONFIG_DIR")


def config_file(name: str) -> Path:
    """Return the path of the shipped configuration file ``name`` (e.g. ``recipes.yaml``)."""
    path = config_dir() / name
    if not path.is_file():
        raise ConfigNotFoundError(f"no configuration file {name!r} in {path.parent}")
    return path
