#!/usr/bin/env python3
"""Chaos proxy: a TCP proxy between a charger and its CSMS that breaks the link on purpose.

It forwards a plain ws:// connection and parses the RFC 6455 frames after the HTTP upgrade, so
every fault keeps the framing intact (dropping a TCP segment would only corrupt the stream):
- `drop`:  one whole data message is not forwarded (the peer never sees it; no TCP error),
- `dup`:   one whole data message is forwarded twice,
- `delay`: the next few messages in one direction wait 50-1500 ms each (order kept),
- `stall`: half-open link: nothing is forwarded in either direction and nothing is closed; the
           endpoints must notice by themselves (pings); the proxy closes it `stall_hold_s` later,
- `cut`:   both sockets are closed at once.
Control frames (ping, pong, close) and fragments are always forwarded untouched. Faults come at
random from a seeded `random.Random`, every `gap_s` (min, max) seconds, while a link is up; a
fault that needs a frame is armed and hits the next data message in its direction. The events are
recorded (`events`, `stats`) so a test can report what it survived. `wss://` is not supported:
the proxy must see the frames.

    python tools/chaosproxy.py --upstream 127.0.0.1:9000 [--listen 9100] [--seed N]
        [--gap 1,4] [--kinds cut,stall,delay,drop,dup]

In tests: `ChaosProxyThread(upstream_port, seed=...)` runs it in a background thread.
"""

import argparse
import asyncio
import random
import sys
import threading
import time

KINDS = ("cut", "stall", "delay", "drop", "dup")
DEFAULT_WEIGHTS = {"cut": 3, "stall": 2, "delay": 3, "drop": 1, "dup": 2}
HEADER_LIMIT = 16 * 1024  # HTTP upgrade request/response
MAX_FRAME = 16 * 1024 * 1024  # a frame announcing more is forwarded as a cut
DELAY_MS = (50, 1500)
DELAY_FRAMES = (1, 5)


