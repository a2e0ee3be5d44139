"""WebSocket URL parsing and the OCPP-J Charge Point path (OCPP-J 1.6 section 3.1.1).

`parse_url` splits a `ws://` or `wss://` URL (RFC 6455 section 3) into scheme, host, port and path;
`join_cp_id` appends the Charge Point identity as the last path segment, percent-encoded per
RFC 3986 section 3.3. Pure functions, no I/O; every bad input raises ValueError with a reason.
"""

from micropython import const

_MAX_URL = const(512)  # bound on the configured URL; OCPP's CentralSystemUrl is far shorter
_HEX = "0123456789ABCDEF"
# RFC 3986 pchar without pct-encoded: unreserved / sub-delims / ":" / "@".
_PCHAR = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@"
_HOST_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._"


def _bad(url, why):
    return ValueError("bad WebSocket URL {!r}: {}".format(url[:64], why))


def _port(url, text):
    if not text or len(text) > 5 or not text.isdigit():
        raise _bad(url, "port must be 1..65535")
    port = int(text)
    if not 0 < port < 65536:
        raise _bad(url, "port must be 1..65535")
    return port


def parse_url(url):
    """Split a WebSocket URL.

    Returns (scheme, host, port, path): scheme "ws" or "wss"; host without IPv6 brackets; port
    defaulting to 80 / 443; path starting with "/" (default "/"), query kept.
    Raises ValueError for another scheme, a missing or malformed host, a bad port, user
    information, a fragment (RFC 6455 section 3 forbids it) or control characters.
    """
    if not isinstance(url, str):
        raise ValueError("WebSocket URL must be a str")
    if len(url) > _MAX_URL:
        raise ValueError("WebSocket URL longer than {} characters".format(_MAX_URL))
    for ch in url:
        if ch <= " " or ch == "\x7f":
            raise _bad(url, "contains spaces or control characters")
    i = url.find("://")
    if i < 0:
        raise _bad(url, "no scheme (expected ws:// or wss://)")
    scheme = url[:i].lower()
    if scheme == "ws":
        port = 80
    elif scheme == "wss":
        port = 443
    else:
        raise _bad(url, "scheme must be ws or wss")
    rest = url[i + 3 :]
    if "#" in rest:
        raise _bad(url, "fragment not allowed")
    cut = len(rest)
    for sep in "/?":
        j = rest.find(sep)
        if 0 <= j < cut:
            cut = j
    authority, path = rest[:cut], rest[cut:]
    if not path:
        path = "/"
    elif path[0] == "?":
        path = "/" + path
    if "@" in authority:
        raise _bad(url, "user information not allowed (use Basic auth settings)")
    if authority.startswith("["):
        j = authority.find("]")
        if j < 0:
            raise _bad(url, "unclosed IPv6 bracket")
        host = authority[1:j]
        tail = authority[j + 1 :]
        if not host or ":" not in host:
            raise _bad(url, "bad IPv6 literal")
        for ch in host:
            if ch not in "0123456789abcdefABCDEF:.":
                raise _bad(url, "bad IPv6 literal")
        if tail:
            if tail[0] != ":":
                raise _bad(url, "junk after IPv6 literal")
            port = _port(url, tail[1:])
    else:
        j = authority.rfind(":")
        host = authority
        if j >= 0:
            host = authority[:j]
            port = _port(url, authority[j + 1 :])
        if not host:
            raise _bad(url, "no host")
        for ch in host:
            if ch not in _HOST_CHARS:
                raise _bad(url, "bad character {!r} in host".format(ch))
    return scheme, host, port, path


def join_cp_id(path, cp_id):
    """Append the Charge Point identity as the last path segment.

    `/ocpp` + `CP1` and `/ocpp/` + `CP1` both give `/ocpp/CP1`; a query in `path` stays at the
    end. Bytes outside RFC 3986 pchar (including "/", "%", "?", "#", space, non-ASCII) are
    percent-encoded from their UTF-8 form.
    Raises ValueError for an empty identity.
    """
    if not isinstance(cp_id, str) or not cp_id:
        raise ValueError("Charge Point identity must be a non-empty str")
    query = ""
    q = path.find("?")
    if q >= 0:
        path, query = path[:q], path[q:]
    if not path.endswith("/"):
        path += "/"
    parts = [path]
    for b in cp_id.encode():
        ch = chr(b)
        if b < 0x80 and ch in _PCHAR:
            parts.append(ch)
        else:
            parts.append("%" + _HEX[b >> 4] + _HEX[b & 15])
    parts.append(query)
    return "".join(parts)
