"""WebSocket opening handshake, client side, sans-I/O (RFC 6455 sections 4.1 and 4.2.2).

`Handshake` builds the HTTP/1.1 upgrade request offering subprotocol `ocpp1.6` (OCPP-J 1.6
section 3) with an optional `Authorization: Basic` header (security profiles 1 and 2), and checks
the server's answer: status 101, Upgrade, Connection, Sec-WebSocket-Accept and the selected
subprotocol. The response head is bounded by MAX_RESPONSE_HEAD; refusals raise HandshakeError
with the stage the charger reports. Imports no socket, asyncio or time; the key comes from a
caller-given `rand(n)`.
"""

import binascii
import hashlib

MAX_RESPONSE_HEAD = 2048  # bound on the HTTP response status line + headers
SUBPROTOCOL = "ocpp1.6"
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class HandshakeError(Exception):
    """The upgrade response was refused or invalid.

    `stage` is "auth" (HTTP 401/403/404), "http" (another status or a malformed response),
    "subprotocol" (ocpp1.6 not selected) or "ws" (bad Upgrade/Connection/Accept/extensions);
    `detail` is a short text, `status` the HTTP status or 0.
    """

    def __init__(self, stage, detail, status=0):
        super().__init__(stage, detail)
        self.stage = stage
        self.detail = detail
        self.status = status


def _b64(data):
    return binascii.b2a_base64(data)[:-1]  # drop the trailing newline


def accept_value(key):
    """Return the Sec-WebSocket-Accept value (bytes) expected for a base64 `key` (bytes)."""
    return _b64(hashlib.sha1(key + _GUID).digest())


class Handshake:
    """Client side of the opening handshake (RFC 6455 sections 4.1 and 4.2.2).

    `request()` returns the upgrade request; `feed(data)` takes response bytes until the head is
    complete. `buf`, a bytearray of at least MAX_RESPONSE_HEAD bytes, holds the response head (the
    client lends its idle message buffer, so connecting allocates no 2 KB block); without it one
    is allocated for the life of this object.
    """

    def __init__(self, host, path, rand, port=None, secure=False, authorization=None, buf=None):
        for text in (host, path, authorization or ""):
            if "\r" in text or "\n" in text:
                raise ValueError("CR/LF in handshake field")
        self._host = host
        self._path = path
        self._port = port
        self._secure = secure
        self._auth = authorization
        self.key = _b64(rand(16))
        if buf is None or len(buf) < MAX_RESPONSE_HEAD:
            buf = bytearray(MAX_RESPONSE_HEAD)
        self._head = buf
        self._n = 0

    def request(self):
        """Return the HTTP upgrade request as bytes."""
        host = self._host
        if ":" in host:
            host = "[" + host + "]"
        if self._port is not None and self._port != (443 if self._secure else 80):
            host = "{}:{}".format(host, self._port)
        auth = ""
        if self._auth:
            auth = "Authorization: {}\r\n".format(self._auth)
        return (
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: {}\r\n{}\r\n"
        ).format(self._path, host, self.key.decode(), SUBPROTOCOL, auth).encode()

    def feed(self, data):
        """Take response bytes.

        Returns None while the head (up to the blank line) is incomplete, then the bytes after
        the head (frames the server sent at once, possibly b"") once it is complete and valid.
        Raises HandshakeError for a refused or invalid response or a head over MAX_RESPONSE_HEAD.
        """
        head = self._head
        n = self._n
        start = n - 3 if n > 3 else 0
        k = len(data)
        room = MAX_RESPONSE_HEAD - n
        take = k if k < room else room
        head[n : n + take] = data[:take]
        n += take
        self._n = n
        end = head.find(b"\r\n\r\n", start, n)
        if end < 0:
            if n >= MAX_RESPONSE_HEAD:
                why = "response head over {} bytes".format(MAX_RESPONSE_HEAD)
                raise HandshakeError("http", why)
            return None
        self._check(end)
        used = end + 4 - (n - take)  # bytes of `data` that belonged to the head
        return bytes(data[used:])

    def _check(self, end):
        try:
            text = str(memoryview(self._head)[:end], "utf-8")
        except UnicodeError:
            raise HandshakeError("http", "response head is not text")
        lines = text.split("\r\n")
        status = lines[0].split(" ", 2)
        if len(status) < 2 or not status[0].startswith("HTTP/1.") or not status[1].isdigit():
            raise HandshakeError("http", "bad status line")
        code = int(status[1])
        if code != 101:
            stage = "auth" if code in (401, 403, 404) else "http"
            raise HandshakeError(stage, "HTTP {}".format(code), code)
        upgrade = connection = accept = proto = None
        for line in lines[1:]:
            i = line.find(":")
            if i <= 0 or line[0] in " \t":
                raise HandshakeError("http", "malformed header line")
            name = line[:i].strip().lower()
            value = line[i + 1 :].strip()
            if name == "upgrade":
                upgrade = value.lower()
            elif name == "connection":
                connection = value.lower()
            elif name == "sec-websocket-accept":
                accept = value
            elif name == "sec-websocket-protocol":
                proto = value
            elif name == "sec-websocket-extensions" and value:
                raise HandshakeError("ws", "server chose an extension we did not offer")
        if upgrade != "websocket":
            raise HandshakeError("ws", "missing Upgrade: websocket")
        if connection is None or "upgrade" not in [t.strip() for t in connection.split(",")]:
            raise HandshakeError("ws", "missing Connection: Upgrade")
        if accept is None or accept.encode() != accept_value(self.key):
            raise HandshakeError("ws", "bad Sec-WebSocket-Accept")
        if proto != SUBPROTOCOL:
            raise HandshakeError("subprotocol", "server selected {!r}, not ocpp1.6".format(proto))
