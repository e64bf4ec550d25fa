"""Certificates made here: a certificate authority that issues serving and client certificates.

Two users: a local Kubernetes control plane (:func:`write_pki`: one CA, the API server's serving
certificate, client certificates — each a user in a group: how the API server tells components
apart — and the service-account signing keys; written once per control plane, ``.complete``
marks a finished set, so an interrupted write is redone rather than half used), and the TLS
listeners of a local Kafka broker or PostgreSQL server (:func:`write_server_tls`).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric import ec, rsa


@dataclass(frozen=True)
class ClientCert:
    """``<filename>.crt``/``.key``: a client certificate for user ``common_name`` in group
    ``organization`` (``system:masters`` is cluster-admin; ``system:nodes`` is a kubelet)."""

    filename: str
    common_name: str
    organization: str | None = None


@dataclass(frozen=True)
class ServerTls:
    """A TLS server's files (PEM): its certificate, its private key (PKCS#8, unencrypted, mode
    0600) and the certificate of the CA that signed it, which clients trust."""

    ca_file: Path
    cert_file: Path
    key_file: Path


def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(cn: str, org: str | None = None) -> x509.Name:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def _san(value: str) -> x509.GeneralName:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(value))
    except ValueError:
        return x509.DNSName(value)


class CertificateAuthority:
    """A new self-signed CA (EC P-256, valid for a year from five minutes ago, so a clock a
    little behind still accepts it) that issues leaf certificates."""

    def __init__(self, common_name: str) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        self._not_before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self._not_after = self._not_before + dt.timedelta(days=365)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self._key, hashes.SHA256())
        )

    def certificate_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.certificate.public_bytes(serialization.Encoding.PEM)

    def issue(
        self,
        common_name: str,
        *,
        server: bool,
        sans: Sequence[str] = (),
        organization: str | None = None,
    ) -> tuple[bytes, bytes]:
        """(certificate PEM, private key PEM) of a new leaf for serving (``server``) or for
        client authentication, valid for ``sans`` (IP addresses or DNS names)."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID

        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name, organization))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before)
            .not_valid_after(self._not_after)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_san(s) for s in sans]), critical=False
            )
        cert = builder.sign(self._key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)


def _write_private(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o600)


def write_pki(pki: Path, *, serving_sans: Sequence[str], clients: Sequence[ClientCert]) -> None:
    """``ca.crt``, ``apiserver.crt``/``.key`` valid for ``serving_sans`` (IP addresses or DNS
    names), one pair per client, and ``sa.key``/``sa.pub``. Keys are mode 0600."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pki.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("pagestream-local-ca")
    serving = ca.issue("kube-apiserver", server=True, sans=serving_sans)
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca.certificate_pem(),
        "apiserver.crt": serving[0],
        "apiserver.key": serving[1],
        "sa.key": key_pem(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for client in clients:
        cert, key = ca.issue(client.common_name, server=False, organization=client.organization)
        files[f"{client.filename}.crt"] = cert
        files[f"{client.filename}.key"] = key
    for filename, data in files.items():
        _write_private(pki / filename, data)
    (pki / ".complete").write_text("")


def write_server_tls(folder: Path, *, common_name: str, sans: Sequence[str]) -> ServerTls:
    """A new CA of its own and a serving certificate for ``sans`` signed by it, in ``folder``
    (``ca.crt``, ``server.crt``, ``server.key``)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(f"{common_name}-ca")
    cert, key = ca.issue(common_name, server=True, sans=sans)
    tls = ServerTls(folder / "ca.crt", folder / "server.crt", folder / "server.key")
    tls.ca_file.write_bytes(ca.certificate_pem())
    tls.cert_file.write_bytes(cert)
    _write_private(tls.key_file, key)
    return tls
