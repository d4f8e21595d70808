"""Host driver of the Modbus RTU press protocol (doc/press_protocols.md, protocol 2) on pymodbus.

Tested with ``pymodbus==3.16.*`` (3.16.1); pymodbus changes its API between minor versions,
so the Makefile pins the minor version.

Serial line: RTU framing, 8 data bits, no parity, 1 stop bit (8N1), 9600-115200 baud, device
id 1 by default. Addresses below are the 0-based protocol addresses (PLC notation in brackets).
Float32 values are IEEE 754 in two registers, **high word first** and big-endian bytes in each
word ("ABCD", pymodbus ``word_order="big"``), as Radwag and Eagle weighing indicators do by
default. The status and fault numbers are the ones of the ASCII protocol
(``press_ascii_protocol.StatusFlag``, ``FaultCode``, ``Phase``).

Input registers (function 04, read only)::

    addr   [PLC]   type     name             unit   meaning
    0-1    30001   float32  FORCE_KN         kN     load-cell force after tare
    2-3    30003   float32  PRESSURE_MPA     MPa    force / die area
    4-5    30005   float32  POSITION_MM      mm     ram travel from home, down positive
    6      30007   uint16   STATUS           bits   StatusFlag (RUN 1, HOLD 2, VENT 4, RELIEF 8,
                                                    FAULT 16, WATCHDOG 32, OVERLOAD 64, SENSOR 128)
    7      30008   uint16   FAULT            code   FaultCode (0 none, 1 watchdog, 2 relief, ...)
    8      30009   uint16   PHASE            code   Phase (0 idle, 1 ramp, 2 hold, 3 unload, ...)
    9      30010   uint16   SAMPLE_COUNTER   -      increments per press sample, wraps at 65536
    10-11  30011   float32  PHASE_TIME_S     s      time in the current phase
    12-13  30013   float32  TARE_OFFSET_KN   kN     offset removed by the last tare
    14-15  30015   float32  RATED_KN         kN     press capacity
    16-17  30017   float32  FULL_SCALE_KN    kN     load-cell full scale
    18-19  30019   float32  STROKE_MM        mm     usable stroke
    20     30021   uint16   PROTOCOL_VERSION -      1
    21-28  30022   char[16] MODEL            -      ASCII, 2 chars per register, high byte first,
                                                    NUL padded

Holding registers (function 03 read, 06 / 16 write; a float32 must be written whole with 16)::

    0-1    40001   float32  SETPOINT_MPA     MPa    0-9999.9; while running, retargets at once
    2-3    40003   float32  RAMP_MPA_S       MPa/s  0.1-999.9
    4-5    40005   float32  HOLD_S           s      0-9999; 0 = hold until STOP
    6-7    40007   float32  DIE_MM           mm     1-99.999; refused while running
    8      40009   uint16   WATCHDOG_MS      ms     0 (off) or 50-9999; default 500
    9      40010   uint16   TARE_SAMPLES     -      1-999; samples averaged by TARE

Coils (function 05 / 15 write 1 to trigger; always read back 0)::

    0      00001   GO      start (or retarget) the press's loop: ramp to SETPOINT at RAMP
    1      00002   STOP    controlled unload at RAMP to zero
    2      00003   VENT    open the dump valve (fastest unload)
    3      00004   TARE    zero the load cell (only when unloaded); offset in TARE_OFFSET_KN
    4      00005   RESET   clear a latched fault (the press stays vented)

Discrete inputs (function 02) 0-7 mirror the STATUS bits 0-7.

Exception replies: 02 illegal address (unmapped or half a float32); 03 illegal value (out of
range, NaN); 04 device failure (a fault is latched or the load cell failed ->
``PressDeviceFault``); 06 device busy (not allowed in this phase, e.g. TARE while loaded).
Any valid request feeds the press's comms watchdog.
"""

from __future__ import annotations

import enum
import logging
import termios

from pymodbus import FramerType
from pymodbus.client import ModbusSerialClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ExceptionResponse

from press_cell.hardware.press_ascii_protocol import (
    FaultCode,
    IdentityReply,
    LoadReply,
    Phase,
    StateReply,
    StatusFlag,
)
from press_cell.hardware.press_driver import (
    PressConnectionError,
    PressDeviceFault,
    PressProtocolError,
)
from press_cell.hardware.press_supervisory import SupervisorySerialPress

