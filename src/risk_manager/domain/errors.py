"""Typed errors of the domain layer."""

from __future__ import annotations


class DomainError(Exception):
    """Base class of every error raised by `risk_manager.domain`."""


class WireDecodeError(DomainError, ValueError):
    """A wire payload could not be decoded into a domain entity.

    The message names the entity and the field, so a log line tells exactly what the broker sent.
    """

    def __init__(self, entity: str, field: str, problem: str) -> None:
        self.entity = entity
        self.field = field
        self.problem = problem
        super().__init__(f"{entity}.{field}: {problem}")


class UnknownContractError(DomainError, KeyError):
    """A contract or symbol has no metadata (tick size / tick value): never guessed, never zero."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(key)

    def __str__(self) -> str:
        return (
            f"no contract metadata for {self.key!r}: tick size and tick value are unknown, so P&L "
            "cannot be computed; add the contract to the catalogue or check the symbol"
        )
