"""Catalog writes. Every service validates (model `full_clean`, same-tenant relations) and
writes in one transaction, which also advances the tenant's catalog generation (see models)."""

from __future__ import annotations

import secrets
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max, Model
from django.utils import timezone

from .models import (
    ApiKey,
    App,
    MetricConfig,
    PublishedVersionError,
    VersionNotPublishable,
    RatePlanVersion,
    Subscription,
    Tenant,
    TenantToken,
    key_hash,
)

API_KEY_PREFIX = "sk_live_"
TOKEN_PREFIXES = {TenantToken.Kind.ADMIN: "aft_admin_", TenantToken.Kind.INGEST: "aft_ingest_"}


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def catalog_object_save(*, instance: Model) -> Model:
    """Validate (including same-tenant relations) and save any catalog row."""
    instance.full_clean()
    instance.save()
    return instance


@transaction.atomic
def tenant_create(*, name: str, slug: str) -> tuple[Tenant, str, str]:
    """A new tenant with an admin token and an ingest token. Returns (tenant, admin secret,
    ingest secret); the secrets are not stored and are shown this once."""
    tenant = Tenant(name=name, slug=slug)
    tenant.full_clean()
    tenant.save()
    _, admin_secret = tenant_token_create(tenant=tenant, kind=TenantToken.Kind.ADMIN, name="Initial admin token")
    _, ingest_secret = tenant_token_create(tenant=tenant, kind=TenantToken.Kind.INGEST, name="Initial ingest token")
    return tenant, admin_secret, ingest_secret


@transaction.atomic
def tenant_token_create(*, tenant: Tenant, kind: str, name: str, secret: str | None = None) -> tuple[TenantToken, str]:
    """Create a tenant credential. Returns the token row and the secret, which is not stored."""
    secret = secret or new_secret(TOKEN_PREFIXES[kind])
    token = TenantToken.objects.create(
        tenant=tenant, kind=kind, name=name, prefix=secret[:16], key_hash=key_hash(secret)
    )
    return token, secret


@transaction.atomic
def tenant_token_revoke(
    *, token: TenantToken, reason: str, revoked_by: str, at: datetime | None = None
) -> TenantToken:
    """Revoke a tenant token: it stops authenticating (within the credential cache's seconds).
    `reason` is required and stored with `revoked_by`; the row is locked and re-read, so revoking
    a revoked token keeps the first time, reason and author."""
    reason = _reason(reason)
    locked = TenantToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is None:
        locked.revoked_at = at or timezone.now()
        locked.revoked_reason = reason
        locked.revoked_by = revoked_by[:200]
        locked.save(update_fields=["revoked_at", "revoked_reason", "revoked_by"])
    return locked


@transaction.atomic
def api_key_create(*, app: App, name: str = "", secret: str | None = None) -> tuple[ApiKey, str]:
    """Issue an API key for an app. The full key is returned here, once; only its hash stays."""
    secret = secret or new_secret(API_KEY_PREFIX)
    api_key = ApiKey(tenant_id=app.tenant_id, app=app, name=name, prefix=secret[:16], key_hash=key_hash(secret))
    api_key.full_clean(exclude=["key_hash"])
    api_key.save()
    return api_key, secret


MAX_REASON = 500


def _reason(reason: object) -> str:
    """A destructive change's reason: required, 1 to 500 characters (a ValidationError naming `reason`)."""
    text = reason.strip() if isinstance(reason, str) else ""
    if not text:
        raise ValidationError({"reason": "A reason is required: it is stored with the change."})
    if len(text) > MAX_REASON:
        raise ValidationError({"reason": f"At most {MAX_REASON} characters (got {len(text)})."})
    return text


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, reason: str, revoked_by: str, at: datetime | None = None) -> ApiKey:
    """Revoke a key: events timestamped from `at` (default now) on no longer match it. `reason`
    is required and stored with `revoked_by` (who: "admin:<login>" or "token:<prefix>"). The row
    is locked and re-read: revoking a revoked key keeps the first time, reason and author."""
    reason = _reason(reason)
    locked = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    if locked.revoked_at is None:
        locked.revoked_at = at or timezone.now()
        locked.revoked_reason = reason
        locked.revoked_by = revoked_by[:200]
        locked.save(update_fields=["revoked_at", "revoked_reason", "revoked_by", "updated_at"])
    return locked


class SubscriptionNotCancelable(ValidationError):
    """A cancellation refused: the subscription is canceled or ended already, or the end asked for
    is in the past or not after its start."""


