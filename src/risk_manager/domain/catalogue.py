"""The contract catalogue: metadata of the instruments the simulator lists and the daemon knows.

Shipped as data (`risk_manager/data/contracts.json`); extra contracts can be added from a file or
code. Look-ups by contract id, by symbol root (`ES`) or by contract name (`ESZ6`) are
case-insensitive for symbols and names. A missing contract raises `UnknownContractError`: tick
size and value are never guessed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Self

from risk_manager.domain.errors import UnknownContractError, WireDecodeError
from risk_manager.domain.models import Contract
from risk_manager.domain.wire import Reader


@dataclass(frozen=True, slots=True)
class CatalogueEntry:
    contract: Contract
    symbol: str
    fee: float  # dollars per contract per fill (half-turn)
    reference_price: float
    full_size: str | None = None  # the full-size twin of a micro contract

    @property
    def is_micro(self) -> bool:
        return self.full_size is not None

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str) -> Self:
        r = Reader(f"{source} contract", data)
        contract = Contract(
            id=r.string("id"),
            name=r.string("name"),
            description=r.opt_string("description") or "",
            tick_size=r.number("tickSize"),
            tick_value=r.number("tickValue"),
            active_contract=r.opt_boolean("activeContract", True),
            symbol_id=r.opt_string("symbolId"),
        )
        if contract.tick_size <= 0 or contract.tick_value <= 0:
            raise WireDecodeError(f"{source} contract {contract.id}", "tickSize/tickValue",
                                  "must be positive numbers")
        symbol = (r.opt_string("symbol") or contract.symbol).upper()
        return cls(
            contract=contract,
            symbol=symbol,
            fee=r.opt_number("fee") or 0.0,
            reference_price=r.opt_number("reference_price") or 100.0,
            full_size=(r.opt_string("full_size") or None),
        )


class Catalogue:
    """Contracts by id, symbol root and name."""

    def __init__(self, entries: Iterable[CatalogueEntry] = ()) -> None:
        self._by_id: dict[str, CatalogueEntry] = {}
        self._by_symbol: dict[str, CatalogueEntry] = {}
        self._by_name: dict[str, CatalogueEntry] = {}
        for entry in entries:
            self.add(entry)

    def add(self, entry: CatalogueEntry) -> None:
        self._by_id[entry.contract.id] = entry
        self._by_symbol[entry.symbol.upper()] = entry
        self._by_name[entry.contract.name.upper()] = entry

    def __iter__(self) -> Iterator[CatalogueEntry]:
        return iter(self._by_id.values())

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.find(key) is not None

    def find(self, key: str) -> CatalogueEntry | None:
        """By contract id, symbol root or contract name; None when unknown."""
        return self._by_id.get(key) or self._by_symbol.get(key.upper()) or self._by_name.get(key.upper())

    def get(self, key: str) -> CatalogueEntry:
        entry = self.find(key)
        if entry is None:
            raise UnknownContractError(key)
        return entry

    def contracts(self) -> list[Contract]:
        return [e.contract for e in self._by_id.values()]

    @classmethod
    def from_json(cls, data: Any, source: str = "catalogue") -> Self:
        if not isinstance(data, Mapping) or not isinstance(data.get("contracts"), list):
            raise WireDecodeError(source, "contracts", "expected an object with a 'contracts' list")
        return cls(CatalogueEntry.from_json(item, source) for item in data["contracts"])

    @classmethod
    def from_file(cls, path: Path) -> Self:
        return cls.from_json(json.loads(path.read_text(encoding="utf-8")), str(path))


def default_catalogue() -> Catalogue:
    """A fresh copy of the catalogue shipped with the package."""
    text = resources.files("risk_manager.data").joinpath("contracts.json").read_text(encoding="utf-8")
    return Catalogue.from_json(json.loads(text), "risk_manager/data/contracts.json")
