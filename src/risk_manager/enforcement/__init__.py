"""Enforcement: turns the engine's actions into verified Gateway calls (see docs/enforcement.md).

```python
from risk_manager.enforcement import Enforcer, ActionOutcome, OutcomeStatus
enforcer = Enforcer(client, store, clock, positions_hint=None, orders_hint=None,
                    verify_timeout_s=5.0, max_attempts=3, partial_fill_timeout_s=60.0)
enforcer.on_outcome(callback)          # callback(ActionOutcome), sync, once per action
await enforcer.start()
await enforcer.resume_pending()        # store.unfinished_actions(): pending → run; in flight → verify first
enforcer.submit(action)                # O(1), per-account FIFO
await enforcer.idle(); enforcer.busy; enforcer.stats
await enforcer.aclose(timeout_s=5.0)
```
"""

from risk_manager.enforcement.enforcer import ALREADY_EXECUTED, Enforcer, OutcomeCallback, lock_record
from risk_manager.enforcement.errors import (
    ActionFailed,
    EnforcementError,
    EnforcerClosedError,
    StoredActionError,
    UnsupportedActionError,
)
from risk_manager.enforcement.execution import ActionExecutor, Limits, OrdersHint, PositionsHint, Verified
from risk_manager.enforcement.outcomes import ActionOutcome, EnforcerStats, OutcomeStatus
from risk_manager.enforcement.stored_action import action_from_json

__all__ = [
    "ALREADY_EXECUTED",
    "ActionExecutor",
    "ActionFailed",
    "ActionOutcome",
    "EnforcementError",
    "Enforcer",
    "EnforcerClosedError",
    "EnforcerStats",
    "Limits",
    "OrdersHint",
    "OutcomeCallback",
    "OutcomeStatus",
    "PositionsHint",
    "StoredActionError",
    "UnsupportedActionError",
    "Verified",
    "action_from_json",
    "lock_record",
]
