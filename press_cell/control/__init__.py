"""Profile generation, force control, the fixed-rate loop and the safety supervisor (no rclpy).

The press node wraps ``press_runtime.PressRuntime``; everything else here is its parts:

* ``profile``: ``validate_segments``, ``PressProfile`` (setpoint(t), phase, segment index, time
  in segment / remaining; laid out bumplessly from the measured pressure), ``Phase``.
* ``force_controller``: ``ControllerGains``, ``ForceController`` (valve mode: adaptive
  two-degree-of-freedom PI with leak feed-forward, anti-windup, overshoot guard),
  ``SupervisoryStreamer`` (setpoint + ramp to presses with their own loop).
* ``loop_runner``: ``LoopRunner`` (own thread, absolute deadlines, overruns, latency
  percentiles, SCHED_FIFO + mlockall, lockstep with a ``SimulatedClock``), ``LoopTiming``
  (= ``msg/ControllerTiming``), ``LatestValue`` (non-blocking hand-off).
* ``supervisor``: ``SafetyLimits``, ``SafetySupervisor``, ``FaultKind`` (PressCycle error
  codes), ``ERROR_CODES``.
* ``certificate``: ``PressTrace``, ``PressCertificate`` (= ``msg/PressCertificate``),
  ``compute_certificate``.
* ``press_runtime``: ``PressRuntime``, ``CycleHandle``, ``CycleOutcome``, ``PressSnapshot``
  and the ``CycleRefused`` exceptions (``code`` = PressCycle error-code name); it ends the last
  hold by ``hold_end.HoldEndEvaluator`` when a goal enables the criterion.

``placement``, ``hold_end`` and ``assembly`` are documented in their own files.
"""
