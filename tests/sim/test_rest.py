"""REST endpoints of the simulator over loopback: envelope, payloads, every error path."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from risk_manager.sim import SimAccount, SimConfig, Simulator, SimUser
from tests.sim.conftest import ES, MNQ, Api, place_body

EPOCH = "2020-01-01T00:00:00Z"


async def test_ping_needs_no_token(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        response = await client.get("/api/Status/ping")
    assert response.status_code == 200
    assert response.json() == "pong"


async def test_pause_stops_the_feed_but_rest_still_answers() -> None:
    async with Simulator(SimConfig(quote_feed="random", poll_interval=0.01, feed_interval=0.01)) as sim:
        state = sim.market.state(MNQ)
        await asyncio.sleep(0.1)
        assert state.updated is not None
        await sim.pause()
        before = state.updated
        await asyncio.sleep(0.1)
        assert state.updated == before   # nothing walked while paused
        async with httpx.AsyncClient(base_url=sim.base_url) as client:
            response = await client.get("/api/Status/ping")
        assert response.status_code == 200


async def test_login_token_is_jwt_shaped_with_numeric_exp(api: Api, sim: Simulator) -> None:
    _header, payload, signature = (api.token or "").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == "trader"
    assert isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 24 * 3600
    assert {"iat", "jti"} <= set(claims)
    assert signature


@pytest.mark.parametrize(("user", "key", "code"), [("a", "short", 3), ("", "long-enough", 3)])
async def test_login_failures_default_mode(sim: Simulator, user: str, key: str, code: int) -> None:
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        data = await Api(client).call("/api/Auth/loginKey", {"userName": user, "apiKey": key})
    assert data == {"success": False, "errorCode": code, "errorMessage": None, "token": None}


async def test_pinned_users_and_their_accounts() -> None:
    cfg = SimConfig(accounts=[SimAccount(1, "A"), SimAccount(2, "B")],
                    users=[SimUser("alice", "alice-key-1", (1,))], quote_feed="scripted")
    async with Simulator(cfg) as sim, httpx.AsyncClient(base_url=sim.base_url) as client:
        api = Api(client)
        assert (await api.call("/api/Auth/loginKey", {"userName": "bob", "apiKey": "whatever-1"}))["errorCode"] == 1
        assert (await api.call("/api/Auth/loginKey", {"userName": "alice", "apiKey": "wrong-key"}))["errorCode"] == 3
        await api.login("alice", "alice-key-1")
        accounts = (await api.call("/api/Account/search", {"onlyActiveAccounts": True}))["accounts"]
        assert [a["id"] for a in accounts] == [1]
        other = await api.call("/api/Position/searchOpen", {"accountId": 2})
        assert other == {"success": False, "errorCode": 1, "errorMessage": "account 2 not found", "positions": None}


async def test_validate_returns_new_token_and_old_stays_valid(api: Api) -> None:
    old = api.token
    data = await api.call("/api/Auth/validate")
    assert data["success"] and data["newToken"] and data["newToken"] != old
    assert (await api.call("/api/Account/search", {"onlyActiveAccounts": False}))["success"]
    api.token = data["newToken"]
    assert (await api.call("/api/Account/search", {"onlyActiveAccounts": False}))["success"]


async def test_logout_revokes_the_token(api: Api) -> None:
    assert (await api.call("/api/Auth/logout"))["success"]
    response = await api.raw("/api/Account/search", {"onlyActiveAccounts": True})
    assert response.status_code == 401
    assert response.content == b""


async def test_token_expires_on_the_clock() -> None:
    from risk_manager.domain import VirtualClock

    clock = VirtualClock(datetime(2026, 3, 3, 15, tzinfo=UTC))
    async with Simulator(SimConfig(clock=clock, token_lifetime=timedelta(hours=1))) as vsim, \
            httpx.AsyncClient(base_url=vsim.base_url) as client:
        api = Api(client)
        await api.login()
        clock.advance(timedelta(minutes=59))
        assert (await api.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 200
        clock.advance(timedelta(minutes=1))
        assert (await api.raw("/api/Account/search", {"onlyActiveAccounts": True})).status_code == 401
        assert (await api.raw("/api/Auth/validate")).status_code == 401


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer a.b.c", "Basic abc"])
async def test_bad_or_missing_token_is_401_empty(sim: Simulator, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=sim.base_url) as client:
        response = await client.post("/api/Account/search", json={"onlyActiveAccounts": True}, headers=headers)
    assert response.status_code == 401
    assert response.content == b""


async def test_account_search(api: Api) -> None:
    data = await api.call("/api/Account/search", {"onlyActiveAccounts": True})
    assert data == {"success": True, "errorCode": 0, "errorMessage": None, "accounts": [
        {"id": 1001, "name": "SIM-1001", "balance": 50000.0, "canTrade": True, "isVisible": True, "simulated": True}]}


async def test_paths_and_properties_match_case_insensitively(api: Api) -> None:
    data = await api.call("/API/account/SEARCH", {"ONLYACTIVEACCOUNTS": True})
    assert data["success"] and len(data["accounts"]) == 1


async def test_contract_search_is_loose_and_capped(api: Api) -> None:
    data = await api.call("/api/Contract/search", {"searchText": "NQ", "live": False})
    names = [c["name"] for c in data["contracts"]]
    assert names[0] == "NQZ6" and "MNQZ6" in names
    contract = data["contracts"][0]
    assert set(contract) == {"id", "name", "description", "tickSize", "tickValue", "activeContract", "symbolId"}
    live = await api.call("/api/Contract/search", {"searchText": "NQ", "live": True})
    assert live["contracts"] == data["contracts"]
    everything = await api.call("/api/Contract/search", {"searchText": None, "live": False})
    assert 0 < len(everything["contracts"]) <= 20


async def test_contract_search_by_id_and_available(api: Api) -> None:
    data = await api.call("/api/Contract/searchById", {"contractId": ES})
    assert data["contract"]["id"] == ES and data["contract"]["symbolId"] == "F.US.EP"
    missing = await api.call("/api/Contract/searchById", {"contractId": "CON.F.US.NOPE.Z26"})
    assert missing == {"success": False, "errorCode": 1, "errorMessage": "contract 'CON.F.US.NOPE.Z26' not found",
                       "contract": None}
    symbol_is_not_an_id = await api.call("/api/Contract/searchById", {"contractId": "ES"})
    assert symbol_is_not_an_id["errorCode"] == 1
    available = await api.call("/api/Contract/available", {"live": False})
    assert len(available["contracts"]) >= 12


async def test_retrieve_bars(api: Api) -> None:
    end = datetime.now(UTC)
    body = {"contractId": MNQ, "live": False, "startTime": (end - timedelta(hours=1)).isoformat(),
            "endTime": end.isoformat(), "unit": 2, "unitNumber": 5, "limit": 5, "includePartialBar": False}
    bars = (await api.call("/api/History/retrieveBars", body))["bars"]
    assert len(bars) == 5
    times = [datetime.fromisoformat(b["t"]) for b in bars]
    assert times == sorted(times, reverse=True)  # newest first
    assert all(t + timedelta(minutes=5) <= end for t in times)  # no partial bar
    for bar in bars:
        assert bar["l"] <= min(bar["o"], bar["c"]) <= max(bar["o"], bar["c"]) <= bar["h"]
    again = (await api.call("/api/History/retrieveBars", body))["bars"]
    assert again == bars  # deterministic


@pytest.mark.parametrize(("change", "code"), [({"contractId": "X"}, 1), ({"unit": 9}, 2), ({"unitNumber": 0}, 3),
                                              ({"unitNumber": 10**9}, 3), ({"limit": 20001}, 4), ({"limit": 0}, 4)])
async def test_retrieve_bars_errors(api: Api, change: dict[str, object], code: int) -> None:
    body = {"contractId": MNQ, "live": False, "startTime": EPOCH, "endTime": "2020-01-02T00:00:00Z", "unit": 3,
            "unitNumber": 1, "limit": 10, "includePartialBar": True, **change}
    data = await api.call("/api/History/retrieveBars", body)
    assert data["success"] is False and data["errorCode"] == code and data["bars"] is None


async def test_retrieve_bars_from_the_year_one(api: Api) -> None:
    body = {"contractId": MNQ, "live": False, "startTime": "0001-01-01T00:00:00Z", "endTime": "0001-01-03T00:00:00Z",
            "unit": 4, "unitNumber": 1, "limit": 10, "includePartialBar": False}
    assert len((await api.call("/api/History/retrieveBars", body))["bars"]) == 2


async def test_place_search_and_search_open(api: Api, sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    placed = await api.call("/api/Order/place", place_body(type=1, limitPrice=19990.0, customTag="e1"))
    assert placed["success"] and isinstance(placed["orderId"], int)
    open_orders = (await api.call("/api/Order/searchOpen", {"accountId": 1001}))["orders"]
    assert [o["id"] for o in open_orders] == [placed["orderId"]]
    order = open_orders[0]
    assert order["status"] == 1 and order["type"] == 1 and order["limitPrice"] == 19990.0
    assert order["customTag"] == "e1" and order["symbolId"] == "F.US.MNQ"
    by_id = await api.call("/api/Order/searchById", {"accountId": 1001, "orderId": placed["orderId"]})
    assert by_id["order"] == order
    assert (await api.call("/api/Order/searchById", {"accountId": 1001, "orderId": 5}))["errorCode"] == 1
    await api.call("/api/Order/place", place_body())  # a market order: fills at once
    history = (await api.call("/api/Order/search", {"accountId": 1001, "startTimestamp": EPOCH}))["orders"]
    assert [o["status"] for o in history] == [1, 2]  # oldest first
    future = (await api.call("/api/Order/search", {"accountId": 1001, "startTimestamp": EPOCH,
                                                   "endTimestamp": "2021-01-01T00:00:00Z"}))["orders"]
    assert future == []


async def test_market_order_fills_and_updates_everything(api: Api, sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    await api.call("/api/Order/place", place_body(size=2))
    positions = (await api.call("/api/Position/searchOpen", {"accountId": 1001}))["positions"]
    assert len(positions) == 1
    assert positions[0]["type"] == 1 and positions[0]["size"] == 2 and positions[0]["averagePrice"] == 20000.25
    trades = (await api.call("/api/Trade/search", {"accountId": 1001, "startTimestamp": EPOCH}))["trades"]
    assert trades[0]["price"] == 20000.25 and trades[0]["profitAndLoss"] is None and trades[0]["fees"] == 0.74
    balance = (await api.call("/api/Account/search", {"onlyActiveAccounts": True}))["accounts"][0]["balance"]
    assert balance == pytest.approx(50000 - 0.74)


@pytest.mark.parametrize(("change", "code"), [
    ({"accountId": 999}, 1),
    ({"size": 0}, 2),
    ({"type": 0}, 2),
    ({"side": 5}, 2),
    ({"type": 1}, 2),                       # limit without limitPrice
    ({"type": 4, "stopPrice": 30000.0, "side": 1}, 2),  # sell stop above the market
    ({"type": 1, "limitPrice": 20000.1}, 2),  # off the tick grid
    ({"contractId": "CON.F.US.NOPE.Z26"}, 8),
    ({"contractId": "MNQ"}, 8),             # a symbol is not a contract id
])
async def test_place_errors(api: Api, sim: Simulator, change: dict[str, object], code: int) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    data = await api.call("/api/Order/place", place_body(**change))
    assert data["success"] is False and data["errorCode"] == code and data["orderId"] is None
    assert isinstance(data["errorMessage"], str)


async def test_custom_tag_is_unique_per_account_and_duplicates_are_counted(api: Api, sim: Simulator) -> None:
    first = await api.call("/api/Order/place", place_body(type=1, limitPrice=19000.0, customTag="once"))
    again = await api.call("/api/Order/place", place_body(type=1, limitPrice=19000.0, customTag="once"))
    assert first["success"] and again["success"] is False and again["errorCode"] == 2
    assert len(sim.recorder.duplicate_orders) == 1
    assert sim.recorder.duplicate_orders[0].custom_tag == "once"


async def test_cannot_trade_rejects_opening_but_accepts_closing(api: Api, sim: Simulator) -> None:
    await api.call("/api/Order/place", place_body(size=2))
    sim.set_account(1001, can_trade=False)
    grow = await api.call("/api/Order/place", place_body(size=1))
    assert grow["errorCode"] == 4
    reverse = await api.call("/api/Order/place", place_body(side=1, size=3))
    assert reverse["errorCode"] == 4
    reduce = await api.call("/api/Order/place", place_body(side=1, size=1))
    assert reduce["success"]
    assert (await api.call("/api/Position/closeContract", {"accountId": 1001, "contractId": MNQ}))["success"]


async def test_cancel_and_its_errors(api: Api) -> None:
    order_id = (await api.call("/api/Order/place", place_body(type=1, limitPrice=19000.0)))["orderId"]
    assert (await api.call("/api/Order/cancel", {"accountId": 1001, "orderId": order_id}))["success"]
    again = await api.call("/api/Order/cancel", {"accountId": 1001, "orderId": order_id})
    assert again == {"success": False, "errorCode": 3, "errorMessage": again["errorMessage"]}
    assert (await api.call("/api/Order/cancel", {"accountId": 1001, "orderId": 42}))["errorCode"] == 2
    assert (await api.call("/api/Order/cancel", {"accountId": 7, "orderId": order_id}))["errorCode"] == 1


async def test_modify_and_its_errors(api: Api, sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    order_id = (await api.call("/api/Order/place", place_body(type=1, limitPrice=19000.0, size=2)))["orderId"]
    assert (await api.call("/api/Order/modify", {"accountId": 1001, "orderId": order_id, "size": 3,
                                                 "limitPrice": 19500.0}))["success"]
    order = sim.broker.order(1001, order_id)
    assert order is not None and order.size == 3 and order.limit_price == 19500.0
    bad_field = await api.call("/api/Order/modify", {"accountId": 1001, "orderId": order_id, "stopPrice": 19000.0})
    assert bad_field["errorCode"] == 3
    assert (await api.call("/api/Order/modify", {"accountId": 1001, "orderId": 1}))["errorCode"] == 2
    await api.call("/api/Order/cancel", {"accountId": 1001, "orderId": order_id})
    assert (await api.call("/api/Order/modify", {"accountId": 1001, "orderId": order_id, "size": 1}))["errorCode"] == 3


async def test_modify_limit_through_the_market_fills(api: Api, sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    order_id = (await api.call("/api/Order/place", place_body(type=1, limitPrice=19000.0)))["orderId"]
    await api.call("/api/Order/modify", {"accountId": 1001, "orderId": order_id, "limitPrice": 20010.0})
    order = sim.broker.order(1001, order_id)
    assert order is not None and order.status == 2 and order.filled_price == 20000.25


async def test_close_and_partial_close(api: Api, sim: Simulator) -> None:
    sim.market.set_quote("MNQ", 20000.0)
    await api.call("/api/Order/place", place_body(size=3))
    for size in (0, 4):
        bad = await api.call("/api/Position/partialCloseContract", {"accountId": 1001, "contractId": MNQ, "size": size})
        assert bad == {"success": False, "errorCode": 5, "errorMessage": bad["errorMessage"]}
    assert (await api.call("/api/Position/partialCloseContract",
                           {"accountId": 1001, "contractId": MNQ, "size": 1}))["success"]
    assert sim.broker.positions(1001)[0].size == 2
    assert (await api.call("/api/Position/closeContract", {"accountId": 1001, "contractId": MNQ}))["success"]
    assert sim.broker.positions(1001) == []
    flat = await api.call("/api/Position/closeContract", {"accountId": 1001, "contractId": MNQ})
    assert flat["errorCode"] == 2
    unknown = await api.call("/api/Position/closeContract", {"accountId": 1001, "contractId": "CON.F.US.X.Z26"})
    assert unknown["errorCode"] == 3
    assert (await api.call("/api/Position/partialCloseContract",
                           {"accountId": 1001, "contractId": MNQ, "size": 1}))["errorCode"] == 2


async def test_trade_search_window(api: Api) -> None:
    await api.call("/api/Order/place", place_body())
    now = datetime.now(UTC)
    inside = await api.call("/api/Trade/search", {"accountId": 1001, "startTimestamp": EPOCH,
                                                  "endTimestamp": (now + timedelta(minutes=1)).isoformat()})
    assert len(inside["trades"]) == 1
    later = await api.call("/api/Trade/search", {"accountId": 1001,
                                                 "startTimestamp": (now + timedelta(minutes=1)).isoformat()})
    assert later["trades"] == []
    assert (await api.call("/api/Trade/search", {"accountId": 5, "startTimestamp": EPOCH}))["errorCode"] == 1


# -- bad input -------------------------------------------------------------------------------------

async def test_malformed_json_is_400_problem(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="risk_manager.sim")
    response = await api.raw("/api/Order/place", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and "$" in problem["errors"]
    rejected = [r for r in caplog.records if "sim_request_rejected" in r.getMessage()]
    assert len(rejected) == 1 and "status=400" in rejected[0].getMessage()


@pytest.mark.parametrize(("body", "key"), [
    ({"accountId": "abc", "contractId": MNQ, "type": 2, "side": 0, "size": 1}, "$.accountId"),
    ({"accountId": 1001, "contractId": 5, "type": 2, "side": 0, "size": 1}, "$.contractId"),
    ({"accountId": 1001, "contractId": MNQ, "type": 2, "side": 0, "size": 1.5}, "$.size"),
    ({"accountId": 1001, "contractId": MNQ, "type": 2, "side": 0, "size": True}, "$.size"),
    ({"accountId": 1001, "contractId": MNQ, "type": 2, "side": 0}, "size"),
    ({"accountId": 1001, "contractId": MNQ, "type": 2, "side": 0, "size": 1, "limitPrice": "x"}, "$.limitPrice"),
    ({"accountId": 1001, "contractId": MNQ, "type": 2, "side": 0, "size": 1, "stopLossBracket": 5},
     "$.stopLossBracket"),
    ([1, 2], "$"),
])
async def test_binding_errors_name_the_field(api: Api, body: object, key: str) -> None:
    response = await api.raw("/api/Order/place", body)
    assert response.status_code == 400
    assert key in response.json()["errors"]


async def test_numeric_strings_and_explicit_nulls_bind(api: Api) -> None:
    data = await api.call("/api/Order/place", place_body(accountId="1001", limitPrice=None, customTag=None))
    assert data["success"]


async def test_missing_body_is_400(api: Api) -> None:
    response = await api.raw("/api/Account/search")
    assert response.status_code == 400
    assert "" in response.json()["errors"]


async def test_unknown_route_is_404_and_wrong_method_405(api: Api) -> None:
    assert (await api.raw("/api/Order/explode", {})).status_code == 404
    assert (await api.raw("/nothing")).status_code == 404
    assert (await api.client.get("/api/Order/place")).status_code == 405


async def test_every_request_is_recorded(api: Api, sim: Simulator) -> None:
    await api.call("/api/Order/place", place_body(customTag="rec"))
    await api.raw("/api/Order/explode", {})
    paths = [(r.path, r.status) for r in sim.recorder.requests]
    assert paths == [("/api/Auth/loginKey", 200), ("/api/Order/place", 200), ("/api/Order/explode", 404)]
    login = sim.recorder.requests[0]
    assert login.body == {"userName": "trader", "apiKey": "***"}
    intent = sim.recorder.intents[0]
    assert (intent.kind, intent.account_id, intent.contract_id, intent.side, intent.size, intent.custom_tag,
            intent.outcome) == ("place", 1001, MNQ, 0, 1, "rec", "ok")


async def test_inactive_contracts_and_accounts() -> None:
    from dataclasses import replace

    from risk_manager.domain import default_catalogue

    catalogue = default_catalogue()
    cfg = SimConfig(accounts=[SimAccount(1001, "SIM-1001"), SimAccount(1002, "OLD", active=False)],
                    quote_feed="scripted", catalogue=catalogue)
    async with Simulator(cfg) as sim, httpx.AsyncClient(base_url=sim.base_url) as client:
        api = Api(client)
        await api.login()
        active = (await api.call("/api/Account/search", {"onlyActiveAccounts": True}))["accounts"]
        everything = (await api.call("/api/Account/search", {"onlyActiveAccounts": False}))["accounts"]
        assert [a["id"] for a in active] == [1001] and [a["id"] for a in everything] == [1001, 1002]
        await api.call("/api/Order/place", place_body(size=2))
        entry = catalogue.get(MNQ)
        catalogue.add(replace(entry, contract=replace(entry.contract, active_contract=False)))
        assert (await api.call("/api/Order/place", place_body()))["errorCode"] == 9
        close = {"accountId": 1001, "contractId": MNQ}
        assert (await api.call("/api/Position/closeContract", close))["errorCode"] == 4
        assert (await api.call("/api/Position/partialCloseContract", {**close, "size": 1}))["errorCode"] == 4
        unknown = {"accountId": 1001, "contractId": "CON.F.US.X.Z26", "size": 1}
        assert (await api.call("/api/Position/partialCloseContract", unknown))["errorCode"] == 3
        assert (await api.call("/api/Position/closeContract", {"accountId": 9, "contractId": MNQ}))["errorCode"] == 1
