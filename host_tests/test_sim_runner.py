"""tools/sim.py with a fake firmware: control commands, bus, restarts, meter, gateway, shutdown.

The world's physics is tested directly (simworld, injected time); the runner runs as a real
process with host_tests/fake_firmware.py in place of MicroPython (sim.py's SIM_FIRMWARE_CMD hook).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from sim_fixtures import FAKE_FIRMWARE, SIM, SimFactory, free_port
from simworld import CommandError, World, current_for_duty

pytestmark = pytest.mark.timeout(120)


# -- the world, without processes ------------------------------------------------------------


@pytest.mark.parametrize("duty, amps", [
    (1.0, 0.0), (0.0, 0.0), (0.05, 0.0), (0.08, 6.0), (0.1, 6.0), (0.1667, 10.002),
    (0.5, 30.0), (0.85, 51.0), (0.9, 65.0), (0.96, 80.0), (0.97, 80.0), (0.98, 0.0),
])
def test_current_for_duty_follows_iec_61851_table(duty, amps):
    assert current_for_duty(duty) == pytest.approx(amps)


def charging_world(phases=1, duty=16 / 60.0):
    w = World(1, phases)
    w.apply({"cmd": "plug", "connector": 1})
    w.apply({"cmd": "ev", "connector": 1, "state": "C"})
    w.output({"out": "duty", "connector": 1, "value": duty})
    w.output({"out": "relay", "connector": 1, "closed": True})
    return w


def test_energy_integrates_power_over_time():
    w = charging_world()
    c = w.connectors[0]
    assert c.current_a == pytest.approx(16.0)  # the EV draws all it is offered
    w.tick(1800.0)
    assert c.energy_wh == pytest.approx(16 * 230 * 0.5)
    w.apply({"cmd": "ev_power", "connector": 1, "watts": 2300})
    w.tick(0.0)
    assert (c.current_a, c.power_w) == (pytest.approx(10.0), pytest.approx(2300.0))
    w.tick(3600.0)
    assert c.energy_wh == pytest.approx(16 * 230 * 0.5 + 2300)


def test_three_phases_split_the_ev_power():
    w = charging_world(phases=3)
    w.apply({"cmd": "ev_power", "connector": 1, "watts": 6900})
    msg = w.meter_messages()[0]
    assert msg["current_a"] == [10.0, 10.0, 10.0]
    assert msg["voltage_v"] == [230.0] * 3 and msg["power_w"] == 6900.0


@pytest.mark.parametrize("change", [
    {"out": "relay", "connector": 1, "closed": False},
    {"out": "duty", "connector": 1, "value": 1.0},
    {"cmd": "ev", "connector": 1, "state": "B"},
    {"cmd": "unplug", "connector": 1},
    {"cmd": "ev_power", "connector": 1, "watts": 0},
])
def test_no_current_without_relay_pwm_or_demand(change):
    w = charging_world()
    w.output(change) if "out" in change else w.apply(change)
    w.tick(3600.0)
    assert (w.connectors[0].power_w, w.connectors[0].energy_wh) == (0.0, 0.0)


def test_welded_relay_keeps_conducting_after_open():
    w = charging_world()
    w.apply({"cmd": "fault", "kind": "weld", "on": True})
    w.output({"out": "relay", "connector": 1, "closed": False})
    assert w.connectors[0].current_a == pytest.approx(16.0)


def test_meter_lost_silences_the_meter():
    w = World(2, 1)
    w.apply({"cmd": "fault", "kind": "meter_lost", "on": True})
    assert w.meter_messages() == []
    assert len(w.full_state()) == 2 + 3  # connectors, faults, ems, net; no meter


def test_bad_world_commands_raise_and_change_nothing():
    w = World(1, 1)
    before = json.dumps(w.full_state())
    for req in BAD_REQUESTS:
        with pytest.raises(CommandError):
            w.apply(req)
    assert json.dumps(w.full_state()) == before


def test_meter_file_round_trip_and_corrupt_file(tmp_path):
    w = charging_world()
    w.tick(3600.0)
    w.save_meter(str(tmp_path))
    again = World(1, 1)
    again.load_meter(str(tmp_path))
    assert again.connectors[0].energy_wh == pytest.approx(w.connectors[0].energy_wh)
    (tmp_path / ".sim-meter.json").write_text("{broken")
    fresh = World(1, 1)
    fresh.load_meter(str(tmp_path))
    assert fresh.connectors[0].energy_wh == 0.0


# -- the runner with the fake firmware -------------------------------------------------------

BAD_REQUESTS = [
    {"cmd": "nope"}, {}, {"cmd": 5},
    {"cmd": "plug"}, {"cmd": "plug", "connector": 0}, {"cmd": "plug", "connector": 3},
    {"cmd": "plug", "connector": "1"}, {"cmd": "plug", "connector": True},
    {"cmd": "plug", "connector": 1.0}, {"cmd": "unplug", "connector": 9},
    {"cmd": "ev", "connector": 1, "state": "A"}, {"cmd": "ev", "connector": 1, "state": "E"},
    {"cmd": "ev", "connector": 1, "state": "c"}, {"cmd": "ev", "connector": 1},
    {"cmd": "ev", "connector": 1, "state": "C"},  # nothing plugged
    {"cmd": "ev_power", "connector": 1, "watts": -1}, {"cmd": "ev_power", "connector": 1,
                                                       "watts": "7400"},
    {"cmd": "ev_power", "connector": 1, "watts": True}, {"cmd": "ev_power", "connector": 1},
    {"cmd": "tap"}, {"cmd": "tap", "uid": "04A1B2"}, {"cmd": "tap", "uid": "04A1B2C3D4"},
    {"cmd": "tap", "uid": "XYZ1B2C3"}, {"cmd": "tap", "uid": "04 A1 B2 C3"},
    {"cmd": "tap", "uid": 12345678},
    {"cmd": "fault", "kind": "fire", "on": True}, {"cmd": "fault", "kind": "rcd"},
    {"cmd": "fault", "kind": "rcd", "on": 1},
    {"cmd": "cable", "connector": 1, "amps": 16}, {"cmd": "cable", "connector": 1, "amps": True},
    {"cmd": "cable", "connector": 1, "amps": "32"}, {"cmd": "cable", "connector": 1},
    {"cmd": "ems", "limit_a": -1}, {"cmd": "ems", "limit_a": "10"}, {"cmd": "ems"},
    {"cmd": "ems", "limit_a": True},
    {"cmd": "button", "ms": 0}, {"cmd": "button", "ms": -5}, {"cmd": "button", "ms": 1.5},
    {"cmd": "button", "ms": "5000"}, {"cmd": "button"},
    {"cmd": "net", "up": "false"}, {"cmd": "net"},
]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    factory = SimFactory(tmp_path_factory.mktemp("simrunner"))
    handle = factory(firmware_cmd=FAKE_FIRMWARE, connectors=2,
                     config={"HeartbeatInterval": 5, "AuthEnabled": "false"}, max_current=16)
    yield handle
    factory.cleanup()


def fake(status):
    return status["fake"]


def conn(status, cid):
    return status["connectors"][cid - 1]


def ok(handle, req):
    reply = handle.request(req)
    assert reply == {"ok": True}, (req, reply)


def test_status_passes_the_firmware_answer_and_its_arguments(sim):
    s = sim.status()
    assert s["ok"] is True and s["firmware_restarts"] == 0 and s["ocpp"] == "Offline"
    args = fake(s)["args"]
    assert args["first_boot"] is True and args["connectors"] == 2 and args["max_current"] == 16
    assert args["config"] == {"HeartbeatInterval": "5", "AuthEnabled": "false"}
    assert args["csms"] is None and args["phases"] == 1
    assert args["device_secret"] == sim.device_secret and len(args["device_secret"]) == 32
    env = fake(s)["env"]
    assert env["EVSE_BOARD"] == "sim" and env["EVSE_STATE_DIR"] == str(sim.state_dir)
    assert env["MICROPYPATH"].startswith(".frozen:") and env["EVSE_SIM_GATEWAY"].isdigit()
    # The complete world went to the firmware when it connected.
    assert fake(s)["net"] is True and fake(s)["ems"] is None
    assert fake(s)["faults"] == dict.fromkeys(
        ["rcd", "diode", "weld", "overtemp", "pilot_short", "meter_lost"], False)
    assert [c["pilot"] for c in s["connectors"]] == ["A", "A"]
    assert "fw: fake firmware up, first_boot True" in sim.log()


@pytest.mark.parametrize("req", BAD_REQUESTS, ids=str)
def test_bad_request_gets_ok_false(sim, req):
    reply = sim.request(req)
    assert reply["ok"] is False and reply["error"], reply


@pytest.mark.parametrize("line", [b"{not json", b"[1, 2]", b"42", b'"status"', b"\xff\xfe"])
def test_malformed_line_gets_ok_false(sim, line):
    reply = sim.request(line)
    assert reply["ok"] is False


def test_many_requests_on_one_connection_and_still_alive(sim):
    with socket.create_connection(("127.0.0.1", sim.control_port), timeout=10) as s:
        s.sendall(b'{"cmd":"bogus"}\n\n{"cmd":"status"}\n{bad\n')
        f = s.makefile("rb")
        replies = [json.loads(f.readline()) for _ in range(3)]
    assert [r["ok"] for r in replies] == [False, True, False]
    assert sim.status()["ok"] is True


def test_malformed_firmware_output_is_logged_and_ignored(sim):
    ok(sim, {"cmd": "tap", "uid": "DEAD0BAD"})
    s = sim.wait_for(lambda s: fake(s)["taps"][-1] == "DEAD0BAD")
    assert s["firmware_restarts"] == 0
    assert "bus: bad line from the firmware" in sim.log()
    assert "bus: bad output from the firmware" in sim.log()


def test_plug_ev_cable_and_ems_reach_the_firmware(sim):
    ok(sim, {"cmd": "plug", "connector": 2})
    sim.wait_for(lambda s: conn(s, 2)["pilot"] == "B" and not conn(s, 2)["relay"])
    ok(sim, {"cmd": "ev", "connector": 2, "state": "C"})
    sim.wait_for(lambda s: conn(s, 2)["relay"] and conn(s, 2)["duty"] == round(16 / 60, 4))
    ok(sim, {"cmd": "cable", "connector": 2, "amps": 13})
    sim.wait_for(lambda s: conn(s, 2)["duty"] == round(13 / 60, 4))
    ok(sim, {"cmd": "ems", "limit_a": 6.5})
    sim.wait_for(lambda s: fake(s)["ems"] == 6.5 and conn(s, 2)["duty"] == round(6.5 / 60, 4))
    ok(sim, {"cmd": "ems", "limit_a": None})
    ok(sim, {"cmd": "ev", "connector": 2, "state": "D"})
    sim.wait_for(lambda s: conn(s, 2)["pilot"] == "D" and fake(s)["ems"] is None)
    ok(sim, {"cmd": "unplug", "connector": 2})
    ok(sim, {"cmd": "cable", "connector": 2, "amps": 32})
    sim.wait_for(lambda s: conn(s, 2)["pilot"] == "A" and not conn(s, 2)["relay"])


def test_tap_button_fault_and_net_reach_the_firmware(sim):
    ok(sim, {"cmd": "tap", "uid": "04a1b2c3"})
    ok(sim, {"cmd": "tap", "uid": "04A1B2C3D4E5F6"})
    ok(sim, {"cmd": "button", "ms": 5000})
    for kind in ("rcd", "diode", "weld", "overtemp", "pilot_short", "meter_lost"):
        ok(sim, {"cmd": "fault", "kind": kind, "on": True})
    ok(sim, {"cmd": "net", "up": False})
    s = sim.wait_for(lambda s: fake(s)["net"] is False and fake(s)["buttons"] == [5000])
    assert fake(s)["taps"][-2:] == ["04A1B2C3", "04A1B2C3D4E5F6"]
    assert all(fake(s)["faults"].values())
    for kind in ("rcd", "diode", "weld", "overtemp", "pilot_short", "meter_lost"):
        ok(sim, {"cmd": "fault", "kind": kind, "on": False})
    ok(sim, {"cmd": "net", "up": True})
    sim.wait_for(lambda s: fake(s)["net"] is True and not any(fake(s)["faults"].values()))


def test_meter_integrates_what_the_ev_draws(sim):
    ok(sim, {"cmd": "ev_power", "connector": 1, "watts": 2300})
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    s = sim.wait_for(lambda s: conn(s, 1)["power_w"] == 2300.0)  # 10 A of the 16 A offered
    assert conn(s, 1)["meter"]["current_a"] == [10.0]
    first = conn(s, 1)["energy_wh"]
    s = sim.wait_for(lambda s: conn(s, 1)["energy_wh"] > first + 0.5)
    ok(sim, {"cmd": "ev_power", "connector": 1, "watts": None})
    # duty 0.2667 offers 16.002 A
    sim.wait_for(lambda s: conn(s, 1)["power_w"] == pytest.approx(16 * 230.0, abs=1.0))
    ok(sim, {"cmd": "unplug", "connector": 1})
    s = sim.wait_for(lambda s: conn(s, 1)["power_w"] == 0.0 and not conn(s, 1)["relay"])
    stopped = conn(s, 1)["energy_wh"]
    time.sleep(1.2)
    assert conn(sim.status(), 1)["energy_wh"] == stopped


def test_meter_lost_stops_meter_messages(sim):
    ok(sim, {"cmd": "fault", "kind": "meter_lost", "on": True})
    time.sleep(0.2)  # a reading may be on its way
    count = fake(sim.status())["meter_count"]
    time.sleep(1.5)
    assert fake(sim.status())["meter_count"] == count
    ok(sim, {"cmd": "fault", "kind": "meter_lost", "on": False})
    sim.wait_for(lambda s: fake(s)["meter_count"] > count)


def test_provisioning_port_forwards_bytes_both_ways(sim):
    with socket.create_connection(("127.0.0.1", sim.provision_port), timeout=10) as s:
        s.sendall(b"hello")
        assert s.recv(100) == b"echo:hello"
        s.sendall(b"close")
        assert s.recv(100) == b""  # the firmware closed the session
    with socket.create_connection(("127.0.0.1", sim.provision_port), timeout=10) as s:
        s.sendall(b"x")
        assert s.recv(100) == b"echo:x"
    st = sim.wait_for(lambda s: fake(s)["prov"][-1][0] == "prov_close")
    events = fake(st)["prov"]
    first, second = events[0][1], events[-1][1]
    assert events == [["prov_open", first], ["prov_data", first, "hello"],
                      ["prov_data", first, "close"], ["prov_open", second],
                      ["prov_data", second, "x"], ["prov_close", second]]


class EchoServer:
    """A TCP peer standing in for the CSMS: echoes, passes on EOF, records when a link dies."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.ended = []  # one Event per accepted connection: set when it saw EOF or a reset
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            ended = threading.Event()
            self.ended.append(ended)
            threading.Thread(target=self._echo, args=(c, ended), daemon=True).start()

    def _echo(self, c, ended):
        try:
            while data := c.recv(4096):
                c.sendall(data)
            c.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        ended.set()
        c.close()

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()


