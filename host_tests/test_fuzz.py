"""Fuzzing the charger's OCPP-J input: random and mutated frames from the CSMS over the WebSocket.

Hypothesis builds frames for every CSMS-initiated 1.6 action (core profiles and the security
whitepaper), from the OCPP 1.6 JSON schemas shipped in the `ocpp` package, and sends them through
the lab CSMS (`raw` / `raw_bytes`) to the real firmware in the simulator. Classes and oracles:

| class                  | frame                                       | the charger must answer      |
|------------------------|---------------------------------------------|------------------------------|
| schema mutation        | one field missing, extra, of the wrong type | the code the mutation calls  |
|                        | or out of its enum/length/multipleOf range  | for (OCC, FV, TYP, PROP)     |
| valid                  | a valid payload of a harmless action        | CALLRESULT, or a semantic    |
|                        |                                             | CALLERROR (never Internal/FV)|
| unknown action         | any other action name                       | NotImplemented               |
| huge numbers           | 1e19..1e400, +-1.8e308 in a number field    | as valid if jsonschema says  |
|                        |                                             | so, else PROP/TYP            |
| deep nesting           | 20-3000 levels of arrays/objects in a field | FV (extra key); TYP/OCC/FV   |
| invalid frame shapes   | the table of ocpp16.rpc.decode              | its CALLERROR, or nothing    |
| oversized (> 8192 B)   | a CALL too big for the WebSocket bound      | close 1009, then reconnect   |
| bad UTF-8 / binary     | invalid bytes in a text frame; binary frame | close 1007 / 1003, reconnect |

An action the firmware does not handle answers NotImplemented to everything (found by probing,
so the oracle follows the features as they land). Whether a mutated payload is still valid is
decided by `jsonschema` (numbers as Decimal, like the `ocpp` package). Valid payloads are sent
only for actions that cannot reboot, reconfigure or block the charger; mutations of the others
never reach a handler. Every CALLRESULT is checked against the schema by the lab CSMS.
Deliberate deviations of the firmware are listed in `documented_deviation()`; a close the lab
CSMS saw as 1006 counts when the firmware logged the right code (see `Target.expect_close`).
Afterwards a normal RFID session works and the heap after gc did not grow beyond
HEAP_TOLERANCE. `make test` runs FUZZ_EXAMPLES=400; `make fuzz` runs 5000.
"""

import decimal
import json
import os
import time
from pathlib import Path

