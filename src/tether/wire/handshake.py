"""Opening a connection: TLS where it is due, then proof of the secret both ways.

    server -> client   Challenge(version, nonce, tls offered)
    client -> server   StartTls                      (when the link is to be encrypted; see tls.py)
    server -> client   StartTls                      (go ahead: nothing else is read before TLS)
       ... TLS 1.3 handshake, mutual, then a fresh Challenge inside it ...
    client -> server   Auth(role, client nonce, HMAC(secret, "client" | server nonce | client nonce | role))
    server -> client   Welcome(HMAC(secret, "server" | client nonce | server nonce))

The secret itself never crosses the wire. A client that fails is dropped
without a word; a plain connection from off the host is refused where TLS
is required. Before the handshake ends, frames are limited to a few
kilobytes, the whole exchange to a few seconds, and the connections
waiting in it to a few dozen: a port scan or a flood costs little, and is
logged at debug level with a summary now and then, not a line each.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import ssl
import time

from . import codec
from . import messages as m
from .errors import AuthError, ProtocolError
from .framing import HANDSHAKE_LIMIT, frame, read_frame
from .tls import TlsConfig

log = logging.getLogger("tether.wire")

VERSION = 2
NONCE_BYTES = 32
HANDSHAKE_TIMEOUT = 10.0      # seconds for the whole handshake
MAX_PENDING = 64              # connections in their handshake at once, per server
SUMMARY_EVERY = 60.0          # seconds between summaries of refused connections
ROLES = ("control", "fetch", "status")


def new_secret() -> bytes:
    """A random secret, as text so that it can live in a file and be typed."""
    return os.urandom(32).hex().encode()


def read_secret_file(path: str | os.PathLike) -> bytes:
    data = open(path, "rb").read().strip()
    if len(data) < 16:
        raise ValueError(f"secret file {path} holds {len(data)} bytes; at least 16 are needed")
    return data


def _mac(secret: bytes, *parts: bytes) -> bytes:
    return hmac.new(secret, b"|".join(parts), hashlib.sha256).digest()


async def _send(writer: asyncio.StreamWriter, msg) -> None:
    writer.write(frame(codec.encode(msg)))
    await writer.drain()


async def _receive(reader: asyncio.StreamReader, expected: tuple[type, ...]):
    msg = codec.decode(await read_frame(reader, HANDSHAKE_LIMIT))
    if type(msg) not in expected:
        raise ProtocolError(f"expected {' or '.join(t.__name__ for t in expected)} in the handshake, got "
                            f"{type(msg).__name__}")
    return msg


class Gate:
    """A server's side of the handshake: limits, and quiet accounting of refusals."""

    def __init__(self, secret: bytes, tls: TlsConfig, name: str = "server"):
        self.secret = secret
        self.tls = tls
        self.name = name
        self._pending = 0
        self._refused = 0
        self._refused_from: set[str] = set()
        self._last_summary = time.monotonic()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str | None:
        """The client's role once it has proved the secret; None (and the connection closed) if not."""
        peer = writer.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple) else "local"
        if self._pending >= MAX_PENDING:
            self._refuse(writer, host, "too many connections in their handshake")
            return None
        self._pending += 1
        try:
            return await asyncio.wait_for(self._run(reader, writer, host), HANDSHAKE_TIMEOUT)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ConnectionError, OSError, ProtocolError,
                AuthError) as e:
            self._refuse(writer, host, f"{type(e).__name__}: {e}")
            return None
        finally:
            self._pending -= 1

    async def _run(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        await _send(writer, m.Challenge(VERSION, nonce, self.tls.offered))
        msg = await _receive(reader, (m.StartTls, m.Auth))
        if type(msg) is m.StartTls:
            if not self.tls.offered:
                raise ProtocolError("asked for TLS, which this side does not offer")
            # the answer goes first, so the client's TLS hello cannot reach the plain reader
            writer.write(frame(codec.encode(m.StartTls())))
            await writer.start_tls(self.tls.server_context())
            nonce = os.urandom(NONCE_BYTES)
            await _send(writer, m.Challenge(VERSION, nonce, True))
            msg = await _receive(reader, (m.Auth,))
        elif self.tls.server_requires(host):
            raise AuthError(f"a plain connection from {host}, off this host, where TLS is required")
        if msg.role not in ROLES:
            raise ProtocolError(f"unknown role {msg.role!r}")
        expected = _mac(self.secret, b"client", nonce, msg.nonce, msg.role.encode())
        if len(msg.nonce) != NONCE_BYTES or not hmac.compare_digest(msg.proof, expected):
            raise AuthError("the client did not prove it knows the secret")
        await _send(writer, m.Welcome(_mac(self.secret, b"server", msg.nonce, nonce)))
        return msg.role

    def _refuse(self, writer: asyncio.StreamWriter, host: str, why: str) -> None:
        writer.close()
        self._refused += 1
        self._refused_from.add(host)
        log.debug("%s refused a connection from %s: %s", self.name, host, why)
        now = time.monotonic()
        if now - self._last_summary >= SUMMARY_EVERY:
            hosts = sorted(self._refused_from)
            log.info("%s refused %d connection(s) in the last %.0f s, from %s%s", self.name, self._refused,
                     now - self._last_summary, ", ".join(hosts[:5]), " ..." if len(hosts) > 5 else "")
            self._refused = 0
            self._refused_from.clear()
            self._last_summary = now


async def connect(host: str, port: int, secret: bytes, role: str, tls: TlsConfig, *,
                  limit: int = 1 << 20) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open an authenticated connection in the given role, over TLS where tls says."""
    reader, writer = await asyncio.open_connection(host, port, limit=limit)
    try:
        await asyncio.wait_for(_client(reader, writer, host, port, secret, role, tls), HANDSHAKE_TIMEOUT)
    except BaseException:
        writer.close()
        raise
    return reader, writer


async def _client(reader, writer, host: str, port: int, secret: bytes, role: str, tls: TlsConfig) -> None:
    where = f"{host}:{port}"
    try:
        hello = await _receive(reader, (m.Challenge,))
    except ProtocolError:
        raise ProtocolError(f"{where} does not speak the tether protocol") from None
    if hello.version != VERSION:
        raise ProtocolError(f"{where} speaks protocol version {hello.version}, this is {VERSION}")
    if tls.client_wants(host):
        if not hello.tls:
            raise AuthError(f"{where} does not offer TLS, which this side requires for a link off the host")
        await _send(writer, m.StartTls())
        await _receive(reader, (m.StartTls,))
        try:
            await writer.start_tls(tls.client_context())
        except ssl.SSLCertVerificationError:
            raise AuthError(f"{where} presented a certificate this side does not accept: it does not hold "
                            "the same secret (or the same CA)") from None
        hello = await _receive(reader, (m.Challenge,))
    nonce = os.urandom(NONCE_BYTES)
    await _send(writer, m.Auth(role, nonce, _mac(secret, b"client", hello.nonce, nonce, role.encode())))
    try:
        answer = await _receive(reader, (m.Welcome,))
    except asyncio.IncompleteReadError:
        raise AuthError(f"{where} refused the secret") from None
    if not hmac.compare_digest(answer.proof, _mac(secret, b"server", nonce, hello.nonce)):
        raise AuthError(f"{where} could not prove it knows the secret")
