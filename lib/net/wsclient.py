"""Async WebSocket client for OCPP-J: the thin shell around the sans-I/O core in `ws`.

`WSClient.connect()` opens the stream through a link (`link.SocketLink` or a board's subclass),
runs the opening handshake and maps every failure to `ConnectError(stage, detail)`. `recv()`
returns text messages, answers pings itself (RFC 6455 section 5.5.2) and raises
`WSClosed(code, reason)` when the connection ends for any reason, after sending the close frame
the protocol asks for (1002/1007/1009 for bad input, 1003 for a binary message, the echo of a
server close). `keepalive()` sends a ping every interval and drops the link when nothing came
back (OCPP-J WebSocketPingInterval). Memory: one receive chunk of _RX_CHUNK bytes plus the core's
message buffer, allocated in the constructor and reused for every connection.
Concurrency: one task reads (recv), any task may send; writes are serialised by a lock.
"""

import asyncio
import os
import time
from micropython import const

from net import handshake, ws
from net.auth import basic_auth_value
from net.link import ConnectError, _errtext
from net.url import join_cp_id, parse_url

_RX_CHUNK = const(512)  # bytes read from the stream per readinto()
_SEND_TIMEOUT_MS = const(10000)  # a write stuck this long means the link is dead
_CLOSE_TIMEOUT_MS = const(2000)  # wait for the server's close frame, then just drop
_ST_IDLE = const(0)
_ST_OPEN = const(1)
_ST_CLOSING = const(2)
_ST_CLOSED = const(3)


