"""tools/web/provision.html in headless Chromium provisions the real firmware in the simulator.

The page speaks Web Bluetooth; a fake `navigator.bluetooth` (injected before the page's own
scripts through the DevTools protocol) forwards each GATT write, notification and INFO read over
a WebSocket to a small bridge here, which puts the frames on the simulator's provisioning port
(u16 length before each frame, as the simulator expects). The page first passes the published
test vectors, then fills the URL from a provider preset, uploads the CA with its progress bar,
commits, and the test asserts on the status the page displays. Skipped, with the reason shown,
when Debian's `chromium` is not installed (.ci/run installs it in CI).
"""

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from websockets.asyncio.server import serve
from websockets.sync.client import connect as ws_connect

from certs import make_server_pki

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "tools" / "web"
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
CP = "CP-WEB-1"
PASSWORD = "web-passw0rd-1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; "
    ".ci/run installs it in CI): the Web Bluetooth page test needs a headless browser")

FAKE_BLUETOOTH = r"""
(() => {
  const BRIDGE = "ws://127.0.0.1:%(port)d";
  const [INFO, RX, TX] = ["%(info)s", "%(rx)s", "%(tx)s"];
  window.__fakeBle = { writes: 0, connects: 0 };
  class Gatt {
    constructor(device) { this.device = device; this.connected = false; this.ws = null; this.infoWaiters = []; }
    connect() {
      window.__fakeBle.connects += 1;
      return new Promise((resolve, reject) => {
        const ws = new WebSocket(BRIDGE);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => { this.ws = ws; this.connected = true; resolve(this); };
        ws.onerror = () => reject(new DOMException("GATT connect failed", "NetworkError"));
        ws.onclose = () => {
          const was = this.connected;
          this.connected = false; this.ws = null;
          for (const w of this.infoWaiters.splice(0)) w.reject(new DOMException("disconnected", "NetworkError"));
          if (was) this.device.dispatchEvent(new Event("gattserverdisconnected"));
        };
        ws.onmessage = (e) => {
          const f = new Uint8Array(e.data);
          if (f[0] === 7) { const w = this.infoWaiters.shift(); if (w) w.resolve(new DataView(f.slice(2).buffer)); return; }
          this.chars[TX].value = new DataView(f.buffer);
          this.chars[TX].dispatchEvent(new Event("characteristicvaluechanged"));
        };
      });
    }
    disconnect() { if (this.ws) this.ws.close(); }
    getPrimaryService(uuid) { return Promise.resolve({ getCharacteristic: (c) => Promise.resolve(this.chars[c]) }); }
  }
  class Device extends EventTarget {
    constructor() {
      super();
      this.name = "EVSE-SIM"; this.id = "fake";
      const gatt = this.gatt = new Gatt(this);
      const ch = (props) => Object.assign(new EventTarget(), props);
      gatt.chars = {
        [INFO]: ch({ readValue: () => new Promise((resolve, reject) => {
          if (!gatt.ws) return reject(new DOMException("not connected", "NetworkError"));
          gatt.infoWaiters.push({ resolve, reject });
          gatt.ws.send(new Uint8Array([6, 0]));
        }) }),
        [RX]: ch({ writeValueWithResponse: (v) => {
          if (!gatt.ws) return Promise.reject(new DOMException("not connected", "NetworkError"));
          window.__fakeBle.writes += 1;
          gatt.ws.send(v);
          return Promise.resolve();
        } }),
        [TX]: ch({ value: null, startNotifications: () => Promise.resolve() }),
      };
    }
  }
  const device = new Device();
  Object.defineProperty(navigator, "bluetooth", { configurable: true, value: {
    requestDevice: (opts) => opts.filters[0].services[0] === "%(service)s" ? Promise.resolve(device)
      : Promise.reject(new DOMException("no device", "NotFoundError")),
  } });
})();
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bridge:
    """WebSocket (one per fake GATT connection) <-> TCP to the simulator's provisioning port."""

    def __init__(self, prov_port):
        self.prov_port = prov_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stopped = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "bridge did not start"

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._main())

    async def _main(self):
        self.stopped = asyncio.Event()
        async with serve(self._client, "127.0.0.1", self.port):
            self.ready.set()
            await self.stopped.wait()

    async def _client(self, ws):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.prov_port)
        except OSError:
            return

        async def to_device():
            async for msg in ws:
                writer.write(len(msg).to_bytes(2, "big") + bytes(msg))
                await writer.drain()

        async def to_page():
            while True:
                head = await reader.readexactly(2)
                await ws.send(await reader.readexactly(int.from_bytes(head, "big")))

        tasks = [asyncio.ensure_future(to_device()), asyncio.ensure_future(to_page())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            writer.close()
            await ws.close()

    def close(self):
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(5)


class Page:
    """One Chromium tab driven over the DevTools protocol."""

    def __init__(self, tmp):
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=tmp)
        self.proc = subprocess.Popen([CHROMIUM] + FLAGS + ["--user-data-dir=" + self.profile,
                                                          "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
            target = next(t for t in json.load(r) if t["type"] == "page")
        self._conn = ws_connect(target["webSocketDebuggerUrl"], max_size=None)
        self.ws = self._conn.__enter__()
        self.n = 0

    def cdp(self, method, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.n:
                if "error" in msg:
                    raise RuntimeError("{}: {}".format(method, msg["error"]))
                return msg["result"]

    def js(self, expr, gesture=False):
        r = self.cdp("Runtime.evaluate", expression=expr, awaitPromise=True, returnByValue=True,
                     userGesture=gesture)
        if "exceptionDetails" in r:
            raise AssertionError("page JS failed: {}".format(r["exceptionDetails"]))
        return r["result"].get("value")

    def text(self, element_id):
        return self.js("document.getElementById(%s).textContent" % json.dumps(element_id))

    def wait_text(self, element_id, pred, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            value = self.text(element_id)
            if pred(value):
                return value
            if time.monotonic() > deadline:
                raise AssertionError("#{} stayed {!r}; message {!r}".format(
                    element_id, value, self.text("message")))
            time.sleep(0.2)

    def set_file(self, selector, path):
        root = self.cdp("DOM.getDocument")["root"]["nodeId"]
        node = self.cdp("DOM.querySelector", nodeId=root, selector=selector)["nodeId"]
        self.cdp("DOM.setFileInputFiles", nodeId=node, files=[str(path)])

    def close(self):
        try:
            self._conn.__exit__(None, None, None)
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def web_server():
    handler = partial(SimpleHTTPRequestHandler, directory=str(WEB))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % server.server_address[1]
    server.shutdown()


def set_value(page, element_id, value, event="input"):
    page.js("(() => { const e = document.getElementById(%s); e.value = %s; "
            "e.dispatchEvent(new Event(%s)); })()" % (json.dumps(element_id), json.dumps(value),
                                                       json.dumps(event)))


def click(page, element_id):
    page.js("document.getElementById(%s).click()" % json.dumps(element_id), gesture=True)


@pytest.mark.timeout(240)
def test_page_provisions_the_simulator_over_fake_web_bluetooth(labcsms_factory, sim_factory,
                                                               web_server, tmp_path):
    import provclient

    pki = make_server_pki(tmp_path / "pki")
    csms = labcsms_factory(tls_cert=pki.cert, tls_key=pki.key, auth={CP: PASSWORD})
    sim = sim_factory(device_secret=SECRET)
    bridge = Bridge(sim.provision_port)
    page = Page(tmp_path)
    try:
        page.cdp("Page.enable")
        page.cdp("Page.addScriptToEvaluateOnNewDocument", source=FAKE_BLUETOOTH % {
            "port": bridge.port, "service": provclient.SERVICE_UUID,
            "info": provclient.INFO_UUID, "rx": provclient.RX_UUID, "tx": provclient.TX_UUID})
        page.cdp("Page.navigate", url=web_server + "/provision.html")
        deadline = time.monotonic() + 30
        while not page.js("document.readyState === 'complete' && !!window.Prov && "
                          "document.getElementById('preset').options.length > 1"):
            assert time.monotonic() < deadline, "page did not load"
            time.sleep(0.1)
        # the JavaScript protocol passes the same vectors as the firmware and the CLI
        assert page.js("fetch('provision_vectors.json').then(r => r.json())"
                       ".then(v => Prov.selfTest(v))") == []
        # connect: INFO shows the unprovisioned simulator
        click(page, "connect")
        page.wait_text("device-id", lambda t: t.startswith("SIM-"))
        assert page.text("state") == "unprovisioned" and page.text("conn-status") == "Offline"
        # a wrong secret is refused with a clear error and nothing is stored
        set_value(page, "secret", "00" * 16)
        set_value(page, "cp-id", CP)
        click(page, "provision")
        page.wait_text("message", lambda t: "NOT_AUTHENTICATED" in t)
        assert "wrong secret" in page.text("message")
        # the URL from a provider preset, then the fields, the CA file, commit
        set_value(page, "preset", "lab-tls", "change")
        set_value(page, "preset-var-port", str(csms.ws_port))
        url = "wss://localhost:%d/ocpp" % csms.ws_port
        assert page.js("document.getElementById('url').value") == url
        assert page.js("document.getElementById('profile').value") == "2"
        set_value(page, "secret", SECRET)
        set_value(page, "password", PASSWORD)
        page.set_file("#ca", pki.ca_cert)
        click(page, "provision")
        page.wait_text("conn-status", lambda t: t == "Connected", timeout=90)
        assert "Provisioned: the charger is Connected" in page.text("message")
        assert page.js("document.getElementById('progress').value") == 1
        assert page.js("window.__fakeBle.writes") > 10  # the CA went as many small frames
        assert PASSWORD not in page.js("document.body.innerText")
        shot = os.environ.get("PROVISION_WEB_SCREENSHOT")
        if shot:  # look at the page as a person would: PROVISION_WEB_SCREENSHOT=page.png
            png = page.cdp("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            Path(shot).write_bytes(base64.b64decode(png["data"]))
    finally:
        page.close()
        bridge.close()
    st = sim.status()
    assert st["ocpp"] == "Connected" and st["registration"] == "Accepted"
    assert csms.violations() == []
