"""Dobot Magician binary frame codec (Dobot Magician Communication Protocol V1.1.4/V1.1.5).

A frame is ``AA AA len id ctrl params... checksum``:

* ``len`` = 2 + number of parameter bytes (the id and ctrl bytes count, the header does not);
* ``ctrl`` bit 0 = rw (1 = set / write, 0 = get / read), bit 1 = isQueued;
* ``checksum`` = (256 - (id + ctrl + sum(params)) mod 256) mod 256, so that
  ``(id + ctrl + sum(params) + checksum) mod 256 == 0``;
* multi-byte parameters are little-endian (float32, uint64 queue indices).

The arm answers every request with a frame carrying the same id and ctrl; a queued command's
answer carries the uint64 index the command got in the arm's queue. ``PARAMS`` lists the
parameter layouts of the commands press_cell uses (lengths in mm, angles in degrees, as the
protocol defines them; the SI conversion belongs to ``arm_dobot``).
"""

import enum
import struct
from dataclasses import dataclass

from press_cell.hardware.arm_driver import ArmProtocolError

SYNC = b"\xaa\xaa"
MAX_PARAMS_BYTES = 255 - 2   # the length byte also counts id and ctrl


class DobotFrameError(ArmProtocolError):
    """A byte sequence is not a valid Dobot frame (sync, length, checksum or layout)."""


class CommandId(enum.IntEnum):
    """Command ids of the Dobot Magician protocol used by press_cell."""

    GET_POSE = 10
    GET_ALARMS_STATE = 20
    CLEAR_ALL_ALARMS_STATE = 21
    SET_HOME_CMD = 31
    SET_END_EFFECTOR_SUCTION_CUP = 62
    SET_END_EFFECTOR_GRIPPER = 63
    SET_PTP_COORDINATE_PARAMS = 81
    SET_PTP_CMD = 84
    GET_IO_DI = 133
    SET_QUEUED_CMD_START_EXEC = 240
    SET_QUEUED_CMD_STOP_EXEC = 241
    SET_QUEUED_CMD_FORCE_STOP_EXEC = 242
    SET_QUEUED_CMD_CLEAR = 245
    GET_QUEUED_CMD_CURRENT_INDEX = 246


class PtpMode(enum.IntEnum):
    """Point-to-point move modes of SetPTPCmd (the XYZ ones are absolute Cartesian targets)."""

    JUMP_XYZ = 0
    MOVJ_XYZ = 1
    MOVL_XYZ = 2


# (command, is_reply) -> struct layout of the parameters. Queued requests are answered by
# QUEUE_INDEX; set requests that are not queued are answered with no parameters.
QUEUE_INDEX = struct.Struct("<Q")
PARAMS: dict = {
    (CommandId.GET_POSE, False): struct.Struct("<"),
    (CommandId.GET_POSE, True): struct.Struct("<8f"),          # x y z r (mm, deg) j1..j4 (deg)
    (CommandId.GET_ALARMS_STATE, False): struct.Struct("<"),
    (CommandId.GET_ALARMS_STATE, True): struct.Struct("<16s"),  # alarm bit field
    (CommandId.CLEAR_ALL_ALARMS_STATE, False): struct.Struct("<"),
    (CommandId.SET_HOME_CMD, False): struct.Struct("<I"),       # reserved
    (CommandId.SET_END_EFFECTOR_SUCTION_CUP, False): struct.Struct("<BB"),  # enable ctrl, suck
    (CommandId.SET_END_EFFECTOR_GRIPPER, False): struct.Struct("<BB"),      # enable ctrl, grip
    (CommandId.SET_PTP_COORDINATE_PARAMS, False): struct.Struct("<4f"),  # v_xyz v_r a_xyz a_r
    (CommandId.SET_PTP_CMD, False): struct.Struct("<B4f"),      # mode, x y z (mm), r (deg)
    (CommandId.GET_IO_DI, False): struct.Struct("<BB"),         # address, level (ignored)
    (CommandId.GET_IO_DI, True): struct.Struct("<BB"),          # address, level
    (CommandId.SET_QUEUED_CMD_START_EXEC, False): struct.Struct("<"),
    (CommandId.SET_QUEUED_CMD_STOP_EXEC, False): struct.Struct("<"),
    (CommandId.SET_QUEUED_CMD_FORCE_STOP_EXEC, False): struct.Struct("<"),
    (CommandId.SET_QUEUED_CMD_CLEAR, False): struct.Struct("<"),
    (CommandId.GET_QUEUED_CMD_CURRENT_INDEX, False): struct.Struct("<"),
    (CommandId.GET_QUEUED_CMD_CURRENT_INDEX, True): QUEUE_INDEX,
}


@dataclass(frozen=True)
class Frame:
    """One protocol frame: command id, rw and isQueued flags, raw parameter bytes."""

    command_id: int
    rw: bool = False
    is_queued: bool = False
    params: bytes = b""

    @property
    def ctrl(self) -> int:
        """Return the ctrl byte (bit 0 rw, bit 1 isQueued)."""
        return int(self.rw) | (int(self.is_queued) << 1)


