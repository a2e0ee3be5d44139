"""Register- and frame-level fakes of the board's peripherals, for the driver tests.

- `FakeMFRC522`: the chip as seen over SPI (address byte `(reg << 1) | 0x80` read, `reg << 1`
  write; FIFO; ComIrq/DivIrq set/clear semantics; CRC coprocessor; Transceive with StartSend),
  talking to a `FakeCard` (ISO 14443-3 REQA/WUPA/HLTA, anticollision and SELECT per cascade
  level, with options for collisions, bad BCC and bad CRC).
- `FakePN532`: I2C address 0x24, status byte, ACK, normal information frames.
- `FakeModbusSlave`: an Eastron meter on a FakeUART (good answers, bad CRC, silence, exception).
- `FakeRCD`: a residual-current module whose test input trips its output after a delay.
Independent implementations of CRC_A, CRC16 and the PN532 checksums live here on purpose, so
the drivers are checked against a second implementation.
"""

import struct

from fakes_hw import HW, drive


def crc_a(data):
    """ISO/IEC 14443-3 CRC_A: init 0x6363, x^16 + x^12 + x^5 + 1 reflected; (low, high)."""
    crc = 0x6363
    for b in data:
        b ^= crc & 0xFF
        b = (b ^ (b << 4)) & 0xFF
        crc = ((crc >> 8) ^ (b << 8) ^ (b << 3) ^ (b >> 4)) & 0xFFFF
    return crc & 0xFF, crc >> 8


# ---- MFRC522 -------------------------------------------------------------------------------
class FakeCard:
    """An ISO 14443-3 type A card. Options: collision_level, bad_bcc_level, bad_sak_crc."""

    def __init__(self, uid, sak=0x08, collision_level=None, bad_bcc_level=None, bad_sak_crc=False,
                 bad_ct=False):
        self.uid = bytes(uid)
        self.sak = sak
        self.collision_level = collision_level
        self.bad_bcc_level = bad_bcc_level
        self.bad_sak_crc = bad_sak_crc
        self.bad_ct = bad_ct
        self.state = "idle"
        self.levels = self._levels()
        self.selects = 0

    def _levels(self):
        u = self.uid
        ct = 0x77 if self.bad_ct else 0x88
        if len(u) == 4:
            return [u]
        if len(u) == 7:
            return [bytes([ct]) + u[0:3], u[3:7]]
        if len(u) == 10:
            return [bytes([ct]) + u[0:3], bytes([ct]) + u[3:6], u[6:10]]
        raise ValueError("UID of 4, 7 or 10 bytes")

    def atqa(self):
        size = {4: 0x00, 7: 0x40, 10: 0x80}[len(self.uid)]
        return bytes([0x04 | size, 0x00])

    def handle(self, frame, last_bits):
        """Answer a frame: (response bytes or None, error flags for ErrorReg)."""
        if last_bits == 7 and len(frame) == 1:
            if frame[0] == 0x26 and self.state == "idle" or frame[0] == 0x52:
                self.state = "ready"
                return self.atqa(), 0
            return None, 0
        if len(frame) == 4 and frame[0] == 0x50 and frame[1] == 0:
            if crc_a(frame[:2]) == (frame[2], frame[3]):
                self.state = "halt"
            return None, 0
        if self.state != "ready" or len(frame) < 2 or frame[0] not in (0x93, 0x95, 0x97):
            return None, 0
        level = (frame[0] - 0x93) // 2
        if level >= len(self.levels):
            return None, 0
        part = self.levels[level]
        bcc = part[0] ^ part[1] ^ part[2] ^ part[3]
        if frame[1] == 0x20:
            if self.bad_bcc_level == level:
                bcc ^= 0x01
            err = 0x08 if self.collision_level == level else 0
            return part + bytes([bcc]), err
        if frame[1] == 0x70 and len(frame) == 9:
            if crc_a(frame[:7]) != (frame[7], frame[8]):
                return None, 0  # a card ignores a frame with a bad CRC
            if frame[2:6] != part or frame[6] != bcc:
                return None, 0
            self.selects += 1
            sak = 0x04 if level < len(self.levels) - 1 else self.sak
            lo, hi = crc_a(bytes([sak]))
            if self.bad_sak_crc:
                lo ^= 0xFF
            if level == len(self.levels) - 1:
                self.state = "active"
            return bytes([sak, lo, hi]), 0
        return None, 0


