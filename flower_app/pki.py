"""A private certificate authority and SuperNode keys for one deployment, made with `cryptography`.

Two separate things, as Flower 1.23 separates them:

- TLS: a CA certificate that every client trusts (SuperNodes with ``--root-certificates``,
  ``flwr`` with ``root-certificates``) and a server certificate it signed for the SuperLink
  (``--ssl-certfile/--ssl-keyfile/--ssl-ca-certfile``), valid for ``localhost`` and
  ``127.0.0.1`` only. The clients check the server; TLS does not check the clients.
- Node authentication: one EC key pair per SuperNode (``--auth-supernode-private-key``, OpenSSH
  format). The SuperLink runs with ``--enable-supernode-auth`` and accepts only the public keys
  registered through its Control API (``flwr supernode register``); a node signs every request.

The keys live only in the deployment's working folder (mode 0600) and expire after a day.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["ServerPKI", "make_ca", "make_node_key"]

_VALID = datetime.timedelta(days=1)


@dataclass(frozen=True)
class ServerPKI:
    """Paths of the CA certificate and of the SuperLink's certificate and private key."""

    ca_cert: Path
    server_cert: Path
    server_key: Path


def _write(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(folder: Path, name: str = "workbook") -> ServerPKI:
    """Make a CA and a SuperLink certificate for localhost/127.0.0.1 in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP384R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"{name} deployment CA"))
        .issuer_name(_name(f"{name} deployment CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA384())
    )
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALID)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA384())
    )
    pem = serialization.Encoding.PEM
    return ServerPKI(
        ca_cert=_write(folder / "ca.pem", ca_cert.public_bytes(pem)),
        server_cert=_write(folder / "superlink.pem", cert.public_bytes(pem)),
        server_key=_write(
            folder / "superlink.key",
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
            private=True,
        ),
    )


def make_node_key(folder: Path, name: str) -> tuple[Path, Path]:
    """Make a SuperNode's P-384 key pair (OpenSSH format); return (private, public) paths."""
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    ssh = serialization.Encoding.OpenSSH
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(ssh, serialization.PublicFormat.OpenSSH)
    return (
        _write(folder / f"{name}.key", private, private=True),
        _write(folder / f"{name}.pub", public + b"\n"),
    )
