"""Tenant credentials for the API: `Authorization: Bearer <token>`.

Admin tokens manage the catalog (`/api/v1/...`); ingest tokens post events. A token's tenant
scopes every query the request makes: views read `request.tenant`, never a client-sent id."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from aforo.exceptions import ApiError

from .models import Tenant, TenantToken, key_hash


@dataclass(frozen=True)
class TenantPrincipal:
    """The `request.user` of a token-authenticated API request."""

    tenant: Tenant
    token: TenantToken
    is_authenticated: bool = True
    is_anonymous: bool = False

    @property
    def pk(self) -> str:
        return f"token:{self.token.pk}"


class _AuthFailed(exceptions.AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.auth_code = code


class TenantTokenAuthentication(BaseAuthentication):
    keyword = b"bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword or len(header) != 2:
            raise _AuthFailed("invalid_credentials", "Authorization must be 'Bearer <token>'.")
        try:
            secret = header[1].decode()
        except UnicodeError:
            raise _AuthFailed("invalid_credentials", "The token contains invalid characters.") from None
        token = self.token_find(key_hash(secret))
        if token is None:
            raise _AuthFailed("invalid_credentials", "Unknown token.")
        if not token.is_active:
            raise _AuthFailed("invalid_credentials", "This token was revoked.")
        request.tenant = token.tenant
        return TenantPrincipal(tenant=token.tenant, token=token), token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="aforo"'

    def token_find(self, hashed: str) -> TenantToken | None:
        return TenantToken.objects.select_related("tenant").filter(key_hash=hashed).first()


class CachedTenantTokenAuthentication(TenantTokenAuthentication):
    """The same credentials, remembered per process for TOKEN_CACHE_TTL_S (5 s): for the request
    path's endpoints (the entitlement check), which must not query the database per call. A
    revoked token keeps working there for at most that long; an unknown one is looked up again
    every time (a client cannot fill the memory with guesses)."""

    _seen: dict[str, tuple[TenantToken, float]] = {}
    MAX_TOKENS = 10_000

    def token_find(self, hashed: str) -> TenantToken | None:
        now = time.monotonic()
        seen = self._seen.get(hashed)
        if seen is not None and now - seen[1] <= settings.TOKEN_CACHE_TTL_S:
            return seen[0]
        if seen is not None:  # one thread refreshes; the others keep the entry for that one query
            self._seen[hashed] = (seen[0], now)
        token = super().token_find(hashed)
        if token is None:
            self._seen.pop(hashed, None)
        else:
            if len(self._seen) >= self.MAX_TOKENS:
                self._seen.clear()
            self._seen[hashed] = (token, now)
        return token


class _TokenKindPermission(BasePermission):
    kind: str = ""

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, TenantToken):
            raise exceptions.NotAuthenticated("Send 'Authorization: Bearer <token>' with a tenant token.")
        if token.kind != self.kind:
            raise ApiError(
                code="wrong_credential_kind",
                message=f"This endpoint needs a tenant {self.kind} token; this one is a {token.kind} token.",
                status_code=403,
            )
        return True


class IsTenantAdmin(_TokenKindPermission):
    kind = TenantToken.Kind.ADMIN


class IsTenantIngest(_TokenKindPermission):
    kind = TenantToken.Kind.INGEST


class TenantTokenScheme(OpenApiAuthenticationExtension):
    """OpenAPI security scheme of `catalog.auth.TenantTokenAuthentication` (every /api/v1/ view)."""

    target_class = "catalog.auth.TenantTokenAuthentication"
    name = "tenantToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="AUTHORIZATION", token_prefix="Bearer")
