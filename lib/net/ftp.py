"""Minimal FTP client (RFC 959, passive mode, binary): firmware downloads, diagnostics uploads.

`transfer(link, url, on_data=None, body=None)` logs in (user information from the URL, else
anonymous), sets TYPE I, opens the data connection with PASV and RETRieves the file into
`on_data(memoryview)` chunk by chunk, or STOREs `body` (bytes, or a callable returning an
iterable of chunks, as for net.http). The data connection goes to the control connection's host
with the port from the 227 reply (the address in it is ignored, as curl does: servers behind NAT
announce private addresses). Plain FTP only (no FTPS): credentials and data travel in clear, so
OCPP deployments that care use https. Bounds: reply lines of _LINE_MAX bytes, at most
_REPLY_LINES lines per reply, one receive buffer of _CHUNK bytes; every wait has `timeout_ms`.
Errors: FTPError (a net.httpresp.HTTPError, so callers handle both alike) with stage 'url',
'offline', 'dns', 'tcp', 'timeout' or 'ftp' (an unexpected reply, its code in `status`).
"""

import asyncio
from micropython import const

from net.httpresp import HTTPError
from net.link import ConnectError, _errtext

_CHUNK = const(1024)
_LINE_MAX = const(512)
_REPLY_LINES = const(64)
_TIMEOUT_MS = const(30000)
_URL_MAX = const(512)


class FTPError(HTTPError):
    pass


def split_url(url):
    """ftp://[user[:password]@]host[:port]/path -> (host, port, path, user, password).

    The path is percent-decoded and must name a file. Raises ValueError.
    """
    from net.http import HOST_CHARS, parse_port, unquote

    if not isinstance(url, str) or not 0 < len(url) <= _URL_MAX or url[:6].lower() != "ftp://":
        raise ValueError("not an ftp:// URL of at most {} characters".format(_URL_MAX))
    for ch in url:
        if ch <= " " or ch == "\x7f":
            raise ValueError("URL contains spaces or control characters")
    rest = url[6:]
    i = rest.find("/")
    if i < 0 or i == len(rest) - 1:
        raise ValueError("ftp URL names no file")
    authority, path = rest[:i], unquote(rest[i:].split(";", 1)[0])
    user, password = "anonymous", "evse@"
    j = authority.rfind("@")
    if j >= 0:
        cred = unquote(authority[:j])
        authority = authority[j + 1 :]
        k = cred.find(":")
        user, password = (cred[:k], cred[k + 1 :]) if k >= 0 else (cred, "")
    host, port = authority, 21
    k = authority.rfind(":")
    if k >= 0:
        host, port = authority[:k], parse_port(authority[k + 1 :])
    if not host:
        raise ValueError("URL has no host")
    for ch in host:
        if ch not in HOST_CHARS:
            raise ValueError("bad character in host")
    for ch in path + user + password:
        if ch in "\r\n":
            raise ValueError("line break in the URL")
    return host, port, path, user, password


def pasv_port(text):
    """The data port of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` reply text."""
    i = text.find("(")
    j = text.find(")", i + 1)
    if i < 0 or j < 0:
        raise FTPError("ftp", "bad PASV reply")
    parts = text[i + 1 : j].split(",")
    if len(parts) != 6:
        raise FTPError("ftp", "bad PASV reply")
    try:
        p1, p2 = int(parts[4]), int(parts[5])
    except ValueError:
        raise FTPError("ftp", "bad PASV reply")
    if not (0 <= p1 < 256 and 0 <= p2 < 256) or p1 == p2 == 0:
        raise FTPError("ftp", "bad PASV port")
    return p1 * 256 + p2


