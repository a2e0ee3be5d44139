"""HTTP/1.1 response parser (sans-I/O): status line, headers, body by length, chunks or EOF.

`ResponseParser.feed(data)` takes bytes as they arrive (b"" = the stream ended); `next_event()`
returns (HEAD, status), (DATA, memoryview), (END,) or None when it needs more input (RFC 9112
sections 4-7: interim 1xx responses are skipped, 204/304 have no body, chunked wins over
Content-Length, a body without either ends at EOF). DATA is a slice of the fed buffer, valid
until the next feed(): nothing is copied. After HEAD, `status`, `reason`, `length`, `chunked`
and `location` describe the response; other headers are not kept.
Bounds: one preallocated line buffer (`line_max`, default _LINE_MAX) for the status line, each
header and chunk-size line; at most _MAX_HEADERS header or trailer lines; Content-Length and
chunk sizes up to _MAX_LENGTH. Anything else raises HTTPError('http', ...). No I/O here.
"""

from micropython import const

HEAD = const(1)
DATA = const(2)
END = const(3)

_LINE_MAX = const(512)
_MAX_HEADERS = const(48)
_MAX_LENGTH = const(0x3FFFFFFF)
_MAX_HEX = const(7)  # hex digits of a chunk size: at most 0xFFFFFFF, below _MAX_LENGTH
_HEXDIG = b"0123456789abcdefABCDEF"

_S_STATUS = const(0)
_S_HEADER = const(1)
_S_BODY = const(2)
_S_EOF_BODY = const(3)
_S_CHUNK_SIZE = const(4)
_S_CHUNK_DATA = const(5)
_S_CHUNK_END = const(6)
_S_TRAILER = const(7)
_S_DONE = const(8)


class HTTPError(Exception):
    """An HTTP exchange failed: `stage` (as net.link.STAGES plus 'url', 'config', 'http',
    'status', 'redirect'), `detail` text, and `status` for a refused response."""

    def __init__(self, stage, detail="", status=None):
        super().__init__(stage, detail)
        self.stage = stage
        self.detail = detail
        self.status = status

    def __str__(self):
        return "{}: {}".format(self.stage, self.detail)


def _bad(why):
    return HTTPError("http", why)


def _length(text):
    t = text.strip()
    if not t or len(t) > 10 or not t.isdigit() or int(t) > _MAX_LENGTH:
        raise _bad("bad Content-Length {!r}".format(text[:16]))
    return int(t)


