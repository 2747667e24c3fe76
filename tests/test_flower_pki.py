"""The deployment's private CA and SuperNode keys (flower_app/pki.py), checked independently."""

import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "flower_app"))

from pki import make_ca, make_node_key  # noqa: E402


def test_server_certificate_is_signed_by_the_ca_for_loopback_only(tmp_path):
    pki = make_ca(tmp_path)
    ca = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    cert.verify_directly_issued_by(ca)  # raises if the CA did not sign it
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    key = serialization.load_pem_private_key(pki.server_key.read_bytes(), None)
    assert key.public_key() == cert.public_key()
    assert pki.server_key.stat().st_mode & 0o077 == 0  # private: owner only


def test_another_ca_does_not_verify_the_server(tmp_path):
    pki = make_ca(tmp_path / "a")
    other = make_ca(tmp_path / "b")
    cert = x509.load_pem_x509_certificate(pki.server_cert.read_bytes())
    with pytest.raises(Exception):  # noqa: B017 - InvalidSignature or ValueError by version
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(other.ca_cert.read_bytes()))


def test_node_keys_are_p384_openssh_pairs_and_distinct(tmp_path):
    private, public = make_node_key(tmp_path, "n0")
    key = serialization.load_ssh_private_key(private.read_bytes(), None)
    pub = serialization.load_ssh_public_key(public.read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert key.public_key() == pub
    assert private.stat().st_mode & 0o077 == 0
    _, other = make_node_key(tmp_path, "n1")
    assert other.read_bytes() != public.read_bytes()


def test_tls_server_refuses_plaintext_and_other_ca_clients(tmp_path):
    """A bare gRPC server with the deployment's certificate: only a client trusting the CA
    reaches it (UNIMPLEMENTED: no such method, but TLS succeeded); plaintext and another CA's
    clients fail before any RPC (UNAVAILABLE)."""
    grpc = pytest.importorskip("grpc")
    from concurrent import futures

    pki = make_ca(tmp_path / "a")
    other = make_ca(tmp_path / "b")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    creds = grpc.ssl_server_credentials(
        [(pki.server_key.read_bytes(), pki.server_cert.read_bytes())]
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    server.start()
    try:

        def status(channel) -> grpc.StatusCode:
            with channel:
                call = channel.unary_unary("/flwr.proto.Fleet/RegisterNode")
                with pytest.raises(grpc.RpcError) as err:
                    call(b"", timeout=10)
                return err.value.code()

        address = f"127.0.0.1:{port}"
        trusted = grpc.ssl_channel_credentials(pki.ca_cert.read_bytes())
        untrusted = grpc.ssl_channel_credentials(other.ca_cert.read_bytes())
        assert status(grpc.secure_channel(address, trusted)) == grpc.StatusCode.UNIMPLEMENTED
        assert status(grpc.secure_channel(address, untrusted)) == grpc.StatusCode.UNAVAILABLE
        assert status(grpc.insecure_channel(address)) == grpc.StatusCode.UNAVAILABLE
    finally:
        server.stop(None)