_LOG = logging.getLogger(__name__)

PYMODBUS_TESTED_VERSION = "3.16"
DEFAULT_DEVICE_ID = 1
MODEL_CHARS = 16
FLOAT32 = ModbusSerialClient.DATATYPE.FLOAT32
WORD_ORDER = "big"      # high word first ("ABCD")


class InputRegister(enum.IntEnum):
    """Input register addresses (function 04); see the module table."""

    FORCE_KN = 0
    PRESSURE_MPA = 2
    POSITION_MM = 4
    STATUS = 6
    FAULT = 7
    PHASE = 8
    SAMPLE_COUNTER = 9
    PHASE_TIME_S = 10
    TARE_OFFSET_KN = 12
    RATED_KN = 14
    FULL_SCALE_KN = 16
    STROKE_MM = 18
    PROTOCOL_VERSION = 20
    MODEL = 21


INPUT_REGISTER_COUNT = InputRegister.MODEL + MODEL_CHARS // 2


class HoldingRegister(enum.IntEnum):
    """Holding register addresses (functions 03 / 06 / 16); see the module table."""

    SETPOINT_MPA = 0
    RAMP_MPA_S = 2
    HOLD_S = 4
    DIE_MM = 6
    WATCHDOG_MS = 8
    TARE_SAMPLES = 9


HOLDING_REGISTER_COUNT = HoldingRegister.TARE_SAMPLES + 1
HOLDING_FLOATS = (
    HoldingRegister.SETPOINT_MPA, HoldingRegister.RAMP_MPA_S,
    HoldingRegister.HOLD_S, HoldingRegister.DIE_MM,
)


class Coil(enum.IntEnum):
    """Coil addresses (functions 05 / 15): write 1 to trigger the action."""

    GO = 0
    STOP = 1
    VENT = 2
    TARE = 3
    RESET = 4


COIL_COUNT = len(Coil)
DISCRETE_INPUT_COUNT = 8
LOAD_BLOCK_COUNT = InputRegister.FAULT + 1   # force .. fault: what read() polls
RTU_LOAD_EXCHANGE_BYTES = 8 + 5 + 2 * LOAD_BLOCK_COUNT  # request + reply of one load poll
MAX_POLL_RATE_HZ = 200.0


def float_to_registers(value: float) -> list[int]:
    """Return the two registers of a float32 in this protocol's word order."""
    return ModbusSerialClient.convert_to_registers(float(value), FLOAT32, word_order=WORD_ORDER)


def registers_to_float(registers: list[int]) -> float:
    """Return the float32 held in two registers (this protocol's word order)."""
    return float(
        ModbusSerialClient.convert_from_registers(list(registers), FLOAT32, word_order=WORD_ORDER)
    )


def model_to_registers(model: str) -> list[int]:
    """Pack a model name (ASCII, at most 16 chars) into 8 registers, NUL padded."""
    raw = model.encode("ascii")[:MODEL_CHARS].ljust(MODEL_CHARS, b"\0")
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, MODEL_CHARS, 2)]


def registers_to_model(registers: list[int]) -> str:
    """Unpack a model name from 8 registers."""
    raw = b"".join(int(r).to_bytes(2, "big") for r in registers)
    return raw.rstrip(b"\0").decode("ascii", errors="replace")


class _GarbledReply(PressProtocolError):
    """Bytes arrived but pymodbus found no valid frame in them (internal: retried once)."""


