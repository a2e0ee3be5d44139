"""MicroPython side of host_tests/test_wsclient.py: net.wsclient against real servers.

Run as `micropython _wsclient_mp.py <config.json> [scenario ...]` with MICROPYPATH holding lib/.
Each scenario prints one `@@WS {"name": ..., ...}` line; the CPython test asserts on it and on
what its servers saw. One process runs every scenario (one Unix-port start per test file).
"""

import asyncio
import gc
import json
import sys

from net.auth import authorization_key_bytes
from net.link import STAGES, ConnectError, SocketLink, sock_readline, sock_write, tcp_connect
from net.tls import client_context
from net.wsclient import WSClient, WSClosed

CFG = {}
# One client per link, made at start and reused by every scenario, as the firmware does: its
# buffers are allocated once, and each scenario is also a reconnect of a used client.
CLIENTS = {}


class GatewayLink(SocketLink):
    """What the simulated board does: reach the target through a plaintext CONNECT gateway."""

    def __init__(self, gw_host, gw_port):
        self._gw = (gw_host, gw_port)

    async def _open_socket(self, host, port, timeout_ms):
        sock = await tcp_connect(self._gw[0], self._gw[1], timeout_ms)
        try:
            await sock_write(sock, "CONNECT {} {}\n".format(host, port).encode(), timeout_ms)
            line = await sock_readline(sock, 128, timeout_ms)
        except BaseException:
            sock.close()
            raise
        if line == b"OK\n":
            return sock
        sock.close()
        parts = line.decode().strip().split(" ", 2)
        if len(parts) >= 2 and parts[0] == "ERR" and parts[1] in STAGES:
            raise ConnectError(parts[1], parts[2] if len(parts) > 2 else "")
        raise ConnectError("tcp", "gateway answered {!r}".format(line))


class OfflineLink(SocketLink):
    def isconnected(self):
        return False


def read(path):
    with open(path, "rb") as f:
        return f.read()


def url(path, port=None, scheme="ws", host="localhost"):
    return "{}://{}:{}/{}".format(scheme, host, port or CFG["port"], path)


def ctx(ca="ca", client=False):
    if client:
        return client_context(read(CFG[ca]), read(CFG["client_cert"]), read(CFG["client_key"]))
    return client_context(read(CFG[ca]))


async def connect_error(coro):
    try:
        await coro
    except ConnectError as e:
        return {"stage": e.stage, "detail": e.detail}
    return {"stage": None}


async def closed_by(c):
    try:
        m = await c.recv()
    except WSClosed as e:
        return {"code": e.code, "reason": e.reason}
    return {"code": None, "message": m}


async def echo_once(c, text="hello"):
    await c.send(text)
    return await c.recv()


# -- scenarios ------------------------------------------------------------------------------


async def s_echo():
    c = CLIENTS["socket"]
    await c.connect(url("echo"), "CP1")
    got = await echo_once(c, "hällo [2,\"1\",\"Heartbeat\",{}]")
    await c.close()
    after = await closed_by(c)
    return {"echo": got, "after_close": after}


async def s_server_ping():
    c = CLIENTS["socket"]
    await c.connect(url("ping"), "CP1")
    got = await c.recv()  # the server pings first, then reports whether our pong came back
    await c.close()
    return {"got": got}


async def s_abort_mid_message():
    c = CLIENTS["socket"]
    await c.connect(url("abort"), "CP1")
    return await closed_by(c)


async def s_close_mid_message():
    c = CLIENTS["socket"]
    await c.connect(url("closemid"), "CP1")
    return await closed_by(c)


async def s_oversized():
    c = CLIENTS["socket"]
    await c.connect(url("big"), "CP1")
    r = await closed_by(c)
    gc.collect()
    r["mem_free"] = gc.mem_free()
    return r


async def s_fragmented():
    c = CLIENTS["socket"]
    await c.connect(url("frag"), "CP1")
    first = await c.recv()
    second = await c.recv()
    await c.close()
    return {"first": first, "second": second}


async def s_binary():
    c = CLIENTS["socket"]
    await c.connect(url("binary"), "CP1")
    return await closed_by(c)


async def s_basic_auth():
    c = CLIENTS["socket"]
    key = authorization_key_bytes(CFG["auth_key_hex"])
    await c.connect(url("auth"), "CP1", auth_key=key)
    got = await echo_once(c, "authorised?")
    await c.close()
    return {"echo": got, "key_len": len(key)}


async def s_wss_ok():
    c = CLIENTS["socket"]
    await c.connect(url("echo", CFG["tls_ok"], "wss"), "CP1", ssl_ctx=ctx())
    got = await echo_once(c, "over tls")
    await c.close()
    return {"echo": got}


async def s_wss_wrong_ca():
    c = CLIENTS["socket"]
    return await connect_error(
        c.connect(url("echo", CFG["tls_ok"], "wss"), "CP1", ssl_ctx=ctx("wrong_ca"))
    )


async def s_wss_hostname_mismatch():
    c = CLIENTS["socket"]
    return await connect_error(
        c.connect(url("echo", CFG["tls_wronghost"], "wss"), "CP1", ssl_ctx=ctx())
    )


async def s_wss_expired():
    c = CLIENTS["socket"]
    target = url("echo", CFG["tls_expired"], "wss")
    return await connect_error(c.connect(target, "CP1", ssl_ctx=ctx()))


async def s_wss_profile3():
    c = CLIENTS["socket"]
    await c.connect(url("echo", CFG["tls_mtls"], "wss"), "CP1", ssl_ctx=ctx(client=True))
    got = await echo_once(c, "mutual")
    await c.close()
    return {"echo": got}


