"""Wallet and hold routes under /api/v1/ (no trailing slash, like the rest of the API)."""

from django.urls import path

from . import grants, holds, views

urlpatterns = [
    path("wallets", views.WalletListCreateView.as_view(), name="wallets"),
    path("wallets/<int:wallet_id>", views.WalletDetailView.as_view(), name="wallet-detail"),
    path("wallets/<int:wallet_id>/top-ups", views.WalletTopUpView.as_view(), name="wallet-top-ups"),
    path("wallets/<int:wallet_id>/adjustments", views.WalletAdjustmentView.as_view(), name="wallet-adjustments"),
    path("wallets/<int:wallet_id>/holds", holds.WalletHoldPlaceView.as_view(), name="wallet-holds"),
    path("wallets/<int:wallet_id>/ledger", views.WalletLedgerView.as_view(), name="wallet-ledger"),
    path("wallets/<int:wallet_id>/alerts", views.WalletAlertListView.as_view(), name="wallet-alerts"),
    path("credit-grants", grants.CreditGrantListCreateView.as_view(), name="credit-grants"),
    path("credit-grants/<int:grant_id>", grants.CreditGrantDetailView.as_view(), name="credit-grant-detail"),
    path("credit-grants/<int:grant_id>/void", grants.CreditGrantVoidView.as_view(), name="credit-grant-void"),
    path("holds/<int:hold_id>", holds.HoldDetailView.as_view(), name="hold-detail"),
    path("holds/<int:hold_id>/commit", holds.HoldCommitView.as_view(), name="hold-commit"),
    path("holds/<int:hold_id>/release", holds.HoldReleaseView.as_view(), name="hold-release"),
]
