"""Shared fakes for the firmware-update unit tests: temp dirs, bundles, streams, partitions.

MicroPython only (runs inside the Unix port with the tests that import it).
"""

import binascii
import hashlib
import json
import os

from store import Store
from store import tree

_n = [0]
MAGIC = b"EVFWB1\n"


def tmpdir():
    _n[0] += 1
    path = "/tmp/fwtest-{}-{}".format(binascii.hexlify(os.urandom(4)).decode(), _n[0])
    tree.rmtree(path)
    os.mkdir(path)
    return path


def store():
    return Store(tmpdir())


def sha(data):
    return binascii.hexlify(hashlib.sha256(data).digest()).decode()


def mpy(payload=b"", major=6):
    """Bytes that start like a .mpy file of the given major version."""
    return bytes([0x4D, major, 0, 31]) + payload


def make_bundle(version="1.2.0", files=None, header=None, corrupt_file=None, trailer=None,
                entry=None):
    """Bundle bytes as tools/mkbundle.py writes them; knobs to break it on purpose
    (`entry(path, data)` returns the JSON entry to write for a file)."""
    if files is None:
        files = [
            ("lib/fwdemo/__init__.mpy", mpy(b"init")),
            ("lib/fwdemo/core.mpy", mpy(b"core" * 300)),
            ("lib/fwdemo_top.py", b"VALUE = 42\n"),
            ("boards/sim.py", b"# board\n"),
        ]
    if header is None:
        total = 0
        for _, d in files:
            total += len(d)
        header = {"format": 1, "version": version, "files": len(files), "bytes": total}
    raw = json.dumps(header).encode()
    n = len(raw)
    body = bytearray(MAGIC)
    body += bytes([n >> 24 & 255, n >> 16 & 255, n >> 8 & 255, n & 255])
    body += raw
    for p, d in files:
        e = json.dumps(entry(p, d) if entry else [p, len(d), sha(d)]).encode()
        body += bytes([len(e) >> 8, len(e) & 255]) + e
        if p == corrupt_file:
            d = d[:3] + bytes([d[3] ^ 0x55]) + d[4:]
        body += d
    body += trailer if trailer is not None else hashlib.sha256(body).digest()
    return bytes(body)


class FakeStream:
    """An asyncio-Stream lookalike: `replies` are byte strings the server sends, in order, as
    separate reads; what the client writes collects in `sent`. `stall` never answers."""

    def __init__(self, replies=(), stall=False, on_write=None):
        self.s = self
        self.replies = list(replies)
        self.sent = bytearray()
        self.closed = False
        self.stall = stall
        self.on_write = on_write

    def write(self, data):
        if self.on_write is not None:
            self.on_write(self, data)
        self.sent += data

    async def drain(self):
        import asyncio

        await asyncio.sleep_ms(0)

    async def readinto(self, buf):
        import asyncio

        if self.stall:
            await asyncio.sleep_ms(60000)
        if not self.replies:
            return 0
        r = self.replies[0]
        n = min(len(buf), len(r))
        buf[:n] = r[:n]
        if n < len(r):
            self.replies[0] = r[n:]
        else:
            self.replies.pop(0)
        return n

    def close(self):
        self.closed = True


class FakeLink:
    """`connect(host, port, ssl_ctx, timeout_ms)` returns the next scripted stream (or raises
    the scripted exception) and records (host, port, tls) per connection."""

    def __init__(self, *streams):
        self.streams = list(streams)
        self.calls = []

    async def connect(self, host, port, ssl_ctx=None, timeout_ms=30000):
        self.calls.append((host, port, ssl_ctx is not None))
        s = self.streams.pop(0)
        if isinstance(s, Exception):
            raise s
        return s


def response(body=b"", status="200 OK", headers=(), chunked=False, pieces=1):
    """A raw HTTP response, split into `pieces` reads."""
    head = "HTTP/1.1 {}\r\n".format(status)
    for h in headers:
        head += h + "\r\n"
    if chunked:
        out = bytearray()
        step = max(1, len(body) // 3)
        for i in range(0, len(body), step):
            part = body[i : i + step]
            out += "{:x}\r\n".format(len(part)).encode() + part + b"\r\n"
        out += b"0\r\n\r\n"
        data = head.encode() + b"Transfer-Encoding: chunked\r\n\r\n" + bytes(out)
    else:
        data = head.encode() + "Content-Length: {}\r\n\r\n".format(len(body)).encode() + body
    if pieces <= 1:
        return [data]
    k = max(1, len(data) // pieces)
    return [data[i : i + k] for i in range(0, len(data), k)]


def read(path):
    with open(path, "rb") as f:
        return f.read()


# ---- a fake esp32 module with OTA partitions -------------------------------------------------
def esp_image(size=9000, chip=0, digest=True, desc=True, version=b"v1.99.0"):
    """Bytes shaped like an ESP-IDF application image (header, app descriptor, digest)."""
    b = bytearray(size - 32 if digest else size)
    b[0] = 0xE9
    b[1] = 3
    b[12] = chip & 255
    b[13] = chip >> 8
    b[23] = 1 if digest else 0
    if desc:
        b[32:36] = b"\x32\x54\xcd\xab"
    b[48 : 48 + len(version)] = version
    for i in range(80, len(b)):
        b[i] = (i * 7) & 255
    if digest:
        b += hashlib.sha256(b).digest()
    return bytes(b)


class FakePartition:
    def __init__(self, label, blocks=8, content=b"", bus=None):
        self.label = label
        self.data = bytearray(b"\xff" * (blocks * 4096))
        self.data[: len(content)] = content
        self.blocks = blocks
        self.boot = False
        self.writes = 0
        self.bus = bus
        self.next = None
        self.fail_write_at = None

    def readblocks(self, n, buf):
        buf[:] = self.data[n * 4096 : n * 4096 + len(buf)]

    def writeblocks(self, n, buf):
        if len(buf) != 4096 or not 0 <= n < self.blocks:
            raise OSError(22)
        if self.fail_write_at == n:
            raise OSError(5)
        self.data[n * 4096 : (n + 1) * 4096] = buf
        self.writes += 1

    def ioctl(self, op, arg):
        return {4: self.blocks, 5: 4096}[op]

    def info(self):
        return (0, 16, 0x10000, self.blocks * 4096, self.label, False)

    def get_next_update(self):
        if self.next is None:
            raise OSError(2)
        return self.next

    def set_boot(self):
        self.bus.booted = self.label


class FakeEsp32:
    """Stands in for the esp32 module: Partition(RUNNING) is the running app partition."""

    def __init__(self, running_image=None, blocks=8):
        self.running = FakePartition("ota_0", blocks, running_image or esp_image(5000), self)
        self.spare = FakePartition("ota_1", blocks, b"", self)
        self.running.next = self.spare
        self.booted = None
        self.valid = 0
        self.Partition = _PartitionClass(self)


class _PartitionClass:
    """`esp32.Partition`: called with RUNNING it gives the running partition."""

    RUNNING = 1

    def __init__(self, fake):
        self._fake = fake

    def __call__(self, which):
        return self._fake.running

    def mark_app_valid_cancel_rollback(self):
        self._fake.valid += 1
