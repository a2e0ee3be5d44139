"""Provisioning fields: validate each value, normalise it, and check the whole set for consistency.

provisioning.md sections 5 and 6, ocpp16.md section 4. `check(tag, raw)` takes a field as it
arrives (bytes) and returns what is stored (str, int or DER bytes) or raises `FieldError`
with the wire status and the tag; `check_consistent(rec, have)` checks the merged record
against its security profile. Secrets (Wi-Fi password, AuthorizationKey, client key) are
validated like any field but never logged or echoed: errors name the field, not the value.
"""

from micropython import const

from provision import codec as C

_SSID_MAX = const(32)
_WIFI_PW_MIN = const(8)
_WIFI_PW_MAX = const(63)
_WIFI_PSK_HEX = const(64)
_CP_ID_MAX = const(48)
_URL_MAX = const(512)
_KEY_MIN = const(8)  # libocpp's minimum AuthorizationKey length
_KEY_MAX = const(64)
_KEY_RAW_MIN = const(16)  # the whitepaper's binary key: 16..20 bytes
_KEY_RAW_MAX = const(20)
_CERT_MAX = const(3968)  # PEM or DER in: what fits one message with its envelope
_CP_ID_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~:"
_HEX = "0123456789abcdefABCDEF"

FIELD_TAGS = (
    C.T_WIFI_SSID, C.T_WIFI_PASSWORD, C.T_URL, C.T_CP_ID, C.T_PROFILE, C.T_AUTH_KEY, C.T_CA,
    C.T_CLIENT_CERT, C.T_CLIENT_KEY,
)
SECRET_TAGS = (C.T_WIFI_PASSWORD, C.T_AUTH_KEY, C.T_CLIENT_KEY)
NAMES = {
    C.T_WIFI_SSID: "Wi-Fi SSID", C.T_WIFI_PASSWORD: "Wi-Fi password", C.T_URL: "CSMS URL",
    C.T_CP_ID: "Charge Point ID", C.T_PROFILE: "security profile",
    C.T_AUTH_KEY: "AuthorizationKey", C.T_CA: "CA certificate",
    C.T_CLIENT_CERT: "client certificate", C.T_CLIENT_KEY: "client key",
}
# Where each field lives: record keys, or blobs (DER) for certificates and the key.
RECORD_KEYS = {
    C.T_WIFI_SSID: "wifi_ssid", C.T_WIFI_PASSWORD: "wifi_password", C.T_URL: "url",
    C.T_CP_ID: "cp_id", C.T_PROFILE: "profile", C.T_AUTH_KEY: "password",
}
BLOB_NAMES = {C.T_CA: "ca", C.T_CLIENT_CERT: "client_cert", C.T_CLIENT_KEY: "client_key"}


class FieldError(ValueError):
    """A field or the whole set was refused: `status` (wire code), `tag` (or None)."""

    def __init__(self, status, tag, reason):
        super().__init__(reason)
        self.status = status
        self.tag = tag


def _bad(tag, reason):
    return FieldError(C.BAD_FIELD, tag, "{}: {}".format(NAMES.get(tag, "field"), reason))


def _text(tag, raw, lo, hi):
    if not lo <= len(raw) <= hi:
        raise _bad(tag, "must be {}..{} bytes".format(lo, hi))
    try:
        text = bytes(raw).decode()
    except UnicodeError:
        raise _bad(tag, "must be UTF-8 text")
    for ch in text:
        if ch < " " or ch == "\x7f":
            raise _bad(tag, "must not contain control characters")
    return text


def _is_hex(text):
    for ch in text:
        if ch not in _HEX:
            return False
    return True


def check_url(url):
    """Return the scheme of a valid CSMS URL ("ws"/"wss"); ValueError otherwise."""
    from net.url import parse_url

    scheme, host, _port, _path = parse_url(url)
    if scheme not in ("ws", "wss") or not host:
        raise ValueError("CSMS URL must be ws:// or wss:// with a host")
    return scheme


