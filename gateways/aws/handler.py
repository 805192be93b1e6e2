"""Aforo metering for AWS API Gateway: a Lambda function subscribed to the API's access logs.

CloudWatch Logs delivers a subscription batch as `{"awslogs": {"data": <base64 of gzip of JSON>}}`
whose JSON holds `logEvents` — one per request, its `message` the access log line the stage
writes in the JSON format below. Each line becomes one usage event and the events are POSTed to
Aforo's ingest API in batches of up to 1,000. The event id is API Gateway's `requestId`, so a
redelivered batch (Lambda retries a failed asynchronous invocation twice) is deduplicated by
Aforo, never counted twice. A batch Aforo cannot take now (network, 429, 5xx) raises, and Lambda
retries the invocation; events Aforo rejects (4xx per event) are logged with their reason and
skipped — retrying them would fail the same way.

Configuration (environment): AFORO_URL, AFORO_INGEST_TOKEN, AFORO_METRIC (default api_calls),
AFORO_TIMEOUT_S (default 10), AFORO_SKIP_STATUSES (default "" — e.g. "5xx" not to bill server
errors). Standard library only (the Lambda runtime has nothing else we need).

The stage's access log format (one line, JSON), $context variables of API Gateway:
{"requestId":"$context.requestId","apiKey":"$context.identity.apiKey","apiKeyId":"$context.identity.apiKeyId",
 "requestTimeEpoch":"$context.requestTimeEpoch","httpMethod":"$context.httpMethod","routeKey":"$context.routeKey",
 "resourcePath":"$context.resourcePath","status":"$context.status","responseLatency":"$context.responseLatency",
 "stage":"$context.stage","apiId":"$context.apiId","userAgent":"$context.identity.userAgent"}
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import os
import random
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger("aforo")
logger.setLevel(logging.INFO)

MAX_BATCH = 1000
ATTEMPTS = 4


class RetryLater(Exception):
    """Aforo could not take the batch now: Lambda retries the invocation (ids make it safe)."""


def decode_subscription(event: dict[str, Any]) -> dict[str, Any]:
    """The CloudWatch Logs subscription payload inside a Lambda event."""
    return json.loads(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))


def _skipped(status: str, skip: set[str]) -> bool:
    return bool(status) and (status in skip or f"{status[:1]}xx" in skip)


def usage_event(log_event: dict[str, Any], *, metric: str, skip_statuses: set[str]) -> dict[str, Any] | None:
    """One access log line as a usage event v1, or None for a line that bills nothing (no API
    key — an unauthenticated call — or a status the configuration skips). ValueError for a line
    that is not the documented JSON format."""
    line = json.loads(log_event["message"])
    if not isinstance(line, dict) or not line.get("requestId"):
        raise ValueError("not an access log line in the documented JSON format (no requestId)")
    api_key = line.get("apiKey")
    status = str(line.get("status") or "")
    if not api_key or api_key == "-" or _skipped(status, skip_statuses):
        return None
    epoch_ms = line.get("requestTimeEpoch") or log_event.get("timestamp")
    timestamp = datetime.fromtimestamp(int(epoch_ms) / 1000, timezone.utc).isoformat()
    metadata = {
        "gateway": "aws-api-gateway",
        **{k: line[k] for k in ("httpMethod", "routeKey", "resourcePath", "stage", "apiId", "apiKeyId", "userAgent")
           if line.get(k) not in (None, "", "-")},
    }
    if status.isdigit():
        metadata["status"] = int(status)
    latency = str(line.get("responseLatency") or "")
    if latency.isdigit():
        metadata["latency_ms"] = int(latency)
    return {
        "event_id": f"apigw-{line['requestId']}", "api_key": api_key, "metric": metric, "quantity": "1",
        "timestamp": timestamp, "metadata": metadata,
    }


def _post(url: str, token: str, events: list[dict[str, Any]], timeout: float) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/v1/events", data=json.dumps({"events": events}).encode(), method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json", "User-Agent": "aforo-aws-apigw/1"},
    )
    delay = 0.5
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            body = error.read()
            if error.code == 400:  # every event rejected: the answer says why, per index
                return json.loads(body or b"{}")
            if error.code != 429 and error.code < 500:
                raise RuntimeError(f"Aforo refused the batch: HTTP {error.code} {body[:300]!r}") from None
            retry_after = error.headers.get("Retry-After")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else delay
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            logger.warning("Aforo unreachable (attempt %d): %s", attempt, error)
            wait = delay
        if attempt == ATTEMPTS:
            break
        time.sleep(min(wait, 10) * (0.5 + random.random()))
        delay *= 2
    raise RetryLater(f"Aforo did not take {len(events)} events after {ATTEMPTS} attempts")


def handle(event: dict[str, Any], context: Any = None, *, env: dict[str, str] | None = None) -> dict[str, int]:
    """The Lambda entry point: every billable line of the batch sent to Aforo."""
    env = env if env is not None else dict(os.environ)
    url, token = env["AFORO_URL"], env["AFORO_INGEST_TOKEN"]
    metric = env.get("AFORO_METRIC", "api_calls")
    skip = {s.strip().lower() for s in env.get("AFORO_SKIP_STATUSES", "").split(",") if s.strip()}
    timeout = float(env.get("AFORO_TIMEOUT_S", "10"))
    payload = decode_subscription(event)
    if payload.get("messageType") == "CONTROL_MESSAGE":  # CloudWatch's check that the destination exists
        return {"events": 0, "accepted": 0, "duplicates": 0, "rejected": 0, "skipped": 0, "malformed": 0}
    events, skipped, malformed = [], 0, 0
    for log_event in payload.get("logEvents", []):
        try:
            built = usage_event(log_event, metric=metric, skip_statuses=skip)
        except (ValueError, KeyError, TypeError) as error:
            malformed += 1
            logger.error("access log line %s skipped: %s", log_event.get("id"), error)
            continue
        if built is None:
            skipped += 1
        else:
            events.append(built)
    totals = {"events": len(events), "accepted": 0, "duplicates": 0, "rejected": 0, "skipped": skipped, "malformed": malformed}
    for start in range(0, len(events), MAX_BATCH):
        answer = _post(url, token, events[start:start + MAX_BATCH], timeout)
        for name in ("accepted", "duplicates", "rejected"):
            totals[name] += int(answer.get(name, 0))
        for result in answer.get("results", []):
            if result.get("status") == "rejected":
                logger.error("event %s rejected by Aforo: %s (%s)", result.get("event_id"), result.get("code"), result.get("message"))
    logger.info("aforo: %s", totals)
    return totals


lambda_handler = handle
