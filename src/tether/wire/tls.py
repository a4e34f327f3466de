"""TLS for tether's links, with nothing to hand out but the secret.

Both ends derive the same Ed25519 key from the shared secret (HKDF) and
the same self-signed certificate for it (Ed25519 signatures, the serial
number and the dates are all determined by the secret). Every connection is mutual TLS 1.3
in which each side accepts only a certificate signed by that key: whoever
holds the secret can take part, nobody else can read, change or inject a
byte, and a relay on the path cannot complete either handshake. Host names
are not checked (workers move between nodes; the key is what is pinned).

Users with certificates of their own give cert, key and CA files instead
(`tether worker --tls-cert --tls-key --tls-ca`, Manager(tls_files=...)), as
Dask's Security does: each side then presents its certificate and accepts
the other's if the CA signed it.

When TLS is used (`mode`):
  "auto"    (default) on every link that leaves the host: a client uses TLS
            unless the server's address is a loopback address, and a server
            refuses a plain connection from a peer that is not on loopback
  "always"  on every link, loopback too
  "never"   on none (a trusted network only)
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
import tempfile
import threading
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509.oid import NameOID

MODES = ("auto", "always", "never")
_lock = threading.Lock()
_derived: dict[bytes, tuple[bytes, bytes]] = {}


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _credentials(secret: bytes) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for the key the secret determines; made once per process."""
    with _lock:
        found = _derived.get(secret)
        if found is not None:
            return found
        seed = HKDF(algorithm=hashes.SHA256(), length=48, salt=b"tether", info=b"tls key").derive(secret)
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed[:32])
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tether")])
        public = key.public_key()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
                .serial_number(int.from_bytes(seed[32:], "big") >> 1 | 1)
                .not_valid_before(datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
                .not_valid_after(datetime.datetime(2200, 1, 1, tzinfo=datetime.timezone.utc))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, content_commitment=False,
                                             key_encipherment=False, data_encipherment=False,
                                             key_agreement=False, crl_sign=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .sign(key, None))
        found = (cert.public_bytes(serialization.Encoding.PEM),
                 key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
        _derived[secret] = found
        return found


def _load_chain(context: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    """ssl takes a certificate chain only from files: written privately, loaded, removed at once."""
    with tempfile.TemporaryDirectory(prefix="tether-tls-") as d:
        path = os.path.join(d, "chain.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem + cert_pem)
        context.load_cert_chain(path)


@dataclass
class TlsConfig:
    """Where TLS is used, and the contexts it uses (made when first needed)."""

    secret: bytes
    mode: str = "auto"
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"tls must be one of {', '.join(MODES)}, got {self.mode!r}")
        files = (self.cert_file, self.key_file, self.ca_file)
        if any(files) and not all(files):
            raise ValueError("give all of the TLS certificate, key and CA files, or none")
        self._server: ssl.SSLContext | None = None
        self._client: ssl.SSLContext | None = None

    def client_wants(self, server_host: str) -> bool:
        """Should a connection to this host be made over TLS?"""
        return self.mode == "always" or (self.mode == "auto" and not is_loopback(server_host))

    def server_requires(self, peer_host: str) -> bool:
        """Must a connection from this peer be made over TLS?"""
        return self.mode == "always" or (self.mode == "auto" and not is_loopback(peer_host))

    @property
    def offered(self) -> bool:
        return self.mode != "never"

    def server_context(self) -> ssl.SSLContext:
        if self._server is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._configure(context)
            self._server = context
        return self._server

    def client_context(self) -> ssl.SSLContext:
        if self._client is None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False   # the key is pinned, not the host
            self._configure(context)
            self._client = context
        return self._client

    def _configure(self, context: ssl.SSLContext) -> None:
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.verify_mode = ssl.CERT_REQUIRED
        if self.cert_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
            context.load_verify_locations(cafile=self.ca_file)
        else:
            cert, key = _credentials(self.secret)
            _load_chain(context, cert, key)
            context.load_verify_locations(cadata=cert.decode())
