"""NXP MFRC522 RFID reader over SPI: ISO/IEC 14443-3 type A activation and the complete UID.

SPI protocol (MFRC522 datasheet 8.1.2): the address byte is `(reg << 1) | 0x80` to read and
`reg << 1` to write, followed by the data bytes. `read_uid()` sends REQA, then walks cascade
levels 1-3 (SEL 0x93/0x95/0x97): ANTICOLLISION returns 4 bytes + BCC; the BCC (XOR of the four)
is checked; SELECT (NVB 0x70, with CRC_A from the chip's CRC coprocessor) returns SAK + CRC_A,
which is checked too; while SAK bit 0x04 says "UID not complete" the level's first byte must be
the cascade tag 0x88 and only the other three bytes are UID. So 4, 7 and 10-byte UIDs come out
without CT or BCC (evse.md section 7: the "880451AA77" and 5-byte-UID mistakes). The card is then
halted (HLTA) so it is reported once per presentation.

Errors: `read_uid()` returns None when no card answers REQA; after a card answered, a timeout,
a bit collision (two cards), a CRC, BCC or protocol error raises `RFIDError(reason)`. The chip
timer bounds every exchange (`_TIMER_RELOAD` ticks of ~0.5 ms, ~10 ms) and `_POLL_MAX` bounds
the status polling, so a dead chip cannot hang the loop. No collision resolution: with two cards
in the field the tap is refused (collision), which is what a charger wants anyway.
"""

from micropython import const

# Registers (datasheet 9.2)
_COMMAND = const(0x01)
_COM_IRQ = const(0x04)
_DIV_IRQ = const(0x05)
_ERROR = const(0x06)
_FIFO_DATA = const(0x09)
_FIFO_LEVEL = const(0x0A)
_CONTROL = const(0x0C)
_BIT_FRAMING = const(0x0D)
_COLL = const(0x0E)
_MODE = const(0x11)
_TX_CONTROL = const(0x14)
_TX_ASK = const(0x15)
_CRC_RESULT_H = const(0x21)
_CRC_RESULT_L = const(0x22)
_T_MODE = const(0x2A)
_T_PRESCALER = const(0x2B)
_T_RELOAD_H = const(0x2C)
_T_RELOAD_L = const(0x2D)
_VERSION = const(0x37)
# Commands
_CMD_IDLE = const(0x00)
_CMD_CALC_CRC = const(0x03)
_CMD_TRANSCEIVE = const(0x0C)
_CMD_SOFT_RESET = const(0x0F)
# ComIrqReg bits / ErrorReg bits
_IRQ_RX = const(0x20)
_IRQ_IDLE = const(0x10)
_IRQ_ERR = const(0x02)
_IRQ_TIMER = const(0x01)
_ERR_COLL = const(0x08)
_ERR_CRC = const(0x04)
_ERR_PARITY = const(0x02)
_ERR_PROTOCOL = const(0x01)
_ERR_BUFFER = const(0x10)
_DIV_CRC = const(0x04)
# ISO/IEC 14443-3 type A
_REQA = const(0x26)
_WUPA = const(0x52)
_HLTA = const(0x50)
_CT = const(0x88)
_SAK_INCOMPLETE = const(0x04)
_SEL = (0x93, 0x95, 0x97)
_NVB_ANTICOLL = const(0x20)
_NVB_SELECT = const(0x70)

_FIFO_MAX = const(64)  # chip FIFO size: bound of every exchange
_TIMER_RELOAD = const(20)  # ~10 ms at the 2 kHz timer clock set in init()
_POLL_MAX = const(400)  # status polls per exchange before declaring the chip dead
_UID_MAX = const(10)

VERSIONS = (0x88, 0x90, 0x91, 0x92, 0xB2)  # FM17522, v0.0, v1.0, v2.0, clones