class WSClosed(Exception):
    """The WebSocket is closed: `code` (1006 = dropped without a close frame) and `reason`."""

    def __init__(self, code, reason=""):
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class WSClient:
    """One OCPP-J WebSocket connection at a time, reusable for reconnects."""

    def __init__(self, link, max_message=ws.DEFAULT_MAX_MESSAGE, rand=os.urandom):
        self._link = link
        self._rand = rand
        self._conn = ws.Connection(rand, max_message)
        self._rxmv = memoryview(bytearray(_RX_CHUNK))
        self._stream = None
        self._lock = asyncio.Lock()
        self._closed_evt = asyncio.Event()
        self._state = _ST_IDLE
        self._info = (1006, "not connected")
        self._dead = None
        self._rx_task = None
        self._gen = 0
        self.last_rx_ms = 0

    @property
    def is_open(self):
        return self._state == _ST_OPEN

    async def connect(self, url_or_parts, cp_id, auth_key=None, ssl_ctx=None, timeout_ms=30000):
        """Connect to `<url>/<cp_id>` and complete the WebSocket handshake within timeout_ms.

        `url_or_parts`: a ws:// or wss:// URL or a (scheme, host, port, path) tuple; `auth_key`:
        the Basic-auth password bytes (profiles 1, 2) or None; `ssl_ctx`: required for wss
        (see net.tls.client_context). Raises ConnectError with stage 'offline', 'dns', 'tcp',
        'tls', 'cert', 'http', 'auth', 'subprotocol', 'ws' or 'timeout'; ValueError for a bad URL
        or a wss URL without ssl_ctx.
        """
        if isinstance(url_or_parts, str):
            scheme, host, port, path = parse_url(url_or_parts)
        else:
            scheme, host, port, path = url_or_parts
        if (scheme == "wss") != (ssl_ctx is not None):
            raise ValueError("wss needs ssl_ctx and ws must not have one")
        authorization = None
        if auth_key is not None:
            authorization = basic_auth_value(cp_id, auth_key)
        hs = handshake.Handshake(
            host,
            join_cp_id(path, cp_id),
            self._rand,
            port=port,
            secure=ssl_ctx is not None,
            authorization=authorization,
            buf=self._conn.buffer,  # idle until the handshake is over
        )
        if self._state == _ST_OPEN or self._state == _ST_CLOSING:
            self._drop(1006, "reconnecting")
        self._shutdown()
        self._gen += 1  # ends a keepalive() left over from the previous connection
        self._conn.reset()
        self._closed_evt.clear()
        self._dead = None
        self._state = _ST_IDLE
        try:
            await asyncio.wait_for_ms(self._open(hs, host, port, ssl_ctx, timeout_ms), timeout_ms)
        except asyncio.TimeoutError:
            self._shutdown()
            raise ConnectError("timeout", "no WebSocket within {} ms".format(timeout_ms))
        except BaseException:
            self._shutdown()
            raise
        self._state = _ST_OPEN
        self.last_rx_ms = time.ticks_ms()

    async def _open(self, hs, host, port, ssl_ctx, timeout_ms):
        self._stream = await self._link.connect(host, port, ssl_ctx, timeout_ms)
        tls = ssl_ctx is not None
        sent = False
        try:
            # With TLS the handshake runs inside this first write (mbedTLS, non-blocking).
            self._stream.write(hs.request())
            await self._stream.drain()
            sent = True
            while True:
                n = await self._read_some()
                if n == 0:
                    raise ConnectError("http", "connection closed before the HTTP response")
                rest = hs.feed(self._rxmv[:n])
                if rest is not None:
                    break
        except handshake.HandshakeError as e:
            raise ConnectError(e.stage, e.detail)
        except ValueError as e:
            if not tls:
                raise
            # MicroPython raises ValueError with mbedTLS's verify text for a rejected certificate.
            raise ConnectError("cert", _errtext(e))
        except OSError as e:
            stage = "tls" if tls else ("http" if sent else "tcp")
            raise ConnectError(stage, _errtext(e))
        if rest:
            self._conn.feed(rest)

    async def _read_some(self):
        # A TLS socket returns None when a record is incomplete: wait again.
        while True:
            n = await self._stream.readinto(self._rxmv)
            if n is not None:
                return n

    # -- receiving ------------------------------------------------------------------------

    async def recv(self):
        """Return the next text message (str).

        Answers pings and ignores pongs on the way. Raises WSClosed(code, reason) when the
        server closes (its code), the stream ends or fails (1006), the server breaks the
        protocol (1002/1007/1009, after sending that close), sends binary (1003), or keepalive()
        or close() ends the link. Only one task may call recv() at a time. A caller may cancel
        it (e.g. wait_for) while it waits for data; no data is lost.
        """
        if self._state == _ST_CLOSED or self._stream is None:
            raise WSClosed(*self._info)
        if self._rx_task is not None:
            raise RuntimeError("recv() is already running in another task")
        self._rx_task = asyncio.current_task()
        try:
            while True:
                ev = await self._next_event()
                kind = ev[0]
                if kind == ws.TEXT:
                    return ev[1]
                if kind == ws.PING:
                    await self._send_frame(self._conn.send_pong(ev[1]), _SEND_TIMEOUT_MS)
                elif kind == ws.CLOSE:
                    await self._on_close(ev[1], ev[2])
                elif kind == ws.BINARY:
                    await self._fail(1003, "binary messages are not supported")
        except asyncio.CancelledError:
            if self._dead is None:
                raise
            raise WSClosed(*self._dead)
        finally:
            self._rx_task = None

    async def _next_event(self):
        conn = self._conn
        while True:
            try:
                ev = conn.next_event()
            except ws.ProtocolError as e:
                await self._fail(e.code, e.reason)
            if ev is not None:
                return ev
            if self._stream is None:  # another task ended the connection meanwhile
                raise WSClosed(*self._info)
            try:
                n = await self._read_some()
            except OSError as e:
                self._drop(1006, _errtext(e))
                raise WSClosed(*self._info)
            if n == 0:
                self._drop(1006, "connection closed without a close frame")
                raise WSClosed(*self._info)
            self.last_rx_ms = time.ticks_ms()
            conn.feed(self._rxmv[:n])

    async def _fail(self, code, reason):
        # Their fault: tell them why (section 7.1.7), then drop without waiting for an answer.
        if self._state == _ST_OPEN:
            self._state = _ST_CLOSING
            self._info = (code, reason)
            try:
                await self._send_frame(self._conn.send_close(code, reason), _CLOSE_TIMEOUT_MS)
                await self._discard_until_eof(_CLOSE_TIMEOUT_MS)
            except WSClosed:
                pass
        self._drop(code, reason)
        raise WSClosed(code, reason)

    async def _discard_until_eof(self, timeout_ms):
        """Read and throw away what the peer still sends (the rest of an oversized frame) until
        it closes or `timeout_ms` pass: closing a socket with unread bytes makes TCP send a
        reset, and the peer would see 1006 instead of our close code. Bounded by time; the
        bytes land in the preallocated receive chunk, nothing is buffered."""
        end = time.ticks_add(time.ticks_ms(), timeout_ms)
        while self._stream is not None:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return
            try:
                n = await asyncio.wait_for_ms(self._read_some(), left)
            except (asyncio.TimeoutError, OSError):
                return
            if not n:
                return

    async def _on_close(self, code, reason):
        if self._state == _ST_OPEN:
            self._state = _ST_CLOSING
            self._info = (code, reason)
            try:  # echo the status code (section 5.5.1)
                await self._send_frame(self._conn.send_close(code, ""), _CLOSE_TIMEOUT_MS)
            except WSClosed:
                pass
        self._closed_evt.set()
        self._drop(code, reason)
        raise WSClosed(code, reason)

    # -- sending --------------------------------------------------------------------------

    async def _write(self, frame):
        async with self._lock:
            s = self._stream
            if s is None:  # dropped while this send waited for the lock
                raise WSClosed(*self._info)
            try:
                s.write(frame)
                await s.drain()
            except asyncio.CancelledError:
                # A frame cut off in the middle leaves the stream unusable.
                self._drop(1006, "send timed out or cancelled")
                raise

    async def _send_frame(self, frame, timeout_ms):
        if self._stream is None:
            raise WSClosed(*self._info)
        try:
            await asyncio.wait_for_ms(self._write(frame), timeout_ms)
        except asyncio.TimeoutError:
            self._drop(1006, "send timed out")
            raise WSClosed(*self._info)
        except OSError as e:
            self._drop(1006, _errtext(e))
            raise WSClosed(*self._info)

    async def send(self, text):
        """Send one text message. Raises WSClosed if the connection is not open or fails."""
        if self._state != _ST_OPEN:
            raise WSClosed(*self._info)
        await self._send_frame(self._conn.send_text(text), _SEND_TIMEOUT_MS)

    async def ping(self, data=b""):
        """Send a ping (at most 125 bytes of data). Raises WSClosed if not open."""
        if self._state != _ST_OPEN:
            raise WSClosed(*self._info)
        await self._send_frame(self._conn.send_ping(data), _SEND_TIMEOUT_MS)

    # -- ending ---------------------------------------------------------------------------

    async def close(self, code=1000, reason=""):
        """Close handshake: send a close frame, wait up to 2 s for the server's, close the socket.

        A task blocked in recv() gets WSClosed(code, reason). Safe to call more than once.
        """
        if self._state != _ST_OPEN:
            self._drop(code, reason)
            return
        self._state = _ST_CLOSING
        self._info = (code, reason)
        try:
            await self._send_frame(self._conn.send_close(code, reason), _CLOSE_TIMEOUT_MS)
            if self._state == _ST_CLOSED:
                pass  # the reader already got the server's close meanwhile
            elif self._rx_task is not None:
                await asyncio.wait_for_ms(self._closed_evt.wait(), _CLOSE_TIMEOUT_MS)
            else:
                await asyncio.wait_for_ms(self._await_close(), _CLOSE_TIMEOUT_MS)
        except (WSClosed, asyncio.TimeoutError):
            pass
        self._drop(code, reason)

    async def _await_close(self):
        while True:
            ev = await self._next_event()
            if ev[0] == ws.CLOSE:
                self._closed_evt.set()
                return

    def _drop(self, code, reason):
        # Ends the connection at once: state, then the blocked reader, then the socket.
        if self._state != _ST_CLOSED:
            self._state = _ST_CLOSED
            self._info = (code, reason)
        self._dead = self._info
        t = self._rx_task
        if t is not None and t is not asyncio.current_task():
            t.cancel()  # removes it from the IO queue before the socket goes away
        self._shutdown()

    def _shutdown(self):
        s = self._stream
        self._stream = None
        if s is not None:
            try:
                s.s.close()
            except OSError:
                pass

    async def keepalive(self, interval_s):
        """Ping every interval_s seconds; drop the link if nothing arrives within an interval.

        Run it as a task next to the task calling recv() (only recv() reads the pong) and keep
        the handle; it returns when the connection ends. interval_s <= 0 returns at once
        (WebSocketPingInterval 0 = off). A timeout ends recv() with WSClosed(1006, "ping timeout").
        """
        iv = int(interval_s * 1000)
        if iv <= 0:
            return
        gen = self._gen
        while self._state == _ST_OPEN and self._gen == gen:
            sent = time.ticks_ms()
            try:
                await self.ping()
            except WSClosed:
                return
            await asyncio.sleep_ms(iv)
            if self._state != _ST_OPEN or self._gen != gen:
                return
            if time.ticks_diff(self.last_rx_ms, sent) < 0:
                self._drop(1006, "ping timeout")
                return
