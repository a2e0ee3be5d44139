"""The charger's OCPP-J transport end to end: security profiles, bad input, reconnect.

The real firmware in the simulator against the lab CSMS over ws and wss, with certificates made
in the test: Basic auth right, wrong and missing, a 20-byte binary key, a wrong CA (status
CertificateValidationFailed and no BootNotification on that link), a server without the ocpp1.6
subprotocol, every class of bad CSMS input answered with the right CALLERROR, and a CSMS restart.
"""

import json
import os
import time

import pytest

from certs import make_server_pki
from charger_helpers import CP, charger, conn, ok, start_session  # noqa: F401

KEY20 = "00112233445566778899AABBCCDDEEFF01234567"  # 40 hex digits = a 20-byte AuthorizationKey


def booted(sim, timeout=20):
    return sim.wait_for(
        lambda s: s.get("registration") == "Accepted" and conn(s)["status"] == "Available",
        timeout=timeout,
    )


def wss_url(csms):
    return "wss://localhost:%d/ocpp" % csms.ws_port


def test_security_profile_2_wss_with_basic_auth(labcsms_factory, sim_factory, tmp_path):
    pki = make_server_pki(tmp_path / "pki")
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key, auth={CP: "s3cret-passw0rd"})
    sim = sim_factory(csms=wss_url(csms), cp_id=CP, password="s3cret-passw0rd", ca=pki.ca_cert)
    st = booted(sim)
    assert st["ocpp"] == "Connected"
    assert csms.violations() == []


def test_wrong_ca_is_certificate_validation_failed_and_no_boot(labcsms_factory, sim_factory,
                                                               tmp_path):
    pki = make_server_pki(tmp_path / "pki")
    other = make_server_pki(tmp_path / "other")
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key)
    sim = sim_factory(csms=wss_url(csms), cp_id=CP, ca=other.ca_cert)
    # The LED follows the status on the next control cycle.
    sim.wait_for(lambda s: s["ocpp"] == "CertificateValidationFailed"
                 and s["led"] == "certificate_failure", timeout=20)
    time.sleep(1.0)
    assert csms.messages(CP, "BootNotification") == []


@pytest.mark.parametrize("variant", ["expired", "wrong_hostname"])
def test_bad_server_certificate_is_refused(labcsms_factory, sim_factory, tmp_path, variant):
    pki = make_server_pki(tmp_path / "pki", **{variant: True})
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key)
    sim = sim_factory(csms=wss_url(csms), cp_id=CP, ca=pki.ca_cert)
    sim.wait_for(lambda s: s["ocpp"] == "CertificateValidationFailed", timeout=20)
    assert csms.messages(CP, "BootNotification") == []


def test_wss_without_a_ca_is_refused_with_a_clear_status(labcsms_factory, sim_factory, tmp_path):
    pki = make_server_pki(tmp_path / "pki")
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key)
    sim = sim_factory(csms=wss_url(csms), cp_id=CP)
    st = sim.wait_for(lambda s: "CA certificate" in (s.get("last_error") or ""), timeout=10)
    assert st["ocpp"] != "Connected"


@pytest.mark.parametrize("password", ["wrong-password", None])
def test_wrong_or_missing_password_is_rejected(labcsms_factory, sim_factory, password):
    csms = labcsms_factory(auth={CP: "right-password"})
    sim = sim_factory(csms=csms.url, cp_id=CP, password=password)
    sim.wait_for(lambda s: s["ocpp"] == "Rejected" and s["led"] == "rejected", timeout=20)
    assert csms.messages(CP, "BootNotification") == []


def test_20_byte_key_goes_raw_on_the_wire(labcsms_factory, sim_factory):
    csms = labcsms_factory(auth_hex={CP: KEY20})
    sim = sim_factory(csms=csms.url, cp_id=CP, password=KEY20)
    booted(sim)


def test_server_without_the_ocpp16_subprotocol_is_refused(labcsms_factory, sim_factory):
    csms = labcsms_factory(no_subprotocol=True)
    sim = sim_factory(csms=csms.url, cp_id=CP)
    st = sim.wait_for(lambda s: "subprotocol" in (s.get("last_error") or ""), timeout=20)
    assert st["registration"] is None
    assert csms.messages(CP, "BootNotification") == []


# (frame sent by the CSMS, expected CALLERROR code or None for "no answer")
BAD_INPUT = [
    ('[2,"bi-1","NoSuchAction",{}]', "NotImplemented"),
    ('[2,"bi-2","Reset",{"type":"Sideways"}]', "PropertyConstraintViolation"),
    ('[2,"bi-3","Reset",{}]', "OccurenceConstraintViolation"),
    ('[2,"bi-4","ChangeConfiguration",{"key":5,"value":"x"}]', "TypeConstraintViolation"),
    ('[2,"bi-5","Reset",{"type":"Soft","extra":1}]', "FormationViolation"),
    ('[2,"bi-6","Reset"]', "ProtocolError"),
    ('[2,"bi-7","Reset",["not an object"]]', "FormationViolation"),
]


def test_bad_csms_input_gets_the_right_callerror_and_the_charger_keeps_working(charger):
    sim, csms = charger
    for text, code in BAD_INPUT:
        uid = json.loads(text)[1]
        reply = csms.raw(CP, text, wait_id=uid, timeout=5)
        assert reply[0] == 4 and reply[2] == code, (text, reply)
    # Input with no recoverable id, and answers to calls never made: logged, no crash.
    # An unknown message type is ignored (OCPP-J 1.6 section 4.1.3), only logged.
    for text in ('{"not": "a list"', "[3,\"never-sent\",{}]", '[7,"bi-8","Reset",{}]',
                 '[4,"never-sent","GenericError","x",{}]', '[4,"-1","FormatViolation","",{}]'):
        csms.raw(CP, text)
    st = sim.status()
    assert st["ocpp"] == "Connected"
    start_session(sim, csms)
    assert csms.messages(CP, "StartTransaction")


def test_csms_restart_reconnects_with_backoff(labcsms_factory, sim_factory, tmp_path):
    csms = labcsms_factory(log_path=tmp_path / "a.jsonl")
    port = csms.ws_port
    sim = sim_factory(csms=csms.url, cp_id=CP)
    booted(sim)
    csms.stop()
    sim.wait_for(lambda s: s["ocpp"] != "Connected", timeout=20)
    csms2 = labcsms_factory(log_path=tmp_path / "b.jsonl", port=port)
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=40)
    # Same boot: no new BootNotification, but the statuses are sent again.
    csms2.wait_for("StatusNotification", timeout=10)
    assert "reconnect in" in sim.log()


def test_heap_stays_flat_over_many_messages(charger):
    sim, csms = charger
    def heap():
        return sim.status()["heap_used"]
    for i in range(100):  # warm up: first-use imports and buffers
        csms.raw(CP, '[2,"w%d","GetConfiguration",{"key":["HeartbeatInterval"]}]' % i,
                 wait_id="w%d" % i)
    before = heap()
    n = int(os.environ.get("HEAP_MESSAGES", "1000"))
    for i in range(n):
        reply = csms.raw(CP, '[2,"h%d","GetConfiguration",{"key":["HeartbeatInterval"]}]' % i,
                         wait_id="h%d" % i)
        assert reply[0] == 3
    after = heap()
    print("heap_used after gc: %d B before, %d B after %d messages" % (before, after, n))
    assert after - before < 2048
