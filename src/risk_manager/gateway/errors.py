"""Typed errors of the Gateway client, each with a message a trader (or the daemon's log) can act on.

Classification (issue 3 §2): `TransientError` subclasses (network, timeout, 408, 429, 5xx) may be
retried for reads; everything else is permanent. `GatewayRequestError` is a `success:false` answer
and carries the endpoint's named error code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

# Named error codes per endpoint (gateway-protocol.md §2–3).
_LOGIN_CODES = {1: "UserNotFound", 2: "PasswordVerificationFailed", 3: "InvalidCredentials", 4: "AppNotFound",
                5: "AppVerificationFailed", 6: "InvalidDevice", 7: "AgreementsNotSigned", 8: "UnknownError",
                9: "ApiSubscriptionNotFound", 10: "ApiKeyAuthenticationDisabled"}
_CANCEL_CODES = {1: "AccountNotFound", 2: "OrderNotFound", 3: "Rejected", 4: "Pending", 5: "Unknown",
                 6: "AccountRejected"}
_CLOSE_CODES = {1: "AccountNotFound", 2: "PositionNotFound", 3: "ContractNotFound", 4: "ContractNotActive",
                5: "OrderRejected", 6: "OrderPending", 7: "Unknown", 8: "AccountRejected"}
ERROR_CODES: dict[str, dict[int, str]] = {
    "auth/loginkey": _LOGIN_CODES,
    "auth/validate": {1: "InvalidSession", 2: "SessionNotFound", 3: "ExpiredToken"},
    "contract/searchbyid": {1: "ContractNotFound"},
    "history/retrievebars": {1: "ContractNotFound", 2: "InvalidUnit", 3: "InvalidUnitNumber", 4: "InvalidLimit"},
    "order/search": {1: "AccountNotFound"},
    "order/searchopen": {1: "AccountNotFound"},
    "order/searchbyid": {1: "OrderNotFound"},
    "order/place": {1: "AccountNotFound", 2: "OrderRejected", 3: "InsufficientFunds", 4: "AccountViolation",
                    5: "OutsideTradingHours", 6: "OrderPending", 7: "Unknown", 8: "ContractNotFound",
                    9: "ContractNotActive", 10: "AccountRejected"},
    "order/cancel": _CANCEL_CODES,
    "order/modify": {**_CANCEL_CODES, 7: "ContractNotFound"},
    "position/searchopen": {1: "AccountNotFound"},
    "position/closecontract": _CLOSE_CODES,
    "position/partialclosecontract": {1: "AccountNotFound", 2: "PositionNotFound", 3: "ContractNotFound",
                                      4: "ContractNotActive", 5: "InvalidCloseSize", 6: "OrderRejected",
                                      7: "OrderPending", 8: "Unknown", 9: "AccountRejected"},
    "trade/search": {1: "AccountNotFound"},
}


def error_code_name(path: str, code: int) -> str:
    return ERROR_CODES.get(path.lower(), {}).get(code, f"error {code}")


class GatewayError(Exception):
    """Base class of every error raised by `risk_manager.gateway`."""


class GatewayConfigError(GatewayError, ValueError):
    """The gateway sections of config.yaml are invalid; the message names file, key and what is allowed."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: invalid configuration: " + "; ".join(problems))

    @classmethod
    def from_validation(cls, source: str, exc: ValidationError) -> GatewayConfigError:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "<root>"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = "unknown key (check the spelling against docs/gateway-client.md)"
            problems.append(f"{key}: {msg}")
        return cls(source, problems)


class AuthenticationError(GatewayError):
    """Login failed permanently (bad user name / API key, subscription missing...)."""

    def __init__(self, code: int | None, detail: str) -> None:
        self.code = code
        name = f" ({_LOGIN_CODES.get(code, f'error {code}')})" if code else ""
        super().__init__(f"login to the Gateway failed{name}: {detail}; check the user name and API key")


class TransientError(GatewayError):
    """A failure that may succeed when tried again (network, timeout, 408, 429, 5xx)."""

    def __init__(self, path: str, detail: str, sent: bool) -> None:
        self.path = path
        # False only when the request certainly never reached the server (connection refused).
        self.sent = sent
        super().__init__(f"{path}: {detail}")


class TransportError(TransientError):
    """Network failure or timeout."""


class HttpStatusError(TransientError):
    def __init__(self, path: str, status: int) -> None:
        self.status = status
        super().__init__(path, f"HTTP {status} from the Gateway (temporary; retried for reads)", sent=True)


class PermanentHttpError(GatewayError):
    """400/401 after re-login/403/404 and other statuses that will not succeed when repeated."""

    def __init__(self, path: str, status: int, detail: str = "", errors: dict[str, Any] | None = None) -> None:
        self.path = path
        self.status = status
        self.errors = errors or {}
        hint = {400: "the request was malformed", 401: "the token was refused even after a fresh login",
                403: "access denied for this user", 404: "unknown endpoint"}.get(status, "request refused")
        extra = f": {detail}" if detail else ""
        super().__init__(f"{path}: HTTP {status} ({hint}){extra}")


class GatewayRequestError(GatewayError):
    """The Gateway answered `success: false` with an error code (a domain failure, not retried)."""

    def __init__(self, path: str, code: int, message: str | None) -> None:
        self.path = path
        self.code = code
        self.code_name = error_code_name(path, code)
        self.gateway_message = message
        text = f"{path} refused: {self.code_name} (errorCode {code})"
        if message:
            text += f": {message}"
        super().__init__(text)


class CircuitOpenError(GatewayError):
    def __init__(self, retry_in_s: float) -> None:
        self.retry_in_s = retry_in_s
        super().__init__(f"the Gateway is failing repeatedly; calls are paused (circuit open) for another "
                         f"{retry_in_s:.1f} s")


class RateLimitQueueFullError(GatewayError):
    def __init__(self, bucket: str, size: int) -> None:
        self.bucket = bucket
        super().__init__(f"too many Gateway requests waiting for the {bucket} rate limit ({size} queued); "
                         "the request was dropped — slow down or raise errorHandling.rateLimit.queueSize")


class OrderOutcomeUnknownError(GatewayError):
    """A mutating call had an uncertain outcome and the broker could not be asked what happened."""

    def __init__(self, action: str, detail: str) -> None:
        self.action = action
        super().__init__(f"{action}: outcome unknown after a lost response and failed verification ({detail}); "
                         "check the account before acting again")


class TokenStoreError(GatewayError):
    """The encrypted token file could not be read or written (missing key, wrong key, corrupt file)."""


class HubError(GatewayError):
    """A hub connection failed (handshake refused, protocol error, invocation error)."""
