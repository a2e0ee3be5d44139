"""Persistent FIFO of transaction messages: an append-only log in segment files on flash.

OCPP 1.6 section 3 (`ocpp16.md` section 8): StartTransaction, StopTransaction and MeterValues with
transaction data are appended here before they are sent and dropped only after the CSMS answered.

Layout under `<root>/txq/`: segments `<n:08d>.seg`, each a run of records
`[len u16 BE][crc32 u32 BE][JSON body]`, at most `SEGMENT_BYTES` per segment; and the record
`txq_head` (lib/store, atomic) holding the read position `{"seg", "off", "tries"}`. Appends go to
the newest segment (`ab` + close: littlefs commits a file atomically at close; on POSIX a torn tail
is found by its length/CRC at boot and cut off). Removing the head only moves the read position;
a segment is deleted once fully read. Only positions and counters live in RAM, never messages:
RAM does not grow with the queue.

Bounds and the full policy (`BUDGET_BYTES`, README "Storage"): above `THIN_AT` of the budget only
every `THIN_KEEP`-th periodic MeterValues is kept; at the budget periodic MeterValues are dropped;
StartTransaction and StopTransaction are always written (they may use the reserve above the
budget, up to `HARD_LIMIT_BYTES`, beyond which the flash is really full and push raises OSError).
"""

import os
import json
import binascii
import struct
from micropython import const

import log
from store.files import makedirs

SEGMENT_BYTES = const(16384)
MAX_RECORD = const(4096)
BUDGET_BYTES = 1024 * 1024
THIN_AT = 0.9
THIN_KEEP = const(4)
HARD_LIMIT_BYTES = BUDGET_BYTES + 256 * 1024
_HDR = const(6)


def _periodic(item):
    """A MeterValues message of periodic or clock-aligned samples (thinned first when full)."""
    if item.get("action") != "MeterValues":
        return False
    for mv in item.get("payload", {}).get("meterValue", ()):
        for sv in mv.get("sampledValue", ()):
            if sv.get("context", "Sample.Periodic") not in ("Sample.Periodic", "Sample.Clock"):
                return False
    return True


