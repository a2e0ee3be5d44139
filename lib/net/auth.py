"""HTTP Basic credentials for OCPP security profiles 1 and 2 (security whitepaper, section 2).

The charge point authenticates with `Authorization: Basic base64(<ChargePointId> ":" <key>)`
(RFC 7617). The AuthorizationKey is set by ChangeConfiguration as hex, and a 16 to 20 byte
binary key goes on the wire as its raw bytes, not as the hex text (OCTT TC_085_CS checks this).
Pure functions, no I/O.
"""

import binascii
from micropython import const

_KEY_HEX_MIN = const(32)  # 16 bytes, the whitepaper's minimum key length
_KEY_HEX_MAX = const(40)  # 20 bytes, the maximum
_HEXDIGITS = "0123456789abcdefABCDEF"


def authorization_key_bytes(value):
    """Return the password bytes for a configured AuthorizationKey.

    Rule: a value of 32 to 40 hexadecimal digits with an even count (16 to 20 bytes) is the
    hex form the whitepaper prescribes, so it is decoded and the raw bytes are sent. Anything
    else (shorter, longer, odd length or non-hex characters) is taken literally and sent as its
    UTF-8 bytes, so lab servers configured with a plain-text password still work.
    Raises TypeError if `value` is not a str.
    """
    if not isinstance(value, str):
        raise TypeError("AuthorizationKey must be a str")
    n = len(value)
    if _KEY_HEX_MIN <= n <= _KEY_HEX_MAX and not n & 1:
        for ch in value:
            if ch not in _HEXDIGITS:
                return value.encode()
        return binascii.unhexlify(value)
    return value.encode()


def basic_auth_value(cp_id, key):
    """Return the `Authorization` header value `Basic <base64(cp_id ":" key)>` as a str.

    `key` is the password as bytes (see authorization_key_bytes).
    Raises ValueError if cp_id is empty or holds ":" (RFC 7617 forbids it in the user-id),
    TypeError if key is not bytes-like.
    """
    if not isinstance(cp_id, str) or not cp_id or ":" in cp_id:
        raise ValueError("Charge Point identity must be non-empty and without ':' for Basic auth")
    if not isinstance(key, (bytes, bytearray, memoryview)):
        raise TypeError("key must be bytes; convert with authorization_key_bytes()")
    raw = cp_id.encode() + b":" + bytes(key)
    return "Basic " + binascii.b2a_base64(raw)[:-1].decode()
