"""Streaming HTTP/1.1 client over a network link: firmware downloads and diagnostics uploads.

`request(link, method, url, ...)` opens one connection per exchange through `link.connect()`
(net.link: TCP, TLS, the simulator's gateway), sends the request with `Connection: close`,
parses the answer with the sans-I/O net.httpresp, follows at most `redirects` redirects and
hands the body of the final 2xx answer to `on_data(memoryview)` chunk by chunk. Body to send:
bytes, or a callable returning an iterable of byte chunks, called once to count the length and
again for each attempt, so an upload is never held whole in RAM.
TLS: https needs `ca` (the provisioned CA, DER or PEM); there is no unverified mode, and without
a CA the request fails with stage 'config'. A redirect from https to http is refused.
Bounds: one receive buffer of _CHUNK bytes (or the caller's `buf`); every connect, write and read
waits at most `timeout_ms`. Errors: HTTPError(stage, detail, status) from net.httpresp;
exceptions raised by on_data pass through unchanged.
"""

import asyncio
from micropython import const

from net.httpresp import ResponseParser, HTTPError, HEAD, DATA, END
from net.link import ConnectError, _errtext

_CHUNK = const(1024)  # receive buffer: the most body bytes in RAM at once
_TIMEOUT_MS = const(30000)
_MAX_REDIRECTS = const(3)
_URL_MAX = const(512)
HOST_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._"
_AGENT = "evse-mp"


def parse_port(text):
    """A decimal port 1..65535; raises ValueError."""
    if not text or len(text) > 5 or not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError("port must be 1..65535")
    return int(text)


