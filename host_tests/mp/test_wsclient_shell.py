"""net.wsclient over an in-memory stream: exact bytes on the wire and task interplay, no sockets.

A fake link hands WSClient a fake asyncio stream; a scripted server answers the handshake and
reacts to the client's frames. The real-socket and TLS paths are in host_tests/test_wsclient.py.
"""

import asyncio

from net import handshake, ws
from net.link import ConnectError
from net.wsclient import WSClient, WSClosed


def rand(n):
    return bytes(range(1, n + 1))


def unmask_all(data):
    """Split client bytes into (opcode, payload) frames."""
    out = []
    i = 0
    while i < len(data):
        op = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        h = i + 2
        if n == 126:
            n = data[h] << 8 | data[h + 1]
            h += 2
        m = data[h : h + 4]
        p = bytes(data[h + 4 + k] ^ m[k & 3] for k in range(n))
        out.append((op, p))
        i = h + 4 + n
    return out


class FakeStream:
    def __init__(self, server):
        self.s = self  # WSClient closes `stream.s`, like asyncio's Stream
        self.server = server
        self.inbox = bytearray()
        self.sent = bytearray()
        self.closed = False
        self.ev = asyncio.Event()

    def write(self, data):
        self.sent += data
        self.server.on_bytes(self, bytes(data))

    async def drain(self):
        await asyncio.sleep_ms(0)

    async def readinto(self, buf):
        while not self.inbox and not self.closed:
            self.ev.clear()
            await self.ev.wait()
        if not self.inbox:
            return 0
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        return n

    def push(self, data):
        self.inbox += data
        self.ev.set()

    def close(self):
        self.closed = True
        self.ev.set()


class Server:
    """Answers the upgrade, then calls react(stream, opcode, payload) for each client frame;
    echoes a close frame unless told not to."""

    def __init__(self, status="101 Switching Protocols", after_head=b"", react=None, echo=True):
        self.echo = echo
        self.status = status
        self.after_head = after_head
        self.react = react
        self.request = None
        self.frames = []

    def on_bytes(self, stream, data):
        if self.request is None:
            self.request = data
            key = b""
            for line in data.split(b"\r\n"):
                if line.startswith(b"Sec-WebSocket-Key: "):
                    key = line[19:]
            head = (
                "HTTP/1.1 {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
            ).format(self.status, handshake.accept_value(key).decode())
            stream.push(head.encode() + self.after_head)
            return
        for op, payload in unmask_all(data):
            self.frames.append((op, payload))
            if self.react:
                self.react(stream, op, payload)
            if op == ws.CLOSE and self.echo:
                stream.push(b"\x88\x02" + payload[:2])


class FakeLink:
    def __init__(self, server):
        self.server = server
        self.stream = None

    async def connect(self, host, port, ssl_ctx=None, timeout_ms=0):
        self.stream = FakeStream(self.server)
        return self.stream


async def open_client(server):
    link = FakeLink(server)
    c = WSClient(link, max_message=1024, rand=rand)
    await c.connect("ws://csms.test:8180/ocpp", "CP/1", auth_key=b"k")
    return c, link


async def test_request_bytes_and_frames_sent_with_the_101_are_kept():
    srv = Server(after_head=b"\x81\x05early")
    c, link = await open_client(srv)
    req = srv.request.decode()
    assert req.startswith("GET /ocpp/CP%2F1 HTTP/1.1\r\nHost: csms.test:8180\r\n"), req
    assert "\r\nAuthorization: Basic Q1AvMTpr\r\n" in req  # base64("CP/1:k")
    assert await c.recv() == "early"
    await c.close()


async def test_ping_is_answered_with_the_same_data():
    def react(stream, op, payload):
        if op == ws.PONG:
            stream.push(b"\x81\x02ok")

    srv = Server(after_head=b"\x89\x03abc", react=react)
    c, link = await open_client(srv)
    assert await c.recv() == "ok"
    assert srv.frames[0] == (ws.PONG, b"abc")
    await c.close()


async def test_protocol_error_sends_its_close_code():
    srv = Server(after_head=b"\x81\x02\xc0\x80")  # overlong UTF-8
    c, link = await open_client(srv)
    try:
        await c.recv()
    except WSClosed as e:
        assert e.code == 1007
    else:
        raise AssertionError("no WSClosed")
    assert srv.frames == [(ws.CLOSE, b"\x03\xefinvalid UTF-8 in text message")]
    assert link.stream.closed
    try:
        await c.send("late")
    except WSClosed as e:
        assert e.code == 1007
    else:
        raise AssertionError("send after close")


async def test_close_while_reader_gets_the_servers_close_first():
    # The server answers our close at once, so the reading task handles it before close()
    # resumes; close() must then not touch the stream again.
    srv = Server()  # echoes the close from inside our write
    c, link = await open_client(srv)
    results = []

    async def reader():
        try:
            await c.recv()
        except WSClosed as e:
            results.append(e.code)

    t = asyncio.create_task(reader())
    await asyncio.sleep_ms(5)
    await c.close(1001, "bye")
    await t
    assert results == [1001]
    assert [op for op, _ in srv.frames] == [ws.CLOSE]
    assert link.stream.closed


async def test_close_without_reader_waits_for_the_servers_close():
    def react(stream, op, payload):
        if op == ws.CLOSE:
            stream.push(b"\x81\x01x\x88\x02\x03\xe8")  # a late message, then the close

    srv = Server(react=react, echo=False)
    c, link = await open_client(srv)
    await c.close()
    assert link.stream.closed
    try:
        await c.recv()
    except WSClosed as e:
        assert e.code == 1000
    else:
        raise AssertionError("recv after close")


async def test_eof_is_1006_and_http_401_is_auth():
    srv = Server()
    c, link = await open_client(srv)
    link.stream.close()
    try:
        await c.recv()
    except WSClosed as e:
        assert e.code == 1006
    else:
        raise AssertionError("no WSClosed on EOF")
    try:
        await open_client(Server(status="401 Unauthorized"))
    except ConnectError as e:
        assert (e.stage, e.detail) == ("auth", "HTTP 401")
    else:
        raise AssertionError("401 accepted")


async def test_keepalive_pings_and_a_missing_pong_drops_the_link():
    answered = []

    def react(stream, op, payload):
        if op == ws.PING and not answered:
            answered.append(payload)
            stream.push(b"\x8a\x00")  # only the first ping gets a pong

    srv = Server(react=react)
    c, link = await open_client(srv)
    ka = asyncio.create_task(c.keepalive(0.02))
    try:
        await asyncio.wait_for_ms(c.recv(), 2000)
    except WSClosed as e:
        assert (e.code, e.reason) == (1006, "ping timeout")
    else:
        raise AssertionError("no ping timeout")
    await ka
    pings = [op for op, _ in srv.frames if op == ws.PING]
    assert len(pings) >= 2, srv.frames
    assert link.stream.closed