class TxQueue:
    def __init__(self, root, name="txq", store=None, budget=None):
        self.dir = "{}/{}".format(root.rstrip("/"), name)
        makedirs(self.dir)
        self._store = store
        self.budget = budget or BUDGET_BYTES
        self.hard_limit = self.budget + (HARD_LIMIT_BYTES - BUDGET_BYTES)
        self.count = 0
        self.bytes = 0
        self.dropped = 0  # periodic MeterValues thinned out when full
        self._thin = 0
        head = (store.load("txq_head") if store is not None else None) or {}
        self.seg = head.get("seg", 0)
        self.off = head.get("off", 0)
        self.tries = head.get("tries", 0)
        self.tail_seg = self.seg
        self.tail_off = 0
        self._scan()

    # ---- boot scan ---------------------------------------------------------------------------
    def _segments(self):
        """Segment numbers present, ascending (a sorted list: at most a few hundred ints)."""
        nums = []
        for entry in os.ilistdir(self.dir):
            name = entry[0]
            if name.endswith(".seg"):
                try:
                    nums.append(int(name[:-4]))
                except ValueError:
                    pass
            elif name.endswith(".tmp"):
                self._unlink(self.dir + "/" + name)
        nums.sort()
        return nums

    def _scan(self):
        """Count the queued records and repair a torn tail; RAM stays constant."""
        nums = self._segments()
        for n in nums:
            if n < self.seg:
                self._unlink(self._path(n))  # fully read before a power cut: drop it now
        nums = [n for n in nums if n >= self.seg]
        if not nums:
            self.seg = self.tail_seg = max(self.seg, 1)
            self.off = self.tail_off = 0
            return
        if nums[0] > self.seg:  # the head segment vanished: start at the next one
            self.seg, self.off = nums[0], 0
        for n in nums:
            start = self.off if n == self.seg else 0
            good, count = self._walk(n, start)
            self.count += count
            self.bytes += good - start
            size = self._size(n)
            if good < size:
                log.error("txq", "segment %d: %d bytes after offset %d unreadable, cut off", n,
                          size - good, good)
                self._truncate(n, good)
            self.tail_seg, self.tail_off = n, good
        if self.off > self._size(self.seg):
            self.off = self._size(self.seg)

    def _walk(self, n, start):
        """(offset after the last good record, records from `start`) of segment n."""
        pos = start
        count = 0
        try:
            with open(self._path(n), "rb") as f:
                f.seek(pos)
                while True:
                    rec = self._read_at(f)
                    if rec is None:
                        break
                    pos += _HDR + rec
                    count += 1
        except OSError:
            pass
        return pos, count

    def _record(self, seg, off, body=None):
        """Length of the good record at (seg, off), its body appended to `body`; else None."""
        try:
            with open(self._path(seg), "rb") as f:
                f.seek(off)
                return self._read_at(f, body)
        except OSError:
            return None

    def _read_at(self, f, body=None):
        """Length of the next good record (reading its body into `body` if given) or None."""
        hdr = f.read(_HDR)
        if len(hdr) < _HDR:
            return None
        length, crc = struct.unpack(">HI", hdr)
        if length == 0 or length > MAX_RECORD:
            return None
        data = f.read(length)
        if len(data) < length or binascii.crc32(data) & 0xFFFFFFFF != crc:
            return None
        if body is not None:
            body.append(data)
        return length

    # ---- API ---------------------------------------------------------------------------------
    def __len__(self):
        return self.count

    def full(self):
        return self.bytes >= self.budget

    def push(self, item):
        """Append `item` (a JSON-able dict); returns False if thinned out by the full policy."""
        if _periodic(item):
            if self.bytes >= self.budget:
                self.dropped += 1
                return False
            if self.bytes >= self.budget * THIN_AT:
                self._thin += 1
                if self._thin % THIN_KEEP:
                    self.dropped += 1
                    return False
        body = json.dumps(item).encode()
        if len(body) > MAX_RECORD:
            raise ValueError("message of {} bytes exceeds the record bound".format(len(body)))
        rec_len = _HDR + len(body)
        if self.bytes + rec_len > self.hard_limit:
            raise OSError(28, "transaction queue full")  # ENOSPC: the caller logs it
        if self.tail_off + rec_len > SEGMENT_BYTES and self.tail_off > 0:
            self.tail_seg += 1
            self.tail_off = 0
        with open(self._path(self.tail_seg), "ab") as f:
            f.write(struct.pack(">HI", len(body), binascii.crc32(body) & 0xFFFFFFFF))
            f.write(body)
        self.tail_off += rec_len
        self.bytes += rec_len
        self.count += 1
        return True

    def peek(self):
        """(position, item) of the oldest message, or None when empty."""
        while self.count > 0:
            if self.seg == self.tail_seg and self.off >= self.tail_off:
                self.count = 0  # counters drifted from a repair: the log is empty
                return None
            body = []
            length = self._record(self.seg, self.off, body)
            if length is None:
                if self.seg < self.tail_seg:
                    if self.off >= self._size(self.seg):
                        # The clean end: the head read this segment to its end while the tail
                        # was still in it; nothing is skipped, nothing to uncount.
                        self._next_segment(counted=True)
                        continue
                    log.error("txq", "segment %d unreadable from %d: skipped", self.seg, self.off)
                    self._next_segment()
                    continue
                return None
            try:
                item = json.loads(body[0])
            except ValueError:
                log.error("txq", "record at %d/%d is not JSON: skipped", self.seg, self.off)
                self._advance(length)
                continue
            item["tries"] = self.tries
            return (self.seg, self.off), item
        return None

    def items(self):
        """Generator over (position, item) oldest first, one record in RAM at a time."""
        seg, off = self.seg, self.off
        while seg <= self.tail_seg:
            body = []
            length = self._record(seg, off, body)
            if length is None:
                seg, off = seg + 1, 0
                continue
            try:
                yield (seg, off), json.loads(body[0])
            except ValueError:
                pass
            off += _HDR + length

    def remove(self, pos):
        """Drop the head message (answered, or out of attempts)."""
        if pos != (self.seg, self.off):
            return
        length = self._record(self.seg, self.off)
        if length is None:
            self._next_segment()
        else:
            self._advance(length)

    def update(self, pos, item):
        """Persist the head's attempt counter (messages themselves are never rewritten)."""
        if pos == (self.seg, self.off):
            self.tries = item.get("tries", 0)
            self._save_head()

    # ---- internals ----------------------------------------------------------------------------
    def _advance(self, length):
        self.off += _HDR + length
        self.bytes -= _HDR + length
        self.count -= 1
        self.tries = 0
        if self.seg < self.tail_seg and self.off >= self._size(self.seg):
            self._next_segment(counted=True)
        else:
            self._save_head()

    def _next_segment(self, counted=False):
        old = self.seg
        if not counted:  # skipping unreadable bytes: recount what is left
            self.count = max(0, self.count - 1)
        self.seg += 1
        self.off = 0
        self.tries = 0
        self._save_head()  # the position first, then the file: a cut in between is harmless
        self._unlink(self._path(old))
        if self.seg > self.tail_seg:
            self.tail_seg, self.tail_off = self.seg, 0

    def _save_head(self):
        if self._store is not None:
            self._store.save("txq_head", {"seg": self.seg, "off": self.off, "tries": self.tries})

    def _path(self, n):
        return "{}/{:08d}.seg".format(self.dir, n)

    def _size(self, n):
        try:
            return os.stat(self._path(n))[6]
        except OSError:
            return 0

    def _truncate(self, n, length):
        """Keep the first `length` bytes of segment n (copied in chunks, then renamed)."""
        src = self._path(n)
        tmp = src + ".tmp"
        buf = bytearray(512)
        left = length
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            while left > 0:
                k = fi.readinto(buf)
                if not k:
                    break
                k = min(k, left)
                fo.write(memoryview(buf)[:k])
                left -= k
        os.rename(tmp, src)

    @staticmethod
    def _unlink(path):
        try:
            os.remove(path)
        except OSError:
            pass
