"""net.auth: Basic credentials and the AuthorizationKey hex rule (whitepaper, profiles 1-2)."""

import binascii

from net.auth import authorization_key_bytes, basic_auth_value


def test_hex_keys_of_16_to_20_bytes_are_decoded():
    k40 = "00ff3a41424344454647484950515253545556ee"
    assert authorization_key_bytes(k40) == binascii.unhexlify(k40)
    assert len(authorization_key_bytes(k40)) == 20
    k32 = "0123456789ABCDEF0123456789abcdef"
    assert authorization_key_bytes(k32) == binascii.unhexlify(k32)


def test_other_keys_are_used_as_utf8_text():
    for value in (
        "secret",
        "0123456789abcdef0123456789abcde",  # 31 hex digits: odd
        "0123456789abcdef0123456789abcdef0",  # 33: odd
        "0123456789abcdef0123456789abcdef0123456789",  # 42: too long for 20 bytes
        "0123456789abcdef0123456789abcdeg",  # 32 but not hex
        "pässwörd-pässwörd-pässwörd-pässw",
    ):
        assert authorization_key_bytes(value) == value.encode(), value
    try:
        authorization_key_bytes(b"00")
    except TypeError:
        pass
    else:
        raise AssertionError("bytes accepted")


def test_basic_auth_value_is_exact():
    # RFC 7617 example credentials
    assert basic_auth_value("Aladdin", b"open sesame") == "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
    key = binascii.unhexlify("00ff3a41424344454647484950515253545556ee")
    want = "Basic " + binascii.b2a_base64(b"CP1:" + key)[:-1].decode()
    assert basic_auth_value("CP1", key) == want


def test_basic_auth_rejects_bad_input():
    for cp_id, key, exc in (
        ("CP:1", b"k", ValueError),
        ("", b"k", ValueError),
        ("CP1", "text-key", TypeError),
    ):
        try:
            basic_auth_value(cp_id, key)
        except exc:
            continue
        raise AssertionError("accepted {!r} {!r}".format(cp_id, key))
