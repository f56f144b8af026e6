from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from risk_manager.domain import (
    Account,
    AccountEvent,
    Contract,
    Order,
    OrderEvent,
    OrderSide,
    OrderStatus,
    OrderType,
    Position,
    PositionEvent,
    PositionType,
    Quote,
    QuoteEvent,
    Trade,
    TradeEvent,
    WireDecodeError,
    decode_market_event,
    decode_user_event,
    decode_user_events,
    encode_market_event,
    encode_user_event,
)

ORDER_WIRE = {
    "id": 36598,
    "accountId": 704,
    "contractId": "CON.F.US.EP.U25",
    "symbolId": "F.US.EP",
    "creationTimestamp": "2025-04-21T19:45:52.105808+00:00",
    "updateTimestamp": "2025-04-21T19:45:52.105808+00:00",
    "status": 1,
    "type": 4,
    "side": 1,
    "size": 1,
    "limitPrice": None,
    "stopPrice": 5600.25,
    "fillVolume": 0,
    "filledPrice": None,
    "customTag": "sl-1",
}

TRADE_WIRE = {
    "id": 8604,
    "accountId": 203,
    "contractId": "CON.F.US.EP.H25",
    "creationTimestamp": "2025-01-21T16:13:52.523293+00:00",
    "price": 6065.25,
    "profitAndLoss": None,
    "fees": 1.4,
    "side": 0,
    "size": 1,
    "voided": False,
    "orderId": 14328,
}

POSITION_WIRE = {
    "id": 6124,
    "accountId": 536,
    "contractId": "CON.F.US.GMET.J25",
    "creationTimestamp": "2025-04-21T13:52:32.165216+00:00",
    "type": 2,
    "size": 3,
    "averagePrice": 1575.75,
}


def test_order_round_trip_is_exact() -> None:
    order = Order.from_wire(ORDER_WIRE)
    assert order.status is OrderStatus.OPEN
    assert order.type is OrderType.STOP
    assert order.side is OrderSide.ASK
    assert order.is_working and order.is_stop
    assert order.creation_timestamp == datetime(2025, 4, 21, 19, 45, 52, 105808, tzinfo=UTC)
    assert order.to_wire() == ORDER_WIRE


def test_trade_and_position_round_trip() -> None:
    assert Trade.from_wire(TRADE_WIRE).to_wire() == TRADE_WIRE
    position = Position.from_wire(POSITION_WIRE)
    assert position.type is PositionType.SHORT
    assert position.signed_size == -3
    assert position.to_wire() == POSITION_WIRE


def test_missing_required_field_names_entity_and_field() -> None:
    data = dict(POSITION_WIRE)
    del data["averagePrice"]
    with pytest.raises(WireDecodeError, match=r"Position\.averagePrice: required field is missing") as info:
        Position.from_wire(data)
    assert info.value.field == "averagePrice"


def test_null_required_field_and_wrong_type_are_errors() -> None:
    with pytest.raises(WireDecodeError, match=r"Trade\.orderId: required field is null"):
        Trade.from_wire({**TRADE_WIRE, "orderId": None})
    with pytest.raises(WireDecodeError, match=r"Trade\.size: expected an integer"):
        Trade.from_wire({**TRADE_WIRE, "size": "three"})
    with pytest.raises(WireDecodeError, match=r"Account\.canTrade: expected true or false"):
        Account.from_wire({"id": 1, "name": "a", "balance": 1, "canTrade": "yes"})
    with pytest.raises(WireDecodeError, match="expected a JSON object"):
        Order.from_wire([1, 2])


def test_extra_fields_and_unknown_enums_are_tolerated(caplog: pytest.LogCaptureFixture) -> None:
    order = Order.from_wire({**ORDER_WIRE, "status": 42, "somethingNew": {"x": 1}})
    assert order.status == 42
    assert not order.status.known
    assert order.status.name == "UNKNOWN_42"
    assert not order.is_working
    assert order.to_wire()["status"] == 42