def gateway_connect(port, target):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall("CONNECT {}\n".format(target).encode())
    answer = b""
    while not answer.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            break
        answer += chunk
    return s, answer.decode()


def link_dead(s):
    try:
        s.settimeout(5)
        return s.recv(100) == b""
    except ConnectionResetError:
        return True


def test_gateway_splices_refuses_and_cut_drops_both_sides(sim):
    port = int(fake(sim.status())["env"]["EVSE_SIM_GATEWAY"])
    server = EchoServer()
    try:
        s, answer = gateway_connect(port, "127.0.0.1 {}".format(server.port))
        assert answer == "OK\n"
        s.sendall(b"ping")
        assert s.recv(100) == b"ping"
        ok(sim, {"cmd": "net", "up": False})
        assert link_dead(s)
        assert len(server.ended) == 1 and server.ended[0].wait(5)
        s.close()
        s, answer = gateway_connect(port, "127.0.0.1 {}".format(server.port))
        assert answer == "ERR offline\n" and link_dead(s)
        s.close()
        sim.wait_for(lambda s: fake(s)["net"] is False)
        ok(sim, {"cmd": "net", "up": True})
        sim.wait_for(lambda s: fake(s)["net"] is True)
        s, answer = gateway_connect(port, "localhost {}".format(server.port))
        assert answer == "OK\n"
        s.sendall(b"again")
        assert s.recv(100) == b"again"
        s.close()
    finally:
        server.close()
    closed_port = free_port()
    for target, prefix in [("127.0.0.1 {}".format(closed_port), "ERR tcp "),
                           ("no-such-host.invalid 80", "ERR dns "),
                           ("127.0.0.1", "ERR request "), ("127.0.0.1 99999", "ERR request ")]:
        s, answer = gateway_connect(port, target)
        assert answer.startswith(prefix) and answer.endswith("\n"), (target, answer)
        s.close()
    assert sim.status()["ok"] is True