def check_cp_id(cp_id):
    if not isinstance(cp_id, str) or not 1 <= len(cp_id) <= _CP_ID_MAX:
        raise ValueError("Charge Point ID must be 1..{} characters".format(_CP_ID_MAX))
    for ch in cp_id:
        if ch not in _CP_ID_OK:
            raise ValueError("Charge Point ID may hold only letters, digits and - _ . ~ :")


def check_password_text(pw):
    """The stored (and command-line) form of the AuthorizationKey: 32..40 hex digits (an even
    count, sent as 16..20 raw bytes) or 8..64 characters of text. Raises ValueError."""
    if not isinstance(pw, str):
        raise ValueError("password must be text")
    n = len(pw)
    if _is_hex(pw) and 2 * _KEY_RAW_MIN <= n <= 2 * _KEY_RAW_MAX:
        if n & 1:
            raise ValueError("a hex AuthorizationKey needs an even number of digits")
        return pw
    if not _KEY_MIN <= len(pw.encode()) <= _KEY_MAX:
        raise ValueError("password must be {}..{} bytes, or 32..40 hex digits".format(
            _KEY_MIN, _KEY_MAX))
    for ch in pw:
        if ch < " " or ch == "\x7f":
            raise ValueError("password must not contain control characters")
    return pw


def key_from_wire(tag, raw):
    """Stored form of the AuthorizationKey sent as the exact bytes that go on the wire.

    16..20 bytes are kept as hex (net.auth decodes that form back to the same bytes); other
    lengths must be text. Empty clears the key."""
    if not raw:
        return ""
    if _KEY_RAW_MIN <= len(raw) <= _KEY_RAW_MAX:
        return "".join("{:02x}".format(b) for b in raw)
    text = _text(tag, raw, _KEY_MIN, _KEY_MAX)
    if _is_hex(text) and 2 * _KEY_RAW_MIN <= len(text) <= 2 * _KEY_RAW_MAX:
        raise _bad(tag, "hex text of a key: send the decoded 16..20 bytes")
    return text


def _wifi_password(tag, raw):
    if not raw:
        return ""  # open network
    if len(raw) == _WIFI_PSK_HEX:
        text = _text(tag, raw, _WIFI_PSK_HEX, _WIFI_PSK_HEX)
        if _is_hex(text):
            return text
        raise _bad(tag, "64 characters must be hex digits (a PSK)")
    text = _text(tag, raw, _WIFI_PW_MIN, _WIFI_PW_MAX)
    for ch in text:
        if ch > "~":
            raise _bad(tag, "a WPA passphrase is printable ASCII")
    return text


def _cert(tag, raw, label):
    from net.tls import der_list, pem_to_der

    if len(raw) > _CERT_MAX:
        raise FieldError(C.TOO_BIG, tag,
                         "{}: larger than {} bytes".format(NAMES[tag], _CERT_MAX))
    try:
        if label == "CERTIFICATE":
            ders = der_list(bytes(raw))
            if len(ders) != 1:
                raise ValueError("{} certificates in one PEM: give one".format(len(ders)))
            return ders[0]
        return pem_to_der(bytes(raw), label)
    except ValueError as e:
        raise FieldError(C.CERT_INVALID, tag, "{}: {}".format(NAMES[tag], e))


