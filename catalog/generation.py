"""The catalog generation: one counter per tenant in Redis, bumped after every committed
catalog change. Readers of derived catalog data (the enrichment cache) key their entries by
it, so the first batch that starts after a change commits can never read a stale entry.

A missing counter (Redis flushed or evicted) is recreated from the wall clock in
milliseconds, which is larger than any value it could have had, so stale entries stay dead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)


def _key(tenant_id: int) -> str:
    return f"{settings.CACHES['default']['KEY_PREFIX']}:catalog:gen:{tenant_id}"


def catalog_generation_get_many(*, tenant_ids: Iterable[int]) -> dict[int, int]:
    """Current generation of each tenant's catalog, in one Redis round trip (two if some are new)."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return {}
    redis = get_redis_connection("default")
    values = redis.mget([_key(t) for t in ids])
    missing = [t for t, v in zip(ids, values) if v is None]
    result = {t: int(v) for t, v in zip(ids, values) if v is not None}
    if missing:
        seed = int(time.time() * 1000)
        pipe = redis.pipeline()
        for tenant_id in missing:
            pipe.set(_key(tenant_id), seed, nx=True)
        pipe.mget([_key(t) for t in missing])
        fresh = pipe.execute()[-1]
        result.update({t: int(v) for t, v in zip(missing, fresh)})
    return result


def catalog_generation_bump(*, tenant_id: int) -> int:
    """Advance the tenant's catalog generation now. Prefer `..._bump_on_commit` in writes."""
    redis = get_redis_connection("default")
    pipe = redis.pipeline()
    pipe.set(_key(tenant_id), int(time.time() * 1000), nx=True)
    pipe.incr(_key(tenant_id))
    return int(pipe.execute()[-1])


def catalog_generation_bump_on_commit(*, tenant_id: int) -> None:
    """Bump the generation once the surrounding transaction commits (immediately outside one)."""

    def bump() -> None:
        try:
            catalog_generation_bump(tenant_id=tenant_id)
        except Exception:  # Redis down: entries still expire by TTL; say so loudly.
            logger.exception("could not bump catalog generation for tenant %s", tenant_id)

    transaction.on_commit(bump)