@transaction.atomic
def subscription_cancel(
    *, subscription: Subscription, reason: str, ended_at: datetime | None = None, now: datetime | None = None
) -> Subscription:
    """Cancel a subscription now (ended_at = now) or at a later `ended_at`: events timestamped from
    its end no longer rate against it, and the settlement sweep settles its last, partial period
    after the end. Stores canceled_at (now) and the required `reason`. Never backdated: an end in
    the past would un-rate usage already rated (and maybe invoiced). Refused (naming the field)
    for a subscription canceled or ended already. The row is locked and re-checked."""
    reason = _reason(reason)
    now = now or timezone.now()
    end = ended_at or now
    locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
    if locked.status == Subscription.Status.CANCELED:
        when = f"{locked.canceled_at:%Y-%m-%d %H:%M} UTC" if locked.canceled_at else "earlier"
        raise SubscriptionNotCancelable({"__all__": f"Already canceled ({when}), ending {locked.ended_at:%Y-%m-%d %H:%M} UTC."})
    if locked.ended_at is not None and locked.ended_at <= now:
        raise SubscriptionNotCancelable({"__all__": f"Already ended on {locked.ended_at:%Y-%m-%d %H:%M} UTC."})
    if end < now:
        raise SubscriptionNotCancelable({"ended_at": "Must be now or later: a cancellation is never backdated."})
    if end <= locked.started_at:
        raise SubscriptionNotCancelable({"ended_at": f"Must be after the start ({locked.started_at:%Y-%m-%d %H:%M} UTC)."})
    locked.status = Subscription.Status.CANCELED
    locked.ended_at = end
    locked.canceled_at = now
    locked.canceled_reason = reason
    locked.save(update_fields=["status", "ended_at", "canceled_at", "canceled_reason", "updated_at"])
    return locked


@transaction.atomic
def rate_plan_version_publish(*, version: RatePlanVersion, effective_from: datetime | None = None) -> RatePlanVersion:
    """Publish a draft version: from then on it is immutable and in force from effective_from."""
    version = RatePlanVersion.objects.select_for_update().get(pk=version.pk)
    if version.is_published:
        raise PublishedVersionError(f"{version} is already published.")
    if not version.metric_configs.exists():
        raise VersionNotPublishable(f"{version} prices no metric; add a metric config before publishing.")
    if effective_from is not None:
        version.effective_from = effective_from
    clash = RatePlanVersion.objects.filter(
        rate_plan_id=version.rate_plan_id, status=RatePlanVersion.Status.PUBLISHED, effective_from=version.effective_from
    )
    if clash.exists():
        raise VersionNotPublishable(f"Another published version of this plan is effective from {version.effective_from}.")
    version.status = RatePlanVersion.Status.PUBLISHED
    version.published_at = timezone.now()
    version.save()
    return version


@transaction.atomic
def rate_plan_version_create(*, rate_plan, effective_from: datetime, notes: str = "") -> RatePlanVersion:
    """A new draft version of a plan, numbered after the highest existing one."""
    # Lock the plan row so two concurrent creations cannot pick the same number.
    type(rate_plan).objects.select_for_update().filter(pk=rate_plan.pk).first()
    number = (RatePlanVersion.objects.filter(rate_plan=rate_plan).aggregate(n=Max("version"))["n"] or 0) + 1
    version = RatePlanVersion(
        tenant_id=rate_plan.tenant_id, rate_plan=rate_plan, version=number, effective_from=effective_from, notes=notes
    )
    version.full_clean(exclude=["version"])
    version.save()
    return version


@transaction.atomic
def rate_plan_version_revise(*, version: RatePlanVersion, effective_from: datetime | None = None) -> RatePlanVersion:
    """"Editing" a published version: a new draft copying its metric configs, to edit and publish."""
    draft = rate_plan_version_create(
        rate_plan=version.rate_plan,
        effective_from=effective_from or max(timezone.now(), version.effective_from),
        notes=f"Revision of v{version.version}",
    )
    for config in version.metric_configs.all():
        MetricConfig.objects.create(tenant_id=draft.tenant_id, version=draft, metric_id=config.metric_id, config=config.config)
    return draft


@transaction.atomic
def metric_config_set(*, version: RatePlanVersion, metric, config: dict) -> MetricConfig:
    """Create or replace the config of a metric in a draft version (validated by the engine).
    The version row is locked first, so a concurrent publish cannot slip in between."""
    locked = RatePlanVersion.objects.select_for_update().get(pk=version.pk)
    if locked.is_published:
        raise PublishedVersionError(f"{locked} is published; its metric configs cannot change.")
    existing = MetricConfig.objects.filter(version=locked, metric=metric).first()
    instance = existing or MetricConfig(tenant_id=locked.tenant_id, version=locked, metric=metric)
    instance.config = config
    instance.full_clean(validate_unique=existing is None)
    instance.save()
    return instance


@transaction.atomic
@transaction.atomic
def catalog_object_save_with_relations(*, instance: Model, many_to_many: dict[str, list[Model]] | None = None) -> Model:
    """`catalog_object_save`, then replace the given many-to-many relations, in one transaction.
    Every related row must belong to the instance's tenant (same rule as `TenantOwned.clean`)."""
    catalog_object_save(instance=instance)
    for name, related_rows in (many_to_many or {}).items():
        if any(row.tenant_id != instance.tenant_id for row in related_rows):
            raise ValidationError({name: "Must belong to the same tenant."})
        getattr(instance, name).set(related_rows)
    return instance


@transaction.atomic
def metric_config_delete(*, metric_config: MetricConfig) -> None:
    """Remove a metric's price from a DRAFT version. The version row is locked first, so a
    concurrent publish cannot end up published with a config removed under it."""
    version = RatePlanVersion.objects.select_for_update().get(pk=metric_config.version_id)
    if version.is_published:
        raise PublishedVersionError(f"{version} is published; its metric configs cannot change.")
    metric_config.delete()