def checksum(body: bytes) -> int:
    """Return the checksum byte of ``id ctrl params`` (two's complement of their byte sum)."""
    return (256 - sum(body) % 256) % 256


def encode_frame(frame: Frame) -> bytes:
    """Return the bytes of ``frame``; raise ``DobotFrameError`` if it does not fit a frame."""
    if not 0 <= frame.command_id <= 255:
        raise DobotFrameError(f"command id must be 0..255, got {frame.command_id}")
    if len(frame.params) > MAX_PARAMS_BYTES:
        raise DobotFrameError(
            f"params are {len(frame.params)} bytes; a frame carries at most {MAX_PARAMS_BYTES}")
    body = bytes([frame.command_id, frame.ctrl]) + bytes(frame.params)
    return SYNC + bytes([len(body)]) + body + bytes([checksum(body)])


def decode_frame(data: bytes) -> Frame:
    """Decode exactly one frame; raise ``DobotFrameError`` saying what is wrong."""
    data = bytes(data)
    if len(data) < 6:
        raise DobotFrameError(f"a frame is at least 6 bytes, got {len(data)}: {data.hex(' ')}")
    if data[:2] != SYNC:
        raise DobotFrameError(f"bad sync bytes {data[:2].hex(' ')}; expected aa aa")
    length = data[2]
    if length < 2:
        raise DobotFrameError(f"length byte {length} < 2 (id and ctrl are always present)")
    if len(data) != length + 4:
        raise DobotFrameError(
            f"length byte says {length} payload bytes, so the frame is {length + 4} bytes; "
            f"got {len(data)}")
    body = data[3:3 + length]
    expected = checksum(body)
    if data[-1] != expected:
        raise DobotFrameError(f"checksum 0x{data[-1]:02x} does not match 0x{expected:02x}")
    ctrl = body[1]
    if ctrl & ~0x03:
        raise DobotFrameError(f"ctrl byte 0x{ctrl:02x} has bits other than rw/isQueued set")
    return Frame(body[0], bool(ctrl & 1), bool(ctrl & 2), bytes(body[2:]))


class FrameDecoder:
    """Split a byte stream into frames, resynchronising on the next ``AA AA`` after garbage."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        """Append received bytes."""
        self._buffer.extend(data)

    def next_frame(self) -> Frame | None:
        """Return the next complete frame, or None when more bytes are needed.

        A frame with a bad checksum or ctrl byte is consumed and reported by raising
        ``DobotFrameError``; bytes before a sync are discarded silently.
        """
        buf = self._buffer
        while True:
            start = buf.find(SYNC)
            if start < 0:
                del buf[:max(0, len(buf) - 1)]   # keep a trailing AA: it may start a sync
                return None
            del buf[:start]
            if len(buf) < 3:
                return None
            length = buf[2]
            if length < 2:
                del buf[:2]
                raise DobotFrameError(f"length byte {length} < 2; skipped to the next sync")
            if len(buf) < length + 4:
                return None
            raw = bytes(buf[:length + 4])
            try:
                frame = decode_frame(raw)
            except DobotFrameError:
                del buf[:2]    # the sync may have been data; resync after it
                raise
            del buf[:length + 4]
            return frame


def _command(command_id: int) -> CommandId:
    """Return the CommandId of ``command_id``; raise ``DobotFrameError`` for an unknown id."""
    try:
        return CommandId(command_id)
    except ValueError:
        raise DobotFrameError(
            f"command id {command_id!r} is not one press_cell speaks; known: "
            f"{', '.join(f'{c.value} ({c.name})' for c in CommandId)}") from None


def pack_params(command_id: CommandId, *values, reply: bool = False) -> bytes:
    """Pack ``values`` with the layout of ``command_id`` (request, or reply if ``reply``)."""
    layout = PARAMS.get((_command(command_id), reply))
    if layout is None:
        raise DobotFrameError(f"no {'reply' if reply else 'request'} layout for {command_id!r}")
    try:
        return layout.pack(*values)
    except struct.error as exc:
        raise DobotFrameError(f"cannot pack {values!r} for {command_id!r}: {exc}") from exc


def unpack_params(command_id: CommandId, params: bytes, reply: bool = False,
                  queued: bool = False) -> tuple:
    """Unpack the parameters of a frame strictly (exact length) into a tuple.

    The reply to a queued request always carries a uint64 queue index (``queued=True``).
    An id outside ``CommandId`` raises ``DobotFrameError`` (found by test_fuzz_frames).
    """
    command = _command(command_id)
    if reply and queued:
        layout = QUEUE_INDEX
    else:
        layout = PARAMS.get((command, reply), struct.Struct("<"))
    if len(params) != layout.size:
        raise DobotFrameError(
            f"{command.name} {'reply' if reply else 'request'} needs "
            f"{layout.size} parameter bytes, got {len(params)}")
    return layout.unpack(params)
