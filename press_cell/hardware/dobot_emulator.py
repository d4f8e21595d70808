"""Byte-faithful Dobot Magician emulator on a pseudo-terminal, driven by ``SimulatedArm``.

The emulator opens a pty pair (``os.openpty``), answers frames on the master side and lets a
driver open the slave path as a serial port. Queued commands (SetPTPCmd, speed settings,
suction / gripper) run in order on a ``SimulatedArm``, the same kinematic model the simulator
backend uses. ``time_scale`` plays the arm's simulated clock faster than wall time so tests of
multi-second moves take a fraction of a second.

Queue index semantics (as the driver relies on them): every queued command gets the next
index (1, 2, ...); GetQueuedCmdCurrentIndex reports the index of the last command that has
*finished*; after SetQueuedCmdClear or ForceStop nothing is pending, so it reports the last
index handed out.

Fault injection (``EmulatorFaults``): drop the next N replies (the command still runs), send
the next N replies with a wrong checksum, stall the queue (commands are accepted, never run),
lose the grip after a carried distance.

Run ``python -m press_cell.hardware.dobot_emulator --help``; the slave path is printed on
stdout as the first line.

Not emulated: joint angles j2/j3 in GetPose (reported as 0; only j1 = atan2(y, x) and
j4 = r - j1 are computed), homing (SetHOMECmd completes at once), JUMP moves (run as MOVL).
"""

import argparse
import collections
import logging
import math
import os
import select
import signal
import sys
import threading
import time
import tty
from dataclasses import dataclass

from press_cell.hardware import dobot_protocol as proto
from press_cell.hardware.arm_driver import ArmMotionError, Pose
from press_cell.hardware.arm_sim import SimulatedArm
from press_cell.hardware.dobot_protocol import CommandId, Frame
from press_cell.timebase import SimulatedClock

_LOG = logging.getLogger(__name__)

ALARM_LIMIT_BIT = 0x10     # bit set in the alarm field when a target is unreachable [est]
DEFAULT_SPEED_MM_S = 100.0  # PTP coordinate speed before any SetPTPCoordinateParams [est]


@dataclass
class EmulatorFaults:
    """Faults the emulator injects; change them at any time (the emulator reads them live)."""

    drop_replies: int = 0        # the next N replies are not sent (the command still runs)
    corrupt_replies: int = 0     # the next N replies carry a wrong checksum
    stall_queue: bool = False    # queued commands are accepted but never executed


