"""The pure core (hardware, physics, control, recipes, analysis) never imports rclpy."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "press_cell"
PURE = ("hardware", "physics", "control", "recipes", "analysis")


def _pure_modules():
    for folder in PURE:
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            yield path


def _imported_names(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("path", list(_pure_modules()), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_source_has_no_rclpy_import(path):
    offenders = [n for n in _imported_names(path) if n == "rclpy" or n.startswith("rclpy.")]
    assert not offenders, f"{path} imports {offenders}: the pure core must not depend on rclpy"


def test_importing_the_pure_core_does_not_load_rclpy():
    modules = [".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts)
               for p in _pure_modules()]
    modules = [m.removesuffix(".__init__") for m in modules]
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "loaded = sorted(m for m in sys.modules if m == 'rclpy' or m.startswith('rclpy.'))\n"
            "print(','.join(loaded))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=PACKAGE.parent, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"rclpy loaded by the pure core: {result.stdout}"
