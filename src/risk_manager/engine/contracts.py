"""Contract metadata as the engine needs it: tick size/value, symbol root, micro or not."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from risk_manager.domain import Catalogue, Contract, UnknownContractError


@dataclass(frozen=True, slots=True)
class ContractInfo:
    contract: Contract
    symbol: str
    tick_size: float
    tick_value: float
    full_size: str | None  # the full-size twin's symbol when this is a micro contract


class ContractBook:
    """Metadata by contract id; filled from a Catalogue, a mapping or `register()` at runtime.

    Unknown ids return None from `find` and raise `UnknownContractError` from `get`; tick size
    and value are never guessed.
    """

    def __init__(self, source: Catalogue | Mapping[str, Contract] | Iterable[Contract] | None = None) -> None:
        self._by_id: dict[str, ContractInfo] = {}
        if source is None:
            return
        if isinstance(source, Catalogue):
            for entry in source:
                self._add(ContractInfo(entry.contract, entry.symbol.upper(), entry.contract.tick_size,
                                       entry.contract.tick_value, entry.full_size))
            return
        contracts = source.values() if isinstance(source, Mapping) else source
        for contract in contracts:
            self.register(contract)

    def _add(self, info: ContractInfo) -> None:
        if info.tick_size <= 0 or info.tick_value <= 0:
            raise ValueError(f"contract {info.contract.id}: tick size and tick value must be positive "
                             f"(got {info.tick_size}, {info.tick_value})")
        self._by_id[info.contract.id] = info

    def register(self, contract: Contract) -> ContractInfo:
        """Add or replace metadata learned at runtime (Contract/searchById)."""
        symbol = contract.symbol
        previous = self._by_id.get(contract.id)
        full_size = previous.full_size if previous is not None else self._twin(symbol)
        info = ContractInfo(contract, symbol, contract.tick_size, contract.tick_value, full_size)
        self._add(info)
        return info

    def _twin(self, symbol: str) -> str | None:
        """`MNQ` → `NQ` when a full-size `NQ` contract is known: the micro heuristic of rules.md."""
        if len(symbol) > 1 and symbol.startswith("M"):
            root = symbol[1:]
            if any(i.symbol == root for i in self._by_id.values()):
                return root
        return None

    def find(self, contract_id: str) -> ContractInfo | None:
        return self._by_id.get(contract_id)

    def get(self, contract_id: str) -> ContractInfo:
        info = self._by_id.get(contract_id)
        if info is None:
            raise UnknownContractError(contract_id)
        return info

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, contract_id: object) -> bool:
        return contract_id in self._by_id