def test_gateway_half_close_passes_eof(sim):
    port = int(fake(sim.status())["env"]["EVSE_SIM_GATEWAY"])
    server = EchoServer()
    try:
        s, answer = gateway_connect(port, "127.0.0.1 {}".format(server.port))
        assert answer == "OK\n"
        s.sendall(b"bye")
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(100):
            data += chunk
        assert data == b"bye"  # echoed, then the server's close came through
        s.close()
    finally:
        server.close()


# -- restarts, power cuts and stops (one simulator each) -------------------------------------


def test_restart_request_keeps_world_and_clears_first_boot(sim_factory):
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE)
    first_pid = fake(sim.status())["pid"]
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "ems", "limit_a": 12})
    ok(sim, {"cmd": "tap", "uid": "DEAD0075"})
    s = sim.wait_for(lambda s: s["ok"] and fake(s)["pid"] != first_pid)
    assert s["firmware_restarts"] == 1 and s["firmware_crashes"] == 0
    assert fake(s)["args"]["first_boot"] is False
    assert conn(s, 1)["pilot"] == "B" and fake(s)["ems"] == 12.0
    assert "firmware asked for a restart" in sim.log()


def test_crash_restarts_after_a_pause_and_world_commands_wait(sim_factory):
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE)
    ok(sim, {"cmd": "tap", "uid": "deaddead"})
    s = sim.wait_for(lambda s: not s["ok"])
    assert s == {"ok": False, "error": "firmware restarting"}
    # While no firmware listens: world commands still apply, momentary events are refused.
    ok(sim, {"cmd": "plug", "connector": 1})
    assert sim.request({"cmd": "tap", "uid": "04A1B2C3"})["ok"] is False
    assert sim.request({"cmd": "plug", "connector": 2})["ok"] is False
    s = sim.wait_for(lambda s: s["ok"], timeout=10)
    assert s["firmware_restarts"] == 1 and s["firmware_crashes"] == 1
    assert fake(s)["args"]["first_boot"] is False and fake(s)["taps"] == []
    assert conn(s, 1)["pilot"] == "B"
    assert "firmware crashed (exit 3)" in sim.log()


