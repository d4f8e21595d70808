"""Write the machine-readable result that every press_cell benchmark program produces.

Convention (one for all of ``bench/``): each benchmark program accepts ``--json PATH`` and, when
given, writes one JSON object there::

    {"benchmark": "bench_loop_timing",
     "figures": [{"key": "loop_1000hz_runtime_wake", "name": "...", "value": 0.022,
                  "p99": 0.052, "unit": "ms", "stat": "median",
                  "baseline": 0.023, "baseline_p99": 0.050, "baseline_name": "...",
                  "ratio": 0.96, "ratio_p99": 1.04, "good": "..."}, ...],
     "details": {...everything else the program measured...}}

``value`` is the headline statistic named by ``stat`` (a median for latencies and durations, a
rate or a count otherwise); ``p99`` is given where the figure is a timing distribution;
``baseline`` is the same quantity measured in the same run on the bare thing (bare loop, bare
rclpy node, plain rosbags...) or null where no baseline exists; ``ratio`` = value / baseline;
``good`` says in words what a good value is. Non-finite numbers are written as null.
``bench/run_all.py`` reads these files and prints the summary table.
"""

import json
import math
from pathlib import Path


def _finite(value):
    """Return ``value`` as a float, or None when it is missing or not finite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _ratio(value, baseline):
    """Return value / baseline, or None when either is missing or the baseline is 0."""
    if value is None or baseline is None or baseline == 0.0:
        return None
    return value / baseline


def figure(key: str, name: str, value, unit: str, *, good: str, stat: str = "median",
           p99=None, baseline=None, baseline_p99=None, baseline_name: str = "") -> dict:
    """Return one named figure with its baseline and the ratios to it (see module docstring)."""
    value, p99 = _finite(value), _finite(p99)
    baseline, baseline_p99 = _finite(baseline), _finite(baseline_p99)
    return {"key": key, "name": name, "value": value, "p99": p99, "unit": unit, "stat": stat,
            "baseline": baseline, "baseline_p99": baseline_p99,
            "baseline_name": baseline_name if baseline is not None else "",
            "ratio": _ratio(value, baseline), "ratio_p99": _ratio(p99, baseline_p99),
            "good": good}


def _clean(obj):
    """Replace non-finite floats by None recursively so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_result(path, benchmark: str, figures: list, details) -> None:
    """Write the benchmark's figures and details to ``path`` (no-op when ``path`` is None)."""
    if path is None:
        return
    payload = {"benchmark": benchmark, "figures": figures, "details": details}
    Path(path).write_text(json.dumps(_clean(payload), indent=1, allow_nan=False) + "\n")


def add_json_argument(parser) -> None:
    """Add the common ``--json PATH`` option to a benchmark's argument parser."""
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the named figures as JSON (bench/result_format.py)")
