"""RFID card UID -> OCPP idTag.

Default: the UID bytes as reported by the reader, in reversed (little-endian) order, as uppercase
hex with no separators - a real wallbox convention: `04 A1 B2 C3` -> `C3B2A104`. Vendor keys
`IdTagByteOrder` (`little` | `big`) and `IdTagCase` (`upper` | `lower`) change it. An idTag is at
most 20 characters (CiString20), so UIDs longer than 10 bytes are refused.
"""

import binascii

MAX_ID_TAG = 20


def uid_to_id_tag(uid, byte_order="little", case="upper"):
    """`uid` is bytes (or hex text) in reader order; returns the idTag or raises ValueError."""
    if isinstance(uid, str):
        uid = binascii.unhexlify(uid)
    if not uid or len(uid) * 2 > MAX_ID_TAG:
        raise ValueError("UID of {} bytes cannot be an idTag".format(len(uid)))
    if byte_order == "little":
        uid = bytes(reversed(uid))
    elif byte_order != "big":
        raise ValueError("IdTagByteOrder must be little or big")
    text = binascii.hexlify(uid).decode()
    return text.upper() if case == "upper" else text.lower()
