"""What the enforcer reports: one `ActionOutcome` per submitted action, and running counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from risk_manager.engine.actions import Action


class OutcomeStatus(StrEnum):
    DONE = "done"        # executed and verified against the broker
    FAILED = "failed"    # not achieved; `reason` says why and what to do
    SKIPPED = "skipped"  # nothing to do (already executed, nothing left to change, would loosen a stop)


@dataclass(frozen=True, slots=True)
class ActionOutcome:
    """The verified result of one action. `duration_ms` is wall time (perf counter) from the start of
    its execution; `started`/`finished` come from the enforcer's clock. `attempts` counts the rounds
    of broker mutations (1 when the first request was enough, 0 when none was needed)."""

    action: Action
    status: OutcomeStatus
    reason: str | None
    started: datetime
    finished: datetime
    duration_ms: float
    attempts: int
    detail: str = ""  # addition: what verification saw ("verified flat", "2 orders cancelled")

    @property
    def ok(self) -> bool:
        return self.status is not OutcomeStatus.FAILED


@dataclass(slots=True)
class EnforcerStats:
    submitted: int = 0
    done: int = 0
    failed: int = 0
    skipped: int = 0
    duplicates_skipped: int = 0  # of `skipped`: keys already executed (at most once)
    requests: int = 0            # broker requests made by the enforcer (mutations and verification reads)
    released: int = 0            # addition: keys handed back for a later retry (nothing done / outcome unknown)
    resumed: int = 0             # addition: actions taken over from the store at start-up

    def as_dict(self) -> dict[str, int]:
        return {"submitted": self.submitted, "done": self.done, "failed": self.failed, "skipped": self.skipped,
                "duplicates_skipped": self.duplicates_skipped, "requests": self.requests,
                "released": self.released, "resumed": self.resumed}
