"""Where webhooks may go: public addresses only, unless WEBHOOK_ALLOW_PRIVATE_HOSTS (development and
tests, whose receivers listen on loopback). A tenant's endpoint URL is theirs to choose, so
without this check Aforo's own network — its database, Redis, a cloud metadata service at
169.254.169.254 — would be a POST away (server-side request forgery).

Checked twice: when an endpoint is saved (an IP literal or `localhost` that is not public is
refused with an error naming the field) and before every attempt (the host's resolved addresses,
all of them, must be public: a name can be pointed elsewhere after it was saved)."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def literal_host_refused(url: str) -> str | None:
    """Why the URL's host may not receive webhooks, when that is known without DNS; else None."""
    if settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        return None
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine"
    try:
        return None if _public(host) else f"{host} is not a public address"
    except ValueError:
        return None  # a name: resolved before each attempt


def resolved_host_refused(url: str) -> str | None:
    """Why the URL's host may not receive webhooks now (it resolves to a non-public address, or
    not at all); None when every address it resolves to is public."""
    if settings.WEBHOOK_ALLOW_PRIVATE_HOSTS:
        return None
    refused = literal_host_refused(url)
    if refused:
        return refused
    parts = urlsplit(url)
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        return f"{parts.hostname} does not resolve ({error})"
    private = sorted({info[4][0] for info in infos if not _public(info[4][0])})
    return f"{parts.hostname} resolves to a non-public address ({', '.join(private)})" if private else None
