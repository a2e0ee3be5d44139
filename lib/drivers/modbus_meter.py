"""Modbus RTU energy meter: a small master (function 0x04) and Eastron SDM120 / SDM630 maps.

`ModbusRTU(uart, de=None)` sends "read input registers" requests (address, 0x04, start, count,
CRC16 low byte first) over a `machine.UART`, with an optional RS-485 driver-enable pin held high
while sending, and waits for the answer cooperatively (`await`, polling `uart.any()` every
`_POLL_MS`), so a slow meter never blocks the control loop. Answers are checked for address,
function, byte count and CRC; a Modbus exception answer raises ModbusError('exception').

`ModbusMeter(bus, addr, model)` reads the value blocks of its register map (IEEE 754 big-endian
floats, two registers each) in `poll()`; after `lost_after` failed polls in a row the meter is
lost (`read()` -> None) until a poll succeeds again. Bounds: at most `_MAX_REGS` registers per
request, one preallocated answer buffer per bus.
"""

import asyncio
import struct
from micropython import const

_FUNC_READ_INPUT = const(0x04)
_MAX_REGS = const(16)  # bound per request: answer = 5 + 2 * 16 bytes
_RESP_MAX = const(37)
_POLL_MS = const(2)
_TIMEOUT_MS = const(200)  # SDM meters answer within about 60 ms at 9600 baud
_LOST_AFTER = const(3)

# Register maps: per block (first register, number of floats, field). Registers are the
# 0-based input-register offsets of Eastron's "30001"-style numbers.
SDM120 = {
    "phases": 1,
    "blocks": (
        (0x0000, 1, "voltage_v"),  # 30001 voltage (V)
        (0x0006, 1, "current_a"),  # 30007 current (A)
        (0x000C, 1, "power_w"),  # 30013 active power (W)
        (0x0048, 1, "energy_kwh"),  # 30073 import active energy (kWh)
    ),
}
SDM630 = {
    "phases": 3,
    "blocks": (
        (0x0000, 3, "voltage_v"),  # 30001/3/5 phase 1-3 line-to-neutral voltage (V)
        (0x0006, 3, "current_a"),  # 30007/9/11 phase 1-3 current (A)
        (0x0034, 1, "power_w"),  # 30053 total system power (W)
        (0x0048, 1, "energy_kwh"),  # 30073 total import energy (kWh)
    ),
}
MODELS = {"sdm120": SDM120, "sdm630": SDM630}


class ModbusError(Exception):
    """A failed request; `kind` is 'timeout', 'crc', 'frame' or 'exception' (code in `code`)."""

    def __init__(self, kind, code=None):
        super().__init__(kind, code)
        self.kind = kind
        self.code = code


def crc16(data, n=None):
    """Modbus CRC16 (init 0xFFFF, reflected polynomial 0xA001) over data[:n]."""
    crc = 0xFFFF
    for i in range(len(data) if n is None else n):
        crc ^= data[i]
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def read_input_request(addr, start, count):
    """The 8-byte request frame for function 0x04."""
    if not 1 <= addr <= 247 or not 1 <= count <= _MAX_REGS or not 0 <= start <= 0xFFFF:
        raise ValueError("bad Modbus request")
    f = bytearray(8)
    f[0] = addr
    f[1] = _FUNC_READ_INPUT
    f[2] = start >> 8
    f[3] = start & 0xFF
    f[4] = count >> 8
    f[5] = count & 0xFF
    crc = crc16(f, 6)
    f[6] = crc & 0xFF
    f[7] = crc >> 8
    return f


def check_answer(buf, n, addr, count):
    """Validate an answer of `n` bytes; returns the data length or raises ModbusError."""
    if n >= 5 and buf[0] == addr and buf[1] == _FUNC_READ_INPUT | 0x80:
        if crc16(buf, 3) != buf[3] | buf[4] << 8:
            raise ModbusError("crc")
        raise ModbusError("exception", buf[2])
    want = 5 + 2 * count
    if n < want:
        raise ModbusError("timeout" if n == 0 else "frame")
    if buf[0] != addr or buf[1] != _FUNC_READ_INPUT or buf[2] != 2 * count:
        raise ModbusError("frame")
    if crc16(buf, want - 2) != buf[want - 2] | buf[want - 1] << 8:
        raise ModbusError("crc")
    return 2 * count