class FakeMFRC522:
    """The chip behind an SPI bus and a chip-select pin (attach with HW.spi[id] = chip)."""

    def __init__(self, cs_pin, card=None, version=0x92):
        self.card = card
        self.version = version
        self.regs = bytearray(64)
        self.fifo = []
        self.command = 0
        self.ops = []  # (op, reg, value): "r"/"w" register accesses, in order
        self.raw = []  # every SPI transfer's bytes
        self._pos = -1  # -1: CS high (no transaction)
        self._addr = 0
        self._read = False
        self.soft_resets = 0
        self.frames = []  # frames sent to the card
        HW.gpio(cs_pin).watchers.append(self._cs)

    def _cs(self, level):
        self._pos = -1 if level else 0

    def transfer(self, tx, rx):
        if self._pos < 0:
            raise AssertionError("SPI transfer with CS high")
        self.raw.append(tx)
        for i, b in enumerate(tx):
            if self._pos == 0:
                self._read = bool(b & 0x80)
                self._addr = (b >> 1) & 0x3F
                out = 0
            elif self._read:
                out = self.read_reg(self._addr)
                self._addr = (b >> 1) & 0x3F  # the next address rides along
            else:
                self.write_reg(self._addr, b)
                out = 0
            if rx is not None:
                rx[i] = out
            self._pos += 1

    def read_reg(self, reg):
        if reg == 0x09:  # FIFODataReg
            v = self.fifo.pop(0) if self.fifo else 0
        elif reg == 0x0A:  # FIFOLevelReg
            v = len(self.fifo)
        elif reg == 0x37:
            v = self.version
        elif reg == 0x01:
            v = self.command
        else:
            v = self.regs[reg]
        self.ops.append(("r", reg, v))
        return v

    def write_reg(self, reg, v):
        self.ops.append(("w", reg, v))
        if reg == 0x01:
            self._command(v & 0x0F)
        elif reg in (0x04, 0x05):  # ComIrqReg / DivIrqReg: bit 7 = Set1
            mask = v & 0x7F
            if v & 0x80:
                self.regs[reg] |= mask
            else:
                self.regs[reg] &= ~mask & 0x7F
        elif reg == 0x09:
            if len(self.fifo) < 64:
                self.fifo.append(v)
        elif reg == 0x0A:
            if v & 0x80:
                self.fifo = []
        elif reg == 0x0D:
            self.regs[reg] = v & 0x7F
            if v & 0x80 and self.command == 0x0C:
                self._transceive(v & 0x07)
        else:
            self.regs[reg] = v

    def _command(self, cmd):
        self.command = cmd
        if cmd == 0x0F:  # SoftReset
            self.soft_resets += 1
            self.regs = bytearray(64)
            self.fifo = []
            self.command = 0
        elif cmd == 0x03:  # CalcCRC over the FIFO
            lo, hi = crc_a(bytes(self.fifo))
            self.fifo = []
            self.regs[0x22] = lo
            self.regs[0x21] = hi
            self.regs[0x05] |= 0x04

    def _transceive(self, last_bits):
        frame = bytes(self.fifo)
        self.fifo = []
        self.frames.append((frame, last_bits))
        resp, err = (None, 0) if self.card is None else self.card.handle(frame, last_bits)
        self.regs[0x06] = err
        if resp is None:
            self.regs[0x04] |= 0x01  # TimerIRq: nothing came back
            return
        self.fifo = list(resp)
        self.regs[0x04] |= 0x30 | (0x02 if err else 0)

    def antenna_on(self):
        return self.regs[0x14] & 0x03 == 0x03


# ---- PN532 ---------------------------------------------------------------------------------
def pn532_frame(tfi, payload):
    """A normal information frame (second implementation for the fake)."""
    body = bytes([tfi]) + bytes(payload)
    ln = len(body)
    dcs = (-sum(body)) & 0xFF
    return bytes([0x00, 0x00, 0xFF, ln, (-ln) & 0xFF]) + body + bytes([dcs, 0x00])


class FakePN532:
    """PN532 on I2C (register with HW.i2c[0x24] = fake). Options set as attributes."""

    ACK = bytes([0x00, 0x00, 0xFF, 0x00, 0xFF, 0x00])

    def __init__(self, uid=None):
        self.uid = uid
        self.queue = []  # frames waiting to be read
        self.not_ready_polls = 0  # status polls answered "busy" before each frame
        self._busy = 0
        self.commands = []  # command codes received
        self.mute = False  # no ACK, no answer
        self.corrupt_answers = False  # answers with a bad data checksum
        self.released = 0

    def write(self, data):
        i = 0
        while i < len(data) and data[i] == 0:
            i += 1
        if i < 2 or i + 4 > len(data) or data[i] != 0xFF:
            return
        ln = data[i + 1]
        if (ln + data[i + 2]) & 0xFF:
            return
        body = data[i + 3 : i + 3 + ln]
        if len(body) != ln or (sum(body) + data[i + 3 + ln]) & 0xFF or body[0] != 0xD4:
            return
        cmd = body[1]
        self.commands.append(cmd)
        if self.mute:
            return
        answer = self._answer(cmd, body[2:])
        self.queue.append(self.ACK)
        if answer is not None:
            f = bytearray(pn532_frame(0xD5, bytes([cmd + 1]) + answer))
            if self.corrupt_answers:
                f[-2] ^= 0x55
            self.queue.append(bytes(f))
        self._busy = self.not_ready_polls

    def _answer(self, cmd, params):
        if cmd == 0x02:
            return bytes([0x32, 0x01, 0x06, 0x07])
        if cmd in (0x14, 0x32):
            return b""
        if cmd == 0x4A:
            if self.uid is None:
                return bytes([0x00])
            u = bytes(self.uid)
            return bytes([0x01, 0x01, 0x00, 0x04, 0x08, len(u)]) + u
        if cmd == 0x52:
            self.released += 1
            return bytes([0x00])
        return None

    def read_into(self, buf):
        for i in range(len(buf)):
            buf[i] = 0
        if not self.queue or self._busy > 0:
            self._busy -= 1
            return
        buf[0] = 0x01
        if len(buf) == 1:
            return  # a status poll does not consume the frame
        f = self.queue.pop(0)
        for i in range(min(len(f), len(buf) - 1)):
            buf[1 + i] = f[i]
        self._busy = self.not_ready_polls


