"""API fuzzing from the OpenAPI schema (schemathesis) against the real web server, with the
admin token for the admin operations and the ingest token for what gateways call: no input the
schema allows — or any of the boundary and wrong-typed values schemathesis derives from it —
may get a server error. Bounded by example counts so it takes a minute or two here.

Two runs: one with the path ids set to real demo rows (so bodies and query strings reach the
code behind the lookups), every phase; one with generated ids (huge, negative, wrong-typed), the
coverage phase over the operations with an id in their path."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.test import override_settings
from django.utils import timezone

from aforo.kafka import topics_ensure, usage_topics
from tests.live import LiveWeb, flush_committed_data, fresh_kafka_settings, live_web_env

pytestmark = [pytest.mark.kafka, pytest.mark.django_db]
ST = Path(sys.executable).parent / "st"
# What the ingest token may call (gateways); everything else needs the admin token.
INGEST_OPERATIONS = [
    "events_ingest", "holds_place", "holds_retrieve", "holds_commit", "holds_release", "leases_create", "leases_list",
    "leases_retrieve", "leases_renew", "leases_return",
]


@pytest.fixture(scope="module")
def fuzz_target(kafka_bootstrap, django_db_setup, django_db_blocker, tmp_path_factory):
    from billing.models import Invoice, Lease
    from aforo.demo.seed import demo_seed
    from catalog.models import Metric, Subscription
    from metering.models import RawEvent
    from wallets.holds import hold_place

    kafka_settings = fresh_kafka_settings(kafka_bootstrap, name="fuzz")
    with django_db_blocker.unblock(), override_settings(**kafka_settings):
        topics_ensure(names=usage_topics(), partitions=1, wait_s=20)
        seeded = demo_seed(history=True)
        customer = next(c for c in seeded["customers"] if c["wallet_id"])
        invoice = Invoice.objects.filter(customer_id=customer["id"]).order_by("id").first()
        hold, _ = hold_place(
            tenant_id=seeded["tenant"]["id"], wallet_id=customer["wallet_id"], amount=Decimal("1"), ttl_seconds=3600,
            reference="fuzz", idempotency_key="fuzz-hold",
        )
        subscription = Subscription.objects.get(pk=customer["subscription_id"])
        lease = Lease.objects.create(  # a lease row for the path ids (the demo's prices have no limit to lease)
            tenant_id=seeded["tenant"]["id"], subscription=subscription, customer_id=customer["id"],
            metric=Metric.objects.filter(tenant_id=seeded["tenant"]["id"]).first(), period_start=subscription.started_at,
            period_end=subscription.started_at + timedelta(days=3650), holder="fuzz", idempotency_key="fuzz-lease",
            requested_units=Decimal(5), ttl_seconds=3600, leased=Decimal(5), expires_at=timezone.now() + timedelta(hours=1),
        )
        ids = {
            "id": customer["id"], "customer_id": customer["id"], "subscription_id": customer["subscription_id"],
            "wallet_id": customer["wallet_id"], "hold_id": hold.id, "invoice_id": invoice.id,
            "line_id": invoice.lines.filter(kind="usage").first().id,
            "lease_id": lease.id, "raw_event_id": RawEvent.objects.filter(tenant_id=seeded["tenant"]["id"]).first().id,
        }
        # Not eager in the server: the fuzzer creates webhook endpoints with made-up URLs, and a
        # delivery run inside the request would hold it for its timeout (tasks queue in Redis).
        web = LiveWeb(env=live_web_env(kafka_settings, TEST_CELERY_EAGER="0"))
        try:
            web.start()
            yield web, seeded, ids, tmp_path_factory.mktemp("schemathesis")
        finally:
            web.stop()
            flush_committed_data()


def _config(seeded: dict, ids: dict | None) -> str:
    lines = [f'headers = {{ Authorization = "Bearer {seeded["admin_token"]}" }}']
    if ids:
        lines.append("[parameters]")
        lines.extend(f'"path.{name}" = {value}' for name, value in ids.items())
    else:
        # The generated ids' run is about the ids: the methods an operation does not have are
        # answered 405 whatever the id, and the real ids' run sends them already.
        lines += ["[phases.coverage]", "unexpected-methods = []"]
    lines += [
        "[[operations]]",
        f"include-operation-id = {INGEST_OPERATIONS!r}".replace("'", '"'),
        f'headers = {{ Authorization = "Bearer {seeded["ingest_token"]}" }}',
    ]
    return "\n".join(lines) + "\n"


# The subprocess bounds itself (600 s); pytest's default 180 s cut the run short on a loaded
# machine once the invoice lifecycle added its operations to the schema.
@pytest.mark.timeout(660)
@pytest.mark.parametrize("real_ids", [True, False], ids=["real ids", "generated ids"])
def test_no_generated_request_gets_a_server_error(fuzz_target, real_ids):
    web, seeded, ids, workdir = fuzz_target
    config = workdir / f"schemathesis-{real_ids}.toml"
    config.write_text(_config(seeded, ids if real_ids else None))
    result = subprocess.run(
        [
            str(ST), "--config-file", str(config), "run", f"{web.url}/api/schema/",
            "--checks", "not_a_server_error", "--max-examples", "5", "--workers", "2",
            "--seed", "1", "--request-timeout", "60", "--no-color",
            # Generated ids: only the operations with an id in their path (the others are the real
            # ids' run again), and the coverage phase, which derives the huge, negative and
            # wrong-typed ids (two thirds of the cases of the two runs were that phase).
            *([] if real_ids else ["--phases", "coverage", "--include-path-regex", r"\{"]),
        ],
        cwd=workdir, capture_output=True, text=True, timeout=600,
    )
    summary = result.stdout[-4000:]
    errors = result.stdout.find("ERRORS")  # schemathesis' errors section: what a "Runtime Error" was
    details = result.stdout[errors:errors + 6000] + "\n…\n" if errors >= 0 else ""
    assert result.returncode == 0, details + summary + result.stderr[-2000:]
    assert "passed" in summary and "failed" not in summary.split("Test cases:")[-1], summary