class ResponseParser:
    """Parses one response; reset() to reuse the line buffer for the next one."""

    def __init__(self, line_max=_LINE_MAX):
        self._line = bytearray(line_max)
        self.reset()

    def reset(self, no_body=False):
        """Start a new response; `no_body` for the answer to a HEAD request."""
        self.status = 0
        self.reason = ""
        self.length = None
        self.chunked = False
        self.location = None
        self._no_body = no_body
        self._state = _S_STATUS
        self._interim = False
        self._lines = 0
        self._left = 0
        self._n = 0
        self._in = None
        self._pos = 0
        self._eof = False

    def feed(self, data):
        """Add input (bytes, bytearray or memoryview); b"" means end of stream."""
        if self._in is not None and self._pos < len(self._in):
            raise RuntimeError("feed() before the previous input was consumed")
        if not data:
            self._eof = True
            self._in = None
        else:
            self._in = memoryview(data)
            self._pos = 0

    def _take_line(self):
        # Length of a complete line (CR LF or LF stripped) now in self._line, or -1.
        buf = self._in
        if buf is None:
            return -1
        line = self._line
        lim = len(line)
        n = self._n
        i = self._pos
        end = len(buf)
        while i < end:
            b = buf[i]
            i += 1
            if b == 10:
                self._pos = i
                self._n = 0
                if n and line[n - 1] == 13:
                    n -= 1
                return n
            if n >= lim:
                raise _bad("line over {} bytes".format(lim))
            line[n] = b
            n += 1
        self._pos = i
        self._n = n
        return -1

    def next_event(self):
        """The next event or None (need data). Raises HTTPError('http') for a bad response."""
        while True:
            st = self._state
            if st == _S_BODY or st == _S_CHUNK_DATA:
                if self._left == 0:
                    if st == _S_BODY:
                        self._state = _S_DONE
                        return (END,)
                    self._state = _S_CHUNK_END
                    continue
                return self._data(self._left)
            if st == _S_EOF_BODY:
                ev = self._data(_MAX_LENGTH)
                if ev is None and self._eof:
                    self._state = _S_DONE
                    return (END,)
                return ev
            if st == _S_DONE:
                return None
            n = self._take_line()
            if n < 0:
                if self._eof:
                    where = "before the response head" if st <= _S_HEADER else "inside a chunk"
                    raise _bad("connection closed " + where)
                return None
            ev = self._on_line(bytes(self._line[:n]))
            if ev is not None:
                return ev

    def _data(self, limit):
        avail = len(self._in) - self._pos if self._in is not None else 0
        if avail == 0:
            if self._eof and self._state != _S_EOF_BODY:
                raise _bad("body truncated")
            return None
        k = min(avail, limit)
        mv = self._in[self._pos : self._pos + k]
        self._pos += k
        if self._state != _S_EOF_BODY:
            self._left -= k
        return (DATA, mv)

    def _on_line(self, line):
        st = self._state
        if st == _S_STATUS:
            self._status_line(line)
            return None
        if st == _S_CHUNK_SIZE:
            self._chunk_size(line)
            return None
        if st == _S_CHUNK_END:
            if line:
                raise _bad("chunk not followed by CRLF")
            self._state = _S_CHUNK_SIZE
            return None
        self._lines += 1
        if self._lines > _MAX_HEADERS:
            raise _bad("more than {} header lines".format(_MAX_HEADERS))
        if st == _S_TRAILER:
            if not line:
                self._state = _S_DONE
                return (END,)
            return None
        if not line:
            return self._end_of_head()
        if line[0] in (32, 9):
            raise _bad("obsolete header line folding")
        i = line.find(b":")
        if i <= 0:
            raise _bad("header line without a name")
        name = line[:i].strip().lower()
        value = line[i + 1 :].strip()
        if name == b"content-length":
            n = _length(value.decode())
            if self.length is not None and self.length != n:
                raise _bad("conflicting Content-Length headers")
            self.length = n
        elif name == b"transfer-encoding":
            codings = value.lower().split(b",")
            if codings[-1].strip() == b"chunked":
                self.chunked = True
            elif value.lower() != b"identity":
                raise _bad("unsupported Transfer-Encoding {}".format(value[:32].decode()))
        elif name == b"location":
            self.location = value.decode()
        return None

    def _status_line(self, line):
        if not line.startswith(b"HTTP/1.") or len(line) < 12 or line[12:13] not in (b"", b" "):
            raise _bad("bad status line {!r}".format(line[:40]))
        code = line[9:12]
        if line[8:9] != b" " or not code.isdigit():
            raise _bad("bad status line {!r}".format(line[:40]))
        self.status = int(code)
        self.reason = line[13:].decode() if len(line) > 13 else ""
        if self.status == 101:
            raise _bad("unexpected 101 Switching Protocols")
        self._interim = self.status < 200
        self._lines = 0
        self._state = _S_HEADER

    def _end_of_head(self):
        if self._interim:  # 100 Continue and friends: the real response follows
            self.length = None
            self.chunked = False
            self.location = None
            self._state = _S_STATUS
            return None
        if self._no_body or self.status in (204, 304):
            self._state = _S_BODY
            self._left = 0
        elif self.chunked:
            self._state = _S_CHUNK_SIZE
        elif self.length is not None:
            self._state = _S_BODY
            self._left = self.length
        else:
            self._state = _S_EOF_BODY
        self._lines = 0
        return (HEAD, self.status)

    def _chunk_size(self, line):
        semi = line.find(b";")
        text = (line[:semi] if semi >= 0 else line).strip()
        if not text or len(text) > _MAX_HEX:
            raise _bad("bad chunk size line")
        for b in text:
            if b not in _HEXDIG:
                raise _bad("bad chunk size line")
        n = int(text, 16)
        if n == 0:
            self._state = _S_TRAILER
        else:
            self._state = _S_CHUNK_DATA
            self._left = n
