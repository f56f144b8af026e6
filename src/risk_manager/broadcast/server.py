"""The daemon's broadcast channel for dashboards: WebSocket on loopback, token-authenticated.

Protocol v1 (docs/dashboard.md):

* client → server, first message within `AUTH_TIMEOUT_S`: `{"v": 1, "type": "hello", "token": "<hex>"}`
  (a wrong or missing token: an `error` message, then close code 4401);
* server → client: `{"v": 1, "type": "snapshot", "seq": n, ...Snapshot}` on connect, then
  `{"v": 1, "type": "diff", "seq": n+1, "at": ..., "accounts": {id: whole account}, "removed": [id],
  "daemon": {...} (only when changed)}` — an account that changed is sent whole (replacement, no
  field-level patch); `seq` grows by one per message, so a client that sees a gap reconnects.

`publish()` is synchronous and O(clients): it diffs against the last snapshot, serialises once and
puts the text on each client's bounded queue. A client whose queue is full (it reads slower than the
daemon publishes, or not at all) is dropped with a log line (close code 1013); the publisher never
waits for a client.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from risk_manager.broadcast.errors import BroadcastBindError, TokenFileError
from risk_manager.broadcast.schema import SCHEMA_VERSION
from risk_manager.logs import log_event
from risk_manager.service.paths import ServiceMode, data_dir

log = logging.getLogger("risk_manager.broadcast")

DEFAULT_PORT = 8765
AUTH_TIMEOUT_S = 5.0
QUEUE_SIZE = 256          # messages a client may lag behind before it is dropped
CLOSE_AUTH = 4401         # wrong/missing token (application close code)
CLOSE_TOO_SLOW = 1013     # "try again later": the client could not keep up
TOKEN_BYTES = 32
TOKEN_FILE_NAME = "dashboard.token"


def default_token_file() -> Path:
    """`<data dir>/dashboard.token`: the user service's data dir, else the system service's if its file exists."""
    user = data_dir(ServiceMode.USER) / TOKEN_FILE_NAME
    system = data_dir(ServiceMode.SYSTEM) / TOKEN_FILE_NAME
    return system if not user.exists() and system.exists() else user


def ensure_token_file(path: Path, mode: int = 0o600) -> str:
    """The token in `path`, created (32 random bytes, hex) with `mode` when missing.

    `mode` 0o640 lets the file's group read it (a system service with the trader in its group);
    an existing file readable by others is refused: anyone on the machine could watch the accounts.
    """
    path = path.expanduser()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(TOKEN_BYTES)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:  # another process created it first: use theirs
            return read_token_file(path)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(token + "\n")
        if sys.platform != "win32":
            os.chmod(path, mode)  # the umask may have removed bits from `mode`
        log_event(log, "broadcast_token_created", path=str(path), mode=oct(mode))
        return token
    return read_token_file(path)


def read_token_file(path: Path) -> str:
    """The token in `path`; `TokenFileError` saying what to do when it is missing, empty or too open."""
    path = path.expanduser()
    try:
        if sys.platform != "win32" and stat.S_IMODE(path.stat().st_mode) & 0o007:
            raise TokenFileError(f"token file {path} is readable by other users: run `chmod 600 {path}` "
                                 "(or 640 with the trader's group)")
        token = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise TokenFileError(f"token file {path} does not exist: start the daemon once (it creates it) "
                             "or pass --token-file") from None
    except PermissionError:
        raise TokenFileError(f"token file {path} is not readable by this user: ask the admin to add you to "
                             "its group (mode 640)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"token file {path} cannot be read: {exc}") from exc
    if not token:
        raise TokenFileError(f"token file {path} is empty: delete it and restart the daemon to create a new one")
    return token


@dataclass(eq=False, slots=True)
class _Client:
    ws: ServerConnection
    peer: str
    queue: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    writer: asyncio.Task[None] | None = None
    close_code: int = 1000
    close_reason: str = ""


class BroadcastServer:
    """`BroadcastServer(host, port, token_file)`; `await start()`; `publish(snapshot)`; `await aclose()`.

    `snapshot` is what `risk_manager.broadcast.schema.build_snapshot` returns. `port=0` takes an
    ephemeral port (read `.port` after `start()`). Only loopback addresses are accepted for `host`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, *, token_file: Path,
                 token_mode: int = 0o600, queue_size: int = QUEUE_SIZE) -> None:
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise BroadcastBindError(f"broadcast host {host!r} refused: the dashboard channel listens on loopback "
                                     "only (127.0.0.1 or ::1); use an SSH tunnel to watch from another machine")
        if not 0 <= port <= 65535:
            raise BroadcastBindError(f"broadcast port {port} is out of range 0-65535")
        self.host = host
        self._port = port
        self.token_file = token_file
        self._token_mode = token_mode
        self._queue_size = queue_size
        self._token = ""
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._last: dict[str, Any] | None = None
        self._seq = 0
        self.dropped = 0  # clients dropped for being too slow (since start)

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self._port}"

    @property
    def clients(self) -> int:
        """Authenticated clients currently connected."""
        return len(self._clients)

    async def start(self) -> None:
        self._token = ensure_token_file(self.token_file, self._token_mode)
        try:
            self._server = await serve(self._handle, self.host, self._port, max_size=4096, max_queue=4,
                                       compression=None)
        except OSError as exc:
            raise BroadcastBindError(f"cannot listen on {self.host}:{self._port} for dashboards: {exc.strerror}; "
                                     "another daemon may be running, or choose another port") from exc
        self._port = next(iter(self._server.sockets)).getsockname()[1]
        log_event(log, "broadcast_listening", url=self.url, token_file=str(self.token_file))

    async def aclose(self) -> None:
        if self._server is None:
            return
        for client in list(self._clients):
            self._drop(client, 1001, "daemon stopping", quiet=True)
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        log_event(log, "broadcast_closed")

    # --- publishing ------------------------------------------------------------------------------

    def publish(self, snapshot: dict[str, Any]) -> None:
        """Send what changed since the last snapshot to every client. Sync, never waits for a client.

        The server keeps `snapshot` to diff the next one against: pass a new dict each time (as
        `build_snapshot` makes), never one mutated after publishing.
        """
        previous, self._last = self._last, snapshot
        message = {"type": "diff", **snapshot, "removed": []} if previous is None else _diff(previous, snapshot)
        if message is None:
            return
        self._seq += 1
        message["v"] = SCHEMA_VERSION
        message["seq"] = self._seq
        text = json.dumps(message, separators=(",", ":"))
        for client in list(self._clients):
            try:
                client.queue.put_nowait(text)
            except asyncio.QueueFull:
                self._drop(client, CLOSE_TOO_SLOW, f"client fell {self._queue_size} messages behind")

    def _full_message(self) -> str:
        snapshot = self._last or {"at": None, "source": "daemon", "daemon": None, "accounts": {}}
        return json.dumps({**snapshot, "v": SCHEMA_VERSION, "type": "snapshot", "seq": self._seq},
                          separators=(",", ":"))

    def _drop(self, client: _Client, code: int, reason: str, *, quiet: bool = False) -> None:
        if client not in self._clients:
            return
        self._clients.discard(client)
        client.close_code, client.close_reason = code, reason
        if code == CLOSE_TOO_SLOW:
            self.dropped += 1
        if not quiet:
            log_event(log, "broadcast_client_dropped", logging.WARNING, peer=client.peer, reason=reason,
                      clients=len(self._clients))
        if client.writer is not None:
            client.writer.cancel()

    # --- one connection --------------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        peer = "{}:{}".format(*ws.remote_address[:2]) if ws.remote_address else "?"
        if not await self._authenticate(ws, peer):
            return
        client = _Client(ws, peer, asyncio.Queue(self._queue_size))
        client.queue.put_nowait(self._full_message())
        self._clients.add(client)  # no await since the snapshot was queued: no diff can be missed
        log_event(log, "broadcast_client_connected", peer=peer, clients=len(self._clients))
        client.writer = asyncio.get_running_loop().create_task(self._write(client), name=f"broadcast-{peer}")
        reader = asyncio.get_running_loop().create_task(self._ignore_input(ws), name=f"broadcast-in-{peer}")
        try:
            await asyncio.wait({client.writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            reader.cancel()
            if client in self._clients:  # the client went away by itself
                self._clients.discard(client)
                log_event(log, "broadcast_client_disconnected", peer=peer, clients=len(self._clients))
            client.writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await client.writer
            await ws.close(client.close_code, client.close_reason)

    async def _authenticate(self, ws: ServerConnection, peer: str) -> bool:
        problem: str | None = None
        try:
            raw = await asyncio.wait_for(ws.recv(), AUTH_TIMEOUT_S)
            hello = json.loads(raw)
            token = hello.get("token") if isinstance(hello, dict) and hello.get("type") == "hello" else None
            if not isinstance(token, str):
                problem = 'the first message must be {"v": 1, "type": "hello", "token": "..."}'
            elif not hmac.compare_digest(token.encode(), self._token.encode()):
                problem = "wrong token: read it from the daemon's token file"
        except TimeoutError:
            problem = f"no hello within {AUTH_TIMEOUT_S:g} s"
        except ConnectionClosed:
            return False
        except (ValueError, UnicodeDecodeError):
            problem = "the first message is not JSON"
        if problem is None:
            return True
        log_event(log, "broadcast_auth_refused", logging.WARNING, peer=peer, reason=problem)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(json.dumps({"v": SCHEMA_VERSION, "type": "error", "code": "auth", "message": problem}))
        await ws.close(CLOSE_AUTH, "authentication failed")
        return False

    @staticmethod
    async def _write(client: _Client) -> None:
        try:
            while True:
                await client.ws.send(await client.queue.get())
        except ConnectionClosed:
            return

    @staticmethod
    async def _ignore_input(ws: ServerConnection) -> None:
        # Reading keeps pings/close frames flowing; clients have nothing to say after hello.
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass


def _diff(previous: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
    """The diff message from `previous` to `current` (None when only nothing changed)."""
    old, new = previous.get("accounts", {}), current.get("accounts", {})
    changed = {aid: acct for aid, acct in new.items() if old.get(aid) != acct}
    removed = [aid for aid in old if aid not in new]
    message: dict[str, Any] = {"type": "diff", "at": current.get("at"), "source": current.get("source", "daemon"),
                               "accounts": changed, "removed": removed}
    if current.get("daemon") != previous.get("daemon"):
        message["daemon"] = current.get("daemon")
    if not changed and not removed and "daemon" not in message and current.get("at") == previous.get("at"):
        return None
    return message
