"""Linters run as tests: ruff with pycodestyle, pyflakes, pep257 (pydocstyle) and bugbear rules."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_passes_on_the_whole_repository():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)],
                            capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_enforces_docstrings_and_pep8():
    config = (REPO / "ruff.toml").read_text()
    for rule_family in ('"E"', '"W"', '"F"', '"D"'):
        assert rule_family in config
