"""The simulated charger: runs the firmware in the MicroPython Unix port inside a simulated world.

Command line and control protocol: docs `simulator-contract.md` (a public API). This process owns
the world (`simworld.World`: EVs, cables, faults, meter, network), serves the control port, the
provisioning port and two ephemeral 127.0.0.1 ports for the firmware: the hardware bus (JSON lines
both ways, one firmware connection at a time) and the network gateway (`CONNECT host port` line,
then spliced bytes), and restarts the firmware when it exits (code 75 at once, a crash after 1 s).
Test hook: env `SIM_FIRMWARE_CMD` (a shell-quoted command) replaces the MicroPython command line.
"""

import argparse
import asyncio
import json
import os
import secrets
import shlex
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from simnet import Gateway  # noqa: E402
from simworld import CommandError, World  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESTART_EXIT = 75  # the firmware asks for a restart (EX_TEMPFAIL)
CRASH_DELAY_S = 1.0
TICK_S = 0.1
METER_PERIOD_S = 1.0
SAVE_PERIOD_S = 1.0
QUERY_TIMEOUT_S = 5.0
SHUTDOWN_WAIT_S = 5.0
LINE_LIMIT = 256 * 1024  # longest JSON line on the control port and the bus
BUS_BACKLOG_MAX = 4 * 1024 * 1024  # bytes queued to a firmware that stopped reading: drop it
PROV_CHUNK = 4096
SECRET_FILE = ".sim-device-secret"
EVENT_COMMANDS = ("tap", "button")  # momentary: lost (and reported) while no firmware listens


def log(text):
    sys.stderr.write("sim: {}\n".format(text))
    sys.stderr.flush()


def _config_item(text):
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected KEY=VALUE, got {!r}".format(text))
    return key, value


def _csms_url(text):
    if not (text.startswith("ws://") or text.startswith("wss://")):
        raise argparse.ArgumentTypeError("URL must start with ws:// or wss://")
    return text


def _positive_number(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: {!r}".format(text)) from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return int(value) if value.is_integer() else value


def _bench_item(text):
    key, sep, value = text.partition("=")
    if key not in ("monitor", "gc_threshold"):
        raise argparse.ArgumentTypeError("--bench takes monitor or gc_threshold=BYTES")
    if key == "monitor":
        return key, True
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("gc_threshold needs a byte count") from None
    if n <= 0:
        raise argparse.ArgumentTypeError("gc_threshold must be > 0")
    return key, n


def _connectors(text):
    n = int(text)
    if not 1 <= n <= 8:
        raise argparse.ArgumentTypeError("connectors must be in 1..8")
    return n


def _hex_secret(text):
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise argparse.ArgumentTypeError("device secret must be hex") from None
    if not 8 <= len(raw) <= 64:
        raise argparse.ArgumentTypeError("device secret must be 8..64 bytes")
    return raw.hex()


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Simulated EV charger: the firmware in the MicroPython Unix port, driven "
        "through a JSON-lines control port (see simulator-contract.md).",
        epilog="Test hook: env SIM_FIRMWARE_CMD replaces the firmware command line "
        "(default: $MICROPYTHON -X heapsize=SIZE firmware/main.py). SIGKILL to the process "
        "group is a power cut; SIGTERM/SIGINT stop cleanly.",
    )
    p.add_argument("--csms", type=_csms_url, help="CSMS URL ws://... or wss://...; the "
                   "Charge Point ID is appended as the last path segment")
    p.add_argument("--id", help="Charge Point ID")
    p.add_argument("--state-dir", required=True, help="the simulated flash (created if missing)")
    p.add_argument("--control-port", type=int, default=7700,
                   help="127.0.0.1 TCP port of the JSON-lines control protocol (default 7700)")
    p.add_argument("--password", help="security profile 1/2 Basic-auth password")
    p.add_argument("--ca", help="CA certificate (PEM or DER) for wss://")
    p.add_argument("--connectors", type=_connectors, default=1, help="number of connectors")
    p.add_argument("--max-current", type=_positive_number, default=32,
                   help="the board's rating in A (default 32)")
    p.add_argument("--phases", type=int, choices=(1, 3), default=1, help="phases at 230 V")
    p.add_argument("--config", type=_config_item, action="append", default=[],
                   metavar="KEY=VALUE", help="OCPP configuration key set before boot (repeatable)")
    p.add_argument("--heapsize", default="1M",
                   help="MicroPython heap (-X heapsize=SIZE; default %(default)s: the Unix port "
                        "is 64-bit and runs from source, so objects and bytecode take about "
                        "twice an ESP32's room; `make bench` measures the smallest heap)")
    p.add_argument("--provision-port", type=int, default=7701,
                   help="127.0.0.1 TCP port serving the provisioning protocol, standing in for "
                   "BLE (same frames as the BLE characteristics, each preceded by a u16 length; "
                   "tools/provision.py --sim 127.0.0.1:PORT, tools/web/provision.html). Open at "
                   "any time for INFO; the authenticated session needs the device secret and "
                   "an unprovisioned state dir or the button window ({\"cmd\":\"button\","
                   "\"ms\":3000}); default 7701")
    p.add_argument("--device-secret", type=_hex_secret, help="per-device provisioning secret "
                   "(hex); without it one is derived from the state dir and printed on stderr")
    p.add_argument("--bench", type=_bench_item, action="append", default=[],
                   metavar="monitor|gc_threshold=N", help="bench instruments in the firmware "
                   "(tools/bench.py): 'monitor' runs a 1 ms task recording the worst loop stall "
                   "and the heap peak (status fields loop_stall_max_ms, heap_peak); "
                   "'gc_threshold=N' collects after every N bytes allocated (repeatable)")
    p.add_argument("--trace", metavar="FILE", help="append timestamped events as JSON lines "
                   "(firmware start/exit and output lines, control commands, bus outputs; "
                   "time.monotonic() seconds) for tools/bench.py")
    args = p.parse_args(argv)
    if args.trace:
        args.trace = os.path.abspath(args.trace)
    if args.ca:
        args.ca = os.path.abspath(args.ca)
        if not os.path.isfile(args.ca):
            p.error("--ca: no such file: {}".format(args.ca))
    args.state_dir = os.path.abspath(args.state_dir)
    return args