class DobotEmulator:
    """A Dobot Magician on a pty: protocol replies, a command queue and a simulated arm."""

    def __init__(
        self,
        arm: SimulatedArm | None = None,
        clock: SimulatedClock | None = None,
        time_scale: float = 1.0,
        vacuum_sensor_eio: int = 10,
        tick_s: float = 0.002,
    ) -> None:
        if not time_scale > 0.0:
            raise ValueError(f"time_scale must be > 0, got {time_scale!r}")
        if arm is not None and clock is None:
            raise ValueError("pass the SimulatedClock the arm was built with")
        self.clock = clock or SimulatedClock()
        self.arm = arm or SimulatedArm(self.clock, lockstep=False)
        self.time_scale = float(time_scale)
        self.vacuum_sensor_eio = int(vacuum_sensor_eio)
        self.faults = EmulatorFaults()
        self._tick_s = float(tick_s)
        self._lock = threading.Lock()
        self._decoder = proto.FrameDecoder()
        self._queue: collections.deque = collections.deque()
        self._executing: tuple | None = None     # (index, frame) of the running command
        self._next_index = 1
        self._done_index = 0
        self._exec_enabled = False
        self._speed_mm_s = DEFAULT_SPEED_MM_S
        self._alarms = bytearray(16)
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.port = ""
        self.frames_received = 0
        self.arm.connect()

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> str:
        """Open the pty, start serving and return the slave path a driver should open."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._serve, name="dobot-emulator", daemon=True)
        self._thread.start()
        _LOG.info("Dobot emulator on %s (time scale %.1f)", self.port, self.time_scale)
        return self.port

    def close(self) -> None:
        """Stop serving and close the pty; safe to call twice."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None

    def __enter__(self) -> "DobotEmulator":
        """Start serving."""
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        """Stop serving."""
        self.close()

    def lose_grip_after(self, carried_m: float) -> None:
        """Make the cup lose the part it carries after ``carried_m`` more metres (m)."""
        self.arm.inject_drop(carried_m)

    # ----------------------------------------------------------------- protocol
    def handle_bytes(self, data: bytes) -> bytes:
        """Consume received bytes and return the reply bytes to send (faults applied)."""
        out = bytearray()
        with self._lock:
            self._decoder.feed(data)
            while True:
                try:
                    frame = self._decoder.next_frame()
                except proto.DobotFrameError as exc:
                    _LOG.warning("emulator dropped a bad frame: %s", exc)
                    continue
                if frame is None:
                    break
                self.frames_received += 1
                reply = self._handle_frame(frame)
                if reply is None:
                    continue
                if self.faults.drop_replies > 0:
                    self.faults.drop_replies -= 1
                    continue
                raw = bytearray(proto.encode_frame(reply))
                if self.faults.corrupt_replies > 0:
                    self.faults.corrupt_replies -= 1
                    raw[-1] ^= 0x5A
                out.extend(raw)
        return bytes(out)

    def step(self, dt_s: float) -> None:
        """Advance the simulated time by ``dt_s`` (s) and run the command queue."""
        with self._lock:
            self.clock.advance(dt_s)
            self._run_queue()

    def _handle_frame(self, frame: Frame) -> Frame | None:
        try:
            command = CommandId(frame.command_id)
        except ValueError:
            _LOG.warning("emulator ignores unsupported command id %d", frame.command_id)
            return None
        params = frame.params
        if command == CommandId.GET_IO_DI and len(params) == 1:
            params += b"\x00"     # some clients send the address alone
        try:
            values = proto.unpack_params(command, params)
        except proto.DobotFrameError as exc:
            _LOG.warning("emulator ignores %s: %s", command.name, exc)
            return None
        if frame.is_queued:
            index = self._next_index
            self._next_index += 1
            self._queue.append((index, command, values))
            return Frame(frame.command_id, frame.rw, True, proto.QUEUE_INDEX.pack(index))
        return Frame(frame.command_id, frame.rw, False, self._immediate(command, values))

    def _immediate(self, command: CommandId, values: tuple) -> bytes:
        if command == CommandId.GET_POSE:
            pose = self.arm.current_pose()
            r_deg = math.degrees(pose.yaw_rad)
            j1_deg = math.degrees(math.atan2(pose.y_m, pose.x_m))
            return proto.pack_params(command, pose.x_m * 1e3, pose.y_m * 1e3, pose.z_m * 1e3,
                                     r_deg, j1_deg, 0.0, 0.0, r_deg - j1_deg, reply=True)
        if command == CommandId.GET_QUEUED_CMD_CURRENT_INDEX:
            return proto.QUEUE_INDEX.pack(self._done_index)
        if command == CommandId.GET_ALARMS_STATE:
            return proto.pack_params(command, bytes(self._alarms), reply=True)
        if command == CommandId.CLEAR_ALL_ALARMS_STATE:
            self._alarms[:] = bytes(len(self._alarms))
        elif command == CommandId.GET_IO_DI:
            level = int(values[0] == self.vacuum_sensor_eio and self.arm.grasp_detected())
            return proto.pack_params(command, values[0], level, reply=True)
        elif command == CommandId.SET_QUEUED_CMD_START_EXEC:
            self._exec_enabled = True
        elif command == CommandId.SET_QUEUED_CMD_STOP_EXEC:
            self._exec_enabled = False
        elif command == CommandId.SET_QUEUED_CMD_FORCE_STOP_EXEC:
            self._exec_enabled = False
            self.arm.stop()
            self._executing = None
            self._queue.clear()
            self._done_index = self._next_index - 1
        elif command == CommandId.SET_QUEUED_CMD_CLEAR:
            self._queue.clear()
            if self._executing is None:
                self._done_index = self._next_index - 1
        else:
            # a set command sent unqueued: run it now
            self._execute(command, values)
        return b""

    def _run_queue(self) -> None:
        if self.faults.stall_queue or not self._exec_enabled:
            return
        while True:
            if self._executing is not None:
                if self.arm.is_moving:
                    return
                self._done_index = self._executing[0]
                self._executing = None
            if not self._queue:
                return
            index, command, values = self._queue.popleft()
            self._executing = (index, command)
            self._execute(command, values)

    def _execute(self, command: CommandId, values: tuple) -> None:
        if command == CommandId.SET_PTP_CMD:
            _, x_mm, y_mm, z_mm, r_deg = values
            target = Pose.from_xyz_yaw(x_mm / 1e3, y_mm / 1e3, z_mm / 1e3, math.radians(r_deg))
            try:
                self.arm.move_to(target, self._speed_mm_s / 1e3)
            except ArmMotionError as exc:
                _LOG.warning("emulated arm refused the move: %s", exc)
                self._alarms[0] |= ALARM_LIMIT_BIT
        elif command == CommandId.SET_PTP_COORDINATE_PARAMS:
            self._speed_mm_s = values[0]
        elif command in (CommandId.SET_END_EFFECTOR_SUCTION_CUP,
                         CommandId.SET_END_EFFECTOR_GRIPPER):
            enable_ctrl, on = values
            if enable_ctrl and on:
                self.arm.grip()
            else:
                self.arm.release()

    # ----------------------------------------------------------------- serving thread
    def _serve(self) -> None:
        last = time.monotonic()
        while not self._stopping.is_set():
            readable, _, _ = select.select([self._master], [], [], self._tick_s)
            now = time.monotonic()
            self.step((now - last) * self.time_scale)
            last = now
            if readable:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    break
                reply = self.handle_bytes(data)
                if reply:
                    os.write(self._master, reply)


