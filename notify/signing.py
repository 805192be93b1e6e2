"""Webhook signatures, as Stripe signs: `Aforo-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`,
each v1 the HMAC-SHA256 of `<t>.<body>` under one of the endpoint's live secrets (two during a
rotation). A receiver recomputes it with its secret, compares in constant time, and refuses a
timestamp older than its tolerance (a replayed delivery). The README's receiver snippet is
`signature_verify`."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

HEADER = "Aforo-Signature"
TOLERANCE_S = 300


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(body: bytes, *, secrets: Sequence[str], timestamp: int) -> str:
    return ",".join([f"t={timestamp}", *(f"v1={_mac(secret, timestamp, body)}" for secret in secrets)])


def signature_verify(body: bytes, header: str, *, secret: str, now: int, tolerance_s: int = TOLERANCE_S) -> bool:
    """True when `header` carries a v1 signature of `body` under `secret`, made within the tolerance."""
    parts = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in parts if key == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit() or abs(now - int(stamps[0])) > tolerance_s:
        return False
    expected = _mac(secret, int(stamps[0]), body)
    return any(hmac.compare_digest(expected, value) for key, value in parts if key == "v1")
