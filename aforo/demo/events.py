"""Demo usage events: what simulate_traffic posts and seed_demo's history back-fill rates."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timezone

TOOLS = ["search", "generate", "summarize"]
REGIONS = ["us", "eu", "apac"]
ROUTES = ["/v1/search", "/v1/answer", "/v1/embed"]


def demo_event(customer: dict, *, rng: random.Random, at: datetime | None = None, event_id: str | None = None) -> dict:
    metric = rng.choice(customer["metrics"])
    quantity = {"llm_tokens": str(rng.randint(100, 4000)), "agent_sessions": "1"}.get(metric, "1")
    dimensions = {"region": rng.choice(REGIONS)}
    if metric == "tool_calls":
        dimensions["tool_name"] = rng.choice(TOOLS)
    if metric in ("agent_sessions", "llm_tokens"):
        dimensions["agent_id"] = "SmartSearch-Prod"
        dimensions["session_id"] = f"sess-{rng.randint(1, 50)}"
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "api_key": customer["api_key"],
        "metric": metric,
        "quantity": quantity,
        "timestamp": (at or datetime.now(timezone.utc)).isoformat(),
        "dimensions": dimensions,
        "metadata": {"gateway": "simulate_traffic", "request_id": f"{rng.getrandbits(64):016x}", "route": rng.choice(ROUTES)},
    }