def _populate_from_layout(arm: SimulatedArm, layout_path: str) -> int:
    from press_cell.recipes.stations import load_layout

    layout = load_layout(layout_path)
    count = 0
    for station in layout.stations.values():
        if station.is_source:
            for i, pose in enumerate(station.slot_poses):
                arm.add_part(f"{station.name}/{i}", pose.position_m)
                count += 1
    return count


def main(argv: list | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; print the pty path on stdout first."""
    parser = argparse.ArgumentParser(
        prog="python -m press_cell.hardware.dobot_emulator",
        description="Dobot Magician emulator on a pseudo-terminal (binary protocol, queued "
                    "commands, simulated kinematics, fault injection).")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="simulated seconds per wall second (default 1)")
    parser.add_argument("--vacuum-eio", type=int, default=10,
                        help="EIO input that reports the vacuum switch (default 10)")
    parser.add_argument("--stations", metavar="YAML",
                        help="cell layout; put a part in every tray/rack slot")
    parser.add_argument("--drop-replies", type=int, default=0, help="drop the first N replies")
    parser.add_argument("--corrupt-replies", type=int, default=0,
                        help="corrupt the checksum of the first N replies")
    parser.add_argument("--stall-queue", action="store_true",
                        help="accept queued commands but never execute them")
    parser.add_argument("--lose-grip-after-mm", type=float, default=None,
                        help="drop the first carried part after this many mm")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)

    emulator = DobotEmulator(time_scale=args.time_scale, vacuum_sensor_eio=args.vacuum_eio)
    if args.stations:
        count = _populate_from_layout(emulator.arm, args.stations)
        _LOG.info("placed %d parts from %s", count, args.stations)
    emulator.faults.drop_replies = args.drop_replies
    emulator.faults.corrupt_replies = args.corrupt_replies
    emulator.faults.stall_queue = args.stall_queue
    if args.lose_grip_after_mm is not None:
        emulator.lose_grip_after(args.lose_grip_after_mm / 1e3)

    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    port = emulator.start()
    sys.stdout.write(port + "\n")
    sys.stdout.flush()
    try:
        done.wait()
    finally:
        emulator.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
