"""What an event subject resolves to, as immutable values: a billing context (the key, app,
team and customer), its subscriptions, their rate plan versions and priced metrics (each config
compiled once). Built by metering.selectors from the catalog, cached by metering.enrichment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from billing.rating import PriceBook, compile_config, config_hash


@dataclass(frozen=True, slots=True)
class PricedMetric:
    code: str
    metric_id: int
    metric_config_id: int
    config: dict[str, Any]
    config_hash: str
    pricer: PriceBook


@dataclass(frozen=True, slots=True)
class VersionContext:
    id: int
    effective_from: datetime
    metrics: Mapping[str, PricedMetric]


@dataclass(frozen=True, slots=True)
class SubscriptionContext:
    id: int
    customer_id: int
    currency: str
    billing_mode: str
    cadence: str
    anchor: datetime
    started_at: datetime
    ended_at: datetime | None
    versions: tuple[VersionContext, ...]  # newest effective_from first
    # A trial (billing.trials): events before `trial_until` may be free — the rating batch decides
    # under the trial's lock (a usage threshold may convert it first). None with has_trial: until
    # its usage threshold converts it. Events from `trial_until` on are billed.
    has_trial: bool = False
    trial_until: datetime | None = None

    def in_trial_at(self, at: datetime) -> bool:
        """Whether an event at `at` may be trial usage (the batch's trial plan decides)."""
        return self.has_trial and (self.trial_until is None or at < self.trial_until)

    def version_at(self, at: datetime) -> VersionContext | None:
        return next((v for v in self.versions if v.effective_from <= at), None)


@dataclass(frozen=True, slots=True)
class BillingContext:
    """What an event subject resolves to. Key fields are None when the event named the
    customer or the subscription itself (its subscriptions are then that one only)."""

    tenant_id: int
    customer_id: int
    subscriptions: tuple[SubscriptionContext, ...]  # by id
    api_key_id: int | None = None
    app_id: int | None = None
    team_id: int | None = None
    revoked_at: datetime | None = None


def priced_metric(*, code: str, metric_id: int, metric_config_id: int, config: dict[str, Any]) -> PricedMetric:
    return PricedMetric(code, metric_id, metric_config_id, config, config_hash(config), compile_config(config))
