"""The wire: typed messages, their encoding, framing, the handshake and TLS.

Everything that crosses a connection between tether's processes is defined
here, and checked here on the way in.
"""
from .codec import decode, encode
from .errors import AuthError, ProtocolError
from .framing import FRAME_LIMIT, HANDSHAKE_LIMIT, FrameBuffer, frame, read_frame

__all__ = ["decode", "encode", "AuthError", "ProtocolError", "FRAME_LIMIT", "HANDSHAKE_LIMIT", "FrameBuffer",
           "frame", "read_frame"]
