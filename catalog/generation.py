"""The catalog generation: one counter per tenant, on the tenant row, advanced in the SAME
transaction as every catalog change. Readers of derived catalog data (the enrichment cache)
key their entries by it and read it at the start of each batch, so once a change has
committed no later batch can read an entry built before it — there is no window between the
commit and an invalidation, and no dependency on Redis being up at commit time.

A tenant's counter starts at its creation time in milliseconds, so a database rebuilt under a
cache that survived it can never meet an entry of the same (tenant id, generation).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.apps import apps
from django.db.models import F


def _tenants():
    """The tenants' manager, by the app registry: catalog.models imports this module (every
    catalog row bumps the counter), so this module does not import catalog.models back."""
    return apps.get_model("catalog", "Tenant").objects


def generation_seed() -> int:
    return int(time.time() * 1000)


def catalog_generation_get_many(*, tenant_ids: Iterable[int]) -> dict[int, int]:
    """Current generation of each tenant's catalog (one indexed query)."""
    ids = set(tenant_ids)
    if not ids:
        return {}
    return dict(_tenants().filter(pk__in=ids).values_list("pk", "catalog_generation"))


def catalog_generation_bump(*, tenant_id: int) -> None:
    """Advance the tenant's generation inside the caller's transaction (row-locks the tenant
    row until commit, which serializes catalog writes of one tenant — they are rare)."""
    _tenants().filter(pk=tenant_id).update(catalog_generation=F("catalog_generation") + 1)
