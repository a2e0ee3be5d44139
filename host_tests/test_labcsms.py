"""Tests of the lab CSMS (tools/labcsms.py) with a plain websockets client as the charger.

The charger side sends hand-written OCPP-J frames, so these tests pin down what the lab CSMS
answers, records and counts as a violation, independent of our firmware.
"""

import base64
import json
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rfc3339_validator import validate_rfc3339
from websockets.exceptions import ConnectionClosedError, InvalidStatus
from websockets.sync.client import connect

from certs import issue_client_cert, make_server_pki
from labcsms import LabCSMSError

LABCSMS = Path(__file__).resolve().parent.parent / "tools" / "labcsms.py"
BOOT = {"chargePointVendor": "Lab", "chargePointModel": "Wallbox"}


def open_cp(csms, cp="CP1", password=None, **kwargs):
    """Connect as charge point `cp` (password: str or bytes for Basic auth)."""
    kwargs.setdefault("subprotocols", ["ocpp1.6"])
    if password is not None:
        secret = password.encode() if isinstance(password, str) else password
        token = base64.b64encode(cp.encode() + b":" + secret).decode()
        kwargs["additional_headers"] = {"Authorization": "Basic " + token}
    return connect("{}/{}".format(csms.url, cp), open_timeout=5, **kwargs)


def rpc(ws, uid, action, payload):
    ws.send(json.dumps([2, uid, action, payload]))
    return json.loads(ws.recv(timeout=5))


def boot(ws):
    reply = rpc(ws, "b1", "BootNotification", BOOT)
    assert reply[:2] == [3, "b1"]
    return reply[2]


def http_status(csms, **kwargs):
    with pytest.raises(InvalidStatus) as info:
        open_cp(csms, **kwargs).close()
    return info.value.response.status_code


