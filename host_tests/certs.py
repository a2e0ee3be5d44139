"""Throwaway PKI for TLS tests: a CA, server certificates (good, expired, wrong host), clients.

Plain module (no pytest), importable from tests and tools. Keys are EC P-256 by default (fast);
key_type="rsa" gives RSA 2048, since the whitepaper asks a CSMS to offer both kinds. A server
certificate names 127.0.0.1 and localhost unless told otherwise; a client certificate carries
O = CpoName and CN = charge point id, as security profile 3 expects (docs/ocpp16.md section 4).
"""

import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

WRONG_HOSTNAME = "wrong-host.invalid"


def _new_key(key_type):
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise ValueError("key_type must be 'ec' or 'rsa', not {!r}".format(key_type))


def _write(path, cert, key):
    """Write the certificate (and key) as PEM files; return their paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cert_path = path.with_suffix(".crt")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = path.with_suffix(".key")
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class CA:
    """A self-signed root: `cert_path`, `key_path`, `pem` and the objects to sign with."""

    def __init__(self, directory, name="Lab Test CA", key_type="ec"):
        now = datetime.datetime.now(datetime.timezone.utc)
        self.key = _new_key(key_type)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=365))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                    critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.cert_path, self.key_path = _write(directory / "ca", self.cert, self.key)
        self.pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, path, subject, *, sans=(), usage=ExtendedKeyUsageOID.SERVER_AUTH,
              expired=False, key_type="ec"):
        """Sign a leaf certificate for a new key; return (cert_path, key_path)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
        else:
            start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        key = _new_key(key_type)
        builder = (x509.CertificateBuilder()
                   .subject_name(subject).issuer_name(self.cert.subject)
                   .public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(start).not_valid_after(end)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)),
                                            critical=False)
        return _write(path, builder.sign(self.key, hashes.SHA256()), key)


class ServerPKI:
    """What a wss test needs: `ca` (a CA), `ca_cert`, `cert`, `key` (paths)."""

    def __init__(self, ca, cert, key):
        self.ca, self.ca_cert, self.cert, self.key = ca, ca.cert_path, cert, key


def make_server_pki(directory, *, expired=False, wrong_hostname=False, key_type="ec",
                    hostnames=("localhost",), ips=("127.0.0.1",)):
    """A new CA and a server certificate from it, written under `directory` (a Path).

    expired: the server certificate ended yesterday. wrong_hostname: it names only
    WRONG_HOSTNAME, so a client connecting to 127.0.0.1 or localhost must refuse it.
    """
    ca = CA(directory, key_type=key_type)
    if wrong_hostname:
        hostnames, ips = (WRONG_HOSTNAME,), ()
    sans = [x509.DNSName(h) for h in hostnames] + [x509.IPAddress(ipaddress.ip_address(a))
                                                    for a in ips]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0])])
    cert, key = ca.issue(directory / "server", subject, sans=sans, expired=expired,
                         key_type=key_type)
    return ServerPKI(ca, cert, key)


def issue_client_cert(ca, directory, cp_id, cpo_name="Lab CPO", key_type="ec"):
    """Security profile 3 charge point certificate: O = CpoName, CN = charge point id."""
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, cpo_name),
                         x509.NameAttribute(NameOID.COMMON_NAME, cp_id)])
    return ca.issue(directory / "client-{}".format(cp_id), subject,
                    usage=ExtendedKeyUsageOID.CLIENT_AUTH, key_type=key_type)
