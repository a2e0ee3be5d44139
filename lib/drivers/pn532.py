"""NXP PN532 NFC reader on I2C (address 0x24): frames, ACK, SAMConfiguration, InListPassiveTarget.

Frames (PN532 user manual UM0701-02, 6.2): host -> PN532
`00 00 FF LEN LCS D4 cmd data DCS 00` with LEN = len(TFI + data), LCS = -LEN and DCS = -sum(TFI +
data) (mod 256); the answer has TFI D5 and cmd + 1. Over I2C every read starts with a status byte
(bit 0 = ready), so we poll the status, read the ACK `00 00 FF 00 FF 00`, poll again and read the
answer. `init()` checks the firmware (IC 0x32), sets SAMConfiguration normal mode and limits
passive-activation retries (RFConfiguration item 5) so InListPassiveTarget returns at once when
no card is near. `read_uid()` returns the complete NFCID1 (the chip runs the cascade itself) or
None. After `_FAILURES` consecutive failed exchanges (no ACK, bad frame, I2C error) it raises
`ReaderFailure` until `init()` succeeds again (OpenEVSE reports ReaderFailure to OCPP, evse.md 7).
Bounds: frames up to `_FRAME_MAX` bytes, preallocated; every wait is bounded by `timeout_ms`.
"""

from micropython import const
import time

ADDRESS = const(0x24)
_TFI_HOST = const(0xD4)
_TFI_PN532 = const(0xD5)
_CMD_GET_FIRMWARE = const(0x02)
_CMD_SAM_CONFIG = const(0x14)
_CMD_RF_CONFIG = const(0x32)
_CMD_IN_LIST = const(0x4A)
_CMD_IN_RELEASE = const(0x52)
_FRAME_MAX = const(64)  # bound of a frame (normal information frames only, no extended ones)
_DATA_MAX = const(_FRAME_MAX - 9)
_FAILURES = const(3)
_TIMEOUT_MS = const(100)
_PASSIVE_RETRIES = const(2)

ACK = b"\x00\x00\xff\x00\xff\x00"
NACK = b"\x00\x00\xff\xff\x00\x00"


class FrameError(Exception):
    """A frame that does not decode (bad preamble, length or data checksum, wrong TFI)."""


class ReaderFailure(Exception):
    """The reader stopped answering (repeated errors): report it, re-init later."""


def encode(cmd, params=b"", out=None):
    """Host frame for `cmd` with `params`; into `out` (bytearray) if given. Returns length."""
    n = 2 + len(params)
    if n > _DATA_MAX:
        raise ValueError("PN532 frame too long")
    f = out if out is not None else bytearray(n + 7)
    f[0] = 0
    f[1] = 0
    f[2] = 0xFF
    f[3] = n
    f[4] = (0x100 - n) & 0xFF
    f[5] = _TFI_HOST
    f[6] = cmd
    s = _TFI_HOST + cmd
    for i in range(len(params)):
        b = params[i]
        f[7 + i] = b
        s += b
    f[5 + n] = (0x100 - s) & 0xFF
    f[6 + n] = 0
    return n + 7 if out is not None else f


def decode(buf, n=None, tfi=_TFI_PN532):
    """Payload (bytes after the TFI: command code + data) of the frame in buf[:n].

    Leading zero bytes and trailing bytes after the frame are ignored. Raises FrameError.
    """
    end = len(buf) if n is None else n
    i = 0
    while i < end and buf[i] == 0:
        i += 1
    if i == 0 or i + 3 > end or buf[i] != 0xFF:
        raise FrameError("no preamble")
    ln = buf[i + 1]
    if (ln + buf[i + 2]) & 0xFF:
        raise FrameError("length checksum")
    if ln == 0 or ln == 0xFF:
        raise FrameError("ack or extended frame")
    start = i + 3
    if start + ln + 1 > end:
        raise FrameError("short frame")
    s = 0
    for k in range(start, start + ln + 1):
        s += buf[k]
    if s & 0xFF:
        raise FrameError("data checksum")
    if buf[start] != tfi:
        raise FrameError("wrong TFI")
    return bytes(buf[start + 1 : start + ln])