def device_secret(state_dir, given):
    """The given secret, else the one kept in the state dir (made once: 16 random bytes)."""
    if given:
        return given
    path = os.path.join(state_dir, SECRET_FILE)
    try:
        with open(path) as f:
            return _hex_secret(f.read().strip())
    except (OSError, argparse.ArgumentTypeError):
        pass
    secret = secrets.token_hex(16)
    with open(path + ".tmp", "w") as f:
        f.write(secret + "\n")
    os.replace(path + ".tmp", path)
    return secret


def _prctl():
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux
        return None


_PRCTL = _prctl()  # looked up here: the child after fork must not import


def _die_with_parent():
    # Runs in the forked child. A firmware whose runner vanished (SIGKILL to sim.py alone, not
    # to its group) dies too instead of running on unsupervised.
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Sim:
    """The runner: the world, its four servers and the firmware process."""

    def __init__(self, args):
        self.args = args
        self.world = World(args.connectors, args.phases)
        self.world.load_meter(args.state_dir)
        self.secret = device_secret(args.state_dir, args.device_secret)
        self.bus = None  # (reader, writer) of the connected firmware
        self.queries = {}  # query id -> future of the answer
        self.query_id = 0
        self.prov = {}  # provisioning session id -> client writer
        self.prov_id = 0
        self.gateway = Gateway(lambda: self.world.net_up, log)
        self.proc = None
        self.restarts = 0
        self.crashes = 0
        self.stopping = False
        self.done = None
        self.saved = [c.energy_wh for c in self.world.connectors]  # what the meter file holds
        self.bus_port = self.gateway_port = None  # ephemeral, known once listening
        self.fw_task = None
        self._trace = open(args.trace, "a", buffering=1) if args.trace else None

    def trace(self, event, **fields):
        """One timestamped event line in the --trace file (nothing without --trace)."""
        if self._trace is not None:
            fields.update(t=time.monotonic(), ev=event)
            self._trace.write(json.dumps(fields) + "\n")

    # -- lifecycle ----------------------------------------------------------------------------

    async def run(self):
        self.done = asyncio.Event()
        loop = asyncio.get_running_loop()
        servers = []
        try:
            for handler, port, name in (
                (self.control_client, self.args.control_port, "control"),
                (self.prov_client, self.args.provision_port, "provision"),
                (self.bus_client, 0, "bus"),
                (self.gateway.client, 0, "gateway"),
            ):
                servers.append(await asyncio.start_server(handler, "127.0.0.1", port,
                                                          limit=LINE_LIMIT))
        except OSError as e:
            log("cannot listen on the {} port {}: {}".format(name, port, e))
            return 2
        self.bus_port = servers[2].sockets[0].getsockname()[1]
        self.gateway_port = servers[3].sockets[0].getsockname()[1]
        log("device secret: {}".format(self.secret))
        log("control 127.0.0.1:{}, provisioning 127.0.0.1:{}, bus {}, gateway {}".format(
            self.args.control_port, self.args.provision_port, self.bus_port, self.gateway_port))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.stop(kill=True)))
        self.fw_task = asyncio.ensure_future(self.firmware_loop())
        tasks = [self.fw_task, asyncio.ensure_future(self.physics_loop())]
        await self.done.wait()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()  # did not stop when told
        for t in tasks:
            t.cancel()
        for s in servers:
            s.close()
        self.gateway.cut()
        for w in list(self.prov.values()):
            w.close()
        log("stopped")
        return 0

    async def stop(self, kill=False):
        """Clean stop: ask the firmware to shut down (or kill it), save the meter, exit 0."""
        if self.stopping:
            return
        self.stopping = True  # firmware_loop ends once the current process is gone
        proc = self.proc
        if proc is not None and proc.returncode is None:
            if kill or self.bus is None:
                proc.terminate()
            else:
                self.query_id += 1
                self.send({"q": "shutdown", "id": self.query_id})
        for _ in range(2):
            try:
                await asyncio.wait_for(asyncio.shield(self.fw_task),
                                       2.0 if kill else SHUTDOWN_WAIT_S)
                break
            except asyncio.TimeoutError:
                if self.proc is not None and self.proc.returncode is None:
                    log("firmware did not stop; killing it")
                    self.proc.kill()
        self.save_meter()
        self.done.set()

    def save_meter(self):
        energies = [c.energy_wh for c in self.world.connectors]
        if energies == self.saved:
            return
        try:
            self.world.save_meter(self.args.state_dir)
            self.saved = energies
        except OSError as e:
            log("cannot save the meter: {}".format(e))

    # -- firmware process ---------------------------------------------------------------------

    def firmware_command(self):
        hook = os.environ.get("SIM_FIRMWARE_CMD")
        if hook:
            return shlex.split(hook)
        mp = os.environ.get("MICROPYTHON") or str(ROOT / ".venv" / "bin" / "micropython")
        return [mp, "-X", "heapsize=" + self.args.heapsize, str(ROOT / "firmware" / "main.py")]

    def firmware_env(self, first_boot):
        a = self.args
        sim_args = {
            "csms": a.csms, "id": a.id, "password": a.password, "ca": a.ca,
            "connectors": a.connectors, "max_current": a.max_current, "phases": a.phases,
            "config": dict(a.config), "device_secret": self.secret, "first_boot": first_boot,
            "bench": dict(a.bench),
        }
        env = dict(os.environ)
        env.update({
            "MICROPYPATH": ":".join([".frozen", str(ROOT / "lib"), str(ROOT)]),
            "EVSE_BOARD": "sim",
            "EVSE_STATE_DIR": a.state_dir,
            "EVSE_SIM_BUS": str(self.bus_port),
            "EVSE_SIM_GATEWAY": str(self.gateway_port),
            "EVSE_SIM_ARGS": json.dumps(sim_args),
        })
        return env

    async def firmware_loop(self):
        first_boot = True
        while not self.stopping:
            cmd = self.firmware_command()
            try:
                proc = await asyncio.create_subprocess_exec(
                    *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE, env=self.firmware_env(first_boot),
                    cwd=str(ROOT), preexec_fn=_die_with_parent)
            except OSError as e:
                log("cannot start the firmware {}: {}".format(cmd, e))
                self.restarts += 1
                self.crashes += 1
                await asyncio.sleep(CRASH_DELAY_S)
                continue
            self.proc = proc
            self.trace("fw_start", pid=proc.pid)
            if self.stopping:  # stop() came while we were spawning
                proc.kill()
            log("firmware started (pid {}, first_boot {})".format(proc.pid, first_boot))
            first_boot = False
            await asyncio.gather(proc.wait(), self._relay_output(proc.stdout),
                                 self._relay_output(proc.stderr))
            rc = proc.returncode
            self.trace("fw_exit", rc=rc)
            self.world.reset_outputs()
            if self.stopping:
                log("firmware exited with {}".format(rc))
                return
            self.restarts += 1
            if rc == RESTART_EXIT:
                log("firmware asked for a restart")
                continue
            self.crashes += 1
            log("firmware crashed (exit {}); restarting in {} s".format(rc, CRASH_DELAY_S))
            await asyncio.sleep(CRASH_DELAY_S)

    async def _relay_output(self, stream):
        # The firmware's stdout and stderr go to our stderr, line by line, prefixed "fw: ".
        pending = b""
        while True:
            chunk = await stream.read(4096)
            pending += chunk
            lines = pending.split(b"\n")
            pending = lines.pop()
            if pending and (not chunk or len(pending) > 4096):
                lines.append(pending)
                pending = b""
            for line in lines:
                text = line.decode("utf-8", "replace")
                self.trace("fw_line", line=text)
                sys.stderr.write("fw: {}\n".format(text))
            sys.stderr.flush()
            if not chunk:
                return

    # -- physics ------------------------------------------------------------------------------

    async def physics_loop(self):
        loop = asyncio.get_running_loop()
        last = loop.time()
        next_meter = last + METER_PERIOD_S
        next_save = last + SAVE_PERIOD_S
        while True:
            await asyncio.sleep(TICK_S)
            now = loop.time()
            self.world.tick(now - last)
            last = now
            if now >= next_meter:
                next_meter = now + METER_PERIOD_S
                for msg in self.world.meter_messages():
                    self.send(msg)
            if now >= next_save:
                next_save = now + SAVE_PERIOD_S
                self.save_meter()

    # -- hardware bus -------------------------------------------------------------------------

    def send(self, msg):
        """Push one message to the firmware; dropped while none is connected."""
        if self.bus is None:
            return
        writer = self.bus[1]
        if writer.transport.get_write_buffer_size() > BUS_BACKLOG_MAX:
            log("firmware stopped reading the bus; dropping it")
            writer.transport.abort()
            return
        writer.write(json.dumps(msg).encode() + b"\n")

    async def query(self, q):
        """Ask the firmware; returns its answer dict. Raises ConnectionError, TimeoutError."""
        if self.bus is None:
            raise ConnectionError("firmware restarting")
        self.query_id += 1
        qid = self.query_id
        fut = asyncio.get_running_loop().create_future()
        self.queries[qid] = fut
        self.send({"q": q, "id": qid})
        try:
            return await asyncio.wait_for(fut, QUERY_TIMEOUT_S)
        finally:
            self.queries.pop(qid, None)

    async def bus_client(self, reader, writer):
        if self.bus is not None:
            log("a new firmware connection replaces the old one")
            self._bus_gone()
        self.bus = (reader, writer)
        log("firmware connected to the bus")
        for msg in self.world.full_state():
            self.send(msg)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                self._bus_message(line)
        except (ConnectionError, ValueError) as e:
            log("bus: {}".format(e))
        finally:
            if self.bus is not None and self.bus[1] is writer:
                log("firmware left the bus")
                self._bus_gone()
            writer.close()

    def _bus_gone(self):
        self.bus[1].close()
        self.bus = None
        for fut in self.queries.values():
            if not fut.done():
                fut.set_exception(ConnectionError("firmware restarting"))
        # The provisioning link (BLE on hardware) drops when the charger goes away.
        for w in list(self.prov.values()):
            w.close()
        self.prov.clear()

    def _bus_message(self, line):
        try:
            msg = json.loads(line)
            if not isinstance(msg, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            log("bus: bad line from the firmware ({}): {!r}".format(e, line[:200]))
            return
        if "a" in msg:
            qid = msg["a"]
            fut = self.queries.get(qid) if isinstance(qid, int) else None
            if fut is not None and not fut.done():
                fut.set_result(msg)
            return
        out = msg.get("out")
        self.trace("out", msg=msg)
        if out in ("prov_data", "prov_close"):
            self._prov_output(msg)
            return
        try:
            change = self.world.output(msg)
        except CommandError as e:
            log("bus: bad output from the firmware ({}): {!r}".format(e, line[:200]))
            return
        if change == "led":
            log("led: {}".format(msg["pattern"]))
        elif out == "led_flash":
            log("led flash: {}".format(msg.get("kind")))
        elif change == "unlock":
            log("connector {} unlocked".format(msg["connector"]))
        if change == "relay":
            log("relay {} {}".format(msg["connector"], "closed" if msg["closed"] else "open"))
            for meter in self.world.meter_messages():
                self.send(meter)

    # -- control port -------------------------------------------------------------------------

    async def control_client(self, reader, writer):
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:
                    writer.write(b'{"ok": false, "error": "request line too long"}\n')
                    break
                if not line:
                    break
                if not line.strip():
                    continue
                reply, shutdown = await self.request(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if shutdown:
                    await self.stop()
                    break
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def request(self, line):
        """One control request; returns (reply, whether to shut down after replying)."""
        try:
            req = json.loads(line)
        except ValueError:
            return {"ok": False, "error": "malformed JSON"}, False
        if not isinstance(req, dict):
            return {"ok": False, "error": "request must be a JSON object"}, False
        cmd = req.get("cmd")
        if self.stopping:
            return {"ok": False, "error": "shutting down"}, False
        if cmd == "shutdown":
            log("control: shutdown")
            return {"ok": True}, True
        if cmd == "status":
            return await self.status(), False
        try:
            msgs = self.world.apply(req)
        except CommandError as e:
            return {"ok": False, "error": str(e)}, False
        if cmd in EVENT_COMMANDS and self.bus is None:
            error = "firmware restarting: {} not delivered".format(cmd)
            return {"ok": False, "error": error}, False
        log("control: {}".format(json.dumps(req)))
        self.trace("control", req=req)
        if cmd == "net" and not req["up"]:
            self.gateway.cut()
        for msg in msgs:
            self.send(msg)
        return {"ok": True}, False

    async def status(self):
        try:
            answer = await self.query("status")
        except ConnectionError:
            return {"ok": False, "error": "firmware restarting"}
        except asyncio.TimeoutError:
            return {"ok": False, "error": "firmware did not answer"}
        reply = {"ok": True}
        reply.update((k, v) for k, v in answer.items() if k not in ("a", "ok"))
        reply["firmware_restarts"] = self.restarts
        reply["firmware_crashes"] = self.crashes
        return reply

    # -- provisioning port --------------------------------------------------------------------

    async def prov_client(self, reader, writer):
        if self.bus is None:
            log("provisioning client refused: firmware restarting")
            writer.close()
            return
        self.prov_id += 1
        sid = self.prov_id
        self.prov[sid] = writer
        self.send({"in": "prov_open", "session": sid})
        try:
            while sid in self.prov:
                data = await reader.read(PROV_CHUNK)
                if not data:
                    break
                self.send({"in": "prov_data", "session": sid, "hex": data.hex()})
        except ConnectionError:
            pass
        finally:
            if self.prov.pop(sid, None) is not None:
                self.send({"in": "prov_close", "session": sid})
            writer.close()

    def _prov_output(self, msg):
        sid = msg.get("session")
        writer = self.prov.get(sid) if isinstance(sid, int) else None
        if writer is None:
            return
        if msg["out"] == "prov_close":
            self.prov.pop(msg["session"], None)
            writer.close()
            return
        try:
            writer.write(bytes.fromhex(msg.get("hex", "")))
        except (ValueError, TypeError):
            log("bus: bad prov_data hex from the firmware")


def main(argv=None):
    try:
        os.setpgid(0, 0)  # process-group leader: kill -9 -PID is a power cut of everything
    except OSError:
        if os.getpgid(0) != os.getpid():
            raise
    args = parse_args(argv)
    os.makedirs(args.state_dir, exist_ok=True)
    return asyncio.run(Sim(args).run())


if __name__ == "__main__":
    sys.exit(main())
