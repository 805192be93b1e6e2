"""Wallet and hold routes under /api/v1/ (no trailing slash, like the rest of the API)."""

from django.urls import path

from . import holds, views

urlpatterns = [
    path("wallets", views.WalletListCreateView.as_view(), name="wallets"),
    path("wallets/<int:wallet_id>", views.WalletDetailView.as_view(), name="wallet-detail"),
    path("wallets/<int:wallet_id>/top-ups", views.WalletTopUpView.as_view(), name="wallet-top-ups"),
    path("wallets/<int:wallet_id>/adjustments", views.WalletAdjustmentView.as_view(), name="wallet-adjustments"),
    path("wallets/<int:wallet_id>/holds", holds.WalletHoldPlaceView.as_view(), name="wallet-holds"),
    path("wallets/<int:wallet_id>/ledger", views.WalletLedgerView.as_view(), name="wallet-ledger"),
    path("wallets/<int:wallet_id>/alerts", views.WalletAlertListView.as_view(), name="wallet-alerts"),
    path("holds/<int:hold_id>", holds.HoldDetailView.as_view(), name="hold-detail"),
    path("holds/<int:hold_id>/commit", holds.HoldCommitView.as_view(), name="hold-commit"),
    path("holds/<int:hold_id>/release", holds.HoldReleaseView.as_view(), name="hold-release"),
]
