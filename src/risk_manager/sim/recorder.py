"""What the simulator received and sent: requests, mutating intents, hub events, duplicates, 429s."""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

IntentKind = Literal["place", "cancel", "modify", "close", "partialClose"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    seq: int
    path: str            # canonical route (`/api/Order/place`) or the raw path of an unknown route
    body: Any            # parsed JSON (apiKey masked), raw text when malformed, None when empty
    status: int          # HTTP status answered; 0 when the response was lost (fault or cut)
    at: datetime         # simulator clock
    received_ns: int     # time.perf_counter_ns() on arrival
    user: str | None     # the token's user, None when unauthenticated
    error_code: int | None = None  # the envelope's errorCode on HTTP 200


@dataclass(frozen=True, slots=True)
class RecordedIntent:
    seq: int             # the request's seq
    kind: IntentKind
    account_id: int | None
    contract_id: str | None
    side: int | None
    size: int | None
    custom_tag: str | None
    outcome: str         # "ok", "error <code>" or "http <status>"
    received_ns: int
    order_id: int | None = None
    response_lost: bool = False


@dataclass(frozen=True, slots=True)
class HubSent:
    seq: int
    hub: Literal["user", "market"]
    target: str
    key: int | str | None   # account id (user hub) or contract id (market hub)
    sent_ns: int


class Recorder:
    """Bounded lists (oldest entries dropped past `limit`) so a long `sim serve` keeps its memory."""

    def __init__(self, limit: int = 200_000) -> None:
        self.requests: deque[RecordedRequest] = deque(maxlen=limit)
        self.intents: deque[RecordedIntent] = deque(maxlen=limit)
        self.hub_sent: deque[HubSent] = deque(maxlen=limit)
        self.duplicate_orders: list[RecordedIntent] = []
        self.http_429 = 0
        self._seq = 0
        self._hub_seq = 0
        self._tags: set[tuple[int, str]] = set()

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add_request(self, request: RecordedRequest) -> None:
        self.requests.append(request)
        if request.status == 429:
            self.http_429 += 1

    def add_intent(self, intent: RecordedIntent) -> None:
        self.intents.append(intent)
        if intent.kind == "place" and intent.custom_tag is not None and intent.account_id is not None:
            key = (intent.account_id, intent.custom_tag)
            if key in self._tags:
                self.duplicate_orders.append(intent)
            self._tags.add(key)

    def add_hub_sent(self, hub: Literal["user", "market"], target: str, key: int | str | None, sent_ns: int) -> None:
        self._hub_seq += 1
        self.hub_sent.append(HubSent(self._hub_seq, hub, target, key, sent_ns))

    def clear(self) -> None:
        self.requests.clear()
        self.intents.clear()
        self.hub_sent.clear()
        self.duplicate_orders.clear()
        self.http_429 = 0
        self._tags.clear()

    def summary(self) -> dict[str, Any]:
        return {
            "requests": len(self.requests),
            "intents": len(self.intents),
            "hub_sent": len(self.hub_sent),
            "duplicate_orders": len(self.duplicate_orders),
            "http_429": self.http_429,
        }

    def to_json(self) -> dict[str, Any]:
        def row(item: Any) -> dict[str, Any]:
            data = asdict(item)
            if isinstance(data.get("at"), datetime):
                data["at"] = data["at"].isoformat()
            return data

        return {
            **self.summary(),
            "request_log": [row(r) for r in self.requests],
            "intent_log": [row(i) for i in self.intents],
            "duplicate_order_log": [row(i) for i in self.duplicate_orders],
        }