class _Link:
    """One proxied connection: client side, upstream side, two pumps."""

    def __init__(self, proxy, num, client, upstream):
        self.proxy = proxy
        self.num = num
        self.client = client  # (reader, writer)
        self.upstream = upstream
        self.stalled = False
        self.closed = False
        self.unstall = asyncio.Event()  # set when the stalled link is finally closed
        self.tasks = []

    def close(self):
        if self.closed:
            return
        self.closed = True
        self.unstall.set()
        for _, w in (self.client, self.upstream):
            w.transport.abort()

    async def pump(self, direction, reader, writer):
        """Forward `reader` to `writer`: the HTTP header whole, then frame by frame."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            await self._write(writer, head)
            while not self.closed:
                frame, opcode, fin = await _read_frame(reader)
                await self._forward(direction, writer, frame, opcode, fin)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError,
                OSError, ValueError):
            pass
        finally:
            if not self.stalled:
                self.close()

    async def _forward(self, direction, writer, frame, opcode, fin):
        if self.stalled:
            await self.unstall.wait()
            return
        p = self.proxy
        copies = 1
        if fin and opcode in (1, 2):  # whole data messages only
            fault = p.take_armed(direction)
            if fault is not None:
                kind, arg = fault
                if kind == "drop":
                    p.note("drop", link=self.num, dir=direction, bytes=len(frame))
                    return
                if kind == "dup":
                    p.note("dup", link=self.num, dir=direction, bytes=len(frame))
                    copies = 2
                elif kind == "delay":
                    await asyncio.sleep(arg / 1000)
                    if self.stalled or self.closed:
                        return
        for _ in range(copies):
            await self._write(writer, frame)

    async def _write(self, writer, data):
        if self.stalled:
            await self.unstall.wait()
            return
        writer.write(data)
        await writer.drain()


async def _read_frame(reader):
    """One whole WebSocket frame as raw bytes, with its opcode and FIN bit."""
    head = await reader.readexactly(2)
    fin = bool(head[0] & 0x80)
    opcode = head[0] & 0x0F
    masked = bool(head[1] & 0x80)
    n = head[1] & 0x7F
    ext = b""
    if n == 126:
        ext = await reader.readexactly(2)
        n = int.from_bytes(ext, "big")
    elif n == 127:
        ext = await reader.readexactly(8)
        n = int.from_bytes(ext, "big")
    if n > MAX_FRAME:
        raise ValueError("frame of {} bytes".format(n))
    mask = await reader.readexactly(4) if masked else b""
    payload = await reader.readexactly(n)
    return head + ext + mask + payload, opcode, fin


class ChaosProxy:
    """The proxy server and its fault schedule (asyncio, one loop)."""

    def __init__(self, upstream_host, upstream_port, listen_port=0, seed=None, gap_s=(1.0, 4.0),
                 weights=None, stall_hold_s=30.0, log=None):
        self.upstream = (upstream_host, upstream_port)
        self.listen_port = listen_port
        self.seed = seed if seed is not None else random.randrange(1 << 30)
        self.rng = random.Random(self.seed)
        self.gap_s = gap_s
        self.weights = dict(DEFAULT_WEIGHTS if weights is None else weights)
        self.stall_hold_s = stall_hold_s
        self.log = log
        self.active = True
        self.links = []
        self.armed = {"up": [], "down": []}  # direction -> [(kind, arg)], oldest first
        self.events = []
        self.stats = dict.fromkeys(KINDS + ("links",), 0)
        self.port = None
        self._server = None
        self._tasks = []
        self._count = 0

    # -- faults --------------------------------------------------------------------------------
    def note(self, kind, **info):
        self.stats[kind] = self.stats.get(kind, 0) + 1
        event = dict(info, t=time.monotonic(), kind=kind)
        self.events.append(event)
        if self.log:
            self.log("chaos: {} {}".format(kind, info))

    def take_armed(self, direction):
        queue = self.armed[direction]
        if not queue:
            return None
        kind, arg = queue[0]
        if kind == "delay":
            count, ms = arg
            if count <= 1:
                queue.pop(0)
            else:
                queue[0] = (kind, (count - 1, ms))
            return kind, ms
        queue.pop(0)
        return kind, arg

    def calm(self):
        """No new faults; armed ones are cleared; a stalled link is closed (a reconnect follows)."""
        self.active = False
        self.armed = {"up": [], "down": []}
        for link in list(self.links):
            if link.stalled:
                link.close()

    def resume(self):
        self.active = True

    def inject(self, kind, direction=None):
        """Apply one fault now (or arm it for the next data message); returns False if no link."""
        live = [link for link in self.links if not link.closed and not link.stalled]
        if kind in ("cut", "stall"):
            if not live:
                return False
            for link in live:
                if kind == "cut":
                    self.note("cut", link=link.num)
                    link.close()
                else:
                    self.note("stall", link=link.num)
                    link.stalled = True
                    self._tasks.append(asyncio.ensure_future(self._release(link)))
            return True
        direction = direction or self.rng.choice(("up", "down"))
        if kind == "delay":
            count = self.rng.randint(*DELAY_FRAMES)
            ms = self.rng.randint(*DELAY_MS)
            self.note("delay", dir=direction, frames=count, ms=ms)
            self.armed[direction].append(("delay", (count, ms)))
        else:
            self.armed[direction].append((kind, None))  # noted when it hits a message
        return True

    async def _release(self, link):
        await asyncio.sleep(self.stall_hold_s)
        link.close()

    async def _schedule(self):
        kinds = [k for k in KINDS if self.weights.get(k)]
        if not kinds:
            return
        weights = [self.weights[k] for k in kinds]
        while True:
            await asyncio.sleep(self.rng.uniform(*self.gap_s))
            if self.active:
                self.inject(self.rng.choices(kinds, weights)[0])

    # -- server --------------------------------------------------------------------------------
    async def start(self):
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.listen_port,
                                                  limit=HEADER_LIMIT)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks.append(asyncio.ensure_future(self._schedule()))
        return self

    async def close(self):
        for t in self._tasks:
            t.cancel()
        for link in list(self.links):
            link.close()
        if self._server is not None:
            self._server.close()

    async def _client(self, reader, writer):
        try:
            up = await asyncio.wait_for(
                asyncio.open_connection(*self.upstream, limit=HEADER_LIMIT), 5)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()
            return
        self._count += 1
        self.stats["links"] += 1
        link = _Link(self, self._count, (reader, writer), up)
        self.links.append(link)
        try:
            await asyncio.gather(link.pump("up", reader, up[1]), link.pump("down", up[0], writer))
        except asyncio.CancelledError:
            pass  # the proxy is closing: end quietly (asyncio logs a cancelled handler task)
        finally:
            link.close()
            self.links.remove(link)


class ChaosProxyThread:
    """ChaosProxy in a daemon thread with its own event loop; methods are thread-safe."""

    def __init__(self, upstream_port, upstream_host="127.0.0.1", **kwargs):
        self._loop = asyncio.new_event_loop()
        self.proxy = ChaosProxy(upstream_host, upstream_port, **kwargs)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._call(self.proxy.start())

    def _call(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _run(self, fn, *args):
        async def wrap():
            return fn(*args)

        return self._call(wrap())

    @property
    def port(self):
        return self.proxy.port

    @property
    def seed(self):
        return self.proxy.seed

    def url(self, path="/ocpp"):
        return "ws://127.0.0.1:{}{}".format(self.port, path)

    def calm(self):
        self._run(self.proxy.calm)

    def resume(self):
        self._run(self.proxy.resume)

    def inject(self, kind, direction=None):
        return self._run(self.proxy.inject, kind, direction)

    def stats(self):
        return self._run(lambda: dict(self.proxy.stats))

    def events(self):
        return self._run(lambda: list(self.proxy.events))

    def close(self):
        async def shutdown():
            await self.proxy.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            self._call(shutdown())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the CSMS")
    ap.add_argument("--listen", type=int, default=9100, help="127.0.0.1 port (default 9100)")
    ap.add_argument("--seed", type=int, help="random seed (default: random, printed)")
    ap.add_argument("--gap", default="1,4", metavar="MIN,MAX", help="s between faults")
    ap.add_argument("--kinds", default=",".join(KINDS), help="faults to use, comma-separated")
    args = ap.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    lo, _, hi = args.gap.partition(",")
    kinds = [k for k in args.kinds.split(",") if k]
    bad = set(kinds) - set(KINDS)
    if bad:
        ap.error("unknown kinds: {}".format(", ".join(sorted(bad))))
    weights = {k: DEFAULT_WEIGHTS[k] for k in kinds}

    def log(text):
        print(text, file=sys.stderr, flush=True)

    async def run():
        proxy = ChaosProxy(host or "127.0.0.1", int(port), args.listen, args.seed,
                           (float(lo), float(hi or lo)), weights, log=log)
        await proxy.start()
        log("chaos proxy on 127.0.0.1:{} -> {}, seed {}".format(proxy.port, args.upstream,
                                                                proxy.seed))
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
