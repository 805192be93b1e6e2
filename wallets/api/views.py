"""The wallets API under /api/v1/: prepaid wallets, their ledger, escrow holds, low-balance alerts.

One view per route, thin: parse the body with an input serializer, call one `wallets.services`
function, render with an output serializer. The rules that must hold on every endpoint:

- Every read and write is scoped to the credential's tenant (`request.tenant`): another
  tenant's wallet or hold is a 404, exactly like an id that does not exist, never a 403.
- Credentials: a tenant admin token for everything. An ingest token (what API gateways hold)
  may also place, commit, release and read holds and read a wallet (GET /wallets/{id}): a
  gateway places a hold when a metered session starts and commits or releases it at the end.
  Top-ups, wallet creation, the ledger and alerts stay admin-only (403 wrong_credential_kind).
- Every write is idempotent: a top-up or hold placed again with the same idempotency_key
  answers 200 with the first result and changes nothing (201 the first time); a commit of a
  committed hold with the same amount and a release of a released hold answer 200 likewise.
- Money safety: a commit above what the hold still reserves is a 409 exceeds_hold unless the
  body says `"allow_over_capture": true`; top-ups are whole minor units of the wallet's
  currency; currencies are ISO 4217 codes (400 invalid_currency). The rules are the services'.
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
from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.parsers import JSONParser
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.exceptions import ApiError
from aforo.money import currency_is_valid
from aforo.pagination import BoundedLimitOffsetPagination
from aforo.params import query_int
from aforo.money import decimal_text
from catalog.api.serializers import invalid_currency_error, request_tenant
from catalog.auth import IsTenantAdmin
from catalog.models import TenantToken
from wallets import holds, services
from wallets.models import Hold, LowBalanceAlert, Wallet, WalletEntry

from . import docs
from . import serializers as wallet_serializers

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


def _not_found(what: str, row_id: int) -> ApiError:
    return ApiError(code="not_found", message=f"No {what} {row_id} in this tenant.", status_code=404)


def _tenant_wallets(request) -> QuerySet[Wallet]:
    tenant = request_tenant(request)
    return Wallet.objects.filter(tenant=tenant) if tenant is not None else Wallet.objects.none()


def _wallet(request, wallet_id: int) -> Wallet:
    wallet = _tenant_wallets(request).filter(pk=wallet_id).first()
    if wallet is None:
        raise _not_found("wallet", wallet_id)
    return wallet


def _check_currency(request, wallet_id: int, currency: str | None) -> None:
    """A write that names a currency must name its wallet's (a wallet's currency never changes)."""
    if currency is None:
        return
    wallet = _wallet(request, wallet_id)
    if wallet.currency != currency:
        raise ApiError(
            code="currency_mismatch",
            message=f"Wallet {wallet.pk} holds {wallet.currency}, not {currency}.",
            field="currency",
            wallet_currency=wallet.currency,
        )


def _hold_response(hold: Hold, *, created: bool = False) -> Response:
    hold.wallet = Wallet.objects.get(pk=hold.wallet_id)  # the figures now, after the write committed
    return Response(
        wallet_serializers.HoldSerializer(hold).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
    )


# --- wallets -----------------------------------------------------------------------------------


class WalletListCreateView(WalletApiMixin, ListAPIView):
    serializer_class = wallet_serializers.WalletSerializer

    def get_queryset(self) -> QuerySet[Wallet]:
        queryset = _tenant_wallets(self.request).order_by("id")
        customer = query_int(self.request, "customer")
        if customer is not None:
            queryset = queryset.filter(customer_id=customer)
        currency = self.request.query_params.get("currency")
        if currency not in (None, ""):
            if not currency_is_valid(currency.strip().upper()):
                raise invalid_currency_error(currency, "currency")
            queryset = queryset.filter(currency=currency.strip().upper())
        return queryset

    @extend_schema(
        operation_id="wallets_list",
        summary="List wallets",
        tags=["wallets"],
        parameters=[
            OpenApiParameter("customer", OpenApiTypes.INT, description="Only this customer's wallets."),
            OpenApiParameter("currency", OpenApiTypes.STR, description="Only wallets in this currency (ISO 4217)."),
        ],
        responses={200: wallet_serializers.WalletSerializer(many=True), 401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        operation_id="wallets_create",
        summary="Create a customer's wallet",
        description="One wallet per customer and currency; it starts empty. Low-balance thresholds are available-"
        "balance levels: each time the available balance falls below one, a low-balance alert is recorded.",
        tags=["wallets"],
        request=wallet_serializers.WalletCreateInputSerializer,
        responses={
            201: wallet_serializers.WalletSerializer,
            400: docs.BAD_INPUT,
            401: docs.UNAUTHENTICATED,
            403: docs.ADMIN_ONLY,
            409: OpenApiResponse(
                wallet_serializers.ErrorBodySerializer,
                description="wallet_exists: the customer already has a wallet in this currency (its id in `wallet_id`)",
            ),
        },
        examples=[
            OpenApiExample(
                "A USD wallet with two alert levels",
                value={"customer": 42, "currency": "USD", "low_balance_thresholds": ["100", "10"]},
                request_only=True,
            )
        ],
    )
    def post(self, request):
        body = wallet_serializers.WalletCreateInputSerializer(data=request.data, context={"request": request})
        body.is_valid(raise_exception=True)
        wallet = services.wallet_create(**body.validated_data)
        return Response(wallet_serializers.WalletSerializer(wallet).data, status=status.HTTP_201_CREATED)


class WalletDetailView(WalletApiMixin, APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="wallets_retrieve",
        summary="A wallet: balance, held, available and its active holds",
        description="Admin or ingest token. `available` = balance − held; the active holds are what `held` reserves.",
        tags=["wallets"],
        responses={200: wallet_serializers.WalletDetailSerializer, 401: docs.UNAUTHENTICATED, 404: docs.WALLET_NOT_FOUND},
    )
    def get(self, request, wallet_id: int):
        active = Prefetch(
            "holds", queryset=Hold.objects.filter(status=Hold.Status.ACTIVE).order_by("id"), to_attr="active_holds"
        )
        wallet = _tenant_wallets(request).prefetch_related(active).filter(pk=wallet_id).first()
        if wallet is None:
            raise _not_found("wallet", wallet_id)
        return Response(wallet_serializers.WalletDetailSerializer(wallet).data)


class WalletTopUpView(WalletApiMixin, APIView):
    @extend_schema(
        operation_id="wallets_top_up",
        summary="Top up a wallet",
        description="Adds `amount` to the balance as one ledger entry. The amount is whole minor units of the "
        "wallet's currency (0.01 USD, 1 JPY, 0.001 KWD): a finer one is a 400 invalid_amount naming `minor_unit`. 201 "
        "with the entry and the wallet's figures; a retry with the same idempotency_key answers 200 with the same "
        "entry and changes nothing; the same key with another amount is a 409 idempotency_key_reused.",
        tags=["wallets"],
        request=wallet_serializers.TopUpInputSerializer,
        responses={
            201: wallet_serializers.TopUpResultSerializer,
            200: OpenApiResponse(wallet_serializers.TopUpResultSerializer, description="A retry: the first top-up"),
            400: docs.TOP_UP_BAD_INPUT,
            401: docs.UNAUTHENTICATED,
            403: docs.ADMIN_ONLY,
            404: docs.WALLET_NOT_FOUND,
            409: OpenApiResponse(wallet_serializers.ErrorBodySerializer, description="idempotency_key_reused"),
        },
        examples=[
            OpenApiExample(
                "Top up 100 USD",
                value={
                    "amount": "100", "idempotency_key": "payment-pi_3Nf", "reference": "stripe pi_3Nf",
                    "currency": "USD",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request, wallet_id: int):
        body = wallet_serializers.TopUpInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        _check_currency(request, wallet_id, data.get("currency"))
        entry, created = services.wallet_top_up(
            tenant_id=request.tenant.id, wallet_id=wallet_id, amount=data["amount"],
            idempotency_key=data["idempotency_key"], reference=data["reference"],
        )
        return Response(
            wallet_serializers.TopUpResultSerializer(entry).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class WalletHoldPlaceView(WalletApiMixin, APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="holds_place",
        summary="Place a hold (reserve part of the available balance)",
        description=(
            "Admin or ingest token (API gateways place a hold when a metered session starts). Reserves `amount` of "
            "the available balance until now + ttl_seconds, checked under the wallet's row lock, so concurrent "
            "holds never reserve more than the wallet has. 201 with the hold and the wallet's figures; a retry with "
            "the same idempotency_key answers 200 with the hold as it is now; the same key with another amount or "
            "reference is a 409 idempotency_key_reused. 402 insufficient_funds when the available balance is less "
            "than the amount. Rated events whose session_id dimension equals `reference` draw from the hold first. "
            "An uncommitted hold expires after its TTL and its amount is available again."
        ),
        tags=["holds"],
        request=wallet_serializers.HoldPlaceInputSerializer,
        responses={
            201: wallet_serializers.HoldSerializer,
            200: OpenApiResponse(
                wallet_serializers.HoldSerializer, description="A retry: the first hold, as it is now"
            ),
            400: docs.BAD_INPUT,
            401: docs.UNAUTHENTICATED,
            402: docs.INSUFFICIENT_FUNDS,
            404: docs.WALLET_NOT_FOUND,
            409: OpenApiResponse(wallet_serializers.ErrorBodySerializer, description="idempotency_key_reused"),
        },
        examples=[
            OpenApiExample(
                "Reserve 10 USD for an MCP session",
                value={"amount": "10", "ttl_seconds": 900, "reference": "mcp-session-8c1e",
                       "idempotency_key": "session-8c1e-open"},
                request_only=True,
            ),
            OpenApiExample("Hold placed", value=docs.HOLD_EXAMPLE, response_only=True, status_codes=["201"]),
            docs.INSUFFICIENT_FUNDS_EXAMPLE,
        ],
    )
    def post(self, request, wallet_id: int):
        body = wallet_serializers.HoldPlaceInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        _check_currency(request, wallet_id, data.get("currency"))
        hold, created = holds.hold_place(
            tenant_id=request.tenant.id, wallet_id=wallet_id, amount=data["amount"], ttl_seconds=data["ttl_seconds"],
            reference=data["reference"], idempotency_key=data["idempotency_key"],
        )
        return _hold_response(hold, created=created)


class LedgerPagination(CursorPagination):
    """Newest first, by cursor: real-time debits keep adding entries at the head of the ledger,
    which would shift offset pages under a reader (entries seen twice); a cursor does not."""

    ordering = "-id"
    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 1000


class WalletLedgerView(WalletApiMixin, ListAPIView):
    serializer_class = wallet_serializers.WalletEntrySerializer
    pagination_class = LedgerPagination

    def get_queryset(self) -> QuerySet[WalletEntry]:
        if getattr(self, "swagger_fake_view", False):
            return WalletEntry.objects.none()
        wallet = _wallet(self.request, self.kwargs["wallet_id"])
        return WalletEntry.objects.filter(wallet=wallet)

    @extend_schema(
        operation_id="wallets_ledger",
        summary="A wallet's ledger, newest first",
        description="Append-only: one entry per change (top_up, debit, hold, hold_commit, hold_release, hold_expiry, "
        "adjustment). The balance is the sum of `amount`, the held amount the sum of `held_change`. Paginated by "
        "cursor: follow `next`.",
        tags=["wallets"],
        responses={
            200: wallet_serializers.WalletEntrySerializer(many=True), 401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY, 404: docs.WALLET_NOT_FOUND,
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class WalletAlertListView(WalletApiMixin, ListAPIView):
    serializer_class = wallet_serializers.LowBalanceAlertSerializer
    pagination_class = BoundedLimitOffsetPagination

    def get_queryset(self) -> QuerySet[LowBalanceAlert]:
        if getattr(self, "swagger_fake_view", False):
            return LowBalanceAlert.objects.none()
        wallet = _wallet(self.request, self.kwargs["wallet_id"])
        return LowBalanceAlert.objects.filter(wallet=wallet).order_by("-id")

    @extend_schema(
        operation_id="wallets_alerts",
        summary="A wallet's low-balance alerts, newest first",
        description="One per crossing: the available balance fell below `threshold` with the ledger entry `entry`.",
        tags=["wallets"],
        responses={
            200: wallet_serializers.LowBalanceAlertSerializer(many=True), 401: docs.UNAUTHENTICATED, 403: docs.ADMIN_ONLY, 404: docs.WALLET_NOT_FOUND,
        },
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


# --- holds -------------------------------------------------------------------------------------


class HoldDetailView(WalletApiMixin, APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="holds_retrieve",
        summary="A hold, with its wallet's figures",
        description="Admin or ingest token.",
        tags=["holds"],
        responses={200: wallet_serializers.HoldSerializer, 401: docs.UNAUTHENTICATED, 404: docs.HOLD_NOT_FOUND},
    )
    def get(self, request, hold_id: int):
        tenant = request_tenant(request)
        hold = Hold.objects.filter(tenant=tenant, pk=hold_id).first()
        if hold is None:
            raise _not_found("hold", hold_id)
        return _hold_response(hold)


class HoldCommitView(WalletApiMixin, APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="holds_commit",
        summary="Commit a hold: charge the actual amount, release the rest",
        description=(
            "Admin or ingest token. Charges `amount` (on top of what the session's rated events already drew from "
            "the hold; exact, not rounded to the minor unit) as one ledger entry traceable to the hold, and releases "
            "what is left of the reservation. An amount above what the hold still reserves is refused with 409 "
            "exceeds_hold (the hold's `amount` in the error, nothing charged) unless the body says "
            '"allow_over_capture": true; then the excess is charged to the available balance, or refused with 402 '
            "insufficient_funds when that does not cover it. A retry with the same amount answers 200 with the same "
            "result and charges nothing. 409 hold_released / hold_expired / hold_committed (another amount) when the "
            "hold is no longer active; a hold past its TTL is expired by this call."
        ),
        tags=["holds"],
        request=wallet_serializers.HoldCommitInputSerializer,
        responses={
            200: wallet_serializers.HoldSerializer,
            400: docs.BAD_INPUT,
            401: docs.UNAUTHENTICATED,
            402: docs.INSUFFICIENT_FUNDS,
            404: docs.HOLD_NOT_FOUND,
            409: docs.EXCEEDS_HOLD,
        },
        examples=[
            OpenApiExample("Charge 3.25 of a 10 hold", value={"amount": "3.25"}, request_only=True),
            OpenApiExample(
                "Charge 12.5 on a 10 hold, the excess from the balance",
                value={"amount": "12.5", "allow_over_capture": True},
                request_only=True,
            ),
            OpenApiExample("Hold committed", value=docs.COMMITTED_EXAMPLE, response_only=True, status_codes=["200"]),
            docs.EXCEEDS_HOLD_EXAMPLE,
            docs.INSUFFICIENT_FUNDS_EXAMPLE,
        ],
    )
    def post(self, request, hold_id: int):
        body = wallet_serializers.HoldCommitInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        hold, _ = holds.hold_commit(
            tenant_id=request.tenant.id, hold_id=hold_id, amount=data["amount"],
            allow_over_capture=data["allow_over_capture"],
        )
        return _hold_response(hold)


class HoldReleaseView(WalletApiMixin, APIView):
    permission_classes = [IsTenantAdminOrIngest]

    @extend_schema(
        operation_id="holds_release",
        summary="Release a hold, charging nothing",
        description="Admin or ingest token. Gives the rest of the reservation back to the available balance. A retry "
        "answers 200 with the same result. 409 hold_committed / hold_expired when the hold is no longer active.",
        tags=["holds"],
        request=None,
        responses={
            200: wallet_serializers.HoldSerializer,
            401: docs.UNAUTHENTICATED,
            404: docs.HOLD_NOT_FOUND,
            409: OpenApiResponse(
                wallet_serializers.ErrorBodySerializer, description="hold_committed / hold_expired, with `hold_status`"
            ),
        },
    )
    def post(self, request, hold_id: int):
        hold, _ = holds.hold_release(tenant_id=request.tenant.id, hold_id=hold_id)
        return _hold_response(hold)