class ModbusPress(SupervisorySerialPress):
    """A press speaking the Modbus RTU register map above, through pymodbus's serial client."""

    setpoint_decimals = None        # float32 setpoints: no rounding on the wire

    def __init__(
        self, port: str, *, baudrate: int = 115200, device_id: int = DEFAULT_DEVICE_ID, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.port = port
        self.baudrate = int(baudrate)
        self.device_id = int(device_id)
        self._client: ModbusSerialClient | None = None
        self._tare_samples: int | None = None
        self._rx_bytes = 0
        self._rx_sample = b""

    # ----- transport -----
    def _open(self) -> None:
        """Open the serial port through pymodbus (retries=0: one bounded attempt per request)."""
        self._client = ModbusSerialClient(
            self.port, framer=FramerType.RTU, baudrate=self.baudrate,
            timeout=self.timeout_s, retries=0, trace_packet=self._trace_packet,
        )
        try:
            opened = self._client.connect()
        except (ModbusException, OSError) as exc:
            opened, reason = False, str(exc)
        else:
            reason = "pymodbus could not open the port"
        if not opened:
            self._client = None
            raise PressConnectionError(f"cannot open {self.port!r}: {reason}")
        self._tare_samples = None

    def _close(self) -> None:
        """Close the pymodbus client."""
        if self._client is not None:
            try:
                self._client.close()
            except (ModbusException, OSError):
                pass
            self._client = None

    def _max_read_rate_hz(self) -> float:
        """Return the poll-rate ceiling from the RTU bytes of one load poll, max 200 Hz."""
        return min(MAX_POLL_RATE_HZ, self.baudrate / 10.0 / RTU_LOAD_EXCHANGE_BYTES)

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        """Note how many reply bytes arrived (pymodbus hook); pass ``data`` through."""
        if not sending:
            self._rx_bytes = max(self._rx_bytes, len(data))
            self._rx_sample = bytes(data[:16])
        return data

    def _flush_input(self) -> None:
        """Discard bytes waiting on the port (after line noise)."""
        port = getattr(self._client, "socket", None)
        if port is not None and hasattr(port, "reset_input_buffer"):
            try:
                port.reset_input_buffer()
            except (OSError, ValueError, termios.error):
                pass

    def _call(self, what: str, function, *args, retry: bool = True, **kwargs):
        """Run one pymodbus request, retried once after a garbled reply unless ``retry``."""
        try:
            return self._call_once(what, function, *args, **kwargs)
        except _GarbledReply as exc:
            if not retry:
                raise PressProtocolError(str(exc)) from exc
            self._flush_input()
            try:
                return self._call_once(what, function, *args, **kwargs)
            except _GarbledReply as again:
                raise PressProtocolError(str(again)) from again

    def _call_once(self, what: str, function, *args, **kwargs):
        """Run one pymodbus request; translate its failures into press exceptions."""
        self._require_link()
        self._rx_bytes, self._rx_sample = 0, b""
        try:
            response = function(*args, device_id=self.device_id, **kwargs)
        except ModbusException as exc:
            if self._rx_bytes:
                raise _GarbledReply(
                    f"garbled reply to {what}: {self._rx_bytes} bytes arrived "
                    f"(first {self._rx_sample.hex(' ')}) but no valid RTU frame "
                    "(CRC or framing error)"
                ) from exc
            self._drop_link()
            raise PressConnectionError(
                f"no valid Modbus reply to {what} within {self.timeout_s:.3f} s: {exc}; "
                "link marked down"
            ) from exc
        except (OSError, ValueError) as exc:
            self._drop_link()
            raise PressConnectionError(
                f"serial port {self.port!r} failed during {what}: {exc}"
            ) from exc
        if isinstance(response, ExceptionResponse) or response.isError():
            code = getattr(response, "exception_code", None)
            text = f"press answered Modbus exception {code} to {what}"
            if code == 4:
                raise PressDeviceFault(text + " (device failure: a fault is latched)")
            if code == 6:
                raise PressProtocolError(text + " (busy: not allowed in this phase)")
            raise PressProtocolError(text + " (illegal address or value)")
        return response

    def _read_input(self, address: int, count: int) -> list[int]:
        """Read ``count`` input registers from ``address``."""
        response = self._call(f"read input registers {address}+{count}",
                              self._client.read_input_registers, address, count=count)
        if len(response.registers) != count:
            raise PressProtocolError(
                f"asked {count} input registers at {address}, got {len(response.registers)}"
            )
        return list(response.registers)

    def _write_float(self, register: HoldingRegister, value: float) -> None:
        """Write one float32 holding register pair."""
        self._call(f"write {register.name}={value:g}", self._client.write_registers,
                   int(register), float_to_registers(value))

    def _write_u16(self, register: HoldingRegister, value: int) -> None:
        """Write one uint16 holding register."""
        self._call(f"write {register.name}={value}", self._client.write_register,
                   int(register), int(value))

    def _pulse(self, coil: Coil) -> None:
        """Trigger a coil action."""
        self._call(f"coil {coil.name}", self._client.write_coil, int(coil), True)

    # ----- hooks -----
    def _identify(self) -> IdentityReply:
        """Read the identity block (rated force, full scale, stroke, version, model)."""
        regs = self._read_input(InputRegister.RATED_KN,
                                INPUT_REGISTER_COUNT - InputRegister.RATED_KN)
        base = InputRegister.RATED_KN

        def f32(reg: InputRegister) -> float:
            return registers_to_float(regs[reg - base:reg - base + 2])

        return IdentityReply(
            model=registers_to_model(regs[InputRegister.MODEL - base:]) or "unknown",
            rated_kn=f32(InputRegister.RATED_KN),
            full_scale_kn=f32(InputRegister.FULL_SCALE_KN),
            stroke_mm=f32(InputRegister.STROKE_MM),
            version=regs[InputRegister.PROTOCOL_VERSION - base],
        )

    def _configure(self, die_mm: float, watchdog_ms: float) -> None:
        """Write die diameter, hold time 0 and watchdog."""
        self._write_float(HoldingRegister.DIE_MM, die_mm)
        self._write_float(HoldingRegister.HOLD_S, 0.0)
        self._write_u16(HoldingRegister.WATCHDOG_MS, round(watchdog_ms))

    def _set_die(self, die_mm: float) -> None:
        """Write DIE_MM."""
        self._write_float(HoldingRegister.DIE_MM, die_mm)

    def _load_from(self, regs: list[int]) -> LoadReply:
        """Decode force, pressure, position and status from registers 0..6."""
        return LoadReply(
            force_kn=registers_to_float(regs[0:2]),
            pressure_mpa=registers_to_float(regs[2:4]),
            position_mm=registers_to_float(regs[4:6]),
            flags=StatusFlag(regs[InputRegister.STATUS] & 0xFF),
        )

    def _load(self) -> LoadReply:
        """Read input registers 0..7 in one request."""
        return self._load_from(self._read_input(0, LOAD_BLOCK_COUNT))

    def _state(self) -> StateReply:
        """Read the input block and the holding block."""
        regs = self._read_input(0, InputRegister.PHASE_TIME_S + 2)
        hold = self._call("read holding registers", self._client.read_holding_registers,
                          0, count=HOLDING_REGISTER_COUNT).registers
        try:
            fault = FaultCode(regs[InputRegister.FAULT])
            phase = Phase(regs[InputRegister.PHASE])
        except ValueError as exc:
            raise PressProtocolError(f"press reported an unknown fault or phase: {exc}") from exc
        return StateReply(
            load=self._load_from(regs),
            setpoint_mpa=registers_to_float(hold[0:2]),
            ramp_mpa_s=registers_to_float(hold[2:4]),
            hold_s=registers_to_float(hold[4:6]),
            die_mm=registers_to_float(hold[6:8]),
            phase=phase,
            phase_time_s=registers_to_float(regs[10:12]),
            fault=fault,
        )

    def _set_ramp(self, ramp_mpa_s: float) -> None:
        """Write RAMP_MPA_S."""
        self._write_float(HoldingRegister.RAMP_MPA_S, round(ramp_mpa_s, 1))

    def _set_setpoint(self, setpoint_mpa: float) -> None:
        """Write SETPOINT_MPA."""
        self._write_float(HoldingRegister.SETPOINT_MPA, setpoint_mpa)

    def _go(self) -> None:
        """Pulse GO."""
        self._pulse(Coil.GO)

    def _stop(self) -> None:
        """Pulse STOP."""
        self._pulse(Coil.STOP)

    def _vent(self) -> None:
        """Pulse VENT."""
        self._pulse(Coil.VENT)

    def _tare(self, samples: int) -> float:
        """Write TARE_SAMPLES if changed, pulse TARE, read TARE_OFFSET_KN."""
        if self._tare_samples != samples:
            self._write_u16(HoldingRegister.TARE_SAMPLES, samples)
            self._tare_samples = samples
        self._call("coil TARE", self._client.write_coil, int(Coil.TARE), True, retry=False)
        return registers_to_float(self._read_input(InputRegister.TARE_OFFSET_KN, 2))

    def _reset(self) -> None:
        """Pulse RESET."""
        self._pulse(Coil.RESET)
