"""Catalog API fixtures: API clients authenticated with a tenant's admin token."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from rest_framework.test import APIClient

from catalog.models import Tenant, TenantToken
from tests.factories import TenantFactory, tenant_token


@pytest.fixture
def client_for() -> Callable[..., APIClient]:
    """A new API client sending `tenant`'s token of `kind` (admin by default); bodies are JSON."""

    def make(tenant: Tenant, kind: str = TenantToken.Kind.ADMIN) -> APIClient:
        client = APIClient()
        client.default_format = "json"
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(tenant, kind)}")
        return client

    return make


@pytest.fixture
def tenant(db) -> Tenant:
    return TenantFactory()


@pytest.fixture
def admin(client_for, tenant) -> APIClient:
    """The admin API client of `tenant`."""
    return client_for(tenant)
