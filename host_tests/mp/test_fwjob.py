"""The UpdateFirmware and GetDiagnostics jobs (update.manager, update.diagnostics, ocpp16.firmware)
against a fake charger: scripted HTTP answers, recorded status notifications, simulated restarts.

Covers what the simulator cannot: the full-image path with a fake esp32 module, and the edge
cases (retries, refusal, rollback, retrieveDate, a session starting while Installing is sent)
without waiting for real intervals. The end-to-end runs are host_tests/test_firmware_sim.py.
"""
# mp-heapsize: 512K

import asyncio

import log
from clock import ManualClock
from ocpp16 import config as cfg
from ocpp16 import firmware
from net.link import ConnectError
from update import apps
from update.manager import FirmwareManager, RECORD
from _fwkit import FakeEsp32, FakeLink, FakeStream, esp_image, make_bundle, response, store


class Pending:
    def __init__(self):
        self.done = asyncio.Event()
        self.done.set()


class Client:
    def __init__(self):
        self.sent = []

    def send(self, action, payload):
        self.sent.append((action, payload["status"]))
        return Pending()


class Conn:
    def __init__(self):
        self.tx = None
        self.pending_tag = None


class Board:
    def __init__(self, link):
        self.link = link


class Ctx:
    """The parts of charger.app.Charger the firmware jobs use."""

    def __init__(self, st, link, clock=None):
        self.store = st
        self.board = Board(link)
        if clock is None:
            clock = ManualClock()
            clock.set_unix(1700000000)  # BootNotification told the time
        self.clock = clock
        self.client = Client()
        self.connectors = [Conn()]
        self.registration = "Accepted"
        self.restart = None
        self.prov = {"cp_id": "CP/1"}
        self.firmware_version = "0.1.0"
        self.config = cfg.Config()
        firmware.declare_keys(self.config, None)

    def request_restart(self, reason):
        self.restart = reason

    def snapshot(self):
        return {"ocpp": "Connected", "connectors": [{"id": 1, "status": "Available"}]}

    def statuses(self, action="FirmwareStatusNotification"):
        return [s for a, s in self.client.sent if a == action]


def serving(*bodies):
    return FakeLink(*[FakeStream(response(b, pieces=4)) for b in bodies])


