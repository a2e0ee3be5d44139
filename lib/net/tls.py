"""TLS helpers for OCPP security profiles 2 and 3: PEM to DER, and a verifying client context.

MicroPython's Unix-port `ssl` takes certificates and keys as DER only (PEM raises
ValueError('invalid cert')), and one certificate per load_verify_locations() call, so the
firmware keeps DER and converts PEM here (provisioning.md section 10). `client_context` never
builds an unverified context: it sets CERT_REQUIRED explicitly because the `ssl` wrapper's
constructor sets CERT_NONE. Certificate dates are checked against the RTC, so set the clock first.
The `ssl` module is imported inside client_context only (a rare feature, style rule 9).
"""

import binascii
from micropython import const

_MAX_PEM_BLOCKS = const(8)  # bound on certificates taken from one PEM bundle
_BEGIN = b"-----BEGIN "
_END = b"-----END "
_DASHES = b"-----"


def _as_bytes(data):
    if isinstance(data, str):
        return data.encode()
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError("certificate data must be bytes or str")


def _blocks(data, suffix, limit):
    # DER of each PEM block whose label ends with `suffix` ("CERTIFICATE", "PRIVATE KEY").
    out = []
    pos = 0
    while len(out) < limit:
        i = data.find(_BEGIN, pos)
        if i < 0:
            break
        j = data.find(_DASHES, i + len(_BEGIN))
        if j < 0:
            raise ValueError("unterminated PEM header")
        label = data[i + len(_BEGIN) : j]
        body = j + len(_DASHES)
        k = data.find(_END + label + _DASHES, body)
        if k < 0:
            raise ValueError("PEM block without END line")
        pos = k + len(_END) + len(label) + len(_DASHES)
        if not label.endswith(suffix):
            continue
        if label.startswith(b"ENCRYPTED"):
            raise ValueError("encrypted private keys are not supported")
        try:
            der = binascii.a2b_base64(data[body:k])
        except ValueError:
            raise ValueError("bad base64 in PEM block")
        if not der or der[0] != 0x30:
            raise ValueError("PEM block is not DER")
        out.append(der)
    return out


def _is_der(data):
    return len(data) > 1 and data[0] == 0x30  # an ASN.1 SEQUENCE


def pem_to_der(data, label="CERTIFICATE"):
    """Return the DER bytes of the first PEM block with this label (bytes or str input).

    `label` matches the end of the PEM label, so "PRIVATE KEY" also takes "EC PRIVATE KEY".
    DER input (starting with an ASN.1 SEQUENCE byte) is returned unchanged.
    Raises ValueError if there is no such block or it is malformed.
    """
    data = _as_bytes(data)
    if _is_der(data):
        return data
    found = _blocks(data, label.encode(), 1)
    if not found:
        raise ValueError("no PEM {} block".format(label))
    return found[0]


def der_list(data, label="CERTIFICATE"):
    """Return a list with the DER bytes of every PEM block with this label (at most 8).

    DER input gives a one-element list. Raises ValueError if nothing is found.
    """
    data = _as_bytes(data)
    if _is_der(data):
        return [data]
    found = _blocks(data, label.encode(), _MAX_PEM_BLOCKS)
    if not found:
        raise ValueError("no PEM {} block".format(label))
    return found


def client_context(ca_der, cert_der=None, key_der=None):
    """Return an ssl.SSLContext for a TLS client that verifies the server.

    `ca_der`: the CentralSystemRootCertificate(s): DER bytes, PEM (one or more blocks) or a
    list/tuple of either; each certificate is loaded with its own load_verify_locations() call.
    `cert_der`/`key_der`: the charge point certificate and private key for profile 3 (DER or
    PEM; only the leaf certificate is sent, as the Unix port's DER parser takes one).
    Raises ValueError("wss needs a CA certificate") without a CA, ValueError for material the
    TLS library rejects, or for a certificate given without its key or the reverse.
    """
    if not ca_der:
        raise ValueError("wss needs a CA certificate")
    if (cert_der is None) != (key_der is None):
        raise ValueError("client certificate and key go together")
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    cas = ca_der if isinstance(ca_der, (list, tuple)) else (ca_der,)
    for ca in cas:
        for der in der_list(ca):
            ctx.load_verify_locations(cadata=der)
    if cert_der is not None:
        ctx.load_cert_chain(pem_to_der(cert_der), pem_to_der(key_der, "PRIVATE KEY"))
    if ctx.verify_mode != ssl.CERT_REQUIRED:
        raise ValueError("TLS context does not verify the server")
    return ctx
