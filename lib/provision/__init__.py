"""Provisioning: validate and atomically store how the charger reaches its CSMS.

`commit(store, fields)` is the single place where the CSMS URL, Charge Point ID, password
(AuthorizationKey), security profile and CA certificate are checked and stored; the BLE/TCP
provisioning protocol (issue 8) and the simulator's command line both end here. Secrets are
never logged. Raises ValueError with a field-specific reason; nothing is stored then.
"""

import log

_CP_ID_MAX = 48
_CP_ID_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~:"


def check_cp_id(cp_id):
    if not isinstance(cp_id, str) or not 1 <= len(cp_id) <= _CP_ID_MAX:
        raise ValueError("Charge Point ID must be 1..{} characters".format(_CP_ID_MAX))
    for ch in cp_id:
        if ch not in _CP_ID_OK:
            raise ValueError("Charge Point ID has a character that is not URL-path safe")


def check_url(url):
    from net.url import parse_url

    scheme, host, _port, _path = parse_url(url)
    if scheme not in ("ws", "wss") or not host:
        raise ValueError("CSMS URL must be ws:// or wss:// with a host")
    return scheme


def commit(store, fields):
    """Merge `fields` (url, cp_id, password, profile, ca) into the stored provisioning record."""
    rec = dict(store.load("provisioning", {}) or {})
    ca_der = None
    if fields.get("url") is not None:
        check_url(fields["url"])
        rec["url"] = fields["url"]
    if fields.get("cp_id") is not None:
        check_cp_id(fields["cp_id"])
        rec["cp_id"] = fields["cp_id"]
    if fields.get("password") is not None:
        pw = fields["password"]
        if not isinstance(pw, str) or len(pw) > 64:
            raise ValueError("password must be at most 64 characters (40 hex digits for a key)")
        rec["password"] = pw
    if fields.get("ca") is not None:
        from net.tls import pem_to_der, client_context

        ca_der = pem_to_der(fields["ca"])
        client_context(ca_der)  # raises ValueError if mbedTLS cannot load it
    profile = fields.get("profile")
    if profile is None:
        has_pw = bool(rec.get("password"))
        wss = rec.get("url", "").startswith("wss:")
        profile = (2 if has_pw else 3) if wss else (1 if has_pw else 0)
    if profile not in (0, 1, 2, 3):
        raise ValueError("security profile must be 0..3")
    rec["profile"] = profile
    if ca_der is not None:
        store.save_blob("ca", ca_der)
    store.save("provisioning", rec)
    log.info("provision", "stored: url=%s id=%s profile=%d", rec.get("url"), rec.get("cp_id"),
             profile)
    return rec
