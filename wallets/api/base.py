"""The wallets API under /api/v1/: prepaid wallets, their ledger, escrow holds, low-balance alerts.

One view per route, thin: parse the body with an input serializer, call one `wallets.services`
function, render with an output serializer. The views are by resource: views.py (wallets, their
ledger and alerts) and holds.py (placing, reading, committing and releasing holds); this module
is what they share, the credentials, the error mapping and the tenant-scoped lookups. The rules
that must hold on every endpoint:

- Every read and write is scoped to the credential's tenant (`request.tenant`): another
  tenant's wallet or hold is a 404, exactly like an id that does not exist, never a 403.
- Credentials: a tenant admin token for everything. An ingest token (what API gateways hold)
  may also place, commit, release and read holds and read a wallet (GET /wallets/{id}): a
  gateway places a hold when a metered session starts and commits or releases it at the end.
  Top-ups, adjustments, wallet creation, the ledger and alerts stay admin-only (403
  wrong_credential_kind).
- Every write is idempotent: a top-up or hold placed again with the same idempotency_key
  answers 200 with the first result and changes nothing (201 the first time); a commit of a
  committed hold with the same amount and a release of a released hold answer 200 likewise.
- Money safety: a commit above what the hold still reserves is a 409 exceeds_hold unless the
  body says `"allow_over_capture": true`; top-ups are whole minor units of the wallet's
  currency; currencies are ISO 4217 codes (400 invalid_currency). An adjustment needs its
  `reason` and a debit below zero is a 409 negative_balance_not_allowed unless the body says
  `"allow_negative_balance": true`. The rules are the services'.
- Errors: a `WalletError` from the services becomes the API's error body in one place
  (`_as_api_error`): its code, message and status, `field` when it names one, and its extra
  fields (e.g. 402 insufficient_funds carries `available`, `needed` and `currency`, amounts as
  decimal strings). Body validation errors are 400 validation_error with `fields` and `field`
  (the first field at fault).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import IntegrityError
from django.db.models import QuerySet
from rest_framework import exceptions, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from aforo.parsers import JSONParser
from aforo.exceptions import ApiError
from aforo.money import decimal_text
from catalog.api.serializers import request_tenant
from catalog.auth import IsTenantAdmin
from catalog.models import TenantToken
from wallets import services
from wallets.models import Wallet

# --- credentials and errors --------------------------------------------------------------------


class IsTenantAdminOrIngest(BasePermission):
    """A tenant admin token or a tenant ingest token (the hold routes API gateways call)."""

    kinds = (TenantToken.Kind.ADMIN, TenantToken.Kind.INGEST)

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, TenantToken):
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <token>' with a tenant token.")
        if token.kind not in self.kinds:
            raise ApiError(
                code="wrong_credential_kind",
                message=f"This endpoint needs a tenant admin or ingest token; this one is a {token.kind} token.",
                status_code=403,
            )
        return True


def _wire(value: Any) -> Any:
    return decimal_text(value) if isinstance(value, Decimal) else value


def _as_api_error(exc: Exception) -> Exception:
    """The one mapping of wallet errors to the API's error body."""
    if isinstance(exc, services.WalletError):
        context = {name: _wire(value) for name, value in exc.extra.items()}
        if exc.field:
            context["field"] = exc.field
        return ApiError(code=exc.code, message=exc.message, status_code=exc.status, **context)
    if isinstance(exc, IntegrityError):  # a concurrent write won a uniqueness race the service did not absorb
        return ApiError(
            code="conflict",
            message="A conflicting change was committed concurrently; read the current state and retry.",
            status_code=status.HTTP_409_CONFLICT,
        )
    return exc


class WalletApiMixin:
    """JSON bodies only (a JSON float must reach the money fields as a float, to be refused), the
    admin token by default, and the error mapping."""

    parser_classes = [JSONParser]
    permission_classes = [IsTenantAdmin]

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(_as_api_error(exc))  # type: ignore[misc]
        error = response.data.get("error") if isinstance(response.data, dict) else None
        if isinstance(error, dict) and isinstance(error.get("fields"), dict) and "field" not in error:
            error["field"] = next(iter(error["fields"]), None)
        return response


# --- tenant-scoped lookups ---------------------------------------------------------------------


def not_found(what: str, row_id: int) -> ApiError:
    return ApiError(code="not_found", message=f"No {what} {row_id} in this tenant.", status_code=404)


def tenant_wallets(request) -> QuerySet[Wallet]:
    tenant = request_tenant(request)
    return Wallet.objects.filter(tenant=tenant) if tenant is not None else Wallet.objects.none()


def tenant_wallet(request, wallet_id: int) -> Wallet:
    wallet = tenant_wallets(request).filter(pk=wallet_id).first()
    if wallet is None:
        raise not_found("wallet", wallet_id)
    return wallet


def wallet_currency_check(request, wallet_id: int, currency: str | None) -> None:
    """A write that names a currency must name its wallet's (a wallet's currency never changes)."""
    if currency is None:
        return
    wallet = tenant_wallet(request, wallet_id)
    if wallet.currency != currency:
        raise ApiError(
            code="currency_mismatch",
            message=f"Wallet {wallet.pk} holds {wallet.currency}, not {currency}.",
            field="currency",
            wallet_currency=wallet.currency,
        )