async def until(pred, ms=3000):
    for _ in range(ms // 5):
        if pred():
            return
        await asyncio.sleep_ms(5)
    raise AssertionError("condition not reached")


def job(ctx, esp32=None):
    return FirmwareManager(ctx, esp32=esp32, step_ms=5)


def request(url="http://files/fw.evb", **kw):
    p = {"location": url, "retrieveDate": "2020-01-01T00:00:00Z", "retryInterval": 0}
    p.update(kw)
    return p


async def restart(st, link=None, esp32=None, boots=1):
    """A reboot: main.py's bundle selection, then the charger resumes the pending job."""
    for _ in range(boots):
        apps.select(st)
    ctx = Ctx(st, link or FakeLink())
    m = job(ctx, esp32)
    m.resume(st.load(RECORD))
    return ctx, m


# ---- UpdateFirmware: bundles -----------------------------------------------------------------
async def test_bundle_download_install_restart_installed():
    st = store()
    ctx = Ctx(st, serving(make_bundle("2.0.0")))
    m = job(ctx)
    m.start(request())
    await until(lambda: ctx.restart is not None)
    assert ctx.statuses() == ["Downloading", "Downloaded", "Installing"]
    assert ctx.restart == "firmware update"
    assert apps.load(st)["active"] == "2.0.0" and apps.load(st)["trial"] == 0
    assert st.load(RECORD)["state"] == "Installing"
    assert m.status == "Installing"
    ctx2, m2 = await restart(st)
    ctx2.registration = None
    await asyncio.sleep_ms(30)
    assert ctx2.statuses() == []  # reported only once BootNotification is Accepted
    ctx2.registration = "Accepted"
    await until(lambda: ctx2.statuses() == ["Installed"])
    await until(lambda: st.load(RECORD) is None)
    assert "trial" not in apps.load(st) and m2.status == "Idle"


async def test_installation_waits_for_the_running_session():
    st = store()
    ctx = Ctx(st, serving(make_bundle("2.0.0")))
    ctx.connectors[0].tx = {"tx_id": 7}
    m = job(ctx)
    m.start(request())
    await until(lambda: ctx.statuses() == ["Downloading", "Downloaded"])
    await asyncio.sleep_ms(50)
    assert ctx.statuses() == ["Downloading", "Downloaded"] and ctx.restart is None
    assert firmware.firmware_status(ctx) == "Idle"  # no job registered on this fake ctx
    assert m.status == "Downloaded"
    ctx.connectors[0].tx = None
    await until(lambda: ctx.restart is not None)
    assert ctx.statuses()[-1] == "Installing"


async def test_a_session_starting_while_installing_is_sent_postpones_the_switch():
    st = store()
    ctx = Ctx(st, serving(make_bundle("2.0.0")))
    sent = ctx.client.send

    def send(action, payload):
        if payload["status"] == "Installing" and len(ctx.statuses()) == 2:
            ctx.connectors[0].tx = {"tx_id": 1}  # a card was tapped meanwhile
        return sent(action, payload)

    ctx.client.send = send
    m = job(ctx)
    m.start(request())
    await until(lambda: "Installing" in ctx.statuses())
    await asyncio.sleep_ms(30)
    assert ctx.restart is None and apps.running_version(st) is None
    ctx.connectors[0].tx = None
    await until(lambda: ctx.restart is not None)
    assert apps.running_version(st) == "2.0.0"


async def test_unreachable_server_retries_then_download_failed():
    st = store()
    link = FakeLink(ConnectError("tcp", "refused"), ConnectError("tcp", "refused"),
                    ConnectError("tcp", "refused"))
    ctx = Ctx(st, link)
    m = job(ctx)
    m.start(request(retries=2))
    await until(lambda: "DownloadFailed" in ctx.statuses())
    assert ctx.statuses() == ["Downloading", "DownloadFailed"]
    assert len(link.calls) == 3 and st.load(RECORD) is None and m.status == "Idle"


async def test_corrupt_bundle_is_retried_then_download_failed_and_nothing_changes():
    st = store()
    bad = make_bundle("2.0.0", corrupt_file="lib/fwdemo/core.mpy")
    ctx = Ctx(st, serving(bad, bad))
    job(ctx).start(request(retries=1))
    await until(lambda: "DownloadFailed" in ctx.statuses())
    assert apps.running_version(st) is None and ctx.restart is None
    assert [n for n in __import__("os").listdir(st.root) if n.startswith("app-")] == []


async def test_not_an_image_is_refused_once_with_installation_failed():
    st = store()
    link = serving(b"<html>login page</html>", b"unused")
    ctx = Ctx(st, link)
    job(ctx).start(request(retries=3))
    await until(lambda: "InstallationFailed" in ctx.statuses())
    assert ctx.statuses() == ["Downloading", "InstallationFailed"] and len(link.calls) == 1


async def test_https_without_ca_fails_at_once():
    st = store()
    link = FakeLink()
    ctx = Ctx(st, link)
    job(ctx).start(request("https://files/fw.evb", retries=3))
    await until(lambda: "DownloadFailed" in ctx.statuses())
    assert link.calls == []


async def test_unconfirmed_bundle_rolls_back_and_reports_installation_failed():
    st = store()
    ctx = Ctx(st, serving(make_bundle("2.0.0")))
    job(ctx).start(request())
    await until(lambda: ctx.restart is not None)
    # two boots that crash before BootNotification, then the one that rolls back
    ctx2, m2 = await restart(st, boots=3)
    await until(lambda: ctx2.statuses() == ["InstallationFailed"])
    await until(lambda: st.load(RECORD) is None)
    assert apps.running_version(st) is None


async def test_retrieve_date_in_the_future_waits_for_the_wall_clock():
    st = store()
    clock = ManualClock()
    ctx = Ctx(st, serving(make_bundle("2.0.0")), clock)
    m = job(ctx)
    m.start(request(retrieveDate="2030-01-01T00:00:00Z"))
    await asyncio.sleep_ms(30)
    assert ctx.statuses() == []  # wall time unknown
    clock.set_unix(1893455990)  # ten seconds before
    await asyncio.sleep_ms(30)
    assert ctx.statuses() == [] and st.load(RECORD)["state"] == "Scheduled"
    clock.advance(10000)
    await until(lambda: ctx.restart is not None)


async def test_a_new_request_replaces_a_scheduled_one():
    st = store()
    clock = ManualClock()
    clock.set_unix(1700000000)
    ctx = Ctx(st, serving(make_bundle("3.0.0")), clock)
    m = job(ctx)
    m.start(request("http://old/fw", retrieveDate="2030-01-01T00:00:00Z"))
    await asyncio.sleep_ms(20)
    m.start(request("http://new/fw"))
    await until(lambda: ctx.restart is not None)
    assert ctx.board.link.calls == [("new", 80, False)]


async def test_resume_after_a_restart_in_downloaded_state_installs():
    st = store()
    ctx = Ctx(st, serving(make_bundle("2.0.0")))
    ctx.connectors[0].tx = {"tx_id": 1}
    m = job(ctx)
    m.start(request())
    await until(lambda: m.status == "Downloaded")
    m.close()  # the charger restarts (a Reset) while the session runs
    ctx2, m2 = await restart(st)
    await until(lambda: ctx2.restart is not None)
    assert ctx2.statuses() == ["Installing"] and apps.running_version(st) == "2.0.0"


# ---- UpdateFirmware: full images (fake esp32) --------------------------------------------------
async def test_full_image_is_written_activated_and_confirmed_after_the_reboot():
    st = store()
    esp = FakeEsp32()
    image = esp_image(9000)
    ctx = Ctx(st, serving(image))
    job(ctx, esp).start(request())
    await until(lambda: ctx.restart is not None)
    assert ctx.statuses() == ["Downloading", "Downloaded", "Installing"]
    assert esp.booted == "ota_1" and st.load(RECORD)["partition"] == "ota_1"
    esp.running, esp.spare = esp.spare, esp.running  # the bootloader started the new image
    ctx2, _ = await restart(st, esp32=esp)
    await until(lambda: ctx2.statuses() == ["Installed"])
    assert esp.valid == 1


async def test_full_image_rolled_back_by_the_bootloader_is_reported():
    st = store()
    esp = FakeEsp32()
    ctx = Ctx(st, serving(esp_image(9000)))
    job(ctx, esp).start(request())
    await until(lambda: ctx.restart is not None)
    ctx2, _ = await restart(st, esp32=esp)  # still running ota_0: the new image never held
    await until(lambda: ctx2.statuses() == ["InstallationFailed"])
    assert esp.valid == 0


async def test_full_image_in_the_simulator_is_installation_failed():
    st = store()
    ctx = Ctx(st, serving(esp_image(9000)))
    job(ctx).start(request())
    await until(lambda: "InstallationFailed" in ctx.statuses())
    assert ctx.statuses() == ["Downloading", "InstallationFailed"]


# ---- ocpp16.firmware handlers and GetDiagnostics ---------------------------------------------
async def test_handlers_answer_at_once_and_start_the_jobs_after():
    st = store()
    ctx = Ctx(st, serving(b"\x00" * 10))
    resp, after = firmware.update_firmware(ctx, request())
    assert resp == {} and ctx.statuses() == []
    after()
    assert firmware.firmware_status(ctx) in ("Idle", "Downloading")
    await until(lambda: "InstallationFailed" in ctx.statuses())
    assert firmware.firmware_status(ctx) == "Idle"
    resp, after = firmware.get_diagnostics(ctx, {"location": "http://h/up/"})
    assert resp == {"fileName": "diagnostics-CP_1-20231114T221320Z.txt"}, resp
    assert firmware.diagnostics_status(ctx) == "Idle"


async def test_diagnostics_put_sends_state_and_log():
    st = store()
    log.info("fwtest", "a line for the diagnostics file")
    up = FakeStream(response(status="201 Created"))
    ctx = Ctx(st, FakeLink(up))
    resp, after = firmware.get_diagnostics(ctx, {"location": "http://h/up/", "retryInterval": 0})
    after()
    assert firmware.diagnostics_status(ctx) == "Uploading"
    await until(lambda: "Uploaded" in ctx.statuses("DiagnosticsStatusNotification"))
    assert ctx.statuses("DiagnosticsStatusNotification") == ["Uploading", "Uploaded"]
    sent = bytes(up.sent)
    assert sent.startswith(b"PUT /up/" + resp["fileName"].encode() + b" HTTP/1.1\r\n"), sent[:80]
    assert b"# charge point CP/1" in sent and b'"ocpp": "Connected"' in sent
    assert b"I fwtest: a line for the diagnostics file" in sent
    assert firmware.diagnostics_status(ctx) == "Idle"


async def test_diagnostics_post_is_multipart():
    st = store()
    up = FakeStream(response(status="200 OK"))
    ctx = Ctx(st, FakeLink(up))
    ctx.config.set("DiagnosticsUploadMethod", "POST", persist=False)
    _, after = firmware.get_diagnostics(ctx, {"location": "http://h/upload"})
    after()
    await until(lambda: "Uploaded" in ctx.statuses("DiagnosticsStatusNotification"))
    sent = bytes(up.sent)
    head, _, body = sent.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /upload HTTP/1.1")
    assert b"Content-Type: multipart/form-data; boundary=" in head
    assert b'Content-Disposition: form-data; name="file"; filename="diagnostics-' in body
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    assert length == len(body)


async def test_diagnostics_upload_failures_are_retried_then_upload_failed():
    st = store()
    link = FakeLink(FakeStream(response(status="500 Oops")), ConnectError("tcp", "refused"))
    ctx = Ctx(st, link)
    _, after = firmware.get_diagnostics(ctx, {"location": "http://h/up", "retries": 1,
                                              "retryInterval": 0})
    after()
    await until(lambda: "UploadFailed" in ctx.statuses("DiagnosticsStatusNotification"))
    assert ctx.statuses("DiagnosticsStatusNotification") == ["Uploading", "UploadFailed"]
    assert len(link.calls) == 2


def test_keys_say_what_really_works():
    c = cfg.Config()
    firmware.declare_keys(c, None)
    assert c.text("SupportedFileTransferProtocols") == firmware.PROTOCOLS
    assert c.key("SupportedFileTransferProtocols").access == "R"
    assert c.change("DiagnosticsUploadMethod", "GET") == "Rejected"
    assert c.change("DiagnosticsUploadMethod", "POST") == "Accepted"
