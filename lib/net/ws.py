"""RFC 6455 WebSocket frame codec for the client end, sans-I/O.

`Connection` decodes server frames (`feed(data)`, `next_event()`) and encodes masked client
frames (`send_*() -> bytearray`, section 5.3). It reassembles fragmented messages (section 5.4)
into one buffer of `max_message` bytes allocated once; a frame whose header pushes the message
past that bound fails with close code 1009 before any payload is buffered, so a big message never
becomes a MemoryError. Wire violations raise ProtocolError carrying the close code to send (1002,
1007, 1009). Imports no socket, asyncio or time: the caller supplies the bytes and the randomness
(`rand(n) -> n random bytes`, e.g. os.urandom). The opening handshake is in net.handshake.
"""

from micropython import const

# Largest message (after reassembly) accepted from the server. MicroOcpp caps incoming OCPP
# JSON at 4096 B on microcontrollers; 8 KB leaves room for GetConfiguration/profile payloads.
DEFAULT_MAX_MESSAGE = 8192

# Event kinds returned by next_event(), equal to the frame opcodes (RFC 6455 section 5.2).
TEXT = const(1)
BINARY = const(2)
CLOSE = const(8)
PING = const(9)
PONG = const(10)

_CONT = const(0)
_MAX_CONTROL = const(125)  # control frame payload limit, section 5.5
_MAX_HEADER = const(10)  # server frames are unmasked: 2 + 8 length bytes at most
_MAX_REASON = const(123)  # close reason bytes after the 2-byte code
_ST_HEAD = const(0)
_ST_PAYLOAD = const(1)
_ST_CLOSED = const(2)
_ST_FAILED = const(3)


class ProtocolError(Exception):
    """The server broke RFC 6455: `code` is the close code to answer with, `reason` a text."""

    def __init__(self, code, reason):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


def _utf8_strict(b, n):
    # RFC 3629 table: rejects overlongs, surrogates and code points over U+10FFFF, which
    # MicroPython's own decoder lets through. Only runs on text that is not pure ASCII.
    i = 0
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            k = 1
        elif 0xE0 <= c <= 0xEF:
            k = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            k = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if i + k >= n:  # truncated sequence
            return False
        c = b[i + 1]
        if c < lo or c > hi:
            return False
        for j in range(i + 2, i + k + 1):
            if b[j] & 0xC0 != 0x80:
                return False
        i += k + 1
    return True


def decode_utf8(mv):
    """Return `mv` (bytes-like) decoded as strict UTF-8, or None if it is not valid UTF-8."""
    try:
        s = str(mv, "utf-8")
    except UnicodeError:
        return None
    n = len(mv)
    if len(s) != n and not _utf8_strict(mv, n):  # equal lengths: pure ASCII, already valid
        return None
    return s


