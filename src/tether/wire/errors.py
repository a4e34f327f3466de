"""The wire's own errors: every fault a peer's bytes can cause is one of these."""
from __future__ import annotations


class ProtocolError(ConnectionError):
    """The other side sent something this protocol does not allow; the connection is closed."""


class AuthError(ConnectionError):
    """The other side could not prove it knows the secret."""
