"""Provisioning wire format: frames, chunked messages with a SHA-256 trailer, TLV records.

Pure code shared by the firmware (MicroPython), the host CLI (CPython, tools/provision.py) and
mirrored in JavaScript by tools/web/provision.html; tools/web/provision_vectors.json holds the
test vectors all of them pass. provisioning.md sections 3 and 5.
A frame is `[type u8][seq u8][body]`, at most `MAX_FRAME` bytes (the RX characteristic buffer);
a message is `payload || SHA-256(payload)` cut into BEGIN/DATA frames and reassembled by
`Assembler` into one preallocated buffer of `MAX_MESSAGE` bytes. Stream transports (TCP,
serial) put a u16 length (serial: after a two-byte sync marker) before each frame.
Integers are big-endian. Bad input raises `ProtocolError`, never anything else.
"""

import hashlib
import struct

try:
    from micropython import const
except ImportError:  # CPython: the host CLI shares this module

    def const(x):
        return x


VERSION = const(1)
MAX_FRAME = const(512)  # RX buffer; ATT attributes are at most 512 bytes
MIN_FRAME = const(20)  # BLE default MTU 23 - 3
MAX_MESSAGE = const(4096)  # payload + 32-byte digest: every single field fits
DIGEST = const(32)
_DATA_HEAD = const(5)  # type, seq, msg_id, offset u16
_MAX_RECORDS = const(24)  # bound on TLV records per message
_MAX_PENDING = const(5200)  # stream decoder: one 4 KB read plus a partial frame

# Frame types
BEGIN = const(0x01)
DATA = const(0x02)
ACK = const(0x03)
NACK = const(0x04)
ABORT = const(0x05)
GET_INFO = const(0x06)
INFO = const(0x07)

# NACK reasons
R_GAP = const(1)
R_TOO_BIG = const(2)
R_DIGEST = const(3)
R_BUSY = const(4)
R_TIMEOUT = const(5)
R_MALFORMED = const(6)

# Operations (first byte of a message payload once decrypted)
OP_GET_STATUS = const(0x01)
OP_SET = const(0x02)
OP_COMMIT = const(0x03)
OP_IDENTIFY = const(0x04)
OP_CANCEL = const(0x05)
OP_GET = const(0x06)
OP_RESTART = const(0x07)
OP_FACTORY_RESET = const(0x08)
OP_HELLO = const(0x10)
OP_PROOF = const(0x11)
OP_RESULT = const(0x80)

# Status codes of a RESULT
OK = const(0)
BAD_FRAME = const(1)
BAD_DIGEST = const(2)
NOT_AUTHENTICATED = const(3)
WINDOW_CLOSED = const(4)
LOCKED = const(5)
BAD_FIELD = const(6)
INCONSISTENT = const(7)
CERT_INVALID = const(8)
STORAGE_ERROR = const(9)
TOO_BIG = const(10)
BUSY = const(11)
UNKNOWN_OP = const(12)
STATUS_NAMES = (
    "OK", "BAD_FRAME", "BAD_DIGEST", "NOT_AUTHENTICATED", "WINDOW_CLOSED", "LOCKED",
    "BAD_FIELD", "INCONSISTENT", "CERT_INVALID", "STORAGE_ERROR", "TOO_BIG", "BUSY",
    "UNKNOWN_OP",
)

