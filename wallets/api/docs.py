"""OpenAPI documentation shared by the wallets API views: error responses and examples."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from . import serializers

UNAUTHENTICATED = OpenApiResponse(description="missing_credentials / invalid_credentials")
ADMIN_ONLY = OpenApiResponse(description="wrong_credential_kind: this needs a tenant admin token")
WALLET_NOT_FOUND = OpenApiResponse(
    serializers.ErrorBodySerializer, description="not_found: no such wallet in the token's tenant"
)
HOLD_NOT_FOUND = OpenApiResponse(
    serializers.ErrorBodySerializer, description="not_found: no such hold in the token's tenant"
)
BAD_INPUT = OpenApiResponse(
    serializers.ErrorBodySerializer,
    description="validation_error: a malformed body (a missing field, a JSON float amount, a ttl out of range), with "
    "`field` (the first at fault) and `fields`; invalid_amount: zero, negative, above 10^15 or more than 12 decimal "
    "places, with `field`; invalid_currency: not an active ISO 4217 code (XXX, XTS and made-up codes included), "
    "with `field`; currency_mismatch; malformed_json",
)
TOP_UP_BAD_INPUT = OpenApiResponse(
    serializers.ErrorBodySerializer,
    description=f"{BAD_INPUT.description}; invalid_amount with `minor_unit` and `currency` too: an amount finer "
    "than the wallet currency's minor unit (1.005 USD, 1.5 JPY): money moved in is whole minor units",
)
EXCEEDS_HOLD = OpenApiResponse(
    serializers.HoldCommitConflictBodySerializer,
    description="exceeds_hold: the amount is more than the hold still reserves and allow_over_capture was not true; "
    "nothing was charged; `amount` is the hold's, with `drawn`, `remaining` and `excess` (decimal strings). "
    "hold_committed (another amount) / hold_released / hold_expired, with `hold_status`: the hold is no longer active",
)
EXCEEDS_HOLD_EXAMPLE = OpenApiExample(
    "Commit above the hold",
    value={
        "error": {
            "code": "exceeds_hold",
            "message": "Hold 301 reserved 10 USD; committing 12.5 USD would charge 2.5 USD more than it holds. Send "
            "allow_over_capture: true to charge the excess to the available balance.",
            "field": "amount",
            "amount": "10",
            "drawn": "0",
            "remaining": "10",
            "excess": "2.5",
            "currency": "USD",
        }
    },
    response_only=True,
    status_codes=["409"],
)
INSUFFICIENT_FUNDS = OpenApiResponse(
    serializers.InsufficientFundsBodySerializer,
    description="insufficient_funds: the available balance (seen under the wallet's lock) does not cover the amount; "
    "`available` and `needed` are decimal strings",
)
INSUFFICIENT_FUNDS_EXAMPLE = OpenApiExample(
    "Insufficient funds",
    value={
        "error": {
            "code": "insufficient_funds",
            "message": "The wallet's available balance 4.5 USD does not cover 10 USD.",
            "available": "4.5",
            "needed": "10",
            "currency": "USD",
        }
    },
    response_only=True,
    status_codes=["402"],
)
WALLET_FIGURES_EXAMPLE = {"id": 12, "currency": "USD", "balance": "100", "held": "10", "available": "90"}
HOLD_EXAMPLE = {
    "id": 301,
    "status": "active",
    "amount": "10",
    "drawn": "0",
    "remaining": "10",
    "committed_amount": None,
    "reference": "mcp-session-8c1e",
    "idempotency_key": "session-8c1e-open",
    "expires_at": "2026-11-24T10:15:00Z",
    "created_at": "2026-11-24T10:00:00Z",
    "resolved_at": None,
    "wallet": WALLET_FIGURES_EXAMPLE,
}
COMMITTED_EXAMPLE = {
    **HOLD_EXAMPLE,
    "status": "committed",
    "remaining": "0",
    "committed_amount": "3.25",
    "resolved_at": "2026-11-24T10:04:10Z",
    "wallet": {"id": 12, "currency": "USD", "balance": "96.75", "held": "0", "available": "96.75"},
}
