"""Provisioning: how the charger learns its Wi-Fi, CSMS URL, Charge Point ID and credentials.

Modules (provisioning.md): `codec` and `crypto` (pure wire format and crypto, shared with the
host CLI), `fields` (validation of every field), `storage` (atomic commit, boot recovery,
factory reset), `session` (the protocol state machine, sans-I/O), `device` (lockout, window,
status, commands), `service` (async shell over a transport), `ble` (ESP32 only, imported only
there). This module keeps the two entry points of firmware/main.py: `recover(store)` at boot
and `commit(store, fields)` for the simulator's command line, which validates each field but,
unlike the protocol, stores inconsistent sets too (labs use them to test the charger's refusal,
e.g. wss:// without a CA). Secrets are never logged. Heavy modules load on first use.
"""


def recover(store):
    """At boot, before anything reads the provisioning record."""
    from provision import storage

    storage.recover(store)


def check_cp_id(cp_id):
    from provision.fields import check_cp_id as check

    check(cp_id)


def check_url(url):
    from provision.fields import check_url as check

    return check(url)


def commit(store, fields):
    """Merge `fields` (url, cp_id, password, profile, ca) into the stored provisioning record.

    Raises ValueError with a field-specific reason; nothing is stored then."""
    import log
    from provision import fields as F
    from provision import storage

    rec = storage.load(store)
    blobs = {}
    if fields.get("url") is not None:
        F.check_url(fields["url"])
        rec["url"] = fields["url"]
    if fields.get("cp_id") is not None:
        F.check_cp_id(fields["cp_id"])
        rec["cp_id"] = fields["cp_id"]
    if fields.get("password") is not None:
        rec["password"] = F.check_password_text(fields["password"])
    if fields.get("ca") is not None:
        from provision import codec as C

        blobs["ca"] = F.check(C.T_CA, fields["ca"])  # FieldError is a ValueError
    profile = fields.get("profile")
    if profile is None:
        profile = F.derive_profile(rec, store.load_blob("client_cert") is not None)
    if profile not in (0, 1, 2, 3):
        raise ValueError("security profile must be 0..3")
    rec["profile"] = profile
    storage.commit(store, rec, blobs)
    log.info("provision", "stored: url=%s id=%s profile=%d", rec.get("url"), rec.get("cp_id"),
             profile)
    return rec