# Field tags (settable), read-only tags, handshake and error detail tags
T_WIFI_SSID = const(0x01)
T_WIFI_PASSWORD = const(0x02)
T_URL = const(0x03)
T_CP_ID = const(0x04)
T_PROFILE = const(0x05)
T_AUTH_KEY = const(0x06)
T_CA = const(0x07)
T_CLIENT_CERT = const(0x08)
T_CLIENT_KEY = const(0x09)
T_DEVICE_ID = const(0x20)
T_FIRMWARE = const(0x21)
T_CONN_STATUS = const(0x22)
T_LAST_ERROR = const(0x23)
T_CA_SHA256 = const(0x24)
T_CLIENT_CERT_SHA256 = const(0x25)
T_SECRETS_SET = const(0x26)  # u8 bits: 1 Wi-Fi password, 2 AuthorizationKey, 4 client key
T_STAGED = const(0x27)  # the tags set in this session and not yet committed
T_REASON = const(0x30)  # UTF-8 text of an error
T_FIELD = const(0x31)  # u8: the field an error is about
T_SECONDS = const(0x32)  # u32: lockout or window seconds left
T_VERSION = const(0x40)
T_NONCE_C = const(0x41)
T_NONCE_D = const(0x42)
T_PROOF = const(0x43)
T_STATE = const(0x50)  # INFO: u8, see STATE_NAMES
T_CAPS = const(0x51)  # INFO: u8 bits: 1 Wi-Fi, 2 profile 3, 4 identify, 8 factory reset
T_MAX_FRAME = const(0x52)  # INFO: u16
T_MAX_MESSAGE = const(0x53)  # INFO: u16
STATE_NAMES = ("unprovisioned", "window_open", "provisioned", "locked", "session_active")

# Serial transport: a fixed marker before each length lets the reader skip console output.
SYNC = b"\xa5\x5a"


class ProtocolError(ValueError):
    """Malformed input from the peer; `status` is the wire code to answer with."""

    def __init__(self, msg, status=BAD_FRAME):
        super().__init__(msg)
        self.status = status


# ---- frames ------------------------------------------------------------------------------


def frame(ftype, seq, body=b""):
    return bytes((ftype, seq & 0xFF)) + bytes(body)


def begin(seq, msg_id, total):
    return struct.pack(">BBBH", BEGIN, seq & 0xFF, msg_id & 0xFF, total)


def data(seq, msg_id, offset, chunk):
    return struct.pack(">BBBH", DATA, seq & 0xFF, msg_id & 0xFF, offset) + bytes(chunk)


def ack(seq, msg_id, nxt):
    return struct.pack(">BBBH", ACK, seq & 0xFF, msg_id & 0xFF, nxt)


def nack(seq, msg_id, expected, reason):
    return struct.pack(">BBBHB", NACK, seq & 0xFF, msg_id & 0xFF, expected, reason)


def parse(buf):
    """Split a frame: returns (type, seq, fields) where fields depend on the type:
    BEGIN (msg_id, total), DATA (msg_id, offset, chunk memoryview), ACK (msg_id, next),
    NACK (msg_id, expected, reason), ABORT (msg_id,), GET_INFO (), INFO (tlv memoryview,).
    Raises ProtocolError for a short, oversized or unknown frame."""
    n = len(buf)
    if n < 2:
        raise ProtocolError("frame shorter than 2 bytes")
    if n > MAX_FRAME:
        raise ProtocolError("frame longer than {} bytes".format(MAX_FRAME), TOO_BIG)
    ftype = buf[0]
    seq = buf[1]
    mv = memoryview(buf)
    if ftype == DATA and n >= _DATA_HEAD:
        return ftype, seq, (buf[2], (buf[3] << 8) | buf[4], mv[_DATA_HEAD:])
    if ftype in (BEGIN, ACK) and n == 5:
        return ftype, seq, (buf[2], (buf[3] << 8) | buf[4])
    if ftype == NACK and n == 6:
        return ftype, seq, (buf[2], (buf[3] << 8) | buf[4], buf[5])
    if ftype == ABORT and n == 3:
        return ftype, seq, (buf[2],)
    if ftype == GET_INFO and n == 2:
        return ftype, seq, ()
    if ftype == INFO:
        return ftype, seq, (mv[2:],)
    raise ProtocolError("bad frame type {} or length {}".format(ftype, n))


def with_digest(payload):
    """The message for `payload`: payload || SHA-256(payload)."""
    return bytes(payload) + hashlib.sha256(payload).digest()


def message_frames(message, msg_id, frame_size, seq):
    """Yield the BEGIN and DATA frames of `message` (digest included), seq counting from `seq`.

    `frame_size` is the largest frame the link carries (MIN_FRAME..MAX_FRAME)."""
    step = max(MIN_FRAME, min(frame_size, MAX_FRAME)) - _DATA_HEAD
    yield begin(seq, msg_id, len(message))
    mv = memoryview(message)
    off = 0
    while off < len(message):
        seq += 1
        yield data(seq, msg_id, off, mv[off : off + step])
        off += step


