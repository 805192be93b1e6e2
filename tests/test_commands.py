"""Management commands through their real interface: seed_demo, check_services, simulate_traffic."""

import json
import subprocess
import sys
import uuid
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command

from catalog.models import ApiKey, Subscription, Tenant
from tests.conftest import read_topic
from wallets.models import Wallet

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_prints_what_scripts_need():
    first, second = StringIO(), StringIO()
    call_command("seed_demo", "--json", stdout=first)
    call_command("seed_demo", "--json", stdout=second)
    demo = json.loads(first.getvalue())
    assert json.loads(second.getvalue()) == demo
    assert Tenant.objects.filter(slug="demo").count() == 1
    assert demo["admin_token"].startswith("aft_admin_") and demo["ingest_token"].startswith("aft_ingest_")
    assert {c["billing_mode"] for c in demo["customers"]} == {"postpaid", "prepaid", "hybrid"}
    for customer in demo["customers"]:
        subscription = Subscription.objects.get(pk=customer["subscription_id"])
        assert subscription.customer_id == customer["id"]
        assert customer["metrics"]
        key = ApiKey.objects.get(prefix=customer["api_key"][:16])
        assert key.app.team.customer_id == customer["id"]
    assert ApiKey.objects.filter(tenant__slug="demo").count() == 3
    # Prepaid and hybrid customers have a wallet, topped up once however often the seed runs.
    wallets = {c["billing_mode"]: c["wallet_id"] for c in demo["customers"]}
    assert wallets["postpaid"] is None
    for mode, starting_balance in (("prepaid", 500), ("hybrid", 200)):
        wallet = Wallet.objects.get(pk=wallets[mode])
        customer = next(c for c in demo["customers"] if c["billing_mode"] == mode)
        assert (wallet.customer_id, wallet.currency) == (customer["id"], "USD")
        assert list(wallet.entries.filter(kind="top_up").values_list("amount", flat=True)) == [starting_balance]
        # The back-filled history paid from the wallet: debits in real time, and settlement's part.
        assert wallet.balance == sum(e.amount for e in wallet.entries.all()) < starting_balance
        assert wallet.low_balance_thresholds


def _check_services(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check_services"], cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "aforo.settings.test", **env},
    )


def test_check_services_names_the_unreachable_service_in_one_line():
    down = _check_services(DATABASE_URL="postgres://postgres@127.0.0.1:1/aforo")
    assert down.returncode == 1
    assert down.stderr.count("\n") == 1 and "Traceback" not in down.stderr
    assert "PostgreSQL is not reachable at postgres://postgres@127.0.0.1:1/aforo" in down.stderr
    assert "pg_ctlcluster" in down.stderr
    redis_down = _check_services(TEST_REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres")
    assert redis_down.returncode == 1
    assert "Redis is not reachable at redis://127.0.0.1:1/0" in redis_down.stderr and "redis-server" in redis_down.stderr


def test_check_services_passes_when_both_answer():
    ok = _check_services(DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres")
    assert (ok.returncode, ok.stderr) == (0, "")


@pytest.mark.django_db(transaction=True)
def test_simulate_traffic_posts_through_the_ingest_api(live_server, kafka):
    out = StringIO()
    call_command("simulate_traffic", "--rate", "40", "--seconds", "0.5", "--url", live_server.url, "--seed", "7", stdout=out)
    assert "20 accepted, 0 failed" in out.getvalue()
    records = read_topic(kafka["bootstrap"], kafka["usage"], expect=20)
    events = [orjson.loads(r.value()) for r in records]
    assert {e["metadata"]["gateway"] for e in events} == {"simulate_traffic"}
    assert {uuid.UUID(e["event_id"]).version for e in events} == {7}  # sent by the Python SDK (UUIDv7 ids)
    demo_keys = set(ApiKey.objects.filter(tenant__slug="demo").values_list("prefix", flat=True))
    assert {e["api_key"][:16] for e in events} <= demo_keys


@pytest.mark.django_db
def test_create_tenant_prints_working_tokens_once(api_client):
    from django.core.management.base import CommandError

    out = StringIO()
    call_command("create_tenant", "Acme Billing", "--json", stdout=out)
    created = json.loads(out.getvalue())
    assert Tenant.objects.get(pk=created["tenant_id"]).slug == "acme-billing"
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['admin_token']}")
    assert api_client.get("/api/v1/customers").status_code == 200
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {created['ingest_token']}")
    assert api_client.get("/api/v1/customers").json()["error"]["code"] == "wrong_credential_kind"
    with pytest.raises(CommandError, match="slug"):
        call_command("create_tenant", "Acme Billing", stdout=StringIO())


@pytest.mark.django_db
def test_dev_prepare_seeds_and_starts_the_embedded_broker_only_when_no_kafka_answers(settings, kafka_bootstrap):
    from django.db import connection

    database = connection.settings_dict
    settings.DATABASE_URL = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    settings.KAFKA_EMBEDDED = True
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"  # nothing answers: the runner must start the broker
    out = StringIO()
    call_command("dev_prepare", stdout=out, stderr=StringIO())
    assert out.getvalue().split() == ["broker", "web", "consumer", "alerts", "worker", "beat", "banner"]
    assert Tenant.objects.filter(slug="demo").exists()
    settings.KAFKA_BOOTSTRAP_SERVERS = kafka_bootstrap  # a broker already answers there: reuse it
    out = StringIO()
    call_command("dev_prepare", stdout=out, stderr=StringIO())
    assert out.getvalue().split() == ["web", "consumer", "alerts", "worker", "beat", "banner"]
    settings.KAFKA_EMBEDDED = False  # a configured cluster: never start the embedded broker
    settings.KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:1"
    out = StringIO()
    call_command("dev_prepare", stdout=out, stderr=StringIO())
    assert "broker" not in out.getvalue()
