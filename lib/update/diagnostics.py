"""The GetDiagnostics upload: the log ring and a state snapshot, by HTTP(S) PUT or POST, or FTP.

OCPP 1.6 sections 4.4 (DiagnosticsStatusNotification) and 5.9 (GetDiagnostics): the charger
answers with the file name at once, then uploads in the background, `retries` + 1 attempts
`retryInterval` seconds apart, reporting Uploading, then Uploaded or UploadFailed. The file is
text: a header (charge point, firmware version, time), the charger's `snapshot()` as JSON, then
the log ring oldest first (lib/log.py). The ring lines carry no timestamps, so startTime and
stopTime cannot select lines and are ignored. Everything is captured when the request arrives
(the ring holds references to immutable strings: copying the list costs _RING pointers) and
produced piecewise for each attempt, so the file never exists whole in RAM.
`DiagnosticsUploadMethod` (vendor key): PUT sends the file as the body to `location` (plus the
file name when `location` ends with "/"); POST sends multipart/form-data with one part `file`
to `location` as it is, like an HTML form upload. An ftp:// location gets the file by STOR
(its name appended when `location` ends with "/").
"""

import asyncio
import json
from micropython import const

import log
from net.httpresp import HTTPError

_DEFAULT_RETRIES = const(2)
_DEFAULT_INTERVAL_S = const(30)
_MAX_RETRIES = const(10)
_MAX_INTERVAL_S = const(86400)
_BOUNDARY = "evse-diagnostics-7c1f9a"


def _bounded(v, default, hi):
    if type(v) is not int:
        return default
    return max(0, min(v, hi))


class _File:
    """The diagnostics file, captured now, produced chunk by chunk by `chunks()`."""

    def __init__(self, ctx, name):
        self.name = name
        snap = ctx.snapshot()
        self.head = "# EVSE diagnostics {}\n# charge point {}\n# firmware {}\n# time {}\n".format(
            name, ctx.prov.get("cp_id"), ctx.firmware_version, ctx.clock.timestamp() or "unknown"
        )
        self.state = json.dumps(snap)
        self.lines = [line for line in log.recent()]

    def chunks(self):
        yield self.head.encode()
        yield b"# state\n"
        yield self.state.encode()
        yield b"\n# log (oldest first)\n"
        for line in self.lines:
            yield line.encode()
            yield b"\n"


def _multipart(f):
    def gen():
        yield (
            '--{}\r\nContent-Disposition: form-data; name="file"; filename="{}"\r\n'
            "Content-Type: text/plain\r\n\r\n".format(_BOUNDARY, f.name)
        ).encode()
        for c in f.chunks():
            yield c
        yield "\r\n--{}--\r\n".format(_BOUNDARY).encode()

    return gen


async def upload(ctx, location, f):
    """One upload attempt of file `f` to `location`; raises HTTPError."""
    if location[:6].lower() == "ftp://":
        from net import ftp

        url = location + f.name if location.endswith("/") else location
        await ftp.transfer(ctx.board.link, url, body=f.chunks)
        return
    from net import http

    method = ctx.config.get("DiagnosticsUploadMethod")
    ca = ctx.store.load_blob("ca")
    if method == "POST":
        hdr = (("Content-Type", "multipart/form-data; boundary=" + _BOUNDARY),)
        await http.request(ctx.board.link, "POST", location, body=_multipart(f), headers=hdr,
                           ca=ca)
        return
    url = location + f.name if location.endswith("/") else location
    await http.request(ctx.board.link, "PUT", url, body=f.chunks,
                       headers=(("Content-Type", "text/plain"),), ca=ca)


class DiagnosticsUpload:
    """The diagnostics job of one charger; `status` is Uploading while one runs, else Idle."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.status = "Idle"
        self._task = None

    def start(self, payload, name):
        """GetDiagnostics answered with `name`: upload in the background (replaces a running
        upload)."""
        self.close()
        retries = _bounded(payload.get("retries"), _DEFAULT_RETRIES, _MAX_RETRIES)
        interval = _bounded(payload.get("retryInterval"), _DEFAULT_INTERVAL_S, _MAX_INTERVAL_S)
        f = _File(self.ctx, name)
        self.status = "Uploading"
        self._task = asyncio.create_task(self._run(payload["location"], f, retries, interval))

    def close(self):
        t = self._task
        self._task = None
        if t is not None:
            t.cancel()
        self.status = "Idle"

    async def _run(self, location, f, retries, interval):
        try:
            self._notify("Uploading")
            for attempt in range(1, retries + 2):
                try:
                    await upload(self.ctx, location, f)
                    log.info("diagnostics", "%s uploaded", f.name)
                    self._notify("Uploaded")
                    return
                except HTTPError as e:
                    log.warn("diagnostics", "upload %d/%d failed: %s", attempt, retries + 1, e)
                    if e.stage in ("url", "config"):
                        break
                except OSError as e:
                    log.warn("diagnostics", "upload %d/%d failed: %r", attempt, retries + 1, e)
                if attempt <= retries:
                    await asyncio.sleep_ms(interval * 1000)
            self._notify("UploadFailed")
        except Exception as e:  # the job's outermost handler: report, never take the charger down
            log.exception("diagnostics", "upload job failed", e)
            self._notify("UploadFailed")

    def _notify(self, status):
        self.status = "Uploading" if status == "Uploading" else "Idle"
        log.info("diagnostics", "DiagnosticsStatusNotification %s", status)
        self.ctx.client.send("DiagnosticsStatusNotification", {"status": status})
