"""Network links: open a TCP (and TLS) stream to the CSMS, with a named failure stage.

`SocketLink` is the default link for the ESP32 and the Unix port. `connect()` checks the
network (`isconnected()`, overridden by the ESP32 board to ask the WLAN), opens a connected
non-blocking socket through the overridable `_open_socket()`, wraps it in TLS with
`do_handshake_on_connect=False` so the handshake runs inside asyncio on the first write, and
returns an asyncio Stream. A board that reaches the network through a gateway (the simulated
board) overrides `_open_socket()`, using `tcp_connect`, `sock_write` and `sock_readline` below
for its preamble, and returns the raw socket before TLS. Failures raise ConnectError with a
stage, so the charger can report what went wrong. Every wait here has a timeout.
"""

import asyncio
from micropython import const

_CONNECT_TIMEOUT_MS = const(30000)  # default for one connect, like the OCPP peers' 30 s

STAGES = ("offline", "dns", "tcp", "tls", "cert", "http", "auth", "subprotocol", "ws", "timeout")


class ConnectError(Exception):
    """A connection attempt failed; `stage` is one of STAGES, `detail` a short text."""

    def __init__(self, stage, detail=""):
        super().__init__(stage, detail)
        self.stage = stage
        self.detail = detail


# asyncio has no public "wait until this socket is readable/writable"; its own
# open_connection() and Stream use the loop's IO queue exactly like this (plain generators,
# awaitable, cancellable: Task.cancel() removes the task from the queue).
def _wait_writable(sock):
    yield asyncio.core._io_queue.queue_write(sock)


def _wait_readable(sock):
    yield asyncio.core._io_queue.queue_read(sock)


async def _with_timeout(aw, timeout_ms, what):
    try:
        return await asyncio.wait_for_ms(aw, timeout_ms)
    except asyncio.TimeoutError:
        raise ConnectError("timeout", "{} took over {} ms".format(what, timeout_ms))


def _errtext(e):
    # "OSError: 111"; mbedTLS verify texts come as "\nline\nline\n": kept on one line.
    text = str(e.args[0]) if e.args else ""
    return "{}: {}".format(type(e).__name__, "; ".join(text.strip().split("\n")))


async def tcp_connect(host, port, timeout_ms):
    """Return a connected non-blocking socket to host:port.

    Raises ConnectError('dns') if the name does not resolve, ConnectError('tcp') if the
    connection is refused or fails, ConnectError('timeout') if it takes over timeout_ms.
    Note: getaddrinfo blocks the loop while it resolves (MicroPython has no async resolver).
    """
    import errno
    import select
    import socket

    try:
        ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except OSError as e:
        raise ConnectError("dns", "{}: {}".format(host, _errtext(e)))
    if not ai:
        raise ConnectError("dns", "{}: no address".format(host))
    family, kind, proto, _, addr = ai[0]
    sock = socket.socket(family, kind, proto)
    ok = False
    try:
        sock.setblocking(False)
        try:
            sock.connect(addr)
        except OSError as e:
            if e.errno != errno.EINPROGRESS:
                raise ConnectError("tcp", "{}:{} {}".format(host, port, _errtext(e)))
        await _with_timeout(_wait_writable(sock), timeout_ms, "TCP connect")
        # Writable with an error flag means the connect failed; a second connect() names why.
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        flags = 0
        for _, ev in poller.poll(0):
            flags = ev
        poller.unregister(sock)
        if flags & (select.POLLERR | select.POLLHUP):
            why = "connection failed"
            try:
                sock.connect(addr)
            except OSError as e:
                why = _errtext(e)
            raise ConnectError("tcp", "{}:{} {}".format(host, port, why))
        ok = True
        return sock
    finally:
        if not ok:
            sock.close()


async def sock_write(sock, data, timeout_ms):
    """Write all of `data` to a non-blocking socket. Raises ConnectError('tcp'/'timeout')."""

    async def _all():
        mv = memoryview(data)
        off = 0
        while off < len(mv):
            await _wait_writable(sock)
            n = sock.write(mv[off:])
            if n is not None:
                off += n

    try:
        await _with_timeout(_all(), timeout_ms, "write")
    except OSError as e:
        raise ConnectError("tcp", _errtext(e))


async def sock_readline(sock, limit, timeout_ms):
    """Read one line (up to and including b"\\n") byte by byte, so nothing after it is consumed.

    Returns bytes; raises ConnectError('tcp') on EOF, an error or a line over `limit` bytes,
    ConnectError('timeout') after timeout_ms.
    """
    line = bytearray(limit)
    one = memoryview(line)

    async def _line():
        n = 0
        while n < limit:
            await _wait_readable(sock)
            r = sock.readinto(one[n : n + 1])
            if r is None:
                continue
            if r == 0:
                raise ConnectError("tcp", "connection closed during preamble")
            n += 1
            if line[n - 1] == 10:
                return bytes(line[:n])
        raise ConnectError("tcp", "preamble line over {} bytes".format(limit))

    try:
        return await _with_timeout(_line(), timeout_ms, "preamble")
    except OSError as e:
        raise ConnectError("tcp", _errtext(e))


class SocketLink:
    """Default network link over `socket` (ESP32 and the Unix port)."""

    def isconnected(self):
        """True if the network is up. The Unix port always is; the ESP32 board asks the WLAN."""
        return True

    async def _open_socket(self, host, port, timeout_ms):
        """Return a connected non-blocking socket for host:port (override for gateways)."""
        return await tcp_connect(host, port, timeout_ms)

    async def connect(self, host, port, ssl_ctx=None, timeout_ms=_CONNECT_TIMEOUT_MS):
        """Open a stream to host:port, in TLS if `ssl_ctx` is given (server name = host).

        Returns an asyncio Stream (reader and writer in one). The TLS handshake happens on the
        stream's first write/read; the caller maps its errors (ValueError = certificate).
        Raises ConnectError with stage 'offline', 'dns', 'tcp', 'tls' or 'timeout'.
        """
        if not self.isconnected():
            raise ConnectError("offline", "network link is down")
        sock = await self._open_socket(host, port, timeout_ms)
        if ssl_ctx is not None:
            try:
                sock = ssl_ctx.wrap_socket(
                    sock, server_hostname=host, do_handshake_on_connect=False
                )
            except (OSError, ValueError) as e:
                sock.close()
                raise ConnectError("tls", _errtext(e))
        return asyncio.StreamReader(sock)