async def s_wss_profile3_without_client_cert():
    c = CLIENTS["socket"]
    target = url("echo", CFG["tls_mtls"], "wss")
    return await connect_error(c.connect(target, "CP1", ssl_ctx=ctx()))


async def s_no_subprotocol():
    c = CLIENTS["socket"]
    return await connect_error(c.connect(url("echo", CFG["noproto_port"]), "CP1"))


async def s_http_401():
    c = CLIENTS["socket"]
    return await connect_error(c.connect(url("deny"), "CP1", auth_key=b"wrong"))


async def s_refused():
    c = CLIENTS["socket"]
    target = url("echo", CFG["refused_port"], host="127.0.0.1")
    return await connect_error(c.connect(target, "CP1"))


async def s_dns():
    c = CLIENTS["socket"]
    return await connect_error(c.connect("ws://nonexistent.invalid/ocpp", "CP1"))


async def s_offline():
    c = CLIENTS["offline"]
    return await connect_error(c.connect(url("echo"), "CP1"))


async def s_timeout():
    c = CLIENTS["socket"]
    return await connect_error(c.connect(url("x", CFG["blackhole_port"]), "CP1", timeout_ms=300))


async def s_heap_flat():
    c = CLIENTS["socket"]
    await c.connect(url("echo"), "CP1")
    msg = '[2,"19223201","MeterValues",{"connectorId":1,"meterValue":[]}]'
    for _ in range(20):  # warm up: first-use allocations (lock waiters, qstrs) happen here
        await echo_once(c, msg)
    gc.collect()
    before = gc.mem_alloc()
    n = 2000
    for _ in range(n):
        got = await echo_once(c, msg)
    got = None
    gc.collect()
    after = gc.mem_alloc()
    await c.close()
    return {"before": before, "after": after, "n": n}


async def s_gateway_ws():
    c = CLIENTS["gateway"]
    await c.connect(url("echo"), "CP1")
    got = await echo_once(c, "via gateway")
    await c.close()
    return {"echo": got}


async def s_gateway_wss():
    c = CLIENTS["gateway"]
    await c.connect(url("echo", CFG["tls_ok"], "wss"), "CP1", ssl_ctx=ctx())
    got = await echo_once(c, "tls via gateway")
    await c.close()
    return {"echo": got}


async def s_gateway_wss_wrong_ca():
    c = CLIENTS["gateway"]
    return await connect_error(
        c.connect(url("echo", CFG["tls_ok"], "wss"), "CP1", ssl_ctx=ctx("wrong_ca"))
    )


async def s_gateway_err():
    c = CLIENTS["gateway"]
    return await connect_error(c.connect("ws://nonexistent.invalid:80/ocpp", "CP1"))


async def s_keepalive_alive():
    c = CLIENTS["socket"]
    await c.connect(url("quiet"), "CP1")
    ka = asyncio.create_task(c.keepalive(0.1))
    rx = asyncio.create_task(c.recv())
    await asyncio.sleep_ms(600)  # six ping intervals with no messages: pongs keep it up
    alive = c.is_open
    await c.send("still there?")  # the quiet handler echoes this one
    got = await rx
    await c.close()
    await ka
    return {"alive": alive, "got": got}


async def s_keepalive_timeout():
    c = CLIENTS["socket"]
    await c.connect(url("x", CFG["silent_port"]), "CP1")
    ka = asyncio.create_task(c.keepalive(0.2))
    r = await closed_by(c)  # the silent server never answers a ping
    await ka
    return r


async def s_close_while_reading():
    c = CLIENTS["socket"]
    await c.connect(url("quiet"), "CP1")
    rx = asyncio.create_task(closed_by(c))
    await asyncio.sleep_ms(50)
    await c.close(1001, "going away")
    return await rx


async def s_recv_cancelled_then_continues():
    c = CLIENTS["socket"]
    await c.connect(url("echo"), "CP1")
    try:
        await asyncio.wait_for_ms(c.recv(), 100)  # nothing comes: the caller gives up
        timed_out = False
    except asyncio.TimeoutError:
        timed_out = True
    got = await echo_once(c, "after a cancelled recv")
    await c.close()
    return {"timed_out": timed_out, "echo": got}


async def s_reconnect_reuses_client():
    c = CLIENTS["socket"]
    got = []
    for i in range(3):
        await c.connect(url("echo"), "CP1")
        got.append(await echo_once(c, "round {}".format(i)))
        await c.close()
    return {"echo": got}


async def main(names):
    for name in names:
        fn = globals().get("s_" + name)
        gc.collect()
        try:
            res = await asyncio.wait_for_ms(fn(), 20000)
            res["ok"] = True
        except Exception as e:  # reported to pytest, never swallowed
            res = {"ok": False, "error": "{}: {}".format(type(e).__name__, e)}
        res["name"] = name
        gc.collect()
        res["mem_free_after"] = gc.mem_free()
        sys.stdout.write("@@WS " + json.dumps(res) + "\n")


def run():
    with open(sys.argv[1]) as f:
        CFG.update(json.load(f))
    CLIENTS["socket"] = WSClient(SocketLink())
    CLIENTS["gateway"] = WSClient(GatewayLink("127.0.0.1", CFG["gw_port"]))
    CLIENTS["offline"] = WSClient(OfflineLink())
    names = sys.argv[2:] or [k[2:] for k in sorted(globals()) if k.startswith("s_")]
    asyncio.run(main(names))


run()
