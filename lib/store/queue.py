"""Persistent FIFO of transaction messages, one small file per message, so RAM does not grow.

OCPP 1.6 section 3 (and `ocpp16.md` section 8): StartTransaction, StopTransaction and MeterValues
with transaction data are written here before they are sent and removed only after the CSMS has
answered. Each message is `<dir>/<seq:08d>.json`, written atomically by `store.files`; only the
head and tail sequence numbers live in RAM. A file found corrupt at the head is moved aside as
`.bad` (logged), never silently lost. Bound: `MAX_MESSAGES` files; the caller decides what to thin
out when `full()` (periodic MeterValues first, never Start/Stop).
"""

import os
from micropython import const

import log
from store.files import makedirs, write_atomic, read_record, encode_record

MAX_MESSAGES = const(20000)


class TxQueue:
    def __init__(self, root, name="txq"):
        self.dir = "{}/{}".format(root.rstrip("/"), name)
        makedirs(self.dir)
        self.head = 0  # first sequence number that may exist
        self.tail = 0  # next sequence number to write
        self.count = 0
        lo = None
        hi = -1
        for entry in os.ilistdir(self.dir):
            fname = entry[0]
            if fname.endswith(".tmp") or fname.endswith(".bak"):
                # A torn write never reached its final name: the message was not yet queued.
                try:
                    os.remove(self.dir + "/" + fname)
                except OSError:
                    pass
                continue
            if not fname.endswith(".json"):
                continue
            try:
                n = int(fname[:-5])
            except ValueError:
                continue
            self.count += 1
            if lo is None or n < lo:
                lo = n
            if n > hi:
                hi = n
        if lo is not None:
            self.head = lo
            self.tail = hi + 1

    def __len__(self):
        return self.count

    def full(self):
        return self.count >= MAX_MESSAGES

    def _path(self, seq):
        return "{}/{:08d}.json".format(self.dir, seq)

    def push(self, item):
        """Append `item` (a JSON-able dict); returns its sequence number. Raises OSError if flash fails."""
        seq = self.tail
        write_atomic(self._path(seq), encode_record(item), keep_backup=False)
        self.tail = seq + 1
        self.count += 1
        return seq

    def update(self, seq, item):
        write_atomic(self._path(seq), encode_record(item), keep_backup=False)

    def peek(self):
        """(seq, item) of the oldest message, or None when empty."""
        while self.head < self.tail:
            p = self._path(self.head)
            try:
                return self.head, read_record(p)
            except OSError:
                self.head += 1  # a gap (removed out of order): skip
            except (ValueError, UnicodeError) as e:
                log.error("txq", "message %d corrupt (%s): moved aside", self.head, e)
                try:
                    os.rename(p, p + ".bad")
                except OSError:
                    pass
                self.count -= 1
                self.head += 1
        return None

    def items(self):
        """Generator over (seq, item) oldest first, reading one file at a time."""
        seq = self.head
        while seq < self.tail:
            try:
                yield seq, read_record(self._path(seq))
            except (OSError, ValueError, UnicodeError):
                pass
            seq += 1

    def remove(self, seq):
        try:
            os.remove(self._path(seq))
            self.count -= 1
        except OSError:
            pass
        if seq == self.head:
            self.head += 1
