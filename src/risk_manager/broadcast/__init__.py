"""The broadcast channel between the daemon and dashboards (docs/dashboard.md).

Daemon side (a few lines of wiring)::

    from risk_manager.broadcast import BroadcastServer, account_snapshot, build_snapshot, ActionEntry, AlertEntry

    server = BroadcastServer("127.0.0.1", 8765, token_file=data_dir / "dashboard.token")
    await server.start()                     # creates the token file (0600) when missing
    server.publish(build_snapshot(
        [account_snapshot(engine.status(aid), connection_state(hub.state.value), fresh, last_event_at,
                          orders, recent_actions, recent_alerts, clock.now()) for aid in accounts],
        at=clock.now(), daemon={"state": "fresh"}))   # sync, O(clients); diffs computed here
    await server.aclose()

Client side: `SnapshotFeed.connect(url, token)` / `fetch_snapshot(url, token)`; `read_token_file(path)`.
"""

from risk_manager.broadcast.client import DEFAULT_URL, SnapshotFeed, fetch_snapshot
from risk_manager.broadcast.errors import (
    AuthRefusedError,
    BroadcastBindError,
    BroadcastError,
    DaemonUnreachableError,
    ProtocolError,
    TokenFileError,
)
from risk_manager.broadcast.schema import (
    SCHEMA_VERSION,
    AccountSnapshot,
    ActionEntry,
    AlertEntry,
    RecentActivity,
    Snapshot,
    account_snapshot,
    build_snapshot,
    connection_state,
    json_schema,
)
from risk_manager.broadcast.server import (
    DEFAULT_PORT,
    TOKEN_FILE_NAME,
    BroadcastServer,
    default_token_file,
    ensure_token_file,
    read_token_file,
)

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "SCHEMA_VERSION",
    "TOKEN_FILE_NAME",
    "AccountSnapshot",
    "ActionEntry",
    "AlertEntry",
    "AuthRefusedError",
    "BroadcastBindError",
    "BroadcastError",
    "BroadcastServer",
    "DaemonUnreachableError",
    "ProtocolError",
    "RecentActivity",
    "Snapshot",
    "SnapshotFeed",
    "TokenFileError",
    "account_snapshot",
    "build_snapshot",
    "connection_state",
    "default_token_file",
    "ensure_token_file",
    "fetch_snapshot",
    "json_schema",
    "read_token_file",
]
