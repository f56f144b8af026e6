"""Typed errors of the broadcast channel, each with a message a trader can act on."""

from __future__ import annotations


class BroadcastError(Exception):
    """Base class of every error raised by `risk_manager.broadcast`."""


class BroadcastBindError(BroadcastError):
    """The server cannot (or must not) listen where it was asked to (non-loopback host, port taken)."""


class TokenFileError(BroadcastError):
    """The token file is missing, unreadable, empty or readable by other users."""


class DaemonUnreachableError(BroadcastError):
    """No daemon answers at the broadcast URL."""


class AuthRefusedError(BroadcastError):
    """The daemon refused the token."""


class ProtocolError(BroadcastError):
    """The daemon speaks a schema version this client does not know (or broke the protocol)."""
