"""tools/provision.py end to end: the CLI provisions the real firmware in the simulator.

A fresh (unprovisioned) simulated charger is given URL, Charge Point ID, password and CA over
the simulator's provisioning port; it restarts and reaches Connected on the lab CSMS over wss.
Then the gates: no button window, a wrong secret (the lockout grows, INFO shows it), a refused
field (nothing stored), factory reset by the CLI and by a long press (the secret survives),
and provider presets.
"""

import json
import subprocess
import sys
from pathlib import Path

from certs import make_server_pki

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "tools" / "provision.py")]
SECRET = "5ec7e75ec7e75ec7e75ec7e75ec7e700"
CP = "CP-PROV-1"
PASSWORD = "s3cret-passw0rd"


def cli(sim, *args, secret=SECRET, timeout=60):
    argv = CLI + ["--sim", "127.0.0.1:{}".format(sim.provision_port)]
    if secret:
        argv += ["--secret", secret]
    return subprocess.run(argv + list(args), capture_output=True, text=True, timeout=timeout,
                          cwd=str(ROOT))


def info(sim):
    r = cli(sim, "--status", secret=None)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def restarted(sim, before, timeout=20):
    return sim.wait_for(lambda s: s["ok"] and s["firmware_restarts"] > before, timeout=timeout)


def test_cli_provisions_a_fresh_charger_which_connects_over_wss(labcsms_factory, sim_factory,
                                                                tmp_path):
    pki = make_server_pki(tmp_path / "pki")
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key, auth={CP: PASSWORD})
    sim = sim_factory(device_secret=SECRET)
    st = sim.status()
    assert st["ocpp"] == "Offline" and st["led"] == "provisioning"
    assert info(sim)["state"] == "unprovisioned"
    url = "wss://localhost:{}/ocpp".format(csms.ws_port)
    r = cli(sim, "--url", url, "--id", CP, "--password", PASSWORD, "--ca", str(pki.ca_cert))
    assert r.returncode == 0, r.stderr
    assert "CA certificate [" in r.stderr and "100%" in r.stderr  # the progress bar
    assert "committed (security profile 2)" in r.stderr
    assert PASSWORD not in r.stdout + r.stderr
    restarted(sim, st["firmware_restarts"])
    sim.wait_for(lambda s: s["ocpp"] == "Connected" and s["registration"] == "Accepted",
                 timeout=30)
    assert csms.messages(CP, "BootNotification")
    assert csms.violations() == []
    # status over the plaintext INFO, then the authenticated one (button window first)
    assert info(sim)["connection"] == "Connected" and info(sim)["state"] == "provisioned"
    assert sim.request({"cmd": "button", "ms": 4000})["ok"]
    r = cli(sim, "--status")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert status["url"] == url and status["charge_point_id"] == CP
    assert status["security_profile"] == 2 and status["connection"] == "Connected"
    assert status["secrets_set"] == ["authorization_key"] and len(status["ca_sha256"]) == 64
    assert PASSWORD not in r.stdout


def test_gates_window_secret_lockout_and_refused_fields(labcsms, sim_factory):
    sim = sim_factory(csms=labcsms.url, cp_id="CP1", device_secret=SECRET)
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=20)
    # provisioned, no button: the handshake is refused, nothing changes
    r = cli(sim, "--id", "CP2")
    assert r.returncode == 1 and "WINDOW_CLOSED" in r.stderr and "service button" in r.stderr
    assert sim.request({"cmd": "button", "ms": 3000})["ok"]
    # wrong secret: refused, counted, the third one locks and INFO shows the lock
    wrong = "00" * 16
    for n in range(3):
        r = cli(sim, "--id", "CP2", secret=wrong)
        assert r.returncode == 1 and "NOT_AUTHENTICATED" in r.stderr and "wrong secret" in r.stderr
    assert "locked: retry in 30 s" in r.stderr
    i = info(sim)
    assert i["state"] == "locked" and 0 < i["lockout_seconds"] <= 30
    r = cli(sim, "--id", "CP2")  # the right secret waits too
    assert r.returncode == 1 and "LOCKED" in r.stderr
    # usage errors never reach the charger
    r = cli(sim, "--id", "CP2", secret=None)
    assert r.returncode == 2 and "--secret" in r.stderr
    assert sim.status()["ocpp"] == "Connected"


def test_refused_field_stores_nothing_then_a_preset_provisions(labcsms, sim_factory, tmp_path):
    sim = sim_factory(device_secret=SECRET)
    bad_ca = tmp_path / "bad.pem"
    bad_ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n")
    before = sim.status()["firmware_restarts"]
    r = cli(sim, "--url", labcsms.url, "--id", CP, "--ca", str(bad_ca))
    assert r.returncode == 1 and "CERT_INVALID" in r.stderr
    r = cli(sim, "--url", "ftp://example/ocpp", "--id", CP)
    assert r.returncode == 1 and "BAD_FIELD" in r.stderr and "CSMS URL" in r.stderr
    assert info(sim)["state"] == "unprovisioned"
    assert sim.status()["firmware_restarts"] == before
    port = labcsms.url.rsplit(":", 1)[1].split("/")[0]
    r = cli(sim, "--preset", "lab", "--preset-var", "port=" + port, "--id", CP)
    assert r.returncode == 0, r.stderr
    restarted(sim, before)
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=20)
    assert labcsms.violations() == []


def test_factory_reset_by_cli_and_by_long_press_keeps_the_secret(labcsms, sim_factory):
    sim = sim_factory(csms=labcsms.url, cp_id="CP1", device_secret=SECRET)
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=20)
    sim.request({"cmd": "button", "ms": 5000})
    before = sim.status()["firmware_restarts"]
    r = cli(sim, "--factory-reset")
    assert r.returncode == 0, r.stderr
    restarted(sim, before)
    st = sim.wait_for(lambda s: s["ok"] and s["ocpp"] == "Offline")
    assert st["led"] == "provisioning" and info(sim)["state"] == "unprovisioned"
    # unprovisioned: no button needed, and the same secret still works
    r = cli(sim, "--url", labcsms.url, "--id", "CP1")
    assert r.returncode == 0, r.stderr
    restarted(sim, before + 1)
    sim.wait_for(lambda s: s["ocpp"] == "Connected", timeout=20)
    # a very long press of the service button: factory reset without any client
    assert sim.request({"cmd": "button", "ms": 12000})["ok"]
    restarted(sim, before + 2)
    sim.wait_for(lambda s: s["ok"] and s["ocpp"] == "Offline")
    assert info(sim)["state"] == "unprovisioned"
    assert labcsms.violations() == []