# ---- Modbus --------------------------------------------------------------------------------
def _crc16_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xA001 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC16 = _crc16_table()


def modbus_crc(data):
    """Modbus CRC16, table-driven (second implementation); returns the int."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC16[(crc ^ b) & 0xFF]
    return crc


class FakeModbusSlave:
    """An Eastron meter: float input registers; `mode` = ok | bad_crc | silent | exception."""

    def __init__(self, addr=1, values=None):
        self.addr = addr
        self.regs = {}
        self.mode = "ok"
        self.exception_code = 2
        self.requests = []
        self.chunk = None  # deliver the answer this many bytes per readinto
        self.late_polls = 0  # uart.any() calls before the answer appears
        self._pending = None
        self._late = 0
        self.de_levels = []  # DE pin level seen at each request
        self.de_pin = None
        for reg, v in (values or {}).items():
            self.set_float(reg, v)

    def set_float(self, reg, value):
        b = struct.pack(">f", value)
        self.regs[reg] = b[0:2]
        self.regs[reg + 1] = b[2:4]

    def on_write(self, uart, data):
        if self.de_pin is not None:
            self.de_levels.append(HW.level(self.de_pin))
        if len(data) != 8 or modbus_crc(data[:6]) != data[6] | data[7] << 8:
            return
        if data[0] != self.addr or data[1] != 0x04:
            return
        start = data[2] << 8 | data[3]
        count = data[4] << 8 | data[5]
        self.requests.append((start, count))
        if self.mode == "silent":
            return
        if self.mode == "exception":
            body = bytes([self.addr, 0x84, self.exception_code])
        else:
            payload = b"".join(self.regs.get(r, b"\x00\x00") for r in range(start, start + count))
            body = bytes([self.addr, 0x04, len(payload)]) + payload
        crc = modbus_crc(body)
        if self.mode == "bad_crc":
            crc ^= 0x0101
        self._pending = body + bytes([crc & 0xFF, crc >> 8])
        self._late = self.late_polls
        if not self._late:
            self._deliver(uart)

    def _deliver(self, uart):
        uart.rx.extend(self._pending)
        self._pending = None

    def on_poll(self, uart):
        if self._pending is not None:
            self._late -= 1
            if self._late <= 0:
                self._deliver(uart)


# ---- RCD -----------------------------------------------------------------------------------
class FakeRCD:
    """RCM module: the test input trips the output after `trip_ms` of fake time; releasing the
    test input releases the output after `release_ms` (None: stays tripped)."""

    def __init__(self, test_pin, fault_pin, trip_ms=30, release_ms=10, active_high=True):
        self.test_pin = test_pin
        self.fault_pin = fault_pin
        self.trip_ms = trip_ms  # None: a dead RCD never trips
        self.release_ms = release_ms
        self.active = 1 if active_high else 0
        self._test_since = None
        self._released_at = None
        drive(fault_pin, 1 - self.active)
        HW.gpio(test_pin).watchers.append(self._test)
        HW.time.on_advance.append(self._tick)

    def _test(self, level):
        now = HW.time.ticks_ms()
        if level:
            self._test_since = now
            self._released_at = None
        elif self._test_since is not None:
            self._test_since = None
            self._released_at = now

    def _tick(self):
        now = HW.time.ticks_ms()
        if self._test_since is not None and self.trip_ms is not None:
            if now - self._test_since >= self.trip_ms:
                drive(self.fault_pin, self.active)
        if self._released_at is not None and self.release_ms is not None:
            if now - self._released_at >= self.release_ms:
                drive(self.fault_pin, 1 - self.active)
                self._released_at = None
