"""Registration, Heartbeat and Reset of the Core profile on a live charger (OCPP 1.6 4.2, 4.6, 5.14).

BootNotification Pending (the charger answers the CSMS but sends nothing of its own, RemoteStart
is Rejected) and Rejected (the charger neither sends nor answers until the interval passed), the
Heartbeat interval from the BootNotification and from ChangeConfiguration, and Reset Soft and
Hard with a transaction running: StopTransaction with SoftReset / HardReset, the firmware
restarts, the queued message reaches the CSMS; a restart not asked by Reset (provisioning)
stops with Reboot.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

from charger_helpers import CP, conn, ok
from core_helpers import boot, call, payloads, start_charging, wait_idle, wait_msg, wait_ready
from labcsms import LabCSMSError

ROOT = Path(__file__).resolve().parent.parent


def own_actions(csms):
    return [m["action"] for m in csms.messages(CP)]


def test_pending_answers_the_csms_and_sends_nothing_else(labcsms, sim_factory):
    csms = labcsms
    csms.configure(boot_status="Pending", boot_interval=1)
    sim = sim_factory(csms=csms.url, cp_id=CP)
    sim.wait_for(lambda s: s.get("registration") == "Pending", timeout=20)
    csms.wait_for(lambda m: len(csms.messages(CP, "BootNotification")) >= 2, timeout=10)
    r = call(csms, "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["key"] == "HeartbeatInterval"
    assert call(csms, "RemoteStartTransaction", {"idTag": "ABC"})["status"] == "Rejected"
    assert call(csms, "ChangeConfiguration",
                {"key": "MeterValueSampleInterval", "value": "0"})["status"] == "Accepted"
    assert set(own_actions(csms)) == {"BootNotification"}
    csms.configure(boot_status="Accepted", heartbeat_interval=300)
    wait_ready(sim)
    wait_msg(csms, "StatusNotification", lambda p: p["connectorId"] == 1)
    assert csms.violations() == []


def test_rejected_neither_sends_nor_answers_until_the_interval(labcsms, sim_factory):
    csms = labcsms
    csms.configure(boot_status="Rejected", boot_interval=3)
    sim = sim_factory(csms=csms.url, cp_id=CP)
    st = sim.wait_for(lambda s: s.get("registration") == "Rejected", timeout=20)
    assert sim.wait_for(lambda s: s["led"] == "rejected")
    with pytest.raises(LabCSMSError):
        csms.call(CP, "GetConfiguration", {}, timeout=1)  # no answer while Rejected
    csms.configure(boot_status="Accepted")
    wait_ready(sim)
    assert len(payloads(csms, "BootNotification")) == 2
    boots = csms.messages(CP, "BootNotification")
    assert boots[1]["t"] - boots[0]["t"] >= 2.5  # the interval of the Rejected answer
    assert own_actions(csms)[:2] == ["BootNotification", "BootNotification"]
    assert st["connectors"][0]["status"] == "Available"
    assert csms.violations() == []


def test_heartbeat_interval_from_boot_and_from_change_configuration(labcsms, sim_factory):
    csms = labcsms
    csms.configure(heartbeat_interval=1)
    boot(sim_factory, csms)
    r = call(csms, "GetConfiguration", {"key": ["HeartbeatInterval"]})
    assert r["configurationKey"][0]["value"] == "1"
    csms.wait_for(lambda m: len(csms.messages(CP, "Heartbeat")) >= 2, timeout=6)
    r = call(csms, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "3600"})
    assert r["status"] == "Accepted"
    time.sleep(0.5)  # a Heartbeat already in flight may still arrive
    count = len(payloads(csms, "Heartbeat"))
    time.sleep(2.5)
    assert len(payloads(csms, "Heartbeat")) == count
    r = call(csms, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "1"})
    assert r["status"] == "Accepted"
    csms.wait_for(lambda m: len(csms.messages(CP, "Heartbeat")) >= count + 2, timeout=6)
    assert csms.violations() == []


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_reset_stops_the_transaction_then_restarts(labcsms, sim_factory, kind):
    csms = labcsms
    sim = boot(sim_factory, csms)
    st = start_charging(sim)
    txid = conn(st)["transaction_id"]
    assert call(csms, "Reset", {"type": kind})["status"] == "Accepted"
    st = sim.wait_for(lambda s: s.get("firmware_restarts") == 1 and s.get("registration")
                      == "Accepted", timeout=20)
    assert not conn(st)["relay"] and conn(st)["transaction_id"] is None
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == kind + "Reset" and stop["transactionId"] == txid
    boots = csms.messages(CP, "BootNotification")
    assert len(boots) == 2
    stop_t = csms.messages(CP, "StopTransaction")[0]["t"]
    if kind == "Soft":
        assert stop_t < boots[1]["t"]  # delivered before the restart
    wait_idle(sim)
    assert st["firmware_crashes"] == 0
    assert csms.violations() == []


def test_reset_without_a_transaction(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    assert call(csms, "Reset", {"type": "Hard"})["status"] == "Accepted"
    sim.wait_for(lambda s: s.get("firmware_restarts") == 1, timeout=20)
    wait_ready(sim)
    assert payloads(csms, "StopTransaction") == []
    assert len(payloads(csms, "BootNotification")) == 2


def test_restart_not_asked_by_reset_stops_with_reboot(labcsms, sim_factory):
    csms = labcsms
    sim = boot(sim_factory, csms)
    st = start_charging(sim)
    txid = conn(st)["transaction_id"]
    ok(sim, {"cmd": "button", "ms": 3000})  # provisioning window, then a restart over it
    subprocess.run([sys.executable, str(ROOT / "tools" / "provision.py"), "--sim",
                    "127.0.0.1:{}".format(sim.provision_port), "--secret", sim.device_secret,
                    "--restart"], check=True, capture_output=True, timeout=30)
    sim.wait_for(lambda s: s.get("firmware_restarts", 0) >= 1 and s.get("registration")
                 == "Accepted", timeout=20)
    stop = wait_msg(csms, "StopTransaction")
    assert stop["reason"] == "Reboot" and stop["transactionId"] == txid
    assert csms.violations() == []