class Connection:
    """Frame codec for the client end of an open WebSocket.

    Receive: `feed(data)` hands over bytes; `next_event()` returns one event or None when it
    needs more data. The decoder reads `data` in place, so the caller must not reuse that buffer
    until next_event() has returned None. Events are tuples: (TEXT, str), (BINARY, bytes),
    (PING, bytes), (PONG, bytes), (CLOSE, code, reason); code 1005 means the close frame had no
    code. After a CLOSE event further input is ignored. A wire violation raises ProtocolError,
    and every later next_event() raises it again.
    Send: `send_text`, `send_binary`, `send_ping`, `send_pong`, `send_close` return one masked
    frame as a new bytearray. Memory: max_message + 125 + 10 bytes, allocated here once.
    """

    def __init__(self, rand, max_message=DEFAULT_MAX_MESSAGE):
        if max_message < 1:
            raise ValueError("max_message must be positive")
        self._rand = rand
        self.max_message = max_message
        # The message buffer; idle between connections, so the handshake may borrow it.
        self.buffer = bytearray(max_message)
        self._msg = memoryview(self.buffer)
        self._ctl = memoryview(bytearray(_MAX_CONTROL))
        self._hdr = bytearray(_MAX_HEADER)
        self.reset()

    def reset(self):
        """Forget all state for a new connection; keeps the buffers."""
        self._in = None
        self._inpos = 0
        self._st = _ST_HEAD
        self._hn = 0
        self._hneed = 2
        self._op = 0
        self._fin = False
        self._buf = self._msg
        self._pos = 0
        self._end = 0
        self._msg_op = 0
        self._msg_len = 0
        self._err = None
        self.close_sent = False

    # -- receiving ------------------------------------------------------------------------

    def feed(self, data):
        """Hand over received bytes (kept by reference until consumed by next_event())."""
        if self._st >= _ST_CLOSED:
            return  # closed or failed: the bytes are dropped, nothing is kept
        if self._in is not None and self._inpos < len(self._in):
            raise RuntimeError("feed() before next_event() consumed the previous data")
        self._in = memoryview(data) if len(data) else None
        self._inpos = 0

    def _fail(self, code, reason):
        self._err = ProtocolError(code, reason)
        self._st = _ST_FAILED
        self._in = None
        raise self._err

    def next_event(self):
        """Return the next event tuple, or None if more data is needed.

        Raises ProtocolError(code, reason) on a protocol violation (1002), invalid UTF-8 (1007)
        or a message over max_message (1009).
        """
        if self._err is not None:
            # A fresh object each time: re-raising one instance grows its traceback in MicroPython.
            raise ProtocolError(self._err.code, self._err.reason)
        while self._st != _ST_CLOSED:
            if self._st == _ST_HEAD:
                if not self._take_header():
                    return None
                self._begin_frame()
            data = self._in
            left = self._end - self._pos
            if left:
                if data is None:
                    return None
                i = self._inpos
                k = len(data) - i
                if k > left:
                    k = left
                if k:
                    p = self._pos
                    self._buf[p : p + k] = data[i : i + k]
                    self._pos = p + k
                    self._inpos = i + k
                if k < left:
                    return None
            self._st = _ST_HEAD
            ev = self._end_frame()
            if ev is not None:
                return ev
        self._in = None  # nothing is read after a Close frame (RFC 6455 section 5.5.1)
        return None

    def _take_header(self):
        data = self._in
        if data is None:
            return False
        hdr = self._hdr
        while self._hn < self._hneed:
            i = self._inpos
            if i >= len(data):
                return False
            hdr[self._hn] = data[i]
            self._inpos = i + 1
            self._hn += 1
            if self._hn == 2:
                n7 = hdr[1] & 0x7F
                self._hneed = 4 if n7 == 126 else (10 if n7 == 127 else 2)
        return True

    def _begin_frame(self):
        hdr = self._hdr
        b0 = hdr[0]
        b1 = hdr[1]
        self._hn = 0
        self._hneed = 2
        if b0 & 0x70:
            self._fail(1002, "reserved bits set")
        if b1 & 0x80:
            self._fail(1002, "masked frame from server")
        op = b0 & 0x0F
        fin = b0 & 0x80
        n = b1 & 0x7F
        if n == 126:
            n = hdr[2] << 8 | hdr[3]
            if n < 126:
                self._fail(1002, "non-minimal length")
        elif n == 127:
            if hdr[2] & 0x80:
                self._fail(1002, "length over 63 bits")
            n = 0
            for i in range(2, 10):
                n = n << 8 | hdr[i]
            if n < 0x10000:
                self._fail(1002, "non-minimal length")
        if op >= 8:
            if op > PONG:
                self._fail(1002, "unknown opcode")
            if not fin:
                self._fail(1002, "fragmented control frame")
            if n > _MAX_CONTROL:
                self._fail(1002, "control frame over 125 bytes")
            self._buf = self._ctl
            self._pos = 0
        else:
            if op == _CONT:
                if not self._msg_op:
                    self._fail(1002, "continuation without a message")
            elif op <= BINARY:
                if self._msg_op:
                    self._fail(1002, "new message inside a fragmented one")
                self._msg_op = op
                self._msg_len = 0
            else:
                self._fail(1002, "unknown opcode")
            # Checked on the header, before any payload byte is stored (h11's rule).
            if n > self.max_message - self._msg_len:
                self._fail(1009, "message over {} bytes".format(self.max_message))
            self._buf = self._msg
            self._pos = self._msg_len
        self._op = op
        self._fin = fin
        self._end = self._pos + n
        self._st = _ST_PAYLOAD

    def _end_frame(self):
        op = self._op
        n = self._end
        if op >= 8:
            if op == CLOSE:
                return self._close_event(n)
            return (op, bytes(self._ctl[:n]))
        self._msg_len = n
        if not self._fin:
            return None
        op = self._msg_op
        self._msg_op = 0
        self._msg_len = 0
        if op == TEXT:
            s = decode_utf8(self._msg[:n])
            if s is None:
                self._fail(1007, "invalid UTF-8 in text message")
            return (TEXT, s)
        return (BINARY, bytes(self._msg[:n]))

    def _close_event(self, n):
        ctl = self._ctl
        code = 1005
        reason = ""
        if n == 1:
            self._fail(1002, "close payload of 1 byte")
        if n >= 2:
            code = ctl[0] << 8 | ctl[1]
            if not valid_close_code(code):
                self._fail(1002, "invalid close code")
            reason = decode_utf8(ctl[2:n])
            if reason is None:
                self._fail(1007, "invalid UTF-8 in close reason")
        self._st = _ST_CLOSED
        self._in = None
        return (CLOSE, code, reason)

    # -- sending --------------------------------------------------------------------------

    def _frame(self, op, payload):
        n = len(payload)
        h = 2 if n < 126 else (4 if n < 0x10000 else 10)
        out = bytearray(h + 4 + n)
        out[0] = 0x80 | op
        if h == 2:
            out[1] = 0x80 | n
        elif h == 4:
            out[1] = 0xFE
            out[2] = n >> 8
            out[3] = n & 0xFF
        else:
            out[1] = 0xFF
            for i in range(8):
                out[9 - i] = (n >> (8 * i)) & 0xFF
        mask = self._rand(4)
        if len(mask) != 4:
            raise ValueError("rand(4) must return 4 bytes")
        out[h : h + 4] = mask
        h += 4
        if n:
            mv = memoryview(out)
            mv[h:] = payload
            m0, m1, m2, m3 = mask[0], mask[1], mask[2], mask[3]
            end = h + (n & ~3)
            i = h
            while i < end:  # unrolled by 4: about 1 ms for 8 KB on the Unix port
                mv[i] ^= m0
                mv[i + 1] ^= m1
                mv[i + 2] ^= m2
                mv[i + 3] ^= m3
                i += 4
            j = 0
            while i < h + n:
                mv[i] ^= mask[j]
                i += 1
                j += 1
        return out

    def _check_open(self):
        if self.close_sent:
            raise RuntimeError("WebSocket close already sent")

    def send_text(self, text):
        """Return a masked text frame for the str `text`."""
        self._check_open()
        return self._frame(TEXT, text.encode())

    def send_binary(self, data):
        """Return a masked binary frame for the bytes-like `data`."""
        self._check_open()
        return self._frame(BINARY, data)

    def send_ping(self, data=b""):
        """Return a masked ping frame. Raises ValueError if data is over 125 bytes."""
        if len(data) > _MAX_CONTROL:
            raise ValueError("ping data over 125 bytes")
        return self._frame(PING, data)

    def send_pong(self, data=b""):
        """Return a masked pong frame echoing a ping's data (at most 125 bytes)."""
        if len(data) > _MAX_CONTROL:
            raise ValueError("pong data over 125 bytes")
        return self._frame(PONG, data)

    def send_close(self, code=1000, reason=""):
        """Return a masked close frame; code None or 1005 sends no code.

        The reason is cut to 123 bytes at a character boundary. Raises ValueError for a code
        that may not be sent (1004, 1006, 1015, below 1000, 1016..2999, over 4999).
        """
        if code is None or code == 1005:
            self.close_sent = True
            return self._frame(CLOSE, b"")
        if not valid_close_code(code):
            raise ValueError("close code {} may not be sent".format(code))
        self.close_sent = True
        r = reason.encode()
        if len(r) > _MAX_REASON:
            k = _MAX_REASON
            while k and r[k] & 0xC0 == 0x80:  # do not split a UTF-8 sequence
                k -= 1
            r = r[:k]
        payload = bytearray(2 + len(r))
        payload[0] = code >> 8
        payload[1] = code & 0xFF
        payload[2:] = r
        return self._frame(CLOSE, payload)


def valid_close_code(code):
    """True for close codes that may appear in a Close frame (RFC 6455 section 7.4)."""
    if 1000 <= code <= 1014:
        return code not in (1004, 1005, 1006)
    return 3000 <= code <= 4999
