"""Benchmark 5 of tools/bench.py: incoming CALL throughput, ours against the `ocpp` package.

A minimal CSMS (`BurstCSMS`, websockets in a thread) sends the same mix of CALLs back to back to
our simulated charger and to a charger built on the `ocpp` package (`ocpp_peer`, CPython, run as
`tools/bench.py --ocpp-peer URL CP`), in interleaved batches; the ratio of the median rates is the
number. One CALL at a time through the lab CSMS (requests and answers schema-checked) is reported
beside it.
"""

import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchkit import CP, Control, Lab, call_code, status, wait

BENCH = Path(__file__).resolve().parent / "bench.py"
MIX = [  # incoming CALL mix of benchmark 5
    ("GetConfiguration", {"key": ["HeartbeatInterval"]}),
    ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "3600"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("DataTransfer", {"vendorId": "bench", "messageId": "ping", "data": "x"}),
]

def ocpp_peer(url, cp_id):
    """A charger built on the `ocpp` package (CPython) answering the benchmark-5 mix."""
    import asyncio

    import websockets
    from ocpp.routing import after, on
    from ocpp.v16 import ChargePoint, call, call_result

    keys = {"HeartbeatInterval": "300"}

    class Peer(ChargePoint):
        @on("GetConfiguration")
        def on_get_configuration(self, key=None, **_):
            wanted = key or list(keys)
            return call_result.GetConfiguration(
                configuration_key=[{"key": k, "readonly": False, "value": keys[k]}
                                   for k in wanted if k in keys],
                unknown_key=[k for k in wanted if k not in keys] or None)

        @on("ChangeConfiguration")
        def on_change_configuration(self, key, value, **_):
            if key not in keys:
                return call_result.ChangeConfiguration(status="NotSupported")
            keys[key] = value
            return call_result.ChangeConfiguration(status="Accepted")

        @on("TriggerMessage")
        def on_trigger_message(self, requested_message, **_):
            ok = requested_message == "Heartbeat"
            return call_result.TriggerMessage(status="Accepted" if ok else "NotImplemented")

        @after("TriggerMessage")
        def after_trigger_message(self, requested_message, **_):
            if requested_message == "Heartbeat":  # a task: start() must keep reading
                self.tasks.append(asyncio.ensure_future(self.call(call.Heartbeat())))

        @on("DataTransfer")
        def on_data_transfer(self, **_):
            return call_result.DataTransfer(status="UnknownVendorId")

    async def run():
        async with websockets.connect("{}/{}".format(url, cp_id),
                                      subprotocols=["ocpp1.6"]) as ws:
            cp = Peer(cp_id, ws)
            cp.tasks = []
            reader = asyncio.ensure_future(cp.start())
            await cp.call(call.BootNotification(charge_point_model="ocpp-peer",
                                                charge_point_vendor="bench"))
            await reader

    asyncio.run(run())


def _sequential(ctl, cp, rounds):
    """One CALL at a time through the lab CSMS's `call` (request and answer validated)."""
    t = time.monotonic()
    codes = {}
    for _ in range(rounds):
        for action, payload in MIX:
            r = ctl.request({"cmd": "call", "cp": cp, "action": action, "payload": payload,
                             "timeout": 30})
            code = call_code(r)
            codes.setdefault(action, {}).setdefault(code, 0)
            codes[action][code] += 1
    return rounds * len(MIX), time.monotonic() - t, codes


class BurstCSMS:
    """A minimal CSMS (websockets, in a thread) that sends CALLs back to back and times them.

    The lab CSMS's control port costs about a millisecond per frame, more than a charger needs
    to answer one; this server keeps the CSMS out of the measurement. It answers the chargers'
    own CALLs (boot, status, heartbeat) with minimal valid results.
    """

    ANSWERS = {"BootNotification": lambda: {"currentTime": _now(), "interval": 300,
                                             "status": "Accepted"},
               "Heartbeat": lambda: {"currentTime": _now()},
               "DataTransfer": lambda: {"status": "UnknownVendorId"}}

    def __init__(self):
        import asyncio
        import threading

        self.asyncio = asyncio
        self.loop = asyncio.new_event_loop()
        self.links = {}  # cp id -> (websocket, queue of answers to our CALLs)
        self.n = 0
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        self.port = self._run(self._start())

    def _run(self, coro, timeout=120):
        return self.asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self):
        from websockets.asyncio.server import serve

        self.server = await serve(self._handle, "127.0.0.1", 0, subprotocols=["ocpp1.6"],
                                  max_size=None, ping_interval=None)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, ws):
        cp = ws.request.path.rstrip("/").rsplit("/", 1)[-1]
        answers = self.asyncio.Queue()
        self.links[cp] = (ws, answers)
        from websockets.exceptions import ConnectionClosed

        try:
            async for text in ws:
                msg = json.loads(text)
                if msg[0] == 2:
                    result = self.ANSWERS.get(msg[2], dict)()
                    await ws.send(json.dumps([3, msg[1], result]))
                else:
                    answers.put_nowait(msg)
        except ConnectionClosed:
            pass  # a peer going away at the end

    def connected(self, cp):
        return cp in self.links

    def burst(self, cp, rounds):
        """Send the mix `rounds` times back to back; (calls, seconds, answer codes)."""
        return self._run(self._burst(cp, rounds))

    async def _burst(self, cp, rounds):
        ws, answers = self.links[cp]
        frames = []
        for _ in range(rounds):
            for action, payload in MIX:
                self.n += 1
                frames.append(json.dumps([2, "tp{}".format(self.n), action, payload]))
        t = time.monotonic()
        for text in frames:
            await ws.send(text)
        codes = {}
        for _ in frames:
            msg = await self.asyncio.wait_for(answers.get(), 60)
            code = "ok" if msg[0] == 3 else msg[2]
            codes[code] = codes.get(code, 0) + 1
        return len(frames), time.monotonic() - t, codes

    def close(self):
        async def stop():
            self.server.close()

        self._run(stop())
        self.loop.call_soon_threadsafe(self.loop.stop)


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _peer(url, cp, log_path):
    log = open(log_path, "w")
    return subprocess.Popen([sys.executable, str(BENCH), "--ocpp-peer", url,
                             cp], stdout=log, stderr=log, start_new_session=True)


