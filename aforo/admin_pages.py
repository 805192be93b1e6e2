"""Custom pages of the operator admin (the customer page, the overview): each app registers its
own with `admin_page_register`, and the admin site serves them under /admin/ before its model
URLs, wrapped in `admin_view` (an active staff login; the page checks its own permission and
scopes its rows to the operator's tenant, as the ModelAdmins do)."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin
from django.urls import URLPattern, path

_pages: list[tuple[str, Callable, str]] = []


def admin_page_register(*, route: str, view: Callable, name: str) -> None:
    """Serve `view` at /admin/<route>, reversed as "admin:<name>". Call it at import time of an
    app's admin module (before the URL conf reads `admin.site.urls`)."""
    if not any(existing == name for _, _, existing in _pages):
        _pages.append((route, view, name))


def _page_urls() -> list[URLPattern]:
    return [path(route, admin.site.admin_view(view), name=name) for route, view, name in _pages]


_site_urls = admin.site.get_urls


def _get_urls() -> list:
    return [*_page_urls(), *_site_urls()]


admin.site.get_urls = _get_urls