def chunk_size(frame_size):
    """Bytes of message carried by one DATA frame of `frame_size`."""
    return max(MIN_FRAME, min(frame_size, MAX_FRAME)) - _DATA_HEAD


# ---- reassembly ----------------------------------------------------------------------------

EV_NONE = const(0)
EV_ACK = const(1)
EV_NACK = const(2)
EV_MSG = const(3)
ACK_EVERY = const(4)  # the device ACKs every 4 DATA frames (the client keeps <= 8 in flight)


class Assembler:
    """Reassembles one message at a time into a preallocated buffer (sans-I/O).

    `feed(ftype, fields)` takes a parsed BEGIN/DATA/ABORT frame and returns
    (event, msg_id, value, reason): EV_ACK with the next expected offset, EV_NACK with the
    expected offset and a reason, EV_MSG with the payload length once the digest matched
    (`payload()` is then valid until the next feed), or EV_NONE. Duplicates (an offset below the
    next expected one, a repeated BEGIN, a retransmitted last message) are ignored and
    re-acknowledged, so a transfer can be resumed from any point."""

    def __init__(self, size=MAX_MESSAGE):
        self.buf = bytearray(size)
        self.mv = memoryview(self.buf)
        self.reset()
        self.done_id = -1
        self.done_total = 0

    def reset(self):
        self.msg_id = -1
        self.total = 0
        self.next = 0
        self.unacked = 0

    @property
    def partial(self):
        return self.msg_id >= 0

    def payload(self):
        return self.mv[: self.total - DIGEST]

    def feed(self, ftype, fields):
        if ftype == ABORT:
            if fields[0] == self.msg_id:
                self.reset()
            return EV_NONE, fields[0], 0, 0
        msg_id = fields[0]
        if ftype == BEGIN:
            total = fields[1]
            if msg_id == self.msg_id and total == self.total:
                return EV_ACK, msg_id, self.next, 0  # repeated BEGIN
            if msg_id == self.done_id and total == self.done_total and not self.partial:
                return EV_ACK, msg_id, total, 0  # retransmission of the last message
            self.reset()
            if total > len(self.buf):
                return EV_NACK, msg_id, 0, R_TOO_BIG
            if total <= DIGEST:
                return EV_NACK, msg_id, 0, R_MALFORMED
            self.msg_id = msg_id
            self.total = total
            return EV_NONE, msg_id, 0, 0
        # DATA
        off = fields[1]
        chunk = fields[2]
        if msg_id != self.msg_id:
            if msg_id == self.done_id and not self.partial:
                return EV_ACK, msg_id, self.done_total, 0
            return EV_NACK, msg_id, 0, R_GAP  # no BEGIN seen: the client starts over
        if off < self.next:
            return (EV_ACK, msg_id, self.next, 0) if off + len(chunk) <= self.next else (
                EV_NACK, msg_id, self.next, R_GAP)
        if off > self.next:
            return EV_NACK, msg_id, self.next, R_GAP
        end = off + len(chunk)
        if end > self.total or not chunk:
            self.reset()
            return EV_NACK, msg_id, 0, R_MALFORMED
        self.mv[off:end] = chunk
        self.next = end
        self.unacked += 1
        if end < self.total:
            if self.unacked >= ACK_EVERY:
                self.unacked = 0
                return EV_ACK, msg_id, end, 0
            return EV_NONE, msg_id, end, 0
        total = self.total
        body = self.mv[: total - DIGEST]
        if hashlib.sha256(body).digest() != bytes(self.mv[total - DIGEST : total]):
            self.reset()
            return EV_NACK, msg_id, 0, R_DIGEST
        self.done_id = msg_id
        self.done_total = total
        self.msg_id = -1
        self.next = 0
        self.unacked = 0
        self.total = total  # payload() stays valid until the next BEGIN
        return EV_MSG, msg_id, total - DIGEST, 0


# ---- TLV records ---------------------------------------------------------------------------


def u8(n):
    return bytes((n & 0xFF,))


def u16(n):
    return struct.pack(">H", n)


