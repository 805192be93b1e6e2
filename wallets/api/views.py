"""The wallets routes of the wallets API: create and list wallets, read one (with its active
holds), top it up, and read its ledger and low-balance alerts. The rules every route keeps
(tenant scoping, credentials, idempotency, money safety, the error body) are in base.py."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from aforo.money import currency_is_valid
from aforo.pagination import BoundedLimitOffsetPagination
from aforo.params import query_int
from catalog.api.serializers import invalid_currency_error
from wallets import services
from wallets.models import Hold, LowBalanceAlert, Wallet, WalletEntry

from . import docs
from . import serializers as wallet_serializers
from .base import IsTenantAdminOrIngest, WalletApiMixin, not_found, tenant_wallet, tenant_wallets, wallet_currency_check


class WalletListCreateView(WalletApiMixin, ListAPIView):
    serializer_class = wallet_serializers.WalletSerializer

    def get_queryset(self) -> QuerySet[Wallet]:
        queryset = tenant_wallets(self.request).order_by("id")
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
        wallet = tenant_wallets(request).prefetch_related(active).filter(pk=wallet_id).first()
        if wallet is None:
            raise not_found("wallet", wallet_id)
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
        wallet_currency_check(request, wallet_id, data.get("currency"))
        entry, created = services.wallet_top_up(
            tenant_id=request.tenant.id, wallet_id=wallet_id, amount=data["amount"],
            idempotency_key=data["idempotency_key"], reference=data["reference"],
        )
        return Response(
            wallet_serializers.TopUpResultSerializer(entry).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class WalletAdjustmentView(WalletApiMixin, APIView):
    @extend_schema(
        operation_id="wallets_adjust",
        summary="Adjust a wallet (an operator's correction)",
        description="Moves the balance by `amount` (negative debits) as one ledger entry of kind adjustment, with the "
        "required `reason` stored on it. Whole minor units of the wallet's currency. A debit that would take the "
        "balance below zero is a 409 negative_balance_not_allowed (with `balance` and `balance_after`) unless "
        '`"allow_negative_balance": true`. 201 with the entry and the wallet\'s figures; a retry with the same '
        "idempotency_key answers 200 with the same entry and changes nothing (whatever the balance is now); the same "
        "key with another amount is a 409 idempotency_key_reused.",
        tags=["wallets"],
        request=wallet_serializers.AdjustmentInputSerializer,
        responses={
            201: wallet_serializers.TopUpResultSerializer,
            200: OpenApiResponse(wallet_serializers.TopUpResultSerializer, description="A retry: the first adjustment"),
            400: docs.TOP_UP_BAD_INPUT,
            401: docs.UNAUTHENTICATED,
            403: docs.ADMIN_ONLY,
            404: docs.WALLET_NOT_FOUND,
            409: OpenApiResponse(
                wallet_serializers.NegativeBalanceBodySerializer,
                description="negative_balance_not_allowed (the balance would go below zero) or idempotency_key_reused",
            ),
        },
        examples=[
            OpenApiExample(
                "Take back 20 USD credited twice",
                value={"amount": "-20", "reason": "duplicate top-up of 2026-11-30", "idempotency_key": "adj-7731"},
                request_only=True,
            )
        ],
    )
    def post(self, request, wallet_id: int):
        body = wallet_serializers.AdjustmentInputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        wallet_currency_check(request, wallet_id, data.get("currency"))
        entry, created = services.wallet_adjust(
            tenant_id=request.tenant.id, wallet_id=wallet_id, amount=data["amount"], reason=data["reason"],
            reference=data["reference"], allow_negative_balance=data["allow_negative_balance"],
            idempotency_key=data["idempotency_key"],
        )
        return Response(
            wallet_serializers.TopUpResultSerializer(entry).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


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
        wallet = tenant_wallet(self.request, self.kwargs["wallet_id"])
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
        wallet = tenant_wallet(self.request, self.kwargs["wallet_id"])
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
