"""Full MicroPython firmware images into the ESP32's next OTA app partition (esp32.Partition).

`ImageWriter(esp32)` streams an ESP-IDF application image (`micropython.bin`, first byte 0xE9)
into `Partition(RUNNING).get_next_update()` one 4 KB block at a time with writeblocks() (which
erases each block first), never holding more than one block in RAM. Checks before anything is
activated: the image header (magic, segment count, same chip id as the running image, the
esp_app_desc_t magic at offset 32 that only application images carry - not a bootloader or a
combined flash image), that it fits the partition, the SHA-256 digest esptool appends to the
image (hash_appended flag, byte 23), and a read-back of the written partition hashed again.
`activate()` calls set_boot(); the caller then resets. After the reboot `mark_valid()` cancels
the bootloader's rollback (with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE a new image that resets
before this runs is abandoned by the bootloader). The esp32 module is passed in, so tests use a
fake partition; on the Unix port there is none and full images are refused (RefusedError).
"""

import binascii
import hashlib
from micropython import const

from update import CorruptError, RefusedError

_BLOCK = const(4096)
_MAGIC = const(0xE9)
_MAX_SEGMENTS = const(16)
_CHECK_AT = const(80)  # header (24) + segment header (8) + app descriptor up to the version
_DESC_MAGIC = b"\x32\x54\xcd\xab"  # esp_app_desc_t.magic_word 0xABCD5432, little-endian
_DIGEST = const(32)
_IOCTL_BLOCK_COUNT = const(4)
_IOCTL_BLOCK_SIZE = const(5)


def load_esp32():
    """The esp32 module, or RefusedError where there is none (Unix port, simulator)."""
    try:
        import esp32
    except ImportError:
        raise RefusedError("full firmware images need an ESP32 (no esp32 module here)")
    return esp32


class ImageWriter:
    """One image into the next OTA partition: feed() the bytes, then finish()."""

    def __init__(self, esp32):
        self._esp32 = esp32
        try:
            running = esp32.Partition(esp32.Partition.RUNNING)
            self.target = running.get_next_update()
        except OSError as e:
            raise RefusedError("no OTA partition to update ({})".format(e))
        if self.target.ioctl(_IOCTL_BLOCK_SIZE, 0) != _BLOCK:
            raise RefusedError("OTA partition block size is not 4096")
        self.capacity = self.target.ioctl(_IOCTL_BLOCK_COUNT, 0) * _BLOCK
        self.label = self.target.info()[4]
        self._buf = bytearray(_BLOCK)
        running.readblocks(0, self._buf)
        self._chip = bytes(self._buf[12:14]) if self._buf[0] == _MAGIC else None
        self._n = 0  # bytes in _buf
        self._block = 0  # next block number to write
        self.size = 0
        self.version = None
        self._all = hashlib.sha256()  # every byte, for the read-back check
        self._body = hashlib.sha256()  # every byte but the last 32 (the appended digest)
        self._tail = bytearray(_DIGEST)
        self._tn = 0
        self._checked = False

    def feed(self, data):
        """Add image bytes. Raises RefusedError/CorruptError (header, size), OSError (flash)."""
        mv = memoryview(data)
        if self.size + len(mv) > self.capacity:
            raise RefusedError("image larger than the {} byte partition".format(self.capacity))
        self.size += len(mv)
        self._all.update(mv)
        self._window(mv)
        off = 0
        while off < len(mv):
            k = min(len(mv) - off, _BLOCK - self._n)
            self._buf[self._n : self._n + k] = mv[off : off + k]
            self._n += k
            off += k
            if not self._checked and self._n >= _CHECK_AT:
                self._check_header()
            if self._n == _BLOCK:
                self._flush()

    def _window(self, mv):
        # Keep the newest 32 bytes out of _body: they are the appended digest if the image ends.
        n = len(mv)
        tail = self._tail
        if n >= _DIGEST:
            if self._tn:
                self._body.update(memoryview(tail)[: self._tn])
            self._body.update(mv[: n - _DIGEST])
            tail[:] = mv[n - _DIGEST :]
            self._tn = _DIGEST
            return
        total = self._tn + n
        if total <= _DIGEST:
            tail[self._tn : total] = mv
            self._tn = total
            return
        spill = total - _DIGEST
        self._body.update(memoryview(tail)[:spill])
        keep = self._tn - spill
        tail[:keep] = tail[spill : self._tn]
        tail[keep:] = mv
        self._tn = _DIGEST

    def _check_header(self):
        b = self._buf
        if b[0] != _MAGIC:
            raise RefusedError("not an ESP32 image (magic 0x{:02x})".format(b[0]))
        if not 1 <= b[1] <= _MAX_SEGMENTS:
            raise CorruptError("image header: {} segments".format(b[1]))
        if self._chip is not None and bytes(b[12:14]) != self._chip:
            raise RefusedError("image is for another chip (id {})".format(b[12] | b[13] << 8))
        if b[23] != 1:
            raise RefusedError("image has no appended SHA-256 digest")
        if bytes(b[32:36]) != _DESC_MAGIC:
            raise RefusedError("not an application image (bootloader or combined flash image?)")
        v = bytes(b[48:80])
        end = v.find(b"\0")
        try:
            self.version = (v[:end] if end >= 0 else v).decode()
        except UnicodeError:
            self.version = None
        self._checked = True

    def _flush(self):
        if self._n == 0:
            return
        if self._n < _BLOCK:
            for i in range(self._n, _BLOCK):  # erased flash reads 0xFF: pad like it
                self._buf[i] = 0xFF
        self.target.writeblocks(self._block, self._buf)
        self._block += 1
        self._n = 0

    def finish(self):
        """Write the last block and verify. Returns (label, size, sha256 hex, version)."""
        if self.size < _CHECK_AT + _DIGEST:
            raise CorruptError("image too short ({} bytes)".format(self.size))
        self._flush()
        if bytes(self._tail) != self._body.digest():
            raise CorruptError("image SHA-256 digest mismatch")
        digest = self._all.digest()
        if self.readback() != digest:
            raise CorruptError("partition read-back does not match the image")
        return self.label, self.size, binascii.hexlify(digest).decode(), self.version

    def readback(self, size=None):
        """SHA-256 of the first `size` (default: image size) bytes of the target partition."""
        size = self.size if size is None else size
        h = hashlib.sha256()
        buf = self._buf
        done = 0
        blk = 0
        while done < size:
            self.target.readblocks(blk, buf)
            k = min(_BLOCK, size - done)
            h.update(memoryview(buf)[:k])
            done += k
            blk += 1
        return h.digest()

    def activate(self):
        """Boot the new image at the next reset (the caller resets)."""
        self.target.set_boot()


def verify_staged(esp32, label, size, sha_hex):
    """After a restart in state Downloaded: is the image still intact in partition `label`?"""
    try:
        w = ImageWriter(esp32)
    except RefusedError:
        return None
    if w.label != label or not 0 < size <= w.capacity:
        return None
    if binascii.hexlify(w.readback(size)).decode() != sha_hex:
        return None
    return w


def running_label(esp32):
    return esp32.Partition(esp32.Partition.RUNNING).info()[4]


def mark_valid(esp32):
    """Cancel the bootloader's rollback for the running image; False if the port cannot."""
    try:
        esp32.Partition.mark_app_valid_cancel_rollback()
        return True
    except (OSError, AttributeError):
        return False