def bench_throughput(ctx):
    rounds = 25 if ctx.args.quick else 50  # per batch: 4 CALLs a round
    batches = 3 if ctx.args.quick else 7
    burst = BurstCSMS()
    peers = []
    try:
        with Lab(ctx.work, "throughput") as lab:
            # Back to back through the burst CSMS: the number reported.
            url = "ws://127.0.0.1:{}/ocpp".format(burst.port)
            sim_b = lab.sim(csms=url, cp_id=CP, config={"MeterValueSampleInterval": "0"})
            peers.append(_peer(url, "PY1", Path(lab.dir) / "peer-burst.log"))
            wait(lambda: burst.connected(CP) and burst.connected("PY1"), 30, "burst links")
            time.sleep(1.0)  # boot traffic over
            rates = {CP: [], "PY1": []}
            burst_codes = {CP: {}, "PY1": {}}
            for who in (CP, "PY1"):  # warm-up
                burst.burst(who, 5)
            for _ in range(batches):  # interleaved batches: both see the same machine load
                for who in (CP, "PY1"):
                    n, dt, codes_ = burst.burst(who, rounds)
                    rates[who].append(n / dt)
                    for code, count in codes_.items():
                        burst_codes[who][code] = burst_codes[who].get(code, 0) + count
            sim_b.stop()
            # One at a time through the lab CSMS (requests and answers validated): context.
            csms = lab.csms()
            sim = lab.sim(csms=csms.url, cp_id=CP, config={"MeterValueSampleInterval": "0"})
            peers.append(_peer(csms.url, "PY1", Path(lab.dir) / "peer-lab.log"))
            wait(lambda: status(sim).get("registration") == "Accepted", 60, "boot")
            csms.wait_connected("PY1", timeout=20)
            ctl = Control(csms)
            seq = {CP: [0, 0.0], "PY1": [0, 0.0]}
            codes = {}
            for who in (CP, "PY1"):
                _sequential(ctl, who, 2)
            for _ in range(3):
                for who in (CP, "PY1"):
                    n, dt, codes[who] = _sequential(ctl, who, 10)
                    seq[who][0] += n
                    seq[who][1] += dt
            ctl.close()
            violations = csms.violations(CP)
    finally:
        for peer in peers:
            peer.terminate()
            peer.wait(5)
        burst.close()
    ours = statistics.median(rates[CP])
    theirs = statistics.median(rates["PY1"])
    seq_ours = seq[CP][0] / seq[CP][1]
    seq_theirs = seq["PY1"][0] / seq["PY1"][1]
    notes = ["{}: ours {}".format(a, ", ".join(sorted(c))) for a, c in sorted(codes[CP].items())
             if set(c) != {"ok"}]
    if violations:
        notes.append("{} violations".format(len(violations)))
    return {5: {"value": round(ours / theirs, 3), "unit": "x",
                "text": "{:.2f}x ({:.0f} vs {:.0f} msg/s back to back, medians of {} batches of "
                        "{}; one at a time through the lab CSMS: {:.0f} vs {:.0f} msg/s)".format(
                            ours / theirs, ours, theirs, batches, rounds * len(MIX), seq_ours,
                            seq_theirs),
                "data": {"ours_msgs_per_s": ours, "ocpp_msgs_per_s": theirs,
                         "sequential_ours_msgs_per_s": seq_ours,
                         "sequential_ocpp_msgs_per_s": seq_theirs,
                         "batch_rates": rates, "mix": [a for a, _ in MIX],
                         "answers_back_to_back": burst_codes, "answers": codes},
                "note": "; ".join(notes)}}

