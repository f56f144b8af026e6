"""Field readers for decoding wire JSON strictly but tolerantly.

Strict: a required field that is missing, null or of the wrong type raises `WireDecodeError`
naming the entity and the field. Tolerant: extra fields are ignored, optional fields may be
omitted or null, unknown enum values become pseudo-members (see `enums.TolerantIntEnum`), and
field names are matched case-insensitively when the exact camelCase key is absent (the Gateway
matches request properties case-insensitively; we accept the same of it).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from risk_manager.domain.errors import WireDecodeError

E = TypeVar("E")

_MISSING: Any = object()


def lookup(data: Mapping[str, Any], key: str) -> Any:
    """The value of `key`, falling back to a case-insensitive match; `_MISSING` when absent."""
    value = data.get(key, _MISSING)
    if value is _MISSING:
        lowered = key.lower()
        for k, v in data.items():
            if isinstance(k, str) and k.lower() == lowered:
                return v
    return value


def is_missing(value: Any) -> bool:
    return value is _MISSING


class Reader:
    """Reads the fields of one wire object for one entity, with errors naming both."""

    __slots__ = ("_folded", "data", "entity")

    def __init__(self, entity: str, data: Any) -> None:
        if not isinstance(data, Mapping):
            raise WireDecodeError(entity, "<root>", f"expected a JSON object, got {type(data).__name__}")
        self.entity = entity
        self.data = data
        self._folded: dict[str, Any] | None = None

    def _get(self, key: str, required: bool) -> Any:
        value = self.data.get(key, _MISSING)
        if value is _MISSING:
            # Absent under its exact name (optional fields often are): the case-insensitive match of
            # `lookup`, through an index of the object's keys built once per object, not a scan per field.
            folded = self._folded
            if folded is None:
                folded = self._folded = {}
                for k, v in self.data.items():
                    if isinstance(k, str):
                        folded.setdefault(k.lower(), v)   # the first spelling wins, as in `lookup`
            value = folded.get(key.lower(), _MISSING)
        if value is _MISSING or value is None:
            if required:
                raise WireDecodeError(self.entity, key, "required field is missing" if value is _MISSING
                                      else "required field is null")
            return None
        return value

    def integer(self, key: str) -> int:
        return self._integer(key, self._get(key, True))

    def opt_integer(self, key: str) -> int | None:
        value = self._get(key, False)
        return None if value is None else self._integer(key, value)

    def _integer(self, key: str, value: Any) -> int:
        if isinstance(value, bool):
            raise WireDecodeError(self.entity, key, "expected an integer, got a boolean")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise WireDecodeError(self.entity, key, f"expected an integer, got {value!r}")

    def number(self, key: str) -> float:
        return self._number(key, self._get(key, True))

    def opt_number(self, key: str) -> float | None:
        value = self._get(key, False)
        return None if value is None else self._number(key, value)

    def _number(self, key: str, value: Any) -> float:
        if isinstance(value, bool):
            raise WireDecodeError(self.entity, key, "expected a number, got a boolean")
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise WireDecodeError(self.entity, key, f"expected a number, got {value!r}")

    def string(self, key: str) -> str:
        value = self._get(key, True)
        if not isinstance(value, str):
            raise WireDecodeError(self.entity, key, f"expected a string, got {value!r}")
        return value

    def opt_string(self, key: str) -> str | None:
        value = self._get(key, False)
        if value is None:
            return None
        if not isinstance(value, str):
            raise WireDecodeError(self.entity, key, f"expected a string, got {value!r}")
        return value

    def boolean(self, key: str) -> bool:
        return self._boolean(key, self._get(key, True))

    def opt_boolean(self, key: str, default: bool) -> bool:
        value = self._get(key, False)
        return default if value is None else self._boolean(key, value)

    def _boolean(self, key: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        raise WireDecodeError(self.entity, key, f"expected true or false, got {value!r}")

    def timestamp(self, key: str) -> datetime:
        return self._timestamp(key, self._get(key, True))

    def opt_timestamp(self, key: str) -> datetime | None:
        value = self._get(key, False)
        return None if value is None else self._timestamp(key, value)

    def _timestamp(self, key: str, value: Any) -> datetime:
        if not isinstance(value, str):
            raise WireDecodeError(self.entity, key, f"expected an ISO 8601 timestamp string, got {value!r}")
        try:
            return parse_time(value)
        except ValueError as exc:
            raise WireDecodeError(self.entity, key, f"invalid timestamp {value!r}: {exc}") from None

    def enum(self, key: str, enum_cls: type[E]) -> E:
        raw = self.integer(key)
        return enum_cls(raw)  # type: ignore[call-arg]


def parse_time(text: str) -> datetime:
    """Parse an ISO 8601 timestamp (`Z`, offsets, up to 7 fractional digits) into an aware UTC datetime.

    A timestamp without an offset is taken as UTC (the Gateway speaks UTC).
    """
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def format_time(value: datetime) -> str:
    """Format like the Gateway: `2025-04-21T19:45:52.105808+00:00` (microseconds, explicit offset)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")
