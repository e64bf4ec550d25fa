"""The certificates a local Kubernetes control plane needs: one CA, the API server's serving
certificate, client certificates (each a user in a group: how the API server tells components
apart) and the service-account signing keys. Written once per control plane; ``.complete``
marks a finished set, so an interrupted write is redone rather than half used."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientCert:
    """``<filename>.crt``/``.key``: a client certificate for user ``common_name`` in group
    ``organization`` (``system:masters`` is cluster-admin; ``system:nodes`` is a kubelet)."""

    filename: str
    common_name: str
    organization: str | None = None


def write_pki(pki: Path, *, serving_sans: Sequence[str], clients: Sequence[ClientCert]) -> None:
    """``ca.crt``, ``apiserver.crt``/``.key`` valid for ``serving_sans`` (IP addresses or DNS
    names), one pair per client, and ``sa.key``/``sa.pub``. Keys are mode 0600."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    pki.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    later = now + dt.timedelta(days=365)

    def key_pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
        return key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def name(cn: str, org: str | None = None) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
        if org:
            attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
        return x509.Name(attrs)

    def san(value: str) -> x509.GeneralName:
        try:
            return x509.IPAddress(ipaddress.ip_address(value))
        except ValueError:
            return x509.DNSName(value)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("pagestream-local-ca"))
        .issuer_name(name("pagestream-local-ca"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(later)
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
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        subject: x509.Name, usage: x509.ObjectIdentifier, sans: list[x509.GeneralName]
    ) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(later)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM), key_pem(key)

    serving = leaf(
        name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, [san(s) for s in serving_sans]
    )
    sa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    files = {
        "ca.crt": ca_cert.public_bytes(serialization.Encoding.PEM),
        "apiserver.crt": serving[0],
        "apiserver.key": serving[1],
        "sa.key": key_pem(sa_key),
        "sa.pub": sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }
    for client in clients:
        cert, key = leaf(
            name(client.common_name, client.organization), ExtendedKeyUsageOID.CLIENT_AUTH, []
        )
        files[f"{client.filename}.crt"] = cert
        files[f"{client.filename}.key"] = key
    for filename, data in files.items():
        (pki / filename).write_bytes(data)
        (pki / filename).chmod(0o600)
    (pki / ".complete").write_text("")
