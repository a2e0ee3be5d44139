"""The UpdateFirmware job: wait for retrieveDate, download with retries, stage, install when idle.

OCPP 1.6 sections 4.5 (FirmwareStatusNotification) and 5.19 (UpdateFirmware): the charger
answers at once, downloads at `retrieveDate` (as soon as the wall time is known and reached),
tries `retries` + 1 times `retryInterval` seconds apart, and reports each step with
FirmwareStatusNotification: Downloading, Downloaded or DownloadFailed, then Installing (only
when no connector has a transaction: it waits for running sessions to end), a restart, and
Installed or InstallationFailed once the new version has booted (or was rolled back).
The record `fwupdate` (lib/store) carries the job across restarts:
  state     Scheduled | Downloading | Downloaded | Installing
  location, at (unix s, 0 = now), retries, interval
  kind ...  what update.install staged (bundle: version, tops; image: partition, size, sha256)
A bundle confirms itself (update.apps.confirm) once BootNotification is Accepted after the
restart; a full image cancels the bootloader's rollback then (update.ota.mark_valid).
Loop context only. One job at a time: a new UpdateFirmware replaces a job that is not yet
installing.
"""

import asyncio
from micropython import const

import log
from net.httpresp import HTTPError
from update import CorruptError, RefusedError, apps

RECORD = "fwupdate"
_STEP_MS = const(1000)  # polling step while waiting for retrieveDate, registration, idle
_NOTIFY_WAIT_MS = const(30000)  # how long Installing/Installed may take to reach the CSMS
_DEFAULT_RETRIES = const(2)
_DEFAULT_INTERVAL_S = const(30)
_MAX_RETRIES = const(10)
_MAX_INTERVAL_S = const(86400)
_TERMINAL = ("Installed", "InstallationFailed", "DownloadFailed", "Idle")


def _bounded(v, default, hi):
    if type(v) is not int:
        return default
    return max(0, min(v, hi))


async def fetch(ctx, url, on_data):
    """Download `url` (http, https with the provisioned CA, ftp) into on_data."""
    if url[:6].lower() == "ftp://":
        from net import ftp

        await ftp.transfer(ctx.board.link, url, on_data=on_data)
        return
    from net import http

    await http.request(ctx.board.link, "GET", url, on_data=on_data, ca=ctx.store.load_blob("ca"))