def in_background(fn, *args, **kwargs):
    """Run a blocking control request while the test plays the charger; join() -> result."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args, **kwargs)
        except Exception as exc:  # handed to the test thread by join()
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(15)
        if "error" in box:
            raise box["error"]
        return box["value"]

    return join


def test_boot_accepted_and_frames_logged(labcsms):
    with open_cp(labcsms) as ws:
        assert ws.subprotocol == "ocpp1.6"
        result = boot(ws)
        assert rpc(ws, "h1", "Heartbeat", {})[0] == 3
    assert result["status"] == "Accepted" and result["interval"] == 300
    assert result["currentTime"].endswith("Z") and validate_rfc3339(result["currentTime"])
    labcsms.wait_for(lambda m: m["action"] == "Heartbeat", timeout=5)
    assert [m["action"] for m in labcsms.messages("CP1")] == ["BootNotification", "Heartbeat"]
    assert labcsms.messages("CP1", "BootNotification")[0]["payload"] == BOOT
    labcsms.assert_no_violations()
    log = labcsms.read_log()
    assert log[0]["event"] == "connect" and log[0]["cp"] == "CP1"
    frames = [(r["dir"], r["msg"][0]) for r in log if "dir" in r]
    assert frames == [("in", 2), ("out", 3), ("in", 2), ("out", 3)]
    assert json.loads(log[1]["raw"]) == log[1]["msg"]


def test_configured_answers(labcsms):
    labcsms.configure(boot_status="Pending", boot_interval=7, default_id_tag_status="Invalid",
                      id_tags={"TAG1": {"status": "Blocked", "parentIdTag": "P1"},
                               "TAG2": "Accepted"}, data_transfer_status="Rejected")
    with open_cp(labcsms) as ws:
        assert boot(ws)["status"] == "Pending" and boot(ws)["interval"] == 7
        info = rpc(ws, "a1", "Authorize", {"idTag": "TAG1"})[2]["idTagInfo"]
        assert info == {"status": "Blocked", "parentIdTag": "P1"}
        assert rpc(ws, "a2", "Authorize", {"idTag": "NOPE"})[2]["idTagInfo"]["status"] == "Invalid"
        start = {"connectorId": 1, "idTag": "TAG2", "meterStart": 0,
                 "timestamp": "2025-01-01T10:00:00Z"}
        first = rpc(ws, "s1", "StartTransaction", start)[2]
        assert first == {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
        assert rpc(ws, "s2", "StartTransaction", start)[2]["transactionId"] == 2
        assert rpc(ws, "d1", "DataTransfer", {"vendorId": "x"})[2] == {"status": "Rejected"}
        event = {"type": "StartupOfTheDevice", "timestamp": "2025-01-01T10:00:00.5+01:00"}
        assert rpc(ws, "e1", "SecurityEventNotification", event) == [3, "e1", {}]
    labcsms.assert_no_violations()
    for bad in ({"boot_status": "Maybe"}, {"id_tags": {"T": "Sure"}}, {"bogus": 1},
                {"boot_interval": -1}, {"auth_hex": {"CP1": "zz"}}):
        assert labcsms.request(dict(cmd="configure", **bad))["ok"] is False


@pytest.mark.allow_violations  # asserts the violations it provokes
def test_schema_invalid_call_is_a_violation(labcsms):
    with open_cp(labcsms) as ws:
        reply = rpc(ws, "x1", "BootNotification", {"chargePointVendor": "Lab"})
        assert reply[:3] == [4, "x1", "ProtocolError"]
        reply = rpc(ws, "x2", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                                     "status": "Sleeping"})
        assert reply[0] == 4
    found = labcsms.violations("CP1")
    assert [(v["kind"], v["action"]) for v in found] == [
        ("callerror_sent", "BootNotification"), ("callerror_sent", "StatusNotification")]
    assert "chargePointModel" in found[0]["detail"]
    assert any(r.get("event") == "violation" for r in labcsms.read_log())
    with pytest.raises(AssertionError):
        labcsms.assert_no_violations()


@pytest.mark.allow_violations  # asserts the violations it provokes
@pytest.mark.parametrize("stamp", ["yesterday", "2025-01-01 10:00:00Z", "2025-01-01T10:00:00",
                                   "2025-02-30T10:00:00Z"])
def test_non_rfc3339_timestamp_rejected(labcsms, stamp):
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    with open_cp(labcsms) as ws:
        assert rpc(ws, "ok", "StatusNotification",
                   dict(status, timestamp="2025-01-01T10:00:00.123Z"))[0] == 3
        reply = rpc(ws, "bad", "StatusNotification", dict(status, timestamp=stamp))
        meter = {"connectorId": 1, "meterValue": [{"timestamp": stamp, "sampledValue": [
            {"value": "1"}]}]}
        nested = rpc(ws, "bad2", "MeterValues", meter)
    assert reply[:3] == [4, "bad", "PropertyConstraintViolation"]
    assert "timestamp" in reply[4]["cause"]
    assert nested[:3] == [4, "bad2", "PropertyConstraintViolation"]
    assert len(labcsms.violations()) == 2


@pytest.mark.allow_violations  # asserts the violations it provokes
def test_frame_level_violations(labcsms):
    with open_cp(labcsms) as ws:
        ws.send("not json")
        ws.send(b"\x01\x02")
        ws.send(json.dumps([3, "never-sent", {}]))
        ws.send(json.dumps([2, "x" * 37, "Heartbeat", {}]))
        assert json.loads(ws.recv(timeout=5))[0] == 3  # still answered
    kinds = [v["kind"] for v in labcsms.violations("CP1")]
    assert kinds == ["bad_frame", "binary_frame", "unknown_reply", "bad_frame"]


@pytest.mark.allow_violations  # asserts the violations it provokes
def test_control_call_round_trip(labcsms):
    with open_cp(labcsms) as ws:
        labcsms.wait_connected("CP1")
        assert labcsms.connected() == ["CP1"]
        join = in_background(labcsms.call, "CP1", "Reset", {"type": "Soft"}, timeout=10)
        request = json.loads(ws.recv(timeout=5))
        assert request[0] == 2 and request[2:] == ["Reset", {"type": "Soft"}]
        ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))
        assert join() == {"ok": True, "result": {"status": "Accepted"}}

        # Nested camelCase objects pass through unchanged.
        key = {"key": "HeartbeatInterval", "value": "60"}
        join = in_background(labcsms.call, "CP1", "ChangeConfiguration", key)
        request = json.loads(ws.recv(timeout=5))
        assert request[3] == key
        ws.send(json.dumps([4, request[1], "NotSupported", "", {}]))
        assert join()["call_error"] == {"code": "NotSupported", "description": "", "details": {}}

        # An invalid answer is returned and counted against the charger.
        join = in_background(labcsms.call, "CP1", "ClearCache")
        request = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps([3, request[1], {"status": "Maybe"}]))
        answer = join()
        assert answer["result"] == {"status": "Maybe"} and "violation" in answer
        join = in_background(labcsms.call, "CP1", "GetCompositeSchedule",
                             {"connectorId": 1, "duration": 60})
        request = json.loads(ws.recv(timeout=5))
        ws.send(json.dumps([3, request[1], {"status": "Accepted", "scheduleStart": "soon"}]))
        assert "RFC 3339" in join()["violation"]
        assert [v["kind"] for v in labcsms.violations()] == ["bad_result", "bad_result"]

        # Refused before sending: invalid request, wrong direction, unknown field, timeout.
        for action, payload in (("Reset", {"type": "Hard-ish"}), ("Heartbeat", {}),
                                ("Reset", {"type": "Soft", "extra": 1})):
            with pytest.raises(LabCSMSError):
                labcsms.call("CP1", action, payload)
        answer = labcsms.request({"cmd": "call", "cp": "CP1", "action": "ClearCache",
                                  "timeout": 0.2})
        assert answer["ok"] is False and "within" in answer["error"]
        ws.recv(timeout=5)  # the unanswered ClearCache
    with pytest.raises(LabCSMSError, match="not connected"):
        labcsms.call("CP1", "Reset", {"type": "Soft"})


def test_raw_frames(labcsms):
    with open_cp(labcsms) as ws:
        labcsms.wait_connected("CP1")
        text = '[2,"fz1","Reset",{"type":"Soft"}]'
        join = in_background(labcsms.raw, "CP1", text, wait_id="fz1")
        assert ws.recv(timeout=5) == text  # byte for byte
        ws.send(json.dumps([4, "fz1", "FormationViolation", "", {}]))
        assert join() == [4, "fz1", "FormationViolation", "", {}]
        assert labcsms.raw("CP1", "{{not json") is None
        assert ws.recv(timeout=5) == "{{not json"
        answer = labcsms.request({"cmd": "raw_bytes", "cp": "CP1", "hex": "ff00"})
        assert answer == {"ok": True} and ws.recv(timeout=5) == b"\xff\x00"
        answer = labcsms.request({"cmd": "raw", "cp": "CP1", "text": "[]", "wait_id": "none",
                                  "timeout": 0.2})
        assert answer["ok"] is False and ws.recv(timeout=5) == "[]"
        # binary:false puts the bytes in a text frame: invalid UTF-8 makes the client fail 1007.
        assert labcsms.request({"cmd": "raw_bytes", "cp": "CP1", "hex": "c3", "binary": False})
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=5)
        assert closed.value.sent.code == 1007
    labcsms.assert_no_violations()


def test_control_protocol_errors(labcsms):
    for request in ({"cmd": "frobnicate"}, {"cp": "CP1"}, [1, 2], {"cmd": "call"},
                    {"cmd": "call", "cp": "CP1", "action": "Reset", "payload": [1]},
                    {"cmd": "messages", "cp": 5}, {"cmd": "wait_connected", "cp": "CP9",
                                                    "timeout": 0.1}):
        answer = labcsms.request(request)
        assert answer["ok"] is False and answer["error"]
    with socket.create_connection(("127.0.0.1", labcsms.control_port), timeout=5) as sock:
        sock.sendall(b'{oops\n{"cmd": "connected"}\n')
        lines = sock.makefile("rb")
        assert json.loads(lines.readline())["ok"] is False
        assert json.loads(lines.readline()) == {"ok": True, "cps": []}


def test_disconnect_and_reconnect(labcsms):
    with open_cp(labcsms) as ws:
        labcsms.wait_connected("CP1")
        labcsms.disconnect("CP1", code=4000)
        with pytest.raises(Exception):
            ws.recv(timeout=5)
        assert ws.close_code == 4000
    with open_cp(labcsms) as ws:
        boot(ws)
    events = [r["event"] for r in labcsms.read_log() if "event" in r]
    assert events[:3] == ["connect", "disconnect", "connect"]
    assert len(labcsms.messages("CP1")) == 1  # history survives reconnects


def test_basic_auth(labcsms_factory):
    key = bytes([0xFF, 0x00, 0x80]) + bytes(range(17))  # 20 bytes, not UTF-8
    csms = labcsms_factory(auth={"CP1": "s3cret-ü"}, auth_hex={"CP2": key.hex()})
    with open_cp(csms, "CP1", password="s3cret-ü") as ws:
        boot(ws)
    assert http_status(csms, cp="CP1", password="wrong") == 401
    assert http_status(csms, cp="CP1") == 401
    with open_cp(csms, "CP2", password=key) as ws:
        boot(ws)
    assert http_status(csms, cp="CP2", password=key.hex()) == 401
    with open_cp(csms, "CP3"):  # no password configured: open
        pass
    reasons = [r["reason"] for r in csms.read_log() if r.get("event") == "auth_failed"]
    assert reasons == ["wrong password", "no Authorization header",
                       "password is the hex text of the key; the raw key bytes are expected"]
    csms.configure(auth={"CP3": "pw3"}, auth_hex={"CP1": None})  # at runtime
    assert http_status(csms, cp="CP3") == 401
    with open_cp(csms, "CP3", password="pw3"), open_cp(csms, "CP1"):
        pass


def test_require_auth(labcsms_factory):
    csms = labcsms_factory(auth={"CP1": "pw"}, require_auth=True)
    assert http_status(csms, cp="CP2") == 401
    with open_cp(csms, "CP1", password="pw"):
        pass


def test_wss_with_generated_ca(labcsms_factory, lab_pki, tmp_path):
    csms = labcsms_factory(tls_cert=lab_pki.cert, tls_key=lab_pki.key)
    assert csms.url.startswith("wss://127.0.0.1:")
    trust = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    with open_cp(csms, ssl=trust) as ws:
        boot(ws)
    with connect("wss://localhost:{}/ocpp/CP2".format(csms.ws_port), ssl=trust,
                 subprotocols=["ocpp1.6"], open_timeout=5):
        pass
    with pytest.raises(ssl.SSLCertVerificationError):  # a client trusting another CA
        other = make_server_pki(tmp_path / "other")
        open_cp(csms, ssl=ssl.create_default_context(cafile=str(other.ca_cert)))


@pytest.mark.parametrize("flaw", ["expired", "wrong_hostname"])
def test_wss_bad_server_certificate(labcsms_factory, tmp_path, flaw):
    pki = make_server_pki(tmp_path / flaw, **{flaw: True})
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key)
    with pytest.raises(ssl.SSLCertVerificationError):
        open_cp(csms, ssl=ssl.create_default_context(cafile=str(pki.ca_cert)))


def test_wss_client_certificate(labcsms_factory, lab_pki, tmp_path):
    csms = labcsms_factory(tls_cert=lab_pki.cert, tls_key=lab_pki.key,
                           tls_client_ca=lab_pki.ca_cert)
    trust = ssl.create_default_context(cafile=str(lab_pki.ca_cert))
    cert, key = issue_client_cert(lab_pki.ca, tmp_path, "CP1")
    trust.load_cert_chain(cert, key)
    with open_cp(csms, ssl=trust) as ws:
        boot(ws)
    with pytest.raises(Exception):  # no client certificate: refused during the handshake
        open_cp(csms, ssl=ssl.create_default_context(cafile=str(lab_pki.ca_cert)))


def test_subprotocol_modes(labcsms_factory):
    normal = labcsms_factory()
    assert http_status(normal, subprotocols=None) == 400
    assert http_status(normal, subprotocols=["ocpp2.0.1"]) == 400
    assert [r["event"] for r in normal.read_log()] == ["rejected", "rejected"]
    bare = labcsms_factory(no_subprotocol=True)
    with open_cp(bare) as ws:  # the client offered ocpp1.6; the server selected nothing
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


def test_process_lifecycle(labcsms_factory, tmp_path):
    with pytest.raises(ValueError):  # a misspelt option fails before anything starts
        labcsms_factory(boot_stauts="Pending")
    csms = labcsms_factory(boot_status="Rejected", boot_interval=3, quiet=True)
    with open_cp(csms) as ws:
        result = boot(ws)
        assert (result["status"], result["interval"]) == ("Rejected", 3)
    proc = csms.proc
    assert csms.request({"cmd": "shutdown"}) == {"ok": True}
    assert proc.wait(10) == 0
    csms.stop()
    csms.stop()  # idempotent


def test_command_line(labcsms):
    def cli(*args):
        return subprocess.run([sys.executable, str(LABCSMS), *args], capture_output=True,
                              text=True, timeout=30)

    control = ["--control", "127.0.0.1:{}".format(labcsms.control_port)]
    with open_cp(labcsms) as ws:
        boot(ws)
        done = cli("messages", *control, "CP1")
        assert done.returncode == 0
        assert json.loads(done.stdout)["messages"][0]["action"] == "BootNotification"
        join = in_background(cli, "call", *control, "CP1", "Reset", '{"type": "Hard"}')
        request = json.loads(ws.recv(timeout=10))
        ws.send(json.dumps([3, request[1], {"status": "Rejected"}]))
        done = join()
        assert done.returncode == 0 and json.loads(done.stdout)["result"] == {"status": "Rejected"}
    assert cli("request", *control, '{"cmd": "nope"}').returncode == 1
    assert "--auth-hex" in cli("serve", "--help").stdout
    assert cli("--help").returncode == 0
