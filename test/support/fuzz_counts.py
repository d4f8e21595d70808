"""Pytest plugin: count what the bad-input fuzzers tried, print it and write out/fuzz/counts.json.

A fuzz test records each input it tried with ``record(family, case, outcome)``: ``family`` is
one of the bad-input families (``goals``, ``config``, ``frames``, ``bags``), ``case`` names the
target (e.g. ``PressCycle``, ``ascii press``), ``outcome`` what happened (``rejected``,
``accepted``, ``ran safely``, ``partial``...). At the end of the run the counts appear in a
"fuzz counts" block of the terminal summary and in ``out/fuzz/counts.json``. Loaded from
``test/conftest.py`` (``pytest_plugins``).
"""

import json
from collections import Counter
from pathlib import Path

_COUNTS = Counter()
OUT_PATH = Path(__file__).resolve().parents[2] / "out" / "fuzz" / "counts.json"


def record(family: str, case: str, outcome: str, n: int = 1) -> None:
    """Count ``n`` inputs of ``family``/``case`` that ended in ``outcome``."""
    _COUNTS[(family, case, outcome)] += n


def counts() -> dict:
    """Return ``{family: {case: {outcome: n}}}`` of everything recorded so far."""
    nested = {}
    for (family, case, outcome), n in sorted(_COUNTS.items()):
        nested.setdefault(family, {}).setdefault(case, {})[outcome] = n
    return nested


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the fuzz counts and write them to out/fuzz/counts.json (when any were recorded)."""
    if not _COUNTS:
        return
    nested = counts()
    terminalreporter.section("fuzz counts")
    total = 0
    for family, cases in nested.items():
        family_total = sum(sum(outcomes.values()) for outcomes in cases.values())
        total += family_total
        terminalreporter.write_line(f"{family}: {family_total} inputs")
        for case, outcomes in cases.items():
            detail = ", ".join(f"{outcome} {n}" for outcome, n in outcomes.items())
            terminalreporter.write_line(f"  {case:<28} {sum(outcomes.values()):>6}  ({detail})")
    terminalreporter.write_line(f"total: {total} bad or random inputs tried")
    OUT_PATH.parent.mkdir(parents=True, exist_ok=True)
    OUT_PATH.write_text(json.dumps({"total": total, "families": nested}, indent=1))
    terminalreporter.write_line(f"written to {OUT_PATH}")
