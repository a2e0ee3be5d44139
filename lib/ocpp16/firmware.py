"""OCPP 1.6 Firmware Management profile: UpdateFirmware, GetDiagnostics and their status reports.

Thin on purpose: this module is imported at start, the work is not. The handlers answer at once
(UpdateFirmware `{}`, GetDiagnostics `{"fileName": ...}`) and start the job after the answer
went out, importing update.manager / update.diagnostics (and net.http) on first use only
(architecture.md: rare features are imported when used). `boot(ctx)` runs when the charger
starts: it sets the running version (the active bundle's, else charger.app.FIRMWARE_VERSION) and
resumes a persisted update (report Installed / InstallationFailed after the restart, confirm a
bundle on trial). `firmware_status(ctx)` / `diagnostics_status(ctx)` give the status a
TriggerMessage reports (Idle unless a job is under way). Sections 4.4, 4.5, 5.9, 5.19.
"""

from ocpp16 import config as cfg
from ocpp16 import specs

PROFILE = "FirmwareManagement"
PROTOCOLS = "FTP,HTTP,HTTPS"  # SupportedFileTransferProtocols: what net.ftp/net.http do
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


def _method_check(v):
    if v not in ("PUT", "POST"):
        raise ValueError("must be PUT or POST")


def declare_keys(c, board):
    c.declare("SupportedFileTransferProtocols", cfg.CSL, PROTOCOLS, access="R")
    c.declare("DiagnosticsUploadMethod", cfg.STR, "PUT", check=_method_check)


def _fw(ctx):
    m = getattr(ctx, "_fw_job", None)
    if m is None:
        from update.manager import FirmwareManager

        m = FirmwareManager(ctx)
        ctx._fw_job = m
    return m


def _diag(ctx):
    m = getattr(ctx, "_diag_job", None)
    if m is None:
        from update.diagnostics import DiagnosticsUpload

        m = DiagnosticsUpload(ctx)
        ctx._diag_job = m
    return m


def diagnostics_file_name(ctx):
    """`diagnostics-<cp id>-<UTC time>.txt`, safe as a path segment (at most 80 characters)."""
    cp = "".join(ch if ch in _NAME_CHARS else "_" for ch in str(ctx.prov.get("cp_id") or "cp"))
    ts = ctx.clock.timestamp()
    if ts:
        stamp = ts.replace("-", "").replace(":", "").split(".")[0].rstrip("Z") + "Z"
    else:
        stamp = "boot{}".format(ctx.clock.now_ms())
    return "diagnostics-{}-{}.txt".format(cp[:40], stamp)


# ---- handlers ------------------------------------------------------------------------------
def update_firmware(ctx, payload):
    def after():
        _fw(ctx).start(payload)

    return {}, after


def get_diagnostics(ctx, payload):
    name = diagnostics_file_name(ctx)

    def after():
        _diag(ctx).start(payload, name)

    return {"fileName": name}, after


# ---- charger hooks -------------------------------------------------------------------------
def boot(ctx):
    """Charger start (client created): running version, resume a pending update if any."""
    rec = ctx.store.load("app")
    rec = rec if type(rec) is dict else {}
    if rec.get("active"):
        ctx.firmware_version = rec["active"]
    pending = ctx.store.load("fwupdate")
    if pending or rec.get("trial") is not None or rec.get("failed"):
        _fw(ctx).resume(pending)


def firmware_status(ctx):
    """FirmwareStatusNotification status for TriggerMessage: Idle unless a job is under way."""
    m = getattr(ctx, "_fw_job", None)
    return m.status if m is not None else "Idle"


def diagnostics_status(ctx):
    """DiagnosticsStatusNotification status for TriggerMessage: Uploading or Idle."""
    m = getattr(ctx, "_diag_job", None)
    return m.status if m is not None else "Idle"


HANDLERS = {
    "GetDiagnostics": (specs.GET_DIAGNOSTICS_REQ, get_diagnostics),
    "UpdateFirmware": (specs.UPDATE_FIRMWARE_REQ, update_firmware),
}