import jsonschema
import ocpp
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from charger_helpers import CP, conn, ok, start_session
from labcsms import CS_ACTIONS, LabCSMSProcess
from sim_fixtures import SimFactory
from test_rpc_properties import from_schema, mutated

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "400"))
CLOSE_EXAMPLES = max(6, FUZZ_EXAMPLES // 60)  # each costs a reconnect (1-2 s)
HEAP_TOLERANCE = 4096  # bytes of heap_used (after gc) the fuzzing may leave behind
MAX_MESSAGE = 8192  # lib/net/ws.py DEFAULT_MAX_MESSAGE: the charger's incoming bound
SCHEMAS = Path(ocpp.__file__).parent / "v16" / "schemas"
FV, PE, OCC, TYP, PROP = ("FormationViolation", "ProtocolError", "OccurenceConstraintViolation",
                          "TypeConstraintViolation", "PropertyConstraintViolation")
NI = "NotImplemented"
# What a handler may answer to a schema-valid request it will not carry out.
SEMANTIC = {NI, "NotSupported", PROP, OCC, "GenericError", "SecurityError"}
# Valid payloads go only to these: nothing here reboots, disables, reserves, limits or reflashes.
HARMLESS = {"GetConfiguration", "ClearCache", "DataTransfer", "GetLocalListVersion",
            "GetCompositeSchedule", "TriggerMessage", "ExtendedTriggerMessage",
            "RemoteStopTransaction", "UnlockConnector", "ChangeConfiguration",
            "CancelReservation", "ClearChargingProfile", "GetInstalledCertificateIds",
            "DeleteCertificate", "SendLocalList"}
# One valid request per harmless action, sent during the warm-up: a handler's first call may
# import its module (lazy imports of rare features), which is not growth caused by fuzzing.
WARM_UP = {
    "GetConfiguration": {}, "ClearCache": {}, "DataTransfer": {"vendorId": "warm"},
    "GetLocalListVersion": {}, "GetCompositeSchedule": {"connectorId": 1, "duration": 60},
    "TriggerMessage": {"requestedMessage": "Heartbeat"},
    "ExtendedTriggerMessage": {"requestedMessage": "Heartbeat"},
    "RemoteStopTransaction": {"transactionId": 999999}, "UnlockConnector": {"connectorId": 9},
    "ChangeConfiguration": {"key": "NoSuchKey", "value": "1"},
    "CancelReservation": {"reservationId": 999999}, "ClearChargingProfile": {"id": 999999},
    "GetInstalledCertificateIds": {"certificateType": "CentralSystemRootCertificate"},
    "DeleteCertificate": {"certificateHashData": {"hashAlgorithm": "SHA256", "issuerNameHash": "0",
                                                  "issuerKeyHash": "0", "serialNumber": "0"}},
    "SendLocalList": {"listVersion": 1, "updateType": "Differential",
                      "localAuthorizationList": [{"idTag": "WARMUP"}]},
}
ACTIONS = sorted(CS_ACTIONS)
CP_ACTIONS = ["Authorize", "BootNotification", "Heartbeat", "MeterValues", "StartTransaction",
              "StatusNotification", "StopTransaction", "DiagnosticsStatusNotification",
              "FirmwareStatusNotification", "SignCertificate", "SecurityEventNotification"]
SIM_CONFIG = {"ReconnectBackoffMin": "1", "ReconnectBackoffMax": "2",
              "MeterValueSampleInterval": "0", "WebSocketPingInterval": "0"}
PROBE = '[2,"{}","GetConfiguration",{{"key":["HeartbeatInterval"]}}]'
TRIGGERS = ("BootNotification", "DiagnosticsStatusNotification", "FirmwareStatusNotification",
            "Heartbeat", "MeterValues", "StatusNotification")


def documented_deviation(action, payload):
    """A CALLRESULT the firmware gives on purpose where the schema would ask for a CALLERROR.

    lib/ocpp16/trigger.py: an unknown requestedMessage string gets TriggerMessage status
    NotImplemented (its request spec relaxes the enum), not PropertyConstraintViolation.
    """
    if action == "TriggerMessage" and isinstance(payload, dict):
        m = payload.get("requestedMessage")
        return isinstance(m, str) and m not in TRIGGERS
    return False


def _inline_refs(node, defs):
    """The schema with every `$ref: #/definitions/X` replaced by X (the security schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            return _inline_refs(defs[node["$ref"].rsplit("/", 1)[1]], defs)
        return {k: _inline_refs(v, defs) for k, v in node.items() if k != "definitions"}
    if isinstance(node, list):
        return [_inline_refs(v, defs) for v in node]
    return node


def _load(action, parse_float=float):
    raw = json.loads((SCHEMAS / (action + ".json")).read_text(), parse_float=parse_float)
    return _inline_refs(raw, raw.get("definitions", {}))


SCHEMA = {a: _load(a) for a in ACTIONS}
VALIDATOR = {}
for _a in ACTIONS:
    _s = _load(_a, decimal.Decimal)
    VALIDATOR[_a] = jsonschema.validators.validator_for(_s)(
        _s, format_checker=jsonschema.FormatChecker())


def _longest_string(node):
    own = node.get("maxLength", 0) if isinstance(node, dict) else 0
    kids = []
    if isinstance(node, dict):
        kids = list(node.get("properties", {}).values()) + ([node["items"]] if "items" in node
                                                            else [])
    return max([own] + [_longest_string(k) for k in kids])


# Mutations only where every too-long string still fits a frame (certificates of 5500-10000
# characters cannot be sent too long without the link closing with 1009).
MUTABLE = [a for a in ACTIONS if SCHEMA[a]["properties"] and _longest_string(SCHEMA[a]) < 2000]


def schema_valid(action, text):
    """The `ocpp` package's verdict: numbers as Decimal; plus the date-time format."""
    try:
        payload = json.loads(text, parse_float=decimal.Decimal)[3]
    except (ValueError, IndexError, TypeError):
        return False
    return VALIDATOR[action].is_valid(payload)


# ---- the charger under fuzz -------------------------------------------------------------------


class Target:
    """One lab CSMS and one simulated charger shared by the tests of this module."""

    def __init__(self, csms, sim):
        self.csms = csms
        self.sim = sim
        self.n = 0
        self.registered = set()
        self.log_offset = 0
        self.sent = 0
        self.closes = 0
        self.rst_closes = 0

    def uid(self):
        self.n += 1
        return "fz{}".format(self.n)

    def reply(self, text, uid, timeout=10):
        self.sent += 1
        return self.csms.raw(CP, text, wait_id=uid, timeout=timeout)

    def send_bytes(self, data, binary):
        self.sent += 1
        answer = self.csms.request({"cmd": "raw_bytes", "cp": CP, "hex": data.hex(),
                                    "binary": binary})
        assert answer.get("ok"), answer

    def probe(self):
        """The link still works: a plain GetConfiguration gets its CALLRESULT."""
        uid = self.uid()
        reply = self.reply(PROBE.format(uid), uid)
        assert reply[0] == 3 and reply[1] == uid, reply

    def new_events(self):
        with open(self.csms.log_path, "rb") as f:
            f.seek(self.log_offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.log_offset += end
        return [json.loads(line) for line in data[:end].splitlines() if line.strip()]

    def fw_closes(self, codes):
        log = self.sim.log()
        return sum(log.count("link closed: WSClosed({},".format(c)) for c in codes)

    def expect_close(self, codes, send):
        """`send()` makes the charger close the link with one of `codes`; it comes back.

        The lab CSMS may see 1006 instead when the charger closes its socket with bytes of the
        oversized frame still unread (Linux then answers with a TCP RST, and the server drops
        the close frame it had not read yet): accepted when the firmware logged that it sent
        the right close code, and counted in `rst_closes` for the report.
        """
        self.new_events()
        before = self.fw_closes(codes)
        send()
        deadline = time.monotonic() + 10
        close = None
        while close is None:
            assert time.monotonic() < deadline, "the charger did not close the link"
            for e in self.new_events():
                if e.get("event") == "disconnect" and e.get("cp") == CP:
                    close = e
            time.sleep(0.02)
        if close["code"] == 1006:
            deadline = time.monotonic() + 5
            while self.fw_closes(codes) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert self.fw_closes(codes) > before, ("no close frame from the charger", close)
            self.rst_closes += 1
        else:
            assert close["code"] in codes, close
        self.closes += 1
        self.csms.wait_connected(CP, timeout=20)
        self.probe()

    def heap(self):
        return self.sim.status()["heap_used"]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    err = open(work / "labcsms.err", "w")  # every frame is in labcsms.jsonl
    csms = LabCSMSProcess(work / "labcsms.jsonl", stderr=err, quiet=True).start()
    sims = SimFactory(work / "sim")
    try:
        sim = sims(csms=csms.url, cp_id=CP, config=SIM_CONFIG)
        sim.wait_for(lambda s: s.get("registration") == "Accepted"
                     and conn(s)["status"] == "Available", timeout=30)
        t = Target(csms, sim)
        for action in ACTIONS:  # an empty payload is harmless: invalid, or valid for a no-op
            uid = t.uid()
            reply = t.reply('[2,"{}","{}",{{}}]'.format(uid, action), uid)
            if not (reply[0] == 4 and reply[2] == NI):
                t.registered.add(action)
        t.handled = sorted(t.registered)
        start_session(sim, csms)  # warm-up: a session, then bad frames, so that imports,
        ok(sim, {"cmd": "unplug", "connector": 1})  # buffers and the log ring are all in use
        sim.wait_for(lambda s: conn(s)["status"] == "Available" and s["queued_messages"] == 0,
                     timeout=20)
        for action, payload in sorted(WARM_UP.items()):
            for _ in range(3):
                uid = t.uid()
                t.reply(json.dumps([2, uid, action, payload]), uid)
        for i in range(150):
            uid = t.uid()
            frame = [2, uid, ACTIONS[i % len(ACTIONS)], {"x_warm": "w" * (i % 90)}]
            t.reply(json.dumps(frame), uid)
            if i % 3 == 0:
                t.csms.raw(CP, '[2,"{}","Reset"]'.format(t.uid()))
        t.probe()
        t.heap0 = t.heap()
        yield t
        assert sim.status()["firmware_crashes"] == 0
        found = csms.violations()
        assert found == [], found[:5]
    finally:
        sims.cleanup()
        csms.stop()
        err.close()


# ---- strategies ---------------------------------------------------------------------------------


def _frame(uid, action, payload_text):
    return '[2,{},{},{}]'.format(json.dumps(uid), json.dumps(action), payload_text)


def _numeric_paths(value, schema, path=()):
    t = schema.get("type")
    if t in ("integer", "number") and path:
        yield path
    elif t == "object":
        for k, v in value.items():
            yield from _numeric_paths(v, schema["properties"][k], path + (k,))
    elif t == "array":
        for i, v in enumerate(value):
            yield from _numeric_paths(v, schema["items"], path + (i,))


def _set(root, path, v):
    for p in path[:-1]:
        root = root[p]
    root[path[-1]] = v


HUGE = ["1e19", "-1e19", "18446744073709551616", "-9223372036854775809", "1" + "0" * 400,
        "1.7976931348623157e308", "-1.7976931348623157e308", "1e400", "-1e400", "1e-400",
        "123456789012345678901234567890.5"]
_MARK = "__fuzz_number__"


def _nest(kind, depth):
    if kind == "list":
        return "[" * depth + "]" * depth
    return '{"a":' * depth + "1" + "}" * depth


@st.composite
def schema_case(draw, t):
    """(frame text, allowed codes or None for 'valid') from one mutation of a payload."""
    action = draw(st.sampled_from(MUTABLE))
    payload, want = draw(mutated(SCHEMA[action]))
    uid = t.uid()
    text = _frame(uid, action, json.dumps(payload))
    if action not in t.registered:
        return uid, text, {NI}
    if want == "?":
        if schema_valid(action, text):
            assume(action in HARMLESS)  # a valid date-time: only where it cannot hurt
            return uid, text, None
        want = PROP
    if want == PROP and documented_deviation(action, payload):
        return uid, text, {PROP, "ok"}
    return uid, text, {want}


@st.composite
def valid_case(draw, t):
    action = draw(st.sampled_from(sorted(HARMLESS & set(ACTIONS))))
    payload = draw(from_schema(SCHEMA[action]))
    uid = t.uid()
    text = _frame(uid, action, json.dumps(payload))
    assume(schema_valid(action, text))
    return uid, text, None if action in t.registered else {NI}


@st.composite
def unknown_action_case(draw, t):
    action = draw(st.one_of(st.sampled_from(CP_ACTIONS),
                            st.text(min_size=1, max_size=40).filter(lambda a: a not in ACTIONS)))
    payload = draw(st.dictionaries(st.text(max_size=8), st.one_of(
        st.integers(), st.text(max_size=8), st.none(), st.booleans()), max_size=4))
    uid = t.uid()
    return uid, _frame(uid, action, json.dumps(payload)), {NI}


@st.composite
def huge_case(draw, t):
    candidates = []
    for a in sorted(HARMLESS & set(ACTIONS)):
        if any(p.get("type") in ("integer", "number") for p in _walk(SCHEMA[a])):
            candidates.append(a)
    action = draw(st.sampled_from(candidates))
    payload = draw(from_schema(SCHEMA[action]))
    paths = list(_numeric_paths(payload, SCHEMA[action]))
    assume(paths)
    _set(payload, draw(st.sampled_from(paths)), _MARK)
    number = draw(st.sampled_from(HUGE))
    uid = t.uid()
    text = _frame(uid, action, json.dumps(payload).replace('"{}"'.format(_MARK), number))
    if action not in t.registered:
        return uid, text, {NI}
    if schema_valid(action, text):
        return uid, text, SEMANTIC | {"ok", PROP, TYP}
    return uid, text, {PROP, TYP}


def _walk(schema):
    yield schema
    for v in schema.get("properties", {}).values():
        yield from _walk(v)
    if "items" in schema:
        yield from _walk(schema["items"])


@st.composite
def deep_case(draw, t):
    action = draw(st.sampled_from(ACTIONS))
    schema = SCHEMA[action]
    payload = draw(from_schema(schema))
    kind = draw(st.sampled_from(["list", "dict"]))
    depth = draw(st.integers(20, 3000 if kind == "list" else 1000))
    uid = t.uid()
    replace = [k for k in payload if schema["properties"][k].get("type") not in ("array",)]
    if replace and draw(st.booleans()):
        key = draw(st.sampled_from(replace))
        payload[key] = _MARK
        # TYP; OCC for an object field missing its required keys; FV from a parser giving up
        want = {TYP, FV, OCC}
    else:
        payload["x_deep"] = _MARK
        want = {FV}
    text = _frame(uid, action, json.dumps(payload).replace('"{}"'.format(_MARK),
                                                          _nest(kind, depth)))
    assume(len(text.encode()) <= MAX_MESSAGE)
    return uid, text, want if action in t.registered else {NI, FV}


SHAPES_ANSWERED = [  # (frame with {id}, code) from the ocpp16.rpc.decode table
    ('[2,"{id}"]', FV),
    ('[2,"{id}","Reset"]', PE),
    ('[2,"{id}",5,{{}}]', FV),
    ('[2,"{id}","",{{}}]', FV),
    ('[2,"{id}",null,{{}}]', FV),
    ('[2,"{id}","Reset",[]]', FV),
    ('[2,"{id}","Reset",null]', FV),
    ('[2,"{id}","Reset","type"]', FV),
    ('[2,"{id}","Reset",{{}},1]', FV),
    ('[2,"{id}","Reset",{{"type":"Soft"', FV),
    ('[2, "{id}" ,"GetConfiguration",{{"key":[}}]', FV),
    ('[2,"{id}","Reset",{{"type":"Soft"}}]]', FV),
]
SHAPES_SILENT = ['{{}}', '"text"', '42', 'null', '[]', '[2]', '[9,"{id}","Reset",{{}}]',
                 '[2.0,"{id}","Reset",{{}}]', '[true,"{id}","Reset",{{}}]', '["2","{id}"]',
                 '[2,5,"Reset",{{}}]', '[2,null,"Reset",{{}}]',
                 '[2,"' + "x" * 37 + '","Reset",{{}}]', '[3,"{id}",{{}}]',
                 '[4,"{id}","GenericError","",{{}}]', '[3,"{id}"]', '[4,"{id}"]', '']


@st.composite
def shape_case(draw, t):
    uid = t.uid()
    if draw(st.booleans()):
        text, code = draw(st.sampled_from(SHAPES_ANSWERED))
        return uid, text.format(id=uid), {code}
    if draw(st.booleans()):
        text = draw(st.sampled_from(SHAPES_SILENT)).format(id=uid)
    else:  # garbage that cannot start like a CALL
        chars = st.characters(exclude_categories=("Cs",), exclude_characters="[")
        text = draw(st.text(alphabet=chars, max_size=60))
    return uid, text, "silent"


CASES = {"schema": schema_case, "valid": valid_case, "unknown": unknown_action_case,
         "huge": huge_case, "deep": deep_case, "shape": shape_case}


def check(t, uid, text, want):
    if want == "silent":
        t.sent += 1
        t.csms.raw(CP, text)
        t.probe()
        return
    reply = t.reply(text, uid)
    assert reply[1] == uid, (text[:300], reply)
    if want is None:
        assert reply[0] == 3 or reply[2] in SEMANTIC, (text[:300], reply)
    elif reply[0] == 3:
        assert "ok" in want, (text[:300], reply)
    else:
        assert reply[0] == 4 and reply[2] in want, (text[:300], reply, want)


# ---- tests --------------------------------------------------------------------------------------


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzzed_frames_get_the_right_answer(target, data):
    kind = data.draw(st.sampled_from(sorted(CASES)), label="class")
    uid, text, want = data.draw(CASES[kind](target), label="case")
    assume(len(text.encode()) <= MAX_MESSAGE)  # bigger ones: the close test below
    check(target, uid, text, want)


BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xc0\xaf", b"\xe2\x82", b"\xf8\x88\x80\x80",
            b"\x80", b"\xf4\x90\x80\x80"]


@settings(max_examples=CLOSE_EXAMPLES, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(kind=st.sampled_from(["oversized", "utf8", "binary"]), data=st.data())
def test_oversized_bad_utf8_and_binary_frames_close_the_link_cleanly(target, kind, data):
    uid = target.uid()
    if kind == "oversized":
        size = data.draw(st.integers(MAX_MESSAGE + 1, 4 * MAX_MESSAGE))
        head = '[2,"{}","DataTransfer",{{"vendorId":"fz","data":"'.format(uid)
        text = head + "x" * (size - len(head) - 3) + '"}]'
        target.expect_close({1009}, lambda: target.csms.raw(CP, text))
    elif kind == "utf8":
        bad = data.draw(st.sampled_from(BAD_UTF8))
        frame = '[2,"{}","DataTransfer",{{"vendorId":"'.format(uid).encode() + bad + b'"}]'
        target.expect_close({1007}, lambda: target.send_bytes(frame, binary=False))
    else:
        frame = data.draw(st.binary(min_size=1, max_size=64))
        target.expect_close({1003}, lambda: target.send_bytes(frame, binary=True))


def test_the_frame_bound_is_exact(target):
    uid = target.uid()
    head = '[2,"{}","DataTransfer",{{"vendorId":"fz","data":"'.format(uid)
    text = head + "x" * (MAX_MESSAGE - len(head) - 3) + '"}]'
    assert len(text.encode()) == MAX_MESSAGE
    reply = target.reply(text, uid)
    assert reply[1] == uid and (reply[0] == 3 or reply[2] in SEMANTIC), reply
    target.expect_close({1009}, lambda: target.csms.raw(CP, text[:-3] + 'x"}]'))


def test_after_fuzzing_a_session_works_and_the_heap_did_not_grow(target, capsys):
    sim, csms = target.sim, target.csms
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=20)
    start_session(sim, csms)
    ok(sim, {"cmd": "unplug", "connector": 1})
    sim.wait_for(lambda s: conn(s)["status"] == "Available", timeout=20)
    csms.wait_for(lambda m: m["action"] == "StopTransaction", timeout=20)
    sim.wait_for(lambda s: s["queued_messages"] == 0, timeout=20)
    st_ = sim.status()
    grown = st_["heap_used"] - target.heap0
    with capsys.disabled():  # the summary also without -s (make fuzz)
        print("\nfuzz: %d frames sent, %d link closes (%d seen as 1006 by the CSMS: RST); "
              "heap_used after gc %d -> %d B (%+d); actions handled: %s" % (
                  target.sent, target.closes, target.rst_closes, target.heap0,
                  st_["heap_used"], grown, ", ".join(target.handled)))
    assert st_["firmware_crashes"] == 0 and st_["firmware_restarts"] == 0
    assert grown < HEAP_TOLERANCE