def u32(n):
    return struct.pack(">I", n)


def as_int(value):
    n = 0
    for b in value:
        n = (n << 8) | b
    return n


def tlv(records):
    """Encode [(tag, value)] where value is bytes, str (UTF-8) or memoryview."""
    out = []
    for tag, value in records:
        if isinstance(value, str):
            value = value.encode()
        if len(value) > 0xFFFF:
            raise ValueError("record too long")
        out.append(struct.pack(">BH", tag, len(value)))
        out.append(bytes(value))
    return b"".join(out)


def records(buf, start=0):
    """Decode TLV records from buf[start:]: a list of (tag, memoryview).

    Raises ProtocolError for a truncated record or more than _MAX_RECORDS records."""
    mv = memoryview(buf)
    out = []
    i = start
    n = len(buf)
    while i < n:
        if n - i < 3:
            raise ProtocolError("truncated record header")
        if len(out) >= _MAX_RECORDS:
            raise ProtocolError("more than {} records".format(_MAX_RECORDS), TOO_BIG)
        tag = buf[i]
        ln = (buf[i + 1] << 8) | buf[i + 2]
        i += 3
        if i + ln > n:
            raise ProtocolError("record 0x{:02x} runs past the message".format(tag))
        out.append((tag, mv[i : i + ln]))
        i += ln
    return out


def result(status, recs=()):
    """A RESULT payload: [0x80][status][records]."""
    return bytes((OP_RESULT, status)) + tlv(recs)


def command(op, recs=()):
    return bytes((op,)) + tlv(recs)


def error_records(reason, tag=None, seconds=None):
    out = [(T_REASON, reason)]
    if tag is not None:
        out.append((T_FIELD, u8(tag)))
    if seconds is not None:
        out.append((T_SECONDS, u32(seconds)))
    return out


# ---- stream transports ---------------------------------------------------------------------


def stream_frame(frm, sync=False):
    """One frame for a byte stream: [SYNC] u16 length || frame."""
    head = struct.pack(">H", len(frm))
    return (SYNC + head if sync else head) + bytes(frm)


class StreamDecoder:
    """Splits a byte stream into frames (sans-I/O). `feed(data)` then `next_frame()` until None.

    Without sync (TCP) a length of 0 or over MAX_FRAME is a protocol error (the caller closes).
    With sync (serial) bytes before a marker and bad lengths are skipped, so console output
    mixed into the stream is ignored. Bound: `_MAX_PENDING` bytes buffered (preallocated)."""

    def __init__(self, sync=False):
        self.sync = sync
        self.buf = bytearray(_MAX_PENDING)
        self.mv = memoryview(self.buf)
        self.start = 0
        self.end = 0

    def feed(self, chunk):
        n = len(chunk)
        if self.end + n > _MAX_PENDING:
            left = self.end - self.start
            self.mv[0:left] = self.mv[self.start : self.end]  # compact
            self.start, self.end = 0, left
            if left + n > _MAX_PENDING:
                self.end = 0
                raise ProtocolError("stream backlog over {} bytes".format(_MAX_PENDING), TOO_BIG)
        self.mv[self.end : self.end + n] = chunk
        self.end += n

    def next_frame(self):
        buf = self.buf
        while True:
            s = self.start
            head = 0
            if self.sync:
                i = buf.find(SYNC, s, self.end)
                if i < 0:
                    # keep a trailing first marker byte: the second may come with the next chunk
                    keep = self.end > s and buf[self.end - 1] == SYNC[0]
                    self.start = self.end - 1 if keep else self.end
                    return None
                s = self.start = i
                head = 2
            if self.end - s < head + 2:
                return None
            n = (buf[s + head] << 8) | buf[s + head + 1]
            if n < 2 or n > MAX_FRAME:
                if self.sync:
                    self.start = s + 1  # not a real marker: look for the next one
                    continue
                raise ProtocolError("stream frame length {} out of range".format(n), TOO_BIG)
            if self.end - s < head + 2 + n:
                return None
            frm = bytes(self.mv[s + head + 2 : s + head + 2 + n])
            self.start = s + head + 2 + n
            if self.start == self.end:
                self.start = self.end = 0
            return frm