class RFIDError(Exception):
    """A failed card exchange: `reason` is 'timeout', 'collision', 'crc', 'bcc', 'protocol'."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


class MFRC522:
    def __init__(self, spi, cs, rst=None):
        self.spi = spi
        self.cs = cs
        self.rst = rst
        self._tx = bytearray(2)
        self._rx = bytearray(2)
        self._frame = bytearray(9)  # SEL NVB uid0..3 BCC CRC_A(2)
        self._resp = bytearray(_FIFO_MAX)
        cs.value(1)

    # ---- registers ----------------------------------------------------------------------------
    def read_reg(self, reg):
        tx = self._tx
        tx[0] = ((reg << 1) & 0x7E) | 0x80
        tx[1] = 0
        self.cs.value(0)
        try:
            self.spi.write_readinto(tx, self._rx)
        finally:
            self.cs.value(1)
        return self._rx[1]

    def write_reg(self, reg, value):
        tx = self._tx
        tx[0] = (reg << 1) & 0x7E
        tx[1] = value
        self.cs.value(0)
        try:
            self.spi.write(tx)
        finally:
            self.cs.value(1)

    def _write_fifo(self, data, n):
        hdr = self._tx
        hdr[0] = (_FIFO_DATA << 1) & 0x7E
        self.cs.value(0)
        try:
            self.spi.write(hdr[:1])
            self.spi.write(memoryview(data)[:n])
        finally:
            self.cs.value(1)

    def _set_bits(self, reg, mask):
        self.write_reg(reg, self.read_reg(reg) | mask)

    def _clear_bits(self, reg, mask):
        self.write_reg(reg, self.read_reg(reg) & ~mask & 0xFF)

    # ---- setup --------------------------------------------------------------------------------
    def init(self):
        """Reset and configure the chip; returns the version byte. Raises OSError if absent."""
        if self.rst is not None:
            self.rst.value(1)
        self.write_reg(_COMMAND, _CMD_SOFT_RESET)
        for _ in range(_POLL_MAX):  # PowerDown bit clears when the reset is done
            if not self.read_reg(_COMMAND) & 0x10:
                break
        version = self.read_reg(_VERSION)
        if version not in VERSIONS:
            raise OSError("MFRC522 not found (version 0x{:02x})".format(version))
        self.write_reg(_T_MODE, 0x8D)  # TAuto; prescaler 0xD3E -> 13.56 MHz / 6781 = ~2 kHz
        self.write_reg(_T_PRESCALER, 0x3E)
        self.write_reg(_T_RELOAD_H, _TIMER_RELOAD >> 8)
        self.write_reg(_T_RELOAD_L, _TIMER_RELOAD & 0xFF)
        self.write_reg(_TX_ASK, 0x40)  # 100 % ASK modulation
        self.write_reg(_MODE, 0x3D)  # CRC preset 0x6363 (ISO 14443-3 CRC_A)
        self._set_bits(_TX_CONTROL, 0x03)  # antenna drivers on
        return version

    def alive(self):
        """True if the chip still answers with a known version (a cheap health check)."""
        return self.read_reg(_VERSION) in VERSIONS

    # ---- exchanges ----------------------------------------------------------------------------
    def transceive(self, data, n, last_bits=0):
        """Send data[:n] (last byte with `last_bits` bits, 0 = 8); returns the response length.

        The response is in `self._resp`. Raises RFIDError('timeout'/'collision'/'crc'/'protocol').
        """
        self.write_reg(_COMMAND, _CMD_IDLE)
        self.write_reg(_COM_IRQ, 0x7F)  # clear every IRQ bit
        self.write_reg(_FIFO_LEVEL, 0x80)  # flush the FIFO
        self._write_fifo(data, n)
        self.write_reg(_BIT_FRAMING, last_bits & 0x07)
        self.write_reg(_COMMAND, _CMD_TRANSCEIVE)
        self._set_bits(_BIT_FRAMING, 0x80)  # StartSend
        irq = 0
        for _ in range(_POLL_MAX):
            irq = self.read_reg(_COM_IRQ)
            if irq & (_IRQ_RX | _IRQ_IDLE | _IRQ_TIMER):
                break
        self._clear_bits(_BIT_FRAMING, 0x80)
        if not irq & (_IRQ_RX | _IRQ_IDLE):
            raise RFIDError("timeout")
        err = self.read_reg(_ERROR)
        if err & _ERR_COLL:
            raise RFIDError("collision")
        if err & (_ERR_BUFFER | _ERR_PROTOCOL | _ERR_PARITY):
            raise RFIDError("protocol")
        if err & _ERR_CRC:
            raise RFIDError("crc")
        count = self.read_reg(_FIFO_LEVEL) & 0x7F
        if count > _FIFO_MAX:
            raise RFIDError("protocol")
        resp = self._resp
        for i in range(count):
            resp[i] = self.read_reg(_FIFO_DATA)
        return count

    def crc_a(self, data, n):
        """CRC_A of data[:n] from the chip's coprocessor: (low byte, high byte)."""
        self.write_reg(_COMMAND, _CMD_IDLE)
        self.write_reg(_DIV_IRQ, 0x04)  # clear CRCIRq
        self.write_reg(_FIFO_LEVEL, 0x80)
        self._write_fifo(data, n)
        self.write_reg(_COMMAND, _CMD_CALC_CRC)
        for _ in range(_POLL_MAX):
            if self.read_reg(_DIV_IRQ) & _DIV_CRC:
                break
        else:
            raise RFIDError("timeout")
        self.write_reg(_COMMAND, _CMD_IDLE)
        return self.read_reg(_CRC_RESULT_L), self.read_reg(_CRC_RESULT_H)

    def request(self, wake=False):
        """REQA (or WUPA): True if a card answered with an ATQA."""
        f = self._frame
        f[0] = _WUPA if wake else _REQA
        try:
            n = self.transceive(f, 1, 7)
        except RFIDError as e:
            if e.reason == "timeout":
                return False
            raise
        if n != 2:
            raise RFIDError("protocol")
        return True

    def _select_level(self, level, uid, k):
        """Anticollision + SELECT at cascade level `level`; appends UID bytes at uid[k:].

        Returns (new length, complete?).
        """
        f = self._frame
        resp = self._resp
        self.write_reg(_COLL, 0x00)  # ValuesAfterColl = 0: bits after a collision are cleared
        f[0] = _SEL[level]
        f[1] = _NVB_ANTICOLL
        if self.transceive(f, 2) != 5:
            raise RFIDError("protocol")
        if resp[0] ^ resp[1] ^ resp[2] ^ resp[3] != resp[4]:
            raise RFIDError("bcc")
        f[1] = _NVB_SELECT
        for i in range(5):
            f[2 + i] = resp[i]
        f[7], f[8] = self.crc_a(f, 7)
        if self.transceive(f, 9) != 3:
            raise RFIDError("protocol")
        sak = resp[0]
        crc_l, crc_h = resp[1], resp[2]
        if self.crc_a(resp, 1) != (crc_l, crc_h):
            raise RFIDError("crc")
        if sak & _SAK_INCOMPLETE:
            if f[2] != _CT or level == 2:
                raise RFIDError("protocol")
            for i in range(3):
                uid[k + i] = f[3 + i]
            return k + 3, False
        for i in range(4):
            uid[k + i] = f[2 + i]
        return k + 4, True

    def select(self):
        """Run the cascade after a successful REQA; returns the UID bytes (4, 7 or 10)."""
        uid = bytearray(_UID_MAX)
        k = 0
        for level in range(3):
            k, done = self._select_level(level, uid, k)
            if done:
                return bytes(uid[:k])
        raise RFIDError("protocol")

    def halt(self):
        """HLTA: the card stays silent until it leaves the field (no answer = success)."""
        f = self._frame
        f[0] = _HLTA
        f[1] = 0
        f[2], f[3] = self.crc_a(f, 2)
        try:
            self.transceive(f, 4)
        except RFIDError:
            pass

    def read_uid(self):
        """The UID of a card in the field, or None. Raises RFIDError on a failed activation."""
        if not self.request():
            return None
        uid = self.select()
        self.halt()
        return uid