def check(tag, raw):
    """Validate one field as received (bytes-like); return the value to store.

    Raises FieldError: BAD_FIELD (rule broken), CERT_INVALID (the CA does not parse or load),
    TOO_BIG (over the field's size)."""
    if tag == C.T_WIFI_SSID:
        return _text(tag, raw, 1, _SSID_MAX)
    if tag == C.T_WIFI_PASSWORD:
        return _wifi_password(tag, raw)
    if tag == C.T_URL:
        url = _text(tag, raw, 1, _URL_MAX)
        try:
            check_url(url)
        except ValueError as e:
            raise _bad(tag, str(e))
        return url
    if tag == C.T_CP_ID:
        cp_id = _text(tag, raw, 1, _CP_ID_MAX)
        try:
            check_cp_id(cp_id)
        except ValueError as e:
            raise _bad(tag, str(e))
        return cp_id
    if tag == C.T_PROFILE:
        if len(raw) != 1 or raw[0] > 3:
            raise _bad(tag, "must be one byte, 0..3")
        return raw[0]
    if tag == C.T_AUTH_KEY:
        return key_from_wire(tag, raw)
    if tag == C.T_CA:
        der = _cert(tag, raw, "CERTIFICATE")
        load_ca(der)
        return der
    if tag == C.T_CLIENT_CERT:
        return _cert(tag, raw, "CERTIFICATE")
    if tag == C.T_CLIENT_KEY:
        return _cert(tag, raw, "PRIVATE KEY")
    if C.T_DEVICE_ID <= tag <= C.T_STAGED:
        raise _bad(tag, "read-only")
    raise FieldError(C.BAD_FIELD, tag, "unknown field 0x{:02x}".format(tag))


def load_ca(der, cert=None, key=None):
    """Load the CA (and client certificate + key) into an SSLContext; FieldError if refused."""
    from net.tls import client_context

    try:
        client_context(der, cert, key)
    except (ValueError, OSError) as e:
        tag = C.T_CA if cert is None else C.T_CLIENT_CERT
        raise FieldError(C.CERT_INVALID, tag, "{} does not load: {}".format(NAMES[tag], e))


def derive_profile(rec, have_cert):
    """The profile the URL and credentials imply when none was chosen."""
    wss = (rec.get("url") or "").startswith("wss:")
    if wss:
        return 3 if have_cert and not rec.get("password") else 2
    return 1 if rec.get("password") else 0


def check_consistent(rec, have, staged_password):
    """Check the merged record (provisioning.md section 6); returns the profile.

    `have`: set of blob names present after the commit ("ca", "client_cert", "client_key").
    A password kept from before is dropped for profiles 0 and 3 (they send none); one given
    in this session is refused there. Raises FieldError(INCONSISTENT)."""

    def bad(reason, tag=None):
        return FieldError(C.INCONSISTENT, tag, reason)

    url = rec.get("url")
    if not url or not rec.get("cp_id"):
        tag = C.T_CP_ID if url else C.T_URL
        raise bad("CSMS URL and Charge Point ID are both required", tag)
    if rec.get("wifi_password") and not rec.get("wifi_ssid"):
        raise bad("a Wi-Fi password needs an SSID", C.T_WIFI_SSID)
    profile = rec.get("profile")
    if profile is None:
        profile = derive_profile(rec, "client_cert" in have)
    wss = url.startswith("wss:")
    if profile in (0, 1) and wss:
        raise bad("security profile {} uses ws://, not wss://".format(profile), C.T_URL)
    if profile in (2, 3) and not wss:
        raise bad("security profile {} needs a wss:// URL".format(profile), C.T_URL)
    if profile in (0, 3) and rec.get("password"):
        if staged_password:
            raise bad("security profile {} sends no AuthorizationKey".format(profile),
                      C.T_AUTH_KEY)
        rec.pop("password", None)
    if profile in (1, 2):
        if not rec.get("password"):
            raise bad("security profile {} needs an AuthorizationKey".format(profile),
                      C.T_AUTH_KEY)
        if ":" in rec["cp_id"]:
            raise bad("a Charge Point ID with ':' cannot use Basic auth", C.T_CP_ID)
    if wss and "ca" not in have:
        raise bad("wss:// needs a CA certificate", C.T_CA)
    if profile == 3 and ("client_cert" not in have or "client_key" not in have):
        raise bad("security profile 3 needs a client certificate and key", C.T_CLIENT_CERT)
    rec["profile"] = profile
    return profile
