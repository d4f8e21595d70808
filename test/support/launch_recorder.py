"""Test support: run a launch file's generate_launch_description without ROS `launch`.

`launch`/`launch_ros` are not installable from PyPI here, so this module provides recording
stand-ins for the handful of their classes press_cell's launch files use. It evaluates the
description with the declared defaults (plus given arguments) and returns every Node action's
keyword arguments with substitutions resolved, so a test can check that the executables,
parameter files and parameter names the launch files name really exist. The real `launch`
test (test_launch_files.py) runs wherever `launch_ros` is importable.
"""

import importlib.util
import sys
import types
from pathlib import Path


class _Substitution:
    def resolve(self, context):
        raise NotImplementedError


class LaunchConfiguration(_Substitution):
    def __init__(self, name, default=None):
        self.name = name

    def perform(self, context):
        return context[self.name]

    resolve = perform


class PathJoinSubstitution(_Substitution):
    def __init__(self, parts):
        self.parts = parts

    def resolve(self, context):
        return str(Path(*[resolve(p, context) for p in self.parts]))


class FindPackageShare(_Substitution):
    def __init__(self, package):
        self.package = package

    def resolve(self, context):
        return context["__share__"]


class ParameterValue:
    def __init__(self, value, value_type=None):
        self.value = value
        self.value_type = value_type


class DeclareLaunchArgument:
    def __init__(self, name, default_value=None, description="", choices=None):
        self.name = name
        self.default_value = default_value
        self.choices = choices


class OpaqueFunction:
    def __init__(self, function):
        self.function = function


class LaunchDescription:
    def __init__(self, entities):
        self.entities = list(entities)


class Node:
    def __init__(self, **kwargs):
        self.kwargs = kwargs


def resolve(value, context):
    """Resolve substitutions (and lists/dicts of them) against ``context``."""
    if isinstance(value, ParameterValue):
        resolved = resolve(value.value, context)
        return value.value_type(resolved) if value.value_type else resolved
    if isinstance(value, _Substitution):
        return value.resolve(context)
    if isinstance(value, dict):
        return {k: resolve(v, context) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [resolve(v, context) for v in value]
    return value


def _install_stand_ins():
    modules = {
        "launch": {"LaunchDescription": LaunchDescription},
        "launch.actions": {"DeclareLaunchArgument": DeclareLaunchArgument,
                           "OpaqueFunction": OpaqueFunction},
        "launch.substitutions": {"LaunchConfiguration": LaunchConfiguration,
                                 "PathJoinSubstitution": PathJoinSubstitution},
        "launch_ros": {},
        "launch_ros.actions": {"Node": Node},
        "launch_ros.substitutions": {"FindPackageShare": FindPackageShare},
        "launch_ros.parameter_descriptions": {"ParameterValue": ParameterValue},
    }
    saved = {name: sys.modules.get(name) for name in modules}
    for name, attrs in modules.items():
        module = types.ModuleType(name)
        module.__dict__.update(attrs)
        sys.modules[name] = module
    return saved


def evaluate(launch_file, share_dir, arguments=None):
    """Return a list of resolved Node kwargs of ``launch_file`` with ``arguments`` applied."""
    saved = _install_stand_ins()
    try:
        spec = importlib.util.spec_from_file_location(Path(launch_file).stem.replace(".", "_"),
                                                      launch_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        description = module.generate_launch_description()
        context = {"__share__": str(share_dir)}
        for entity in description.entities:
            if isinstance(entity, DeclareLaunchArgument):
                default = entity.default_value
                if isinstance(default, list):  # a launch "substitution list" concatenates
                    default = "".join(resolve(part, context) for part in default)
                context[entity.name] = resolve(default, context)
        for name, value in (arguments or {}).items():
            context[name] = value
        nodes = []
        for entity in description.entities:
            produced = entity.function(context) if isinstance(entity, OpaqueFunction) \
                else [entity]
            for item in produced:
                if isinstance(item, Node):
                    nodes.append(resolve(item.kwargs, context))
        return nodes
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