def test_field_names_match_case_insensitively() -> None:
    account = Account.from_wire({"ID": 7, "Name": "X", "BALANCE": 10.5, "cantrade": True})
    assert account == Account(id=7, name="X", balance=10.5, can_trade=True)


def test_a_case_insensitive_match_takes_the_first_spelling_and_the_exact_name_wins() -> None:
    account = Account.from_wire({"id": 7, "name": "X", "balance": 1.0, "CanTrade": False, "CANTRADE": True})
    assert account.can_trade is False        # the first spelling in the object, as `lookup` does
    order = Order.from_wire({**ORDER_WIRE, "LimitPrice": 1.0, "TRAILPRICE": 12.5})
    assert order.limit_price == ORDER_WIRE["limitPrice"]   # the exact name wins over another spelling
    assert order.trail_price == 12.5


def test_timestamps_with_z_and_seven_digits() -> None:
    trade = Trade.from_wire({**TRADE_WIRE, "creationTimestamp": "2025-01-21T16:13:52.5232931Z"})
    assert trade.creation_timestamp.tzinfo is not None
    with pytest.raises(WireDecodeError, match="invalid timestamp"):
        Trade.from_wire({**TRADE_WIRE, "creationTimestamp": "yesterday"})


def test_contract_symbol_comes_from_the_name_not_the_id() -> None:
    contract = Contract.from_wire({"id": "CON.F.US.EP.U25", "name": "ESU5", "description": "E-mini",
                                   "tickSize": 0.25, "tickValue": 12.5, "activeContract": True,
                                   "symbolId": "F.US.EP"})
    assert contract.symbol == "ES"
    assert Contract.from_wire({**contract.to_wire(), "name": "MNQZ26"}).symbol == "MNQ"


def test_quote_price_falls_back_to_mid_and_merges_partials() -> None:
    q = Quote.from_wire({"symbol": "F.US.EP", "lastPrice": 0, "bestBid": 100.0, "bestAsk": 100.5})
    assert q.price == pytest.approx(100.25)
    assert Quote(last_price=101.0).price == 101.0
    assert Quote().price is None
    merged = q.merged(Quote(last_price=100.75))
    assert merged.last_price == 100.75 and merged.best_bid == 100.0


def test_user_events_wrapped_and_unwrapped_decode_the_same() -> None:
    wrapped = decode_user_event("GatewayUserOrder", [{"action": 1, "data": ORDER_WIRE}])
    unwrapped = decode_user_event("GatewayUserOrder", [ORDER_WIRE])
    assert isinstance(wrapped, OrderEvent)
    assert wrapped == unwrapped
    assert decode_user_events("GatewayUserTrade", [[{"action": 1, "data": TRADE_WIRE}]]) == [
        TradeEvent(Trade.from_wire(TRADE_WIRE))]


@pytest.mark.parametrize("wrapped", [True, False])
def test_user_event_encoding_round_trips(wrapped: bool) -> None:
    for event in (
        AccountEvent(Account(id=1, name="a", balance=5.0, can_trade=True, simulated=True)),
        OrderEvent(Order.from_wire(ORDER_WIRE)),
        PositionEvent(Position.from_wire(POSITION_WIRE)),
        TradeEvent(Trade.from_wire(TRADE_WIRE)),
    ):
        target, args = encode_user_event(event, wrapped=wrapped)
        assert decode_user_event(target, json.loads(json.dumps(args))) == event


def test_market_events_round_trip_and_bad_arguments() -> None:
    event = QuoteEvent("CON.F.US.EP.U25", Quote(symbol="F.US.EP", last_price=5000.25, best_bid=5000.0,
                                                best_ask=5000.25))
    target, args = encode_market_event(event)
    assert target == "GatewayQuote"
    assert decode_market_event(target, json.loads(json.dumps(args))) == event
    with pytest.raises(WireDecodeError, match="expected \\(contractId, data\\)"):
        decode_market_event("GatewayQuote", [{"lastPrice": 1}])
    with pytest.raises(WireDecodeError, match="not a user-hub event"):
        decode_user_event("GatewayQuote", [{}])