class ModbusRTU:
    """Modbus RTU master on one UART (one request at a time: callers share it sequentially)."""

    def __init__(self, uart, de=None, timeout_ms=_TIMEOUT_MS, sleep_ms=None):
        self.uart = uart
        self.de = de
        self.timeout_ms = timeout_ms
        self._sleep_ms = sleep_ms or asyncio.sleep_ms
        self._buf = bytearray(_RESP_MAX)
        self._lock = asyncio.Lock()
        if de is not None:
            de.value(0)

    async def read_input_registers(self, addr, start, count):
        """Registers start..start+count-1 of slave `addr` as bytes (2 per register)."""
        frame = read_input_request(addr, start, count)
        async with self._lock:
            return await self._transact(frame, addr, count)

    async def _transact(self, frame, addr, count):
        uart = self.uart
        if uart.any():
            uart.read()  # stale bytes from an earlier, late answer
        if self.de is not None:
            self.de.value(1)
        try:
            uart.write(frame)
            uart.flush()  # returns when the last stop bit is out (ESP32 port)
        finally:
            if self.de is not None:
                self.de.value(0)
        buf = self._buf
        mv = memoryview(buf)
        want = 5 + 2 * count
        got = 0
        waited = 0
        while got < want and waited <= self.timeout_ms:
            r = uart.readinto(mv[got:want]) if uart.any() else 0
            if r:
                got += r
                if got >= 5 and buf[1] == _FUNC_READ_INPUT | 0x80:
                    break  # an exception answer is 5 bytes long
                continue
            await self._sleep_ms(_POLL_MS)
            waited += _POLL_MS
        n = check_answer(buf, got, addr, count)
        return bytes(buf[3 : 3 + n])


class ModbusMeter:
    """One Eastron meter on a bus; `await poll()` refreshes, `read()` returns the last reading."""

    def __init__(self, bus, addr, model, lost_after=_LOST_AFTER):
        if model not in MODELS:
            raise ValueError("unknown meter model {}".format(model))
        self.bus = bus
        self.addr = addr
        self.map = MODELS[model]
        self.lost_after = lost_after
        self.failures = 0
        self.lost = False
        self.last_error = None
        self.valid = False
        ph = self.map["phases"]
        self.reading = {
            "energy_wh": 0.0,
            "power_w": 0.0,
            "current_a": [0.0] * ph,
            "voltage_v": [0.0] * ph,
        }

    async def poll(self):
        """Read every block; True on success. Failures count towards `lost`."""
        r = self.reading
        try:
            for start, n, field in self.map["blocks"]:
                data = await self.bus.read_input_registers(self.addr, start, 2 * n)
                for i in range(n):
                    v = struct.unpack_from(">f", data, 4 * i)[0]
                    if v != v:
                        raise ModbusError("frame")  # NaN: the meter has no valid value
                    if field == "energy_kwh":
                        r["energy_wh"] = v * 1000.0
                    elif field == "power_w":
                        r["power_w"] = v
                    else:
                        r[field][i] = v
        except ModbusError as e:
            self.last_error = e.kind
            self.failures += 1
            if self.failures >= self.lost_after:
                self.lost = True
            return False
        except OSError as e:  # UART driver error: same as no answer
            self.last_error = "io: {}".format(e)
            self.failures += 1
            if self.failures >= self.lost_after:
                self.lost = True
            return False
        self.failures = 0
        self.lost = False
        self.valid = True
        return True

    def read(self):
        """The reading dict (the same object, updated in place), or None if lost / never read."""
        if self.lost or not self.valid:
            return None
        return self.reading
