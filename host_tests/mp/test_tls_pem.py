"""net.tls: PEM to DER conversion and the verifying client context, inside the Unix port.

The certificate and key below are a throwaway self-signed test CA (P-256, valid 2025-2124),
generated for this file only; they protect nothing.
"""

import binascii
import hashlib

from net.tls import client_context, der_list, pem_to_der
import _check

CA_PEM = """-----BEGIN CERTIFICATE-----
MIIBNjCB3qADAgECAgEBMAoGCCqGSM49BAMCMBoxGDAWBgNVBAMMD25ldC50bHMg
dGVzdCBDQTAgFw0yNTAxMDEwMDAwMDBaGA8yMTI0MTIwODAwMDAwMFowGjEYMBYG
A1UEAwwPbmV0LnRscyB0ZXN0IENBMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE
YBbPP+VEyZcB92Araq+bh0ESUfMubKSsn4ERwe7xfUwj0KvWKbDgwerKMvJviWvh
XgYAQRG1EFTXChccImuvoKMTMBEwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNHADBEAiA3xIQLnUwaVAA1qKgZVAeFHuVUAltP+go5Un7e0Ekp0QIgZgpbsLGd
W7vvfH1TanzQM9iG9nxLi5Te/M9+OZRAyEU=
-----END CERTIFICATE-----
"""
CA_SHA256 = "034beb1b688e726169dda535705186d43c8d819b8e235de0bb2b9bc02f4d3b0b"
KEY_PEM = """-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgdtMftFsV5rd4WWvu
dKhbdt1fzFvRutaS3IVU5Jc8T0uhRANCAARgFs8/5UTJlwH3YCtqr5uHQRJR8y5s
pKyfgRHB7vF9TCPQq9YpsODB6soy8m+Ja+FeBgBBEbUQVNcKFxwia6+g
-----END PRIVATE KEY-----
"""
KEY_SHA256 = "c793f6e3efd3759a647a1eadaf805270fc50ba3ab485fb1b7669be026295ff62"
EC_KEY_PEM = """-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIHbTH7RbFea3eFlr7nSoW3bdX8xb0brWktyFVOSXPE9LoAoGCCqGSM49
AwEHoUQDQgAEYBbPP+VEyZcB92Araq+bh0ESUfMubKSsn4ERwe7xfUwj0KvWKbDg
werKMvJviWvhXgYAQRG1EFTXChccImuvoA==
-----END EC PRIVATE KEY-----
"""


def sha(b):
    return binascii.hexlify(hashlib.sha256(b).digest()).decode()


def raises(fn, exc=ValueError, text=None):
    return _check.raises(exc, fn, text)


def test_pem_str_and_bytes_give_the_same_der():
    der = pem_to_der(CA_PEM)
    assert sha(der) == CA_SHA256 and len(der) == 314
    assert pem_to_der(CA_PEM.encode()) == der
    assert pem_to_der(CA_PEM.replace("\n", "\r\n")) == der  # CRLF files


def test_der_passes_through_unchanged():
    der = pem_to_der(CA_PEM)
    assert pem_to_der(der) == der
    assert pem_to_der(bytearray(der)) == der
    assert der_list(der) == [der]


def test_bundle_gives_each_certificate_and_skips_other_blocks():
    bundle = "subject=whatever\n" + KEY_PEM + CA_PEM + "\n" + CA_PEM
    ders = der_list(bundle)
    assert len(ders) == 2 and sha(ders[0]) == CA_SHA256 and ders[0] == ders[1]
    assert pem_to_der(bundle) == ders[0]  # the first certificate, not the key before it


def test_private_keys_by_label():
    assert sha(pem_to_der(KEY_PEM, "PRIVATE KEY")) == KEY_SHA256
    assert pem_to_der(EC_KEY_PEM, "PRIVATE KEY")[0] == 0x30
    enc = KEY_PEM.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
    raises(lambda: pem_to_der(enc, "PRIVATE KEY"), ValueError, "encrypted")


def test_bad_pem_is_a_clear_value_error():
    raises(lambda: pem_to_der(""), ValueError, "no PEM")
    raises(lambda: pem_to_der("hello"), ValueError, "no PEM")
    raises(lambda: pem_to_der(CA_PEM.replace("-----END CERTIFICATE-----", "")), ValueError, "END")
    raises(lambda: pem_to_der("-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n"))
    raises(lambda: pem_to_der(KEY_PEM), ValueError, "no PEM CERTIFICATE")
    raises(lambda: pem_to_der(42), TypeError)


def test_client_context_requires_a_ca():
    for nothing in (None, b"", []):
        raises(lambda: client_context(nothing), ValueError, "wss needs a CA certificate")


def test_client_context_verifies_and_takes_pem_der_or_lists():
    import ssl

    der = pem_to_der(CA_PEM)
    for ca in (der, CA_PEM, [der, CA_PEM], (CA_PEM + CA_PEM,)):
        ctx = client_context(ca)
        assert ctx.verify_mode == ssl.CERT_REQUIRED
    raises(lambda: client_context(b"\x30\x03\x02\x01\x05"))  # DER-looking junk: ssl refuses


def test_client_context_loads_a_profile_3_certificate_and_key():
    ctx = client_context(CA_PEM, CA_PEM, KEY_PEM)  # PEM converted to DER for the Unix port
    import ssl

    assert ctx.verify_mode == ssl.CERT_REQUIRED
    client_context(CA_PEM, pem_to_der(CA_PEM), pem_to_der(EC_KEY_PEM, "PRIVATE KEY"))
    raises(lambda: client_context(CA_PEM, CA_PEM, None), ValueError, "together")