def unquote(text):
    """Percent-decode `text` (RFC 3986 section 2.1); a stray "%" stays as it is."""
    if "%" not in text:
        return text
    out = bytearray()
    b = text.encode()
    i = 0
    while i < len(b):
        if b[i] == 0x25 and i + 2 < len(b):
            try:
                out.append(int(b[i + 1 : i + 3], 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(b[i])
        i += 1
    return out.decode()


def split_url(url):
    """Split an http(s) URL: returns (scheme, host, port, target, userinfo or None).

    The target is the path plus query ("/" if empty); a fragment is dropped. Raises ValueError
    for another scheme, no host, a bad port, spaces or control characters, or a URL over 512.
    """
    if not isinstance(url, str) or not 0 < len(url) <= _URL_MAX:
        raise ValueError("URL must be 1..{} characters".format(_URL_MAX))
    for ch in url:
        if ch <= " " or ch == "\x7f":
            raise ValueError("URL contains spaces or control characters")
    i = url.find("://")
    scheme = url[:i].lower() if i > 0 else ""
    if scheme == "http":
        port = 80
    elif scheme == "https":
        port = 443
    else:
        raise ValueError("URL scheme must be http or https")
    rest = url[i + 3 :]
    j = rest.find("#")
    if j >= 0:
        rest = rest[:j]
    cut = len(rest)
    for sep in "/?":
        j = rest.find(sep)
        if 0 <= j < cut:
            cut = j
    authority, target = rest[:cut], rest[cut:] or "/"
    if target[0] == "?":
        target = "/" + target
    userinfo = None
    j = authority.rfind("@")
    if j >= 0:
        userinfo = unquote(authority[:j])
        authority = authority[j + 1 :]
    if authority.startswith("["):
        j = authority.find("]")
        if j < 0:
            raise ValueError("unclosed IPv6 bracket")
        host, tail = authority[1:j], authority[j + 1 :]
        if tail:
            if tail[0] != ":":
                raise ValueError("junk after the IPv6 literal")
            port = parse_port(tail[1:])
    else:
        host = authority
        j = authority.rfind(":")
        if j >= 0:
            host = authority[:j]
            port = parse_port(authority[j + 1 :])
        for ch in host:
            if ch not in HOST_CHARS:
                raise ValueError("bad character in host")
    if not host:
        raise ValueError("URL has no host")
    return scheme, host, port, target, userinfo


def redact(url):
    """The URL without user information, for logs (never log passwords)."""
    i = url.find("://")
    j = url.find("@", i + 3) if i >= 0 else -1
    k = url.find("/", i + 3) if i >= 0 else -1
    if j < 0 or (0 <= k < j):
        return url
    return url[: i + 3] + "***@" + url[j + 1 :]


def _join(base, loc):
    # Location -> absolute URL (absolute, scheme-relative, absolute path or relative path).
    if loc.startswith("http://") or loc.startswith("https://"):
        return loc
    scheme, host, port, target, userinfo = split_url(base)
    if loc.startswith("//"):
        return scheme + ":" + loc
    h = "[{}]".format(host) if ":" in host else host
    origin = "{}://{}:{}".format(scheme, h, port)
    if loc.startswith("/"):
        return origin + loc
    path = target.split("?", 1)[0]
    return origin + path[: path.rfind("/") + 1] + loc


def _body_length(body):
    if body is None:
        return 0
    if isinstance(body, (bytes, bytearray, memoryview)):
        return len(body)
    n = 0
    for chunk in body():
        n += len(chunk)
    return n


async def _io(aw, timeout_ms, what):
    try:
        return await asyncio.wait_for_ms(aw, timeout_ms)
    except asyncio.TimeoutError:
        raise HTTPError("timeout", "{} took over {} ms".format(what, timeout_ms))


def _head(method, host, port, default_port, target, userinfo, headers, length, has_body):
    h = "[{}]".format(host) if ":" in host else host
    if port != default_port:
        h = "{}:{}".format(h, port)
    parts = [
        "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {}\r\n".format(method, target, h, _AGENT),
        "Accept-Encoding: identity\r\nConnection: close\r\n",
    ]
    if userinfo is not None:
        import binascii

        cred = binascii.b2a_base64(userinfo.encode()).strip().decode()
        parts.append("Authorization: Basic {}\r\n".format(cred))
    if has_body:
        parts.append("Content-Length: {}\r\n".format(length))
    for name, value in headers or ():
        parts.append("{}: {}\r\n".format(name, value))
    parts.append("\r\n")
    return "".join(parts).encode()


def _net_error(e, tls, what):
    # mbedTLS raises ValueError naming a certificate it refused; other failures are OSError.
    if isinstance(e, ValueError):
        return HTTPError("cert", _errtext(e))
    return HTTPError("tls" if tls else "tcp", "{}: {}".format(what, _errtext(e)))


async def _send(stream, data, tm, tls):
    try:
        stream.write(data)
        await _io(stream.drain(), tm, "write")
    except (OSError, ValueError) as e:
        if isinstance(e, ValueError) and not tls:
            raise
        raise _net_error(e, tls, "write")


async def _read(stream, rx, tm, tls):
    while True:  # a TLS socket returns None while a record is incomplete
        try:
            n = await _io(stream.readinto(rx), tm, "read")
        except (OSError, ValueError) as e:
            if isinstance(e, ValueError) and not tls:
                raise
            raise _net_error(e, tls, "read")
        if n is not None:
            return n


async def _exchange(link, method, parts, ssl_ctx, headers, body, length, on_data, rx, parser, tm):
    """One request on a new connection; returns (status, location or None)."""
    scheme, host, port, target, userinfo = parts
    tls = ssl_ctx is not None
    try:
        stream = await link.connect(host, port, ssl_ctx, tm)
    except ConnectError as e:
        raise HTTPError(e.stage, e.detail)
    try:
        head = _head(method, host, port, 443 if tls else 80, target, userinfo, headers, length,
                     method in ("PUT", "POST"))
        await _send(stream, head, tm, tls)  # with TLS the handshake runs inside this write
        if body is not None and length:
            if isinstance(body, (bytes, bytearray, memoryview)):
                await _send(stream, body, tm, tls)
            else:
                for chunk in body():
                    await _send(stream, chunk, tm, tls)
        parser.reset(no_body=method == "HEAD")
        return await _response(stream, method, parser, on_data, rx, tm, tls)
    finally:
        try:
            stream.s.close()
        except OSError:
            pass


async def _response(stream, method, parser, on_data, rx, tm, tls):
    status = 0
    follow = False
    while True:
        ev = parser.next_event()
        if ev is None:
            n = await _read(stream, rx, tm, tls)
            parser.feed(rx[:n] if n else b"")
            continue
        kind = ev[0]
        if kind == HEAD:
            status = ev[1]
            if status in (301, 302, 303, 307, 308) and parser.location:
                if method == "GET" or status in (307, 308):
                    return status, parser.location
            if not 200 <= status < 300:
                raise HTTPError("status", "{} {}".format(status, parser.reason[:40]), status)
            follow = True
        elif kind == DATA:
            if follow and on_data is not None:
                on_data(ev[1])
        elif kind == END:
            return status, None


async def request(link, method, url, on_data=None, body=None, headers=None, ca=None,
                  timeout_ms=_TIMEOUT_MS, redirects=_MAX_REDIRECTS, buf=None):
    """Run one HTTP exchange (following redirects); returns the final 2xx status.

    `on_data(mv)` gets each body chunk of the 2xx answer (a memoryview valid during the call);
    `body` is bytes or a callable returning an iterable of chunks (PUT/POST); `headers` an
    iterable of (name, value); `ca` the CA certificate for https. GET follows 301/302/303/307/
    308, PUT/POST only 307/308 (with the body again).
    Raises HTTPError: stage 'url' (bad URL), 'config' (https without a CA), 'offline', 'dns',
    'tcp', 'tls', 'cert', 'timeout', 'http' (bad response), 'status' (not 2xx: `.status`),
    'redirect' (too many, or https -> http).
    """
    rx = memoryview(buf if buf is not None else bytearray(_CHUNK))
    parser = ResponseParser()
    length = _body_length(body)
    ssl_ctx = None
    was_tls = False
    for _ in range(redirects + 1):
        try:
            parts = split_url(url)
        except ValueError as e:
            raise HTTPError("url", "{}: {}".format(redact(url)[:80], e))
        tls = parts[0] == "https"
        if was_tls and not tls:
            raise HTTPError("redirect", "refusing a redirect from https to http")
        was_tls = was_tls or tls
        if tls and ssl_ctx is None:
            if not ca:
                raise HTTPError("config", "https needs the CA certificate; none is provisioned")
            from net.tls import client_context

            try:
                ssl_ctx = client_context(ca)
            except ValueError as e:
                raise HTTPError("config", "CA certificate unusable: {}".format(e))
        status, loc = await _exchange(link, method, parts, ssl_ctx if tls else None, headers,
                                      body, length, on_data, rx, parser, timeout_ms)
        if loc is None:
            return status
        url = _join(url, loc)  # user information only goes where a URL names it
    raise HTTPError("redirect", "more than {} redirects".format(redirects))
