"""A metered session: an escrow hold on a prepaid wallet for the session's worst case, the
actual amount committed at the end (the rest released), everything released on an error.

    with client.metered_session(wallet_id=7, amount="10") as session:
        session.record(metric="tool_calls", api_key=key)   # tagged session_id=<hold reference>
        ...
        session.actual = Decimal("3.25")                     # committed on a clean exit

Aforo's rated events carrying the hold's reference as the `session_id` dimension draw from the
hold first; `commit(amount)` charges `amount` on top of what they drew.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from .events import Quantity, quantity_text, uuid7
from .transport import HttpTransport, Response

if TYPE_CHECKING:
    from .client import Client


class HoldError(RuntimeError):
    """Aforo refused a hold operation (e.g. 402 insufficient_funds when the hold is placed)."""

    def __init__(self, operation: str, answer: Response) -> None:
        self.status = answer.status
        self.code = answer.error_code
        self.body = answer.json()
        super().__init__(f"hold {operation}: HTTP {answer.status} {self.code or answer.body[:200]!r}")


class MeteredSession:
    def __init__(self, client: Client, transport: HttpTransport, *, wallet_id: int, amount: Quantity,
                 ttl_seconds: int = 900, reference: str | None = None, currency: str | None = None) -> None:
        self._client = client
        self._transport = transport
        self.wallet_id = wallet_id
        self.amount = quantity_text(amount)
        self.ttl_seconds = ttl_seconds
        self.reference = reference or f"session-{uuid7()}"
        self.currency = currency
        self.actual: Quantity = 0  # what a clean exit commits
        self.hold: dict[str, Any] | None = None  # Aforo's hold, as last answered
        self.status = "new"  # new → active → committed | released

    @property
    def hold_id(self) -> int:
        if self.hold is None:
            raise RuntimeError("the session has no hold yet")
        return int(self.hold["id"])

    def open(self) -> MeteredSession:
        """Place the hold (idempotent: the key is derived from the reference, so a retry after
        a lost answer returns the same hold)."""
        payload: dict[str, Any] = {"amount": self.amount, "ttl_seconds": self.ttl_seconds, "reference": self.reference,
                                   "idempotency_key": f"{self.reference}:open"}
        if self.currency:
            payload["currency"] = self.currency
        answer = self._transport.request_json("POST", f"/api/v1/wallets/{self.wallet_id}/holds", payload)
        if answer.status not in (200, 201):
            raise HoldError("place", answer)
        self.hold, self.status = answer.json(), "active"
        return self

    def record(self, *, metric: str, quantity: Quantity = 1, dimensions: dict[str, str] | None = None,
               **subject_and_rest: Any) -> str:
        """Record an event drawn from this session's hold (its `session_id` dimension)."""
        return self._client.record(metric=metric, quantity=quantity,
                                   dimensions={**(dimensions or {}), "session_id": self.reference}, **subject_and_rest)

    def commit(self, amount: Quantity | None = None) -> dict[str, Any]:
        """Charge `amount` (default: `self.actual`) on top of what the session's events drew;
        the rest of the hold is released."""
        text = quantity_text(self.actual if amount is None else amount)
        answer = self._transport.request_json("POST", f"/api/v1/holds/{self.hold_id}/commit", {"amount": text})
        if answer.status != 200:  # a retried commit of the same amount answers 200 (Aforo is idempotent)
            raise HoldError("commit", answer)
        self.hold, self.status = answer.json(), "committed"
        return self.hold or {}

    def release(self) -> dict[str, Any]:
        """Give the whole hold back (nothing charged beyond what events already drew)."""
        answer = self._transport.request_json("POST", f"/api/v1/holds/{self.hold_id}/release", {})
        if answer.status != 200:
            raise HoldError("release", answer)
        self.hold, self.status = answer.json(), "released"
        return self.hold or {}

    def __enter__(self) -> MeteredSession:
        return self.open()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.status != "active":
            return  # committed or released explicitly inside the block
        if exc_type is None:
            self.commit()
        else:
            self.release()
