"""`press-cell press`: run one press cycle against a running press node, or an in-process sim.

Examples::

    press-cell press --recipe li6ps5cl_370mpa_200mg --namespace /cell1
    press-cell press --sim --time-scale 20 --target-mpa 50 --ramp-mpa-s 2 --hold-s 30 \
        --release-mpa-s 10 --die-mm 13 --material Li6PS5Cl --json

Lab units on the command line (MPa, MPa/s, mm), SI on the wire. A progress line goes to
stderr; ``--json`` prints the certificate (SI) on stdout. Ctrl-C cancels the cycle (controlled
release, the command waits for the ``canceled`` result); a second Ctrl-C sends an e-stop.
Exit codes: 0 succeeded, 1 aborted or canceled, 2 goal rejected (reason printed), 3 no press
node found.
"""

import json
import math
import sys
import threading

HELP = "run one press cycle (recipe or explicit profile) on a press node, or --sim in-process"

EXIT_OK, EXIT_FAILED, EXIT_REJECTED, EXIT_NO_SERVER = 0, 1, 2, 3
PHASES = ("idle", "ramp", "hold", "release", "venting", "fault", "disconnected")


def add_arguments(parser):
    """Declare the options of `press-cell press`."""
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--recipe", help="name of a press recipe in the node's recipe file")
    what.add_argument("--target-mpa", type=float, help="hold pressure, MPa")
    parser.add_argument("--ramp-mpa-s", type=float, default=2.0, help="ramp rate, MPa/s")
    parser.add_argument("--hold-s", type=float, default=10.0, help="hold duration, s")
    parser.add_argument("--release-mpa-s", type=float, default=10.0, help="release rate, MPa/s")
    parser.add_argument("--tolerance-pct", type=float, default=1.0,
                        help="hold band half-width, %% of the target")
    parser.add_argument("--die-mm", type=float, default=None,
                        help="die (contact) diameter, mm (default 13 for a profile; a recipe "
                             "uses its tooling)")
    parser.add_argument("--material", default="", help="library material (e.g. Li6PS5Cl)")
    parser.add_argument("--part-id", default="cli", help="part id written to the certificate")
    parser.add_argument("--max-mpa", type=float, default=0.0,
                        help="recipe limit, MPa (0 = press and die ratings only)")
    parser.add_argument("--namespace", default="", help="cell namespace, e.g. /cell1")
    parser.add_argument("--sim", action="store_true",
                        help="start an in-process simulated press node first")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="with --sim: simulated seconds per wall second (0 = unpaced)")
    parser.add_argument("--server-timeout-s", type=float, default=10.0,
                        help="how long to look for the press node, s")
    parser.add_argument("--json", action="store_true", help="print the certificate as JSON")


def build_goal(args):
    """Return the ``PressCycle.Goal`` the arguments describe (SI)."""
    from press_cell.action import PressCycle
    from press_cell.nodes.press_goal import explicit_profile
    from press_cell.nodes.press_messages import segment_to_msg

    goal = PressCycle.Goal(part_id=args.part_id, material=args.material,
                           max_pressure=args.max_mpa * 1e6)
    if args.die_mm is not None:
        goal.die_diameter = args.die_mm * 1e-3
    if args.recipe:
        goal.recipe_name = args.recipe
        return goal
    if args.die_mm is None:
        goal.die_diameter = 0.013
    segments = explicit_profile(args.target_mpa * 1e6, args.ramp_mpa_s * 1e6, args.hold_s,
                                args.release_mpa_s * 1e6, args.tolerance_pct / 100.0)
    goal.segments = [segment_to_msg(s) for s in segments]
    return goal


def progress_line(feedback) -> str:
    """Return one progress line of a ``PressCycle.Feedback``."""
    phase = PHASES[feedback.phase] if feedback.phase < len(PHASES) else str(feedback.phase)
    setpoint = feedback.pressure_setpoint / 1e6 if math.isfinite(feedback.pressure_setpoint) \
        else math.nan
    return (f"{phase:<8} seg {feedback.segment_index + 1}/{feedback.segment_count}  "
            f"p {feedback.pressure / 1e6:7.2f} / {setpoint:7.2f} MPa  "
            f"F {feedback.force / 1e3:7.2f} kN  ram {feedback.ram_position * 1e3:7.3f} mm  "
            f"left {feedback.time_remaining:7.1f} s")


def _print_summary(status: str, result, out) -> None:
    cert = result.certificate
    out.write(f"\n{status}: {result.error_msg} (code {result.error_code})\n")
    if math.isfinite(cert.peak_pressure):
        out.write(f"peak {cert.peak_pressure / 1e6:.2f} MPa, hold mean "
                  f"{cert.mean_hold_pressure / 1e6:.2f} MPa, overshoot "
                  f"{100 * cert.overshoot_fraction:.3f} %, in band "
                  f"{100 * cert.fraction_in_band:.2f} %, settling {cert.settling_time:.2f} s, "
                  f"ramp-rate error {100 * cert.ramp_rate_error:+.2f} %\n")


def run(args) -> int:
    """Run the cycle; return the exit code."""
    import rclpy
    from rclpy.executors import MultiThreadedExecutor

    from press_cell.nodes.press_client import GoalRefused, PressClient, PressClientError
    from press_cell.nodes.press_messages import certificate_to_dict

    err = sys.stderr
    rclpy.init(args=None, signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    executor = MultiThreadedExecutor(num_threads=6)
    press_node = None
    if args.sim:
        from press_cell.nodes.press_node import PressNode

        press_node = PressNode(namespace=args.namespace, parameter_overrides={
            "autostart": True, "hardware": "sim", "time_scale": float(args.time_scale),
            "publish_clock": True})
        executor.add_node(press_node)
    node = rclpy.create_node("press_cli", namespace=args.namespace or "")
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    client = PressClient(node, namespace=args.namespace)
    try:
        client.wait_for_server(args.server_timeout_s)
        try:
            handle = client.send_goal(build_goal(args), feedback_callback=lambda m: err.write(
                "\r" + progress_line(m.feedback)))
        except GoalRefused as exc:
            err.write(f"{exc}\n")
            return EXIT_REJECTED
        try:
            status, result = client.wait_result(handle, timeout_s=86400.0)
        except KeyboardInterrupt:
            err.write("\ncanceling: controlled release (Ctrl-C again for an e-stop)\n")
            try:
                client.cancel(handle)
                status, result = client.wait_result(handle, timeout_s=3600.0)
            except KeyboardInterrupt:
                err.write("\nE-STOP\n")
                client.estop("press-cell press: second Ctrl-C")
                status, result = client.wait_result(handle, timeout_s=60.0)
        _print_summary(status, result, err)
        if args.json:
            print(json.dumps({"status": status, "error_code": result.error_code,
                              "error_msg": result.error_msg,
                              "certificate": certificate_to_dict(result.certificate)},
                             indent=2))
        return EXIT_OK if status == "succeeded" else EXIT_FAILED
    except PressClientError as exc:
        err.write(f"error: {exc}\n")
        return EXIT_NO_SERVER
    finally:
        if press_node is not None:
            press_node.close()
        executor.shutdown(timeout_sec=2.0)
        spinner.join(timeout=2.0)
        node.destroy_node()
        if press_node is not None:
            press_node.destroy_node()
        rclpy.try_shutdown()