class _Control:
    """The control connection: commands out, replies in (bounded lines)."""

    def __init__(self, stream, tm):
        self.s = stream
        self.tm = tm
        self._buf = bytearray()  # bounded by _LINE_MAX in _line()
        self._rx = memoryview(bytearray(128))

    async def _io(self, aw, what):
        try:
            return await asyncio.wait_for_ms(aw, self.tm)
        except asyncio.TimeoutError:
            raise FTPError("timeout", "{} took over {} ms".format(what, self.tm))
        except OSError as e:
            raise FTPError("tcp", "{}: {}".format(what, _errtext(e)))

    async def _line(self):
        while True:
            i = self._buf.find(b"\n")
            if i >= 0:
                line = bytes(self._buf[:i]).rstrip(b"\r")
                self._buf = self._buf[i + 1 :]
                return line.decode()
            if len(self._buf) > _LINE_MAX:
                raise FTPError("ftp", "reply line over {} bytes".format(_LINE_MAX))
            n = await self._io(self.s.readinto(self._rx), "reply")
            if not n:
                raise FTPError("tcp", "control connection closed")
            self._buf += self._rx[:n]

    async def reply(self):
        """One reply (multi-line ones folded): returns (code, text of its last line)."""
        line = await self._line()
        code = line[:3]
        if not code.isdigit():
            raise FTPError("ftp", "bad reply {!r}".format(line[:40]))
        if line[3:4] == "-":
            for _ in range(_REPLY_LINES):
                line = await self._line()
                if line[:3] == code and line[3:4] != "-":
                    break
            else:
                raise FTPError("ftp", "reply over {} lines".format(_REPLY_LINES))
        return int(code), line

    async def cmd(self, text, ok, what=None):
        """Send a command, return the reply text if its code is in `ok`, else FTPError."""
        self.s.write((text + "\r\n").encode())
        await self._io(self.s.drain(), "write")
        code, line = await self.reply()
        if code not in ok:
            raise FTPError("ftp", "{}: {}".format(what or text.split(" ")[0], line[:80]), code)
        return line


async def _connect(link, host, port, tm):
    try:
        return await link.connect(host, port, None, tm)
    except ConnectError as e:
        raise FTPError(e.stage, e.detail)


def _close(stream):
    try:
        stream.s.close()
    except OSError:
        pass


async def transfer(link, url, on_data=None, body=None, timeout_ms=_TIMEOUT_MS, buf=None):
    """RETR `url` into on_data (body None) or STOR `body` there. Raises FTPError."""
    try:
        host, port, path, user, password = split_url(url)
    except ValueError as e:
        raise FTPError("url", str(e))
    tm = timeout_ms
    stream = await _connect(link, host, port, tm)
    data = None
    try:
        c = _Control(stream, tm)
        code, line = await c.reply()
        if code != 220:
            raise FTPError("ftp", "greeting: " + line[:80], code)
        line = await c.cmd("USER " + user, (230, 331), "USER")
        if line.startswith("331"):
            await c.cmd("PASS " + password, (230, 202), "PASS")
        await c.cmd("TYPE I", (200,))
        dport = pasv_port(await c.cmd("PASV", (227,)))
        data = await _connect(link, host, dport, tm)
        if body is None:
            await c.cmd("RETR " + path, (125, 150), "RETR")
            rx = memoryview(buf if buf is not None else bytearray(_CHUNK))
            while True:
                n = await c._io(data.readinto(rx), "read")
                if n is None:
                    continue
                if n == 0:
                    break
                if on_data is not None:
                    on_data(rx[:n])
        else:
            await c.cmd("STOR " + path, (125, 150), "STOR")
            chunks = (body,) if isinstance(body, (bytes, bytearray, memoryview)) else body()
            for chunk in chunks:
                data.write(chunk)
                await c._io(data.drain(), "write")
        _close(data)
        data = None
        code, line = await c.reply()
        if code not in (226, 250):
            raise FTPError("ftp", "transfer: " + line[:80], code)
        try:
            await c.cmd("QUIT", (221,))
        except HTTPError:
            pass  # the file is there; a server that hangs up at once is fine
    finally:
        if data is not None:
            _close(data)
        _close(stream)
