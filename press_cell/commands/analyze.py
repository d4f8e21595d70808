"""`press-cell analyze`: per-cycle certificates and impedance results of a recorded bag.

Prints a table in lab units (MPa, kN, %, um), writes the report (cycles.csv, report.json,
table.txt, PNG plots) to ``--out`` (default ``<BAG>_report``), and with ``--json`` prints the
report document instead of the tables. A progress bar (messages read / messages to read) goes
to stderr when stderr is a terminal. Exit codes: 0 analysed (problems found in a damaged bag are
listed, and the analysis covers what could be read), 2 the bag cannot be read at all, 1 the
analysis failed unexpectedly; every error is one line on stderr, never a traceback (``-v``
logs it).
"""

import logging
import math
import sys
import time
from pathlib import Path

HELP = "analyse a recorded bag: per-cycle press certificates, impedance fits, report and plots"

_LOG = logging.getLogger(__name__)
_MPA = 1e-6


def add_arguments(parser):
    """Declare the options of `press-cell analyze`."""
    parser.add_argument("bag", help="rosbag2 directory (or a bare .mcap/.db3 file)")
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="report folder (default: <BAG>_report)")
    parser.add_argument("--json", action="store_true",
                        help="print the structured result (report.json) on stdout")
    parser.add_argument("--namespace", default=None,
                        help="analyse the cell under this namespace when several were recorded")


class ProgressBar:
    """Draw ``done/total`` as a bar on a terminal stream; draw nothing elsewhere."""

    def __init__(self, label: str, stream=sys.stderr, width: int = 30) -> None:
        """Prepare a bar titled ``label`` on ``stream``."""
        self.label, self.stream, self.width = label, stream, width
        self.enabled = stream.isatty()
        self._drawn = False
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        """Redraw the bar (at most 10 times a second)."""
        if not self.enabled or total <= 0:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done < total:
            return
        self._last = now
        filled = int(self.width * done / total)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{100.0 * done / total:5.1f} % ({done}/{total} messages)")
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        """End the bar's line."""
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _num(value, scale=1.0, fmt=".3f"):
    return "-" if value is None or not math.isfinite(value) else format(value * scale, fmt)


def cycle_summary(results) -> str:
    """Return a table of each cycle's source, step, peak force (kN) and live-certificate check."""
    lines = [f"{'cycle':>5} {'step':<14} {'peak kN':>8}  {'live':<9} method"]
    for r in results:
        live = r.extra.get("matches_live")
        check = "-" if live is None else ("equal" if live else "DIFFERS")
        lines.append(f"{r.cycle.index:>5} {r.certificate.step_name or '-':<14} "
                     f"{_num(r.certificate.peak_force, 1e-3):>8}  {check:<9} {r.method}")
    return "\n".join(lines)


def impedance_summary(run, fits, measurements) -> str:
    """Return a table of the recorded spectra and their equivalent-circuit fits."""
    if not run.spectra:
        return "impedance: no spectra in the bag"
    lines = [f"{'#':>3} {'cell':<16} {'stack MPa':>9} {'R_total ohm':>11} {'R_int ohm':>9} "
             f"{'rms %':>6} {'cycle':>5}  note"]
    for m in measurements:
        spectrum, fit = run.spectra[m.spectrum_index], fits[m.spectrum_index]
        lines.append(
            f"{m.spectrum_index:>3} {spectrum.cell_id or '-':<16} "
            f"{_num(m.stack_pressure_pa, _MPA, '.1f'):>9} "
            f"{_num(fit.get('r_total_ohm', math.nan), 1, '.2f'):>11} "
            f"{_num(fit.get('r_int_ohm', math.nan), 1, '.2f'):>9} "
            f"{_num(fit.get('rms_residual_pct', math.nan), 1, '.2f'):>6} "
            f"{'-' if m.cycle_index is None else m.cycle_index:>5}  {fit.get('error', '')}")
    return "\n".join(lines)


def run(args):
    """Analyse the bag; return the exit code."""
    from press_cell.analysis.bag_reader import BagReadError
    from press_cell.analysis.run import load_run

    if not getattr(args, "verbose", False):  # the tables say it all; -v shows the steps
        logging.getLogger("press_cell.analysis").setLevel(logging.WARNING)
    bag = Path(args.bag)
    out = Path(args.out) if args.out else Path(str(bag).rstrip("/") + "_report")
    progress = ProgressBar(f"reading {bag.name}")
    try:
        run_ = load_run(bag, namespace=args.namespace, progress=progress)
    except BagReadError as exc:
        progress.close()
        print(f"press-cell analyze: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - one line for the user; -v logs the traceback
        progress.close()
        _LOG.debug("load failed", exc_info=True)
        print(f"press-cell analyze: {bag}: cannot read the bag ({type(exc).__name__}: "
              f"{_one_line(exc)})", file=sys.stderr)
        return 2
    progress.close()
    try:
        return _report(run_, out, args.json)
    except Exception as exc:  # noqa: BLE001 - one line for the user; -v logs the traceback
        _LOG.debug("analysis failed", exc_info=True)
        print(f"press-cell analyze: {bag}: analysis failed ({type(exc).__name__}: "
              f"{_one_line(exc)}); run with -v for details", file=sys.stderr)
        return 1


def _report(run_, out: Path, as_json: bool) -> int:
    from press_cell.analysis.cycles import find_measurements
    from press_cell.analysis.report import format_table, spectrum_fits, write_report

    results = run_.cycle_results()
    files = write_report(run_, out, results)
    if as_json:
        sys.stdout.write(files.json.read_text() + "\n")
        return 0
    info = run_.info
    print(f"bag: {run_.path} ({run_.storage}), {run_.end_s - run_.start_s:.1f} s, "
          f"{sum(t.message_count for t in run_.topics.values())} messages")
    print(f"cell: {info.cell_id or '-'}  recipe: {info.recipe_name or '-'} "
          f"{info.recipe_hash[:12] or ''}  calibration: {info.calibration_id or '-'}  "
          f"press_cell {info.package_version or '?'}")
    print()
    print(format_table(results) if results else "press cycles: none found")
    if results:
        print()
        print(cycle_summary(results))
    print()
    fits = spectrum_fits(run_)
    print(impedance_summary(run_, fits, find_measurements(run_, [r.cycle for r in results])))
    if run_.problems:
        print()
        print("problems:")
        for problem in run_.problems:
            print(f"  - {problem}")
    print()
    print(f"report: {out} ({', '.join(sorted(files.plots))} plotted"
          + (f"; not plotted: {', '.join(sorted(files.skipped))}" if files.skipped else "")
          + ")")
    return 0


def _one_line(exc) -> str:
    return " ".join(str(exc).split())