class PN532:
    def __init__(self, i2c, address=ADDRESS, timeout_ms=_TIMEOUT_MS, ticks_ms=None,
                 ticks_diff=None, sleep_ms=None):
        self.i2c = i2c
        self.address = address
        self.timeout_ms = timeout_ms
        self.failures = 0
        self.failed = False
        self.firmware = None
        self._ticks_ms = ticks_ms or time.ticks_ms
        self._ticks_diff = ticks_diff or time.ticks_diff
        self._sleep_ms = sleep_ms or time.sleep_ms
        self._out = bytearray(_FRAME_MAX)
        self._in = bytearray(_FRAME_MAX + 1)  # + the I2C status byte
        self._status = bytearray(1)

    def _wait_ready(self):
        t0 = self._ticks_ms()
        while True:
            self.i2c.readfrom_into(self.address, self._status)
            if self._status[0] & 1:
                return
            if self._ticks_diff(self._ticks_ms(), t0) >= self.timeout_ms:
                raise OSError("PN532 not ready")
            self._sleep_ms(1)

    def _read(self, n):
        self._wait_ready()
        mv = memoryview(self._in)[: n + 1]
        self.i2c.readfrom_into(self.address, mv)
        if not self._in[0] & 1:
            raise OSError("PN532 not ready")
        return memoryview(self._in)[1 : n + 1]

    def command(self, cmd, params=b"", answer_max=_DATA_MAX):
        """Send one command, check the ACK, return the answer data (after the answer code).

        Raises OSError (bus, not ready), FrameError (bad frame). Counted towards ReaderFailure.
        """
        if self.failed:
            raise ReaderFailure("PN532 failed: init() again")
        try:
            n = encode(cmd, params, self._out)
            self.i2c.writeto(self.address, memoryview(self._out)[:n])
            if bytes(self._read(len(ACK))) != ACK:
                raise FrameError("no ACK")
            payload = decode(self._read(answer_max + 9), None)
            if not payload or payload[0] != cmd + 1:
                raise FrameError("answer to another command")
        except (OSError, FrameError) as e:
            self.failures += 1
            if self.failures >= _FAILURES:
                self.failed = True
                raise ReaderFailure("PN532: {} errors in a row, last: {}".format(_FAILURES, e))
            raise
        self.failures = 0
        return payload[1:]

    def init(self):
        """Wake the chip, check the firmware, configure the SAM and the retry count.

        Returns (IC, version, revision). Raises OSError / FrameError when absent or broken.
        """
        self.failed = False
        self.failures = 0
        try:
            fw = self.command(_CMD_GET_FIRMWARE)
        except (OSError, FrameError):  # the first frame after power-up can wake the chip only
            fw = self.command(_CMD_GET_FIRMWARE)
        if len(fw) < 3 or fw[0] != 0x32:
            raise FrameError("not a PN532")
        self.command(_CMD_SAM_CONFIG, b"\x01\x14\x01")  # normal mode, 1 s timeout, use IRQ
        # RFConfiguration item 5 (MaxRetries): ATR 0xFF, PSL 0x01, passive activation retries.
        self.command(_CMD_RF_CONFIG, bytes((0x05, 0xFF, 0x01, _PASSIVE_RETRIES)))
        self.firmware = (fw[0], fw[1], fw[2])
        return self.firmware

    def read_uid(self):
        """The UID (NFCID1) of one ISO 14443A card in the field, or None.

        Raises ReaderFailure after repeated errors; a single error raises OSError/FrameError.
        """
        data = self.command(_CMD_IN_LIST, b"\x01\x00")  # 1 target, 106 kbps type A
        if not data or data[0] == 0:
            return None
        # NbTg Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1...
        if len(data) < 6:
            raise FrameError("short target data")
        ln = data[5]
        if ln not in (4, 7, 10) or 6 + ln > len(data):
            raise FrameError("bad NFCID1 length")
        uid = bytes(data[6 : 6 + ln])
        try:
            self.command(_CMD_IN_RELEASE, b"\x00")  # release all targets
        except (OSError, FrameError):
            pass
        return uid
