"""Dobot Magician driver over a serial port (pyserial, 115200 8N1) speaking the binary protocol.

Moves, speed changes and suction commands are *queued* on the arm: each reply carries the
command's queue index and completion is known by polling GetQueuedCmdCurrentIndex. Replies
that do not arrive within ``reply_timeout_s``, or arrive corrupted, are retried up to
``retries`` times. Re-sending a queued command whose reply was lost is harmless because every
queued command press_cell sends is absolute (MOVL to an absolute point, suction on/off, a
speed setting): executing it twice has the effect of executing it once.

The Magician has no payload sensor of its own; ``grasp_detected`` reads a vacuum switch wired
to an EIO digital input (``vacuum_sensor_eio``) with GetIODI.

This is the only place where mm and degrees (protocol units) meet m and rad (press_cell units).
"""

import logging
import math
import threading
import time

import serial

from press_cell.hardware import dobot_protocol as proto
from press_cell.hardware.arm_driver import (
    ArmConnectionError,
    ArmDriver,
    ArmGraspError,
    ArmMotionError,
    ArmProtocolError,
    Pose,
    require_vertical_tool,
)
from press_cell.hardware.dobot_protocol import CommandId, Frame
from press_cell.timebase import Clock, MonotonicClock

_LOG = logging.getLogger(__name__)

BAUD_RATE = 115200               # Dobot Magician Communication Protocol V1.1.4, section 1
MM_PER_M = 1000.0


