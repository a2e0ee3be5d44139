"""The charger side of provisioning: lockout, window, INFO, and the authenticated commands.

`Provisioner(store, board, charger)` answers what a session needs: the device id and secret,
whether the service-button window is open, the lockout state (kept in flash), the plaintext
INFO records, and `handle(op, recs, staged, now)` for the sealed commands (GET_STATUS, GET,
SET, COMMIT, IDENTIFY, CANCEL, RESTART, FACTORY_RESET; provisioning.md section 5). It knows
no transport. Lockout: after `_FREE_FAILS` wrong proofs, lock for 30 s, doubling per further
failure up to 1 h; the counter is in flash, and after a power cycle the lock runs again in
full. Secrets are write-only: no command returns them, and nothing here logs a value.
"""

from micropython import const

import log
from provision import codec as C
from provision import fields as F
from provision import storage

_FREE_FAILS = const(2)  # the third wrong proof locks
_LOCK_BASE_S = const(30)
_LOCK_MAX_S = const(3600)
WINDOW_MS = const(60000)
_ERROR_MAX = const(96)  # bytes of the last connection error shown in INFO

ACT_RESTART = "restart"
ACT_FACTORY_RESET = "factory_reset"


def lock_seconds(fails):
    """Lock duration after `fails` failed proofs (0 while below the threshold)."""
    if fails <= _FREE_FAILS:
        return 0
    return min(_LOCK_BASE_S << min(fails - _FREE_FAILS - 1, 7), _LOCK_MAX_S)


class Lockout:
    def __init__(self, store, now):
        self.store = store
        rec = store.load(storage.LOCKOUT, {}) or {}
        self.fails = rec.get("fails", 0) if isinstance(rec, dict) else 0
        if not isinstance(self.fails, int) or self.fails < 0:
            self.fails = _FREE_FAILS + 1  # unreadable counter: fail closed
        self.until = now + lock_seconds(self.fails) * 1000

    def seconds_left(self, now):
        left = self.until - now
        return (left + 999) // 1000 if left > 0 else 0

    def fail(self, now):
        self.fails += 1
        self.until = now + lock_seconds(self.fails) * 1000
        self._save()
        return self.seconds_left(now)

    def success(self):
        if self.fails:
            self.fails = 0
            self.until = 0
            self._save()

    def _save(self):
        try:
            self.store.save(storage.LOCKOUT, {"fails": self.fails})
        except OSError as e:  # the lock still holds in RAM
            log.error("provision", "cannot store the lockout counter: %s", e)


