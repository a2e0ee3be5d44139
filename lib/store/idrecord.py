"""Fixed 48-byte records of the Local Authorization List (store.idtable) and their bucket hash.

Record: [0] idTag length 1..20, [1:21] idTag lower-cased ASCII (CiString20 compares
case-insensitively), [21] status index into `STATUSES` (`REMOVE` in a journal: remove the
idTag), [22:26] expiry as big-endian unix seconds (0 = none; 2106 at most), [26] parentIdTag
length, [27:47] parentIdTag as sent, [47] check byte (0x5A xor the other 47). The bucket of a tag
is a 16-bit multiplicative hash of its lower-cased bytes modulo `BUCKETS`, fixed by this format
(never the port's `hash()`, which may change with a firmware update). The compare, hash and
check loops use small ints only: they allocate nothing, whatever the list size.
"""

from micropython import const

STATUSES = ("Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx")
REMOVE = const(0xFF)  # status byte of a journal record that removes its idTag
REC = const(48)  # record size (store.idtable repeats it as its private const)
BUCKETS = const(16)
STATUS_AT = const(21)

_TAG_MAX = const(20)
_STATUS_AT = const(21)
_EXPIRY_AT = const(22)
_PARENT_AT = const(26)
_CHECK_AT = const(47)
_REC = const(48)
_BUCKETS = const(16)
_EXPIRY_MAX = 0xFFFFFFFF


def key(tag):
    """Lower-cased idTag bytes, or None for a tag that cannot be in the table."""
    if not isinstance(tag, str):
        return None
    k = tag.lower().encode()
    if not 1 <= len(k) <= _TAG_MAX:
        return None
    return k


def bucket_of(buf, off, n):
    """Bucket of the n tag bytes at buf[off]. h stays below 2**16 * 33: small ints only."""
    h = 0
    i = 0
    while i < n:
        h = ((h * 33) ^ buf[off + i]) & 0xFFFF
        i += 1
    return h % _BUCKETS


def mask(buckets):
    """Bit b set for every bucket b in `buckets`."""
    m = 0
    for b in buckets:
        m |= 1 << b
    return m


def check(buf, off):
    x = 0x5A
    i = 0
    while i < _CHECK_AT:
        x ^= buf[off + i]
        i += 1
    return x


def same(buf, off, key, n):
    """The record at buf[off] holds a tag equal to key (n bytes); no slice, no allocation."""
    if buf[off] != n:
        return False
    i = 0
    while i < n:
        if buf[off + 1 + i] != key[i]:
            return False
        i += 1
    return True


def pack(buf, off, key, status, expiry, parent):
    """Write one record at buf[off:off+48]; raises ValueError for a field that does not fit."""
    if parent is not None:
        parent = parent.encode()
        if len(parent) > _TAG_MAX:
            raise ValueError("parentIdTag over 20 bytes")
    for i in range(_REC):
        buf[off + i] = 0
    n = len(key)
    buf[off] = n
    buf[off + 1 : off + 1 + n] = key
    buf[off + _STATUS_AT] = status
    if expiry is not None:
        # 0 means "no expiry": an expiry at or before 1970 is stored as 1 (long expired).
        e = min(max(int(expiry), 1), _EXPIRY_MAX)
        for i in range(4):
            buf[off + _EXPIRY_AT + i] = (e >> (24 - 8 * i)) & 0xFF
    if parent:
        buf[off + _PARENT_AT] = len(parent)
        buf[off + _PARENT_AT + 1 : off + _PARENT_AT + 1 + len(parent)] = parent
    buf[off + _CHECK_AT] = check(buf, off)


def unpack(buf, off):
    """(status, expiry or None, parent or None) of the record at off, or None if corrupt."""
    if check(buf, off) != buf[off + _CHECK_AT] or buf[off + _STATUS_AT] >= len(STATUSES):
        return None
    e = 0
    for i in range(4):
        e = (e << 8) | buf[off + _EXPIRY_AT + i]
    pn = buf[off + _PARENT_AT]
    if pn > _TAG_MAX:
        return None
    parent = bytes(buf[off + _PARENT_AT + 1 : off + _PARENT_AT + 1 + pn]).decode() if pn else None
    return STATUSES[buf[off + _STATUS_AT]], (e or None), parent