class DobotArm(ArmDriver):
    """A Dobot Magician with a suction cup on a serial port (or any pyserial URL)."""

    def __init__(
        self,
        port: str,
        *,
        clock: Clock | None = None,
        reply_timeout_s: float = 0.2,
        retries: int = 3,
        poll_interval_s: float = 0.02,
        acceleration_m_s2: float = 1.0,      # Cartesian acceleration sent with speeds [est]
        rotation_speed_deg_s: float = 170.0,  # tool rotation speed [est]
        vacuum_sensor_eio: int | None = 10,  # EIO input of the vacuum switch [est: wiring]
        end_effector: str = "suction",
    ) -> None:
        if end_effector not in ("suction", "gripper"):
            raise ValueError(f"end_effector must be 'suction' or 'gripper', got {end_effector!r}")
        self._port = port
        self._clock = clock or MonotonicClock()
        self._reply_timeout_s = float(reply_timeout_s)
        self._retries = int(retries)
        self._poll_interval_s = float(poll_interval_s)
        self._accel_mm_s2 = acceleration_m_s2 * MM_PER_M
        self._rot_speed_deg_s = float(rotation_speed_deg_s)
        self._vacuum_eio = vacuum_sensor_eio
        self._effector_cmd = (CommandId.SET_END_EFFECTOR_SUCTION_CUP if end_effector == "suction"
                              else CommandId.SET_END_EFFECTOR_GRIPPER)
        self._serial: serial.SerialBase | None = None
        self._decoder = proto.FrameDecoder()
        self._last_queued_index = 0
        self._speed_mm_s: float | None = None
        self._gripper_closed = False
        self.retry_count = 0     # replies that had to be re-requested since connect
        self._io_lock = threading.RLock()   # one request/reply exchange at a time

    # ----------------------------------------------------------------- link
    def connect(self) -> None:
        """Open the port, reset the command queue, start executing it and read the pose."""
        try:
            self._serial = serial.serial_for_url(self._port, baudrate=BAUD_RATE, timeout=0.01,
                                                 write_timeout=1.0)
        except (serial.SerialException, OSError) as exc:
            raise ArmConnectionError(f"cannot open {self._port!r}: {exc}") from exc
        self._decoder = proto.FrameDecoder()
        self.retry_count = 0
        try:
            self.stop()     # force-stop, clear and restart the queue: no stale moves
            self._speed_mm_s = None
            self.current_pose()
        except ArmConnectionError:
            self._serial.close()
            self._serial = None
            raise
        _LOG.info("Dobot connected on %s", self._port)

    def disconnect(self) -> None:
        """Stop motion and close the port; safe to call twice."""
        if self._serial is None:
            return
        try:
            self.stop()
        except ArmConnectionError:
            _LOG.warning("Dobot on %s did not answer the stop before disconnect", self._port)
        finally:
            self._serial.close()
            self._serial = None

    @property
    def is_connected(self) -> bool:
        """Return whether the port is open."""
        return self._serial is not None and self._serial.is_open

    def self_check(self) -> None:
        """Raise ``ArmMotionError`` when the arm reports alarms; read the pose."""
        (alarms,) = proto.unpack_params(CommandId.GET_ALARMS_STATE, self._request(
            Frame(CommandId.GET_ALARMS_STATE)).params, reply=True)
        if any(alarms):
            bits = [i for i in range(len(alarms) * 8) if alarms[i // 8] >> (i % 8) & 1]
            raise ArmMotionError(f"Dobot reports alarm bits {bits}; clear them on the arm first")
        self.current_pose()

    # ----------------------------------------------------------------- motion
    def move_to(self, pose: Pose, speed_m_s: float) -> None:
        """Queue a MOVL to ``pose`` at ``speed_m_s`` (m/s), sending the speed when it changes."""
        if not (math.isfinite(speed_m_s) and speed_m_s > 0.0):
            raise ArmMotionError(f"speed_m_s must be > 0, got {speed_m_s!r}")
        require_vertical_tool(pose)
        speed_mm_s = speed_m_s * MM_PER_M
        if speed_mm_s != self._speed_mm_s:
            self._queue(CommandId.SET_PTP_COORDINATE_PARAMS, speed_mm_s, self._rot_speed_deg_s,
                        self._accel_mm_s2, self._accel_mm_s2)
            self._speed_mm_s = speed_mm_s
        self._queue(CommandId.SET_PTP_CMD, int(proto.PtpMode.MOVL_XYZ),
                    pose.x_m * MM_PER_M, pose.y_m * MM_PER_M, pose.z_m * MM_PER_M,
                    math.degrees(pose.yaw_rad))

    @property
    def is_moving(self) -> bool:
        """Return whether the arm has not yet executed the last queued command."""
        return self._current_index() < self._last_queued_index

    def wait_until_idle(self, timeout_s: float) -> bool:
        """Poll the queue index until the last queued command ran, up to ``timeout_s`` (s)."""
        deadline_s = self._clock.now() + max(0.0, timeout_s)
        while self.is_moving:
            if self._clock.now() >= deadline_s:
                return False
            time.sleep(self._poll_interval_s)
        return True

    def current_pose(self) -> Pose:
        """Read GetPose and return the tool pose in m / rad."""
        reply = self._request(Frame(CommandId.GET_POSE))
        x, y, z, r, *_ = proto.unpack_params(CommandId.GET_POSE, reply.params, reply=True)
        return Pose.from_xyz_yaw(x / MM_PER_M, y / MM_PER_M, z / MM_PER_M, math.radians(r))

    def stop(self) -> None:
        """Force-stop the queue, clear it and restart execution; the suction stays as it is."""
        self._request(Frame(CommandId.SET_QUEUED_CMD_FORCE_STOP_EXEC, rw=True))
        self._request(Frame(CommandId.SET_QUEUED_CMD_CLEAR, rw=True))
        self._request(Frame(CommandId.SET_QUEUED_CMD_START_EXEC, rw=True))
        self._last_queued_index = self._current_index()

    # ----------------------------------------------------------------- end effector
    def grip(self, timeout_s: float = 60.0) -> None:
        """Queue suction on and wait until it has run."""
        self._set_effector(True, timeout_s)

    def release(self, timeout_s: float = 60.0) -> None:
        """Queue suction off and wait until it has run."""
        self._set_effector(False, timeout_s)

    @property
    def gripper_closed(self) -> bool:
        """Return the last commanded suction / gripper state."""
        return self._gripper_closed

    def grasp_detected(self) -> bool:
        """Read the vacuum switch on EIO ``vacuum_sensor_eio``."""
        if self._vacuum_eio is None:
            raise ArmGraspError("no vacuum sensor configured (vacuum_sensor_eio=None); "
                                "the Magician cannot sense a payload without one")
        reply = self._request(Frame(CommandId.GET_IO_DI, params=proto.pack_params(
            CommandId.GET_IO_DI, self._vacuum_eio, 0)))
        address, level = proto.unpack_params(CommandId.GET_IO_DI, reply.params, reply=True)
        if address != self._vacuum_eio:
            raise ArmProtocolError(
                f"GetIODI answered for EIO{address}, asked EIO{self._vacuum_eio}")
        return bool(level)

    def _set_effector(self, on: bool, timeout_s: float) -> None:
        self._queue(self._effector_cmd, 1, int(on))
        self._gripper_closed = on
        if not self.wait_until_idle(timeout_s):
            raise ArmMotionError(f"the {'grip' if on else 'release'} command did not run within "
                                 f"{timeout_s} s (queue stalled)")

    # ----------------------------------------------------------------- transport
    def _current_index(self) -> int:
        reply = self._request(Frame(CommandId.GET_QUEUED_CMD_CURRENT_INDEX))
        (index,) = proto.unpack_params(CommandId.GET_QUEUED_CMD_CURRENT_INDEX, reply.params,
                                       reply=True)
        return index

    def _queue(self, command_id: CommandId, *values) -> int:
        frame = Frame(command_id, rw=True, is_queued=True,
                      params=proto.pack_params(command_id, *values))
        reply = self._request(frame)
        (index,) = proto.unpack_params(command_id, reply.params, reply=True, queued=True)
        self._last_queued_index = max(self._last_queued_index, index)
        return index

    def _request(self, frame: Frame) -> Frame:
        if self._serial is None:
            raise ArmConnectionError("Dobot is not connected; call connect() first")
        raw = proto.encode_frame(frame)
        with self._io_lock:
            return self._exchange(frame, raw)

    def _exchange(self, frame: Frame, raw: bytes) -> Frame:
        last_problem = "no reply"
        for attempt in range(self._retries + 1):
            if attempt:
                self.retry_count += 1
                _LOG.debug("retrying %s (attempt %d): %s", CommandId(frame.command_id).name,
                           attempt + 1, last_problem)
            try:
                self._serial.reset_input_buffer()
                self._decoder = proto.FrameDecoder()
                self._serial.write(raw)
                reply = self._read_reply(frame.command_id)
            except (serial.SerialException, OSError) as exc:
                raise ArmConnectionError(f"serial link to {self._port!r} failed: {exc}") from exc
            except proto.DobotFrameError as exc:
                last_problem = str(exc)
                continue
            if reply is not None:
                return reply
            last_problem = f"no reply within {self._reply_timeout_s} s"
        raise ArmConnectionError(
            f"Dobot did not answer {CommandId(frame.command_id).name} after "
            f"{self._retries + 1} attempts ({last_problem})")

    def _read_reply(self, command_id: int) -> Frame | None:
        deadline = time.monotonic() + self._reply_timeout_s
        while time.monotonic() < deadline:
            data = self._serial.read(max(1, self._serial.in_waiting))
            if data:
                self._decoder.feed(data)
            while (reply := self._decoder.next_frame()) is not None:
                if reply.command_id == command_id:
                    return reply
                _LOG.debug("discarded a stray reply with id %d", reply.command_id)
        return None