def test_meter_survives_a_power_cut_and_the_world_resets(sim_factory, tmp_path):
    state = tmp_path / "flash"
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE, state_dir=state)
    secret = sim.device_secret
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    sim.wait_for(lambda s: conn(s, 1)["energy_wh"] > 1.0)
    meter_file = state / ".sim-meter.json"
    sim.wait_for(lambda s: meter_file.exists()
                 and json.loads(meter_file.read_text())["energy_wh"]["1"] > 1.0)
    firmware_pid = fake(sim.status())["pid"]
    sim.kill9()
    saved = json.loads(meter_file.read_text())["energy_wh"]["1"]
    assert process_ends(firmware_pid)
    again = sim_factory(firmware_cmd=FAKE_FIRMWARE, state_dir=state)
    s = again.status()
    assert conn(s, 1)["energy_wh"] == pytest.approx(saved, abs=1e-3)
    assert conn(s, 1)["pilot"] == "A" and conn(s, 1)["power_w"] == 0.0
    assert fake(s)["args"]["first_boot"] is True
    assert again.device_secret == secret


def process_ends(pid, timeout=5.0):
    """True once pid is gone or a zombie (dead, its parent gone): signals land asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/{}/stat".format(pid)) as f:
                if f.read().rsplit(") ", 1)[1].startswith("Z"):
                    return True
        except OSError:
            return True
        time.sleep(0.02)
    return False


def test_shutdown_answers_then_exits_zero_and_saves_meter(sim_factory):
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE, device_secret="00112233445566778899aabbccddeeff")
    assert fake(sim.status())["args"]["device_secret"] == "00112233445566778899aabbccddeeff"
    ok(sim, {"cmd": "plug", "connector": 1})
    ok(sim, {"cmd": "ev", "connector": 1, "state": "C"})
    sim.wait_for(lambda s: conn(s, 1)["energy_wh"] > 0)
    assert sim.request({"cmd": "shutdown"}) == {"ok": True}
    assert sim.wait_exit(10) == 0
    assert "fw: fake firmware: shutdown" in sim.log()
    saved = json.loads((sim.state_dir / ".sim-meter.json").read_text())["energy_wh"]["1"]
    assert saved > 0


def test_shutdown_kills_a_firmware_that_does_not_stop(sim_factory):
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE)
    ok(sim, {"cmd": "tap", "uid": "DEAD0001"})
    firmware_pid = fake(sim.status())["pid"]
    assert sim.request({"cmd": "shutdown"}) == {"ok": True}
    assert sim.request({"cmd": "status"}) == {"ok": False, "error": "shutting down"}
    assert sim.wait_exit(15) == 0
    assert "firmware did not stop; killing it" in sim.log()
    assert process_ends(firmware_pid)


def test_firmware_dies_with_a_runner_killed_alone(sim_factory):
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE)
    firmware_pid = fake(sim.status())["pid"]
    os.kill(sim.pid, signal.SIGKILL)  # not the group: Linux parent-death signal
    sim.wait_exit(10)
    assert process_ends(firmware_pid)


def test_sigterm_stops_cleanly(sim_factory):
    sim = sim_factory(firmware_cmd=FAKE_FIRMWARE)
    firmware_pid = fake(sim.status())["pid"]
    os.kill(sim.pid, signal.SIGTERM)
    assert sim.wait_exit(10) == 0
    assert process_ends(firmware_pid)


def test_firmware_that_cannot_start_keeps_control_port_up(sim_factory, tmp_path):
    sim = sim_factory(firmware_cmd=[str(tmp_path / "missing-binary")], wait_firmware=False)
    reply = sim.status()
    assert reply == {"ok": False, "error": "firmware restarting"}
    ok(sim, {"cmd": "cable", "connector": 1, "amps": 20})
    assert sim.stop() == 0


def run_cli(*args):
    return subprocess.run([sys.executable, str(SIM), *args], capture_output=True, text=True,
                          timeout=30)


@pytest.mark.parametrize("args", [
    [], ["--state-dir", "x", "--phases", "2"], ["--state-dir", "x", "--csms", "http://h/ocpp"],
    ["--state-dir", "x", "--config", "NoEquals"], ["--state-dir", "x", "--connectors", "0"],
    ["--state-dir", "x", "--device-secret", "xyz"], ["--state-dir", "x", "--max-current", "-3"],
    ["--state-dir", "x", "--ca", "/no/such/ca.pem"],
])
def test_cli_rejects_bad_options(args):
    assert run_cli(*args).returncode == 2


def test_help_lists_every_option():
    out = run_cli("--help").stdout
    for opt in ("--csms", "--id", "--state-dir", "--control-port", "--password", "--ca",
                "--connectors", "--max-current", "--phases", "--config", "--heapsize",
                "--provision-port", "--device-secret", "SIM_FIRMWARE_CMD"):
        assert opt in out
    assert "BLE" in out


def test_busy_control_port_is_a_clear_error(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        r = run_cli("--state-dir", str(tmp_path), "--control-port", str(port),
                    "--provision-port", "0")
    assert r.returncode == 2 and "cannot listen on the control port" in r.stderr
