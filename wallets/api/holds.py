"""The holds routes of the wallets API: place a hold on a wallet, read it, commit it (charge the
actual amount, release the rest) or release it. An ingest token may call all of them: an API
gateway places a hold when a metered session starts and commits or releases it at the end. The
rules every route keeps (tenant scoping, idempotency, money safety, the error body) are in
base.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from catalog.api.serializers import request_tenant
from wallets import holds as hold_services
from wallets.models import Hold, Wallet

from . import docs
from . import serializers as wallet_serializers
from .base import IsTenantAdminOrIngest, WalletApiMixin, not_found, wallet_currency_check


def _hold_response(hold: Hold, *, created: bool = False) -> Response:
    hold.wallet = Wallet.objects.get(pk=hold.wallet_id)  # the figures now, after the write committed
    return Response(
        wallet_serializers.HoldSerializer(hold).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
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
        wallet_currency_check(request, wallet_id, data.get("currency"))
        hold, created = hold_services.hold_place(
            tenant_id=request.tenant.id, wallet_id=wallet_id, amount=data["amount"], ttl_seconds=data["ttl_seconds"],
            reference=data["reference"], idempotency_key=data["idempotency_key"],
        )
        return _hold_response(hold, created=created)


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
            raise not_found("hold", hold_id)
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
        hold, _ = hold_services.hold_commit(
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
        hold, _ = hold_services.hold_release(tenant_id=request.tenant.id, hold_id=hold_id)
        return _hold_response(hold)