class FirmwareManager:
    """The firmware job of one charger (`ctx`); `status` is what TriggerMessage reports."""

    def __init__(self, ctx, esp32=None, step_ms=_STEP_MS):
        self.ctx = ctx
        self.status = "Idle"
        self._esp32 = esp32  # tests inject a fake; else imported when a full image needs it
        self._step = step_ms
        self._task = None
        self._sink = None

    # ---- entry points ---------------------------------------------------------------------
    def start(self, payload):
        """UpdateFirmware (called after the empty answer went out): schedule the job."""
        if self.status == "Installing":
            log.warn("firmware", "UpdateFirmware ignored: an installation is under way")
            return
        self.close()
        at = 0
        if payload.get("retrieveDate"):
            from ocpp16.timefmt import parse_rfc3339

            at = parse_rfc3339(payload["retrieveDate"])
        rec = {
            "state": "Scheduled",
            "location": payload["location"],
            "at": at,
            "retries": _bounded(payload.get("retries"), _DEFAULT_RETRIES, _MAX_RETRIES),
            "interval": _bounded(payload.get("retryInterval"), _DEFAULT_INTERVAL_S,
                                 _MAX_INTERVAL_S),
        }
        self._save(rec)
        self._task = asyncio.create_task(self._guard(self._job(rec)))

    def resume(self, rec):
        """Boot: continue a persisted job (`rec`, or None to confirm a bundle on trial)."""
        self._task = asyncio.create_task(self._guard(self._resume(rec)))

    def close(self):
        """Cancel the running job (its staging tree is dropped)."""
        t = self._task
        self._task = None
        if t is not None:
            t.cancel()
        self._drop_sink()
        self.status = "Idle"

    # ---- the job --------------------------------------------------------------------------
    async def _guard(self, coro):
        # The single outermost handler of the job task: log, report, never take the charger down.
        try:
            await coro
        except Exception as e:  # a bug or an unexpected flash error: report and forget the job
            log.exception("firmware", "update job failed", e)
            self._drop_sink()
            if self.status != "Idle":
                failed = "DownloadFailed" if self.status == "Downloading" else "InstallationFailed"
                self._notify(failed)
            self._clear()

    async def _job(self, rec):
        await self._wait_until(rec["at"])
        staged = await self._download(rec)
        if staged is None:
            self._clear()
            return
        rec.update(staged)
        rec["state"] = "Downloaded"
        self._save(rec)
        log.info("firmware", "downloaded %s %s", rec["kind"], rec.get("version"))
        self._notify("Downloaded")
        await self._install(rec)

    async def _wait_until(self, at):
        clock = self.ctx.clock
        while at:
            now = clock.unix()
            if now is not None and now >= at:
                return
            await asyncio.sleep_ms(self._step)  # unknown wall time: wait until the CSMS tells it

    async def _download(self, rec):
        from update.install import Download

        ctx = self.ctx
        rec["state"] = "Downloading"
        self._save(rec)
        self._notify("Downloading")
        apps.cleanup(ctx.store)
        running = apps.running_version(ctx.store)
        attempts = rec["retries"] + 1
        for attempt in range(1, attempts + 1):
            sink = Download(ctx.store, running, self._esp32)
            self._sink = sink
            final = False
            try:
                await fetch(ctx, rec["location"], sink.feed)
                staged = sink.finish()
                self._sink = None
                return staged
            except RefusedError as e:
                self._drop_sink()
                log.error("firmware", "image refused: %s", e)
                self._notify("InstallationFailed")
                return None
            except HTTPError as e:
                why = str(e)
                final = e.stage in ("url", "config")  # retrying cannot help
            except (CorruptError, OSError) as e:
                why = "{}: {}".format(type(e).__name__, e)
            self._drop_sink()
            log.warn("firmware", "download %d/%d failed: %s", attempt, attempts, why)
            if final:
                break
            if attempt < attempts:
                await asyncio.sleep_ms(rec["interval"] * 1000)
        self._notify("DownloadFailed")
        return None

    def _busy(self):
        for c in self.ctx.connectors:
            if c.tx is not None or getattr(c, "pending_tag", None) is not None:
                return True
        return False

    async def _install(self, rec):
        ctx = self.ctx
        self.status = "Downloaded"
        waiting = False
        while True:
            if self._busy():
                if not waiting:
                    log.info("firmware", "installation waits for the session to end")
                    waiting = True
                await asyncio.sleep_ms(self._step)
                continue
            rec["state"] = "Installing"
            self._save(rec)
            await self._notify_wait("Installing")
            if not self._busy():
                break
            rec["state"] = "Downloaded"  # a session started meanwhile: wait for it too
            self._save(rec)
            self.status = "Downloaded"
        # From here to request_restart nothing awaits, so no session can start in between.
        if rec["kind"] == "bundle":
            apps.switch(ctx.store, rec["version"], rec["tops"])
        else:
            from update import ota

            w = ota.verify_staged(self._esp32 or ota.load_esp32(), rec["partition"],
                                  rec["size"], rec["sha256"])
            if w is None:
                raise CorruptError("staged image no longer intact")
            w.activate()
        log.info("firmware", "installing %s %s: restart", rec["kind"], rec.get("version"))
        ctx.request_restart("firmware update")

    async def _resume(self, rec):
        ctx = self.ctx
        store = ctx.store
        failed = apps.take_failed(store)
        if failed is not None:
            log.error("firmware", "bundle %s was rolled back", failed)
        state = rec.get("state") if type(rec) is dict else None
        if state is None:
            if rec is not None:
                log.warn("firmware", "unreadable update record dropped")
                self._clear()
            if apps.load(store).get("trial") is not None:
                await self._registered()
                apps.confirm(store)
            return
        if state == "Installing":
            self.status = "Installing"
            await self._registered()
            ok = self._install_result(rec, failed)
            if ok is None:  # the switch never happened (power cut): install again
                await self._install(rec)
                return
            log.info("firmware", "installation of %s %s", rec.get("version"),
                     "succeeded" if ok else "failed")
            await self._notify_wait("Installed" if ok else "InstallationFailed")
            self._clear()
            apps.cleanup(store)
        elif state == "Downloaded" and self._still_staged(rec):
            await self._install(rec)
        else:
            await self._job(rec)

    def _install_result(self, rec, failed):
        """True: the new version runs (now confirmed); False: it failed; None: not switched."""
        store = self.ctx.store
        if rec.get("kind") == "image":
            from update import ota

            esp32 = self._esp32 or ota.load_esp32()
            if ota.running_label(esp32) != rec.get("partition"):
                return False
            ota.mark_valid(esp32)
            return True
        version = rec.get("version")
        if failed == version:
            return False
        if apps.running_version(store) == version:
            apps.confirm(store)
            return True
        return None

    def _still_staged(self, rec):
        if rec.get("kind") == "bundle":
            from store import tree

            return tree.is_dir(apps.app_dir(self.ctx.store.root, rec.get("version")))
        return rec.get("kind") == "image"  # re-verified against its hash by _install

    async def _registered(self):
        while self.ctx.registration != "Accepted":
            await asyncio.sleep_ms(self._step)

    # ---- reports and records --------------------------------------------------------------
    def _notify(self, status):
        self.status = "Idle" if status in _TERMINAL else status
        log.info("firmware", "FirmwareStatusNotification %s", status)
        return self.ctx.client.send("FirmwareStatusNotification", {"status": status})

    async def _notify_wait(self, status):
        p = self._notify(status)
        try:
            await asyncio.wait_for_ms(p.done.wait(), _NOTIFY_WAIT_MS)
        except asyncio.TimeoutError:
            log.warn("firmware", "%s not confirmed by the CSMS in time", status)

    def _drop_sink(self):
        s = self._sink
        self._sink = None
        if s is not None:
            s.abort()

    def _save(self, rec):
        self.ctx.store.save(RECORD, rec)

    def _clear(self):
        self.ctx.store.delete(RECORD)