class Provisioner:
    def __init__(self, store, board, charger, now, firmware_version=None):
        self.store = store
        self.board = board
        self.charger = charger
        self.lockout = Lockout(store, now)
        self._firmware = firmware_version
        self.device_id = board.serial
        self.sessions = 0  # authenticated sessions open now (for INFO)
        self.rec = storage.load(store)  # cached: it changes only by a commit (then a restart)

    @property
    def firmware(self):
        return self._firmware or getattr(self.charger, "firmware_version", None) or "unknown"

    # ---- state -----------------------------------------------------------------------------
    def secret(self):
        return self.board.device_secret()

    def provisioned(self):
        rec = self.rec
        return bool(rec.get("url") and rec.get("cp_id"))

    def window_open(self):
        return not self.provisioned() or self.board.provisioning_window()

    def extend_window(self):
        """Each accepted message keeps the window open another WINDOW_MS."""
        if self.provisioned():
            self.board.open_window(WINDOW_MS)

    def connection(self):
        """(status, last error) of the CSMS connection, from RAM or the last boot's record."""
        ch = self.charger
        client = getattr(ch, "client", None) if ch is not None else None
        status = getattr(ch, "conn_status", None) or "Offline"
        err = getattr(client, "last_error", None)
        if not self.provisioned():
            return "Offline", "not provisioned"
        if err is None:
            last = self.store.load(storage.LAST_STATUS) or {}
            err = last.get("error") if isinstance(last, dict) else None
        return status, err

    def state(self, now):
        if self.lockout.seconds_left(now):
            return 3
        if self.sessions:
            return 4
        if not self.provisioned():
            return 0
        return 1 if self.board.provisioning_window() else 2

    def info(self, now):
        """INFO records (plaintext, readable without the secret: nothing in it is secret)."""
        status, err = self.connection()
        recs = [
            (C.T_VERSION, C.u8(C.VERSION)),
            (C.T_DEVICE_ID, self.device_id),
            (C.T_FIRMWARE, self.firmware),
            (C.T_CAPS, C.u8(1 | 2 | 4 | 8)),
            (C.T_STATE, C.u8(self.state(now))),
            (C.T_SECONDS, C.u32(self.lockout.seconds_left(now))),
            (C.T_CONN_STATUS, status),
            (C.T_MAX_FRAME, C.u16(C.MAX_FRAME)),
            (C.T_MAX_MESSAGE, C.u16(C.MAX_MESSAGE)),
        ]
        if err:
            recs.append((C.T_LAST_ERROR, _clip(err)))
        return recs

    # ---- commands --------------------------------------------------------------------------
    def handle(self, op, recs, staged):
        """Run one authenticated command; returns (status, records, action or None)."""
        if op == C.OP_GET_STATUS:
            return C.OK, self._status(staged), None
        if op == C.OP_GET:
            return self._get(recs)
        if op == C.OP_SET:
            return self._set(recs, staged)
        if op == C.OP_CANCEL:
            staged.clear()
            return C.OK, (), None
        if op == C.OP_COMMIT:
            return self._commit(staged)
        if op == C.OP_IDENTIFY:
            self.board.led_flash("identify")
            return C.OK, (), None
        if op == C.OP_RESTART:
            return C.OK, (), ACT_RESTART
        if op == C.OP_FACTORY_RESET:
            return C.OK, (), ACT_FACTORY_RESET
        return C.UNKNOWN_OP, C.error_records("unknown operation 0x{:02x}".format(op)), None

    def _readable(self, tag, rec):
        """Value of a readable tag, or None when unset."""
        if tag in F.RECORD_KEYS:
            v = rec.get(F.RECORD_KEYS[tag])
            if v is None:
                return None
            return C.u8(v) if tag == C.T_PROFILE else v
        if tag == C.T_DEVICE_ID:
            return self.device_id
        if tag == C.T_FIRMWARE:
            return self.firmware
        if tag == C.T_CONN_STATUS:
            return self.connection()[0]
        if tag == C.T_LAST_ERROR:
            err = self.connection()[1]
            return _clip(err) if err else None
        if tag in (C.T_CA_SHA256, C.T_CLIENT_CERT_SHA256):
            from provision.crypto import sha256

            der = self.store.load_blob("ca" if tag == C.T_CA_SHA256 else "client_cert")
            return sha256(der) if der is not None else None
        if tag == C.T_SECRETS_SET:
            bits = (1 if rec.get("wifi_password") else 0) | (2 if rec.get("password") else 0)
            bits |= 4 if self.store.load_blob("client_key") is not None else 0
            return C.u8(bits)
        return None

    def _status(self, staged):
        rec = self.rec
        out = []
        for tag in (C.T_DEVICE_ID, C.T_FIRMWARE, C.T_CONN_STATUS, C.T_LAST_ERROR, C.T_WIFI_SSID,
                    C.T_URL, C.T_CP_ID, C.T_PROFILE, C.T_CA_SHA256, C.T_CLIENT_CERT_SHA256,
                    C.T_SECRETS_SET):
            v = self._readable(tag, rec)
            if v is not None:
                out.append((tag, v))
        out.append((C.T_STAGED, bytes(sorted(staged))))
        return out

    def _get(self, recs):
        rec = self.rec
        out = []
        for tag, _ in recs:
            if tag in F.SECRET_TAGS:
                why = "{} is write-only: secrets are never read back".format(F.NAMES[tag])
                return C.BAD_FIELD, C.error_records(why, tag), None
            if tag in (C.T_CA, C.T_CLIENT_CERT):
                tag = C.T_CA_SHA256 if tag == C.T_CA else C.T_CLIENT_CERT_SHA256
            v = self._readable(tag, rec)
            if v is None and not (tag in F.FIELD_TAGS or C.T_DEVICE_ID <= tag <= C.T_STAGED):
                return C.BAD_FIELD, C.error_records("unknown field", tag), None
            out.append((tag, v if v is not None else b""))
        return C.OK, out, None

    def _set(self, recs, staged):
        if not recs:
            return C.BAD_FIELD, C.error_records("SET without fields"), None
        new = {}
        for tag, raw in recs:
            if tag in new:
                return C.BAD_FIELD, C.error_records("field given twice", tag), None
            try:
                new[tag] = F.check(tag, raw)
            except F.FieldError as e:
                return e.status, C.error_records(str(e), e.tag), None
        staged.update(new)  # all or nothing per message
        log.info("provision", "staged %s", ",".join(F.NAMES[t] for t in sorted(new)))
        return C.OK, [(C.T_STAGED, bytes(sorted(staged)))], None

    def _commit(self, staged):
        if not staged:
            return C.INCONSISTENT, C.error_records("nothing to commit"), None
        rec = dict(self.rec)
        blobs = {}
        for tag, value in staged.items():
            if tag in F.BLOB_NAMES:
                blobs[F.BLOB_NAMES[tag]] = value
            elif tag == C.T_AUTH_KEY and value == "":
                rec.pop("password", None)
            else:
                rec[F.RECORD_KEYS[tag]] = value
        if C.T_PROFILE not in staged:
            rec.pop("profile", None)  # re-derived from the URL and credentials
        have = storage.present(self.store) | set(blobs)
        try:
            profile = F.check_consistent(rec, have, bool(staged.get(C.T_AUTH_KEY)))
            if profile == 3 or C.T_CA in staged or C.T_CLIENT_CERT in staged:
                self._check_tls(blobs, profile)
        except F.FieldError as e:
            return e.status, C.error_records(str(e), e.tag), None
        try:
            storage.commit(self.store, rec, blobs)
        except OSError as e:
            log.error("provision", "commit failed: %s", e)
            return C.STORAGE_ERROR, C.error_records("storage error: {}".format(e)), None
        staged.clear()
        self.rec = rec
        log.info("provision", "committed: url=%s id=%s profile=%d", rec.get("url"),
                 rec.get("cp_id"), profile)
        return C.OK, [(C.T_PROFILE, C.u8(profile))], ACT_RESTART

    def _check_tls(self, blobs, profile):
        ca = blobs.get("ca") or self.store.load_blob("ca")
        if profile == 3:
            cert = blobs.get("client_cert") or self.store.load_blob("client_cert")
            key = blobs.get("client_key") or self.store.load_blob("client_key")
            F.load_ca(ca, cert, key)
        elif ca is not None:
            F.load_ca(ca)


def _clip(text):
    b = text.encode() if isinstance(text, str) else bytes(text)
    if len(b) <= _ERROR_MAX:
        return b
    cut = _ERROR_MAX
    while cut and (b[cut] & 0xC0) == 0x80:  # never split a UTF-8 sequence
        cut -= 1
    return b[:cut]
