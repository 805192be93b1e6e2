"""The ledger lists at volume (catalog.admin.ledger, issue 12): searches are indexed lookups of
identifiers that never cross tenants, the date filter reads an id window, the period filter and
the paginator's capped count work, and no query a ledger page runs needs a sequential scan or a
sort of a ledger (checked on the plans PostgreSQL makes for the very queries a page ran)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import RatedEvent
from catalog.admin import ledger
from metering.admin import LedgerAdmin
from metering.models import RawEvent, UnmatchedUsage
from tests.factories import priced_setup
from tests.test_admin import changelist_url, ledger_rows, operator
from wallets.models import WalletEntry
from wallets.services import wallet_create, wallet_top_up

pytestmark = pytest.mark.django_db

LEDGER_TABLES = {
    model._meta.db_table for model in (RawEvent, RatedEvent, UnmatchedUsage, WalletEntry)
}


@pytest.fixture
def two_tenants():
    """The same event id in two tenants, and a wallet entry in each."""
    mine, theirs = priced_setup(), priced_setup()
    for setup in (mine, theirs):
        ledger_rows(setup, event_id="same-id")
        wallet = wallet_create(customer=setup.customer, currency="USD")
        wallet_top_up(tenant_id=setup.tenant.pk, wallet_id=wallet.pk, amount=Decimal(10), idempotency_key="seed")
    return mine, theirs


def ledger_operator(tenant):
    """tests.test_admin.operator, with the wallet ledger's permissions too."""
    user = operator(tenant, username="ledger-operator")
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="wallets"))
    return user


@pytest.fixture
def operator_client(client, two_tenants):
    client.force_login(ledger_operator(two_tenants[0].tenant))
    return client


def listed(client, model, query: str = "") -> set[int]:
    response = client.get(changelist_url(model) + query)
    assert response.status_code == 200, response
    return {row.pk for row in response.context["cl"].result_list}


def test_event_id_search_is_exact_and_stays_in_the_operators_tenant(operator_client, admin_client, two_tenants):
    mine, theirs = two_tenants
    my_raw = RawEvent.objects.get(tenant=mine.tenant, event_id="same-id")
    assert listed(operator_client, RawEvent, "?q=same-id") == {my_raw.pk}
    assert listed(operator_client, RatedEvent, "?q=same-id") == {my_raw.ratings.get().pk}
    assert listed(operator_client, UnmatchedUsage, "?q=same-id-stray") == {
        UnmatchedUsage.objects.get(tenant=mine.tenant).pk
    }
    assert listed(operator_client, RawEvent, "?q=SAME-ID") == set()  # event ids are exact
    assert listed(operator_client, RawEvent, "?q=same") == set()
    everyone = set(RawEvent.objects.filter(event_id="same-id").values_list("pk", flat=True))
    assert len(everyone) == 2 and listed(admin_client, RawEvent, "?q=same-id") == everyone
    assert listed(admin_client, RatedEvent, "?q=same-id") == set(RatedEvent.objects.values_list("pk", flat=True))


def test_rated_events_by_customer_and_metric(operator_client, two_tenants):
    mine, theirs = two_tenants
    rated = RatedEvent.objects.get(tenant=mine.tenant).pk
    assert listed(operator_client, RatedEvent, f"?q={mine.customer.external_id}") == {rated}
    assert listed(operator_client, RatedEvent, f"?q={mine.customer.name.upper()}") == {rated}
    assert listed(operator_client, RatedEvent, f"?q={mine.metric.code}") == {rated}
    assert listed(operator_client, RatedEvent, f"?q={theirs.customer.external_id}") == set()
    assert listed(operator_client, RatedEvent, f"?metric={mine.metric.code}") == {rated}  # the filter, by metric id


def test_wallet_entries_by_customer(operator_client, two_tenants):
    mine, theirs = two_tenants
    entry = WalletEntry.objects.get(tenant=mine.tenant).pk
    assert listed(operator_client, WalletEntry, f"?q={mine.customer.external_id}") == {entry}
    assert listed(operator_client, WalletEntry, f"?q={theirs.customer.external_id}") == set()


def test_period_filter(operator_client, two_tenants):
    mine, _ = two_tenants
    rated = RatedEvent.objects.get(tenant=mine.tenant)
    period = rated.period_start.isoformat().replace("+", "%2B")
    assert listed(operator_client, RatedEvent, f"?period={period}") == {rated.pk}
    older = (rated.period_start - timedelta(days=31)).isoformat().replace("+", "%2B")
    assert listed(operator_client, RatedEvent, f"?period={older}") == set()


def test_a_superuser_chooses_a_tenant_before_a_period_of_the_rated_ledger(admin_client, two_tenants):
    mine, _ = two_tenants
    rated = RatedEvent.objects.get(tenant=mine.tenant)
    period = rated.period_start.isoformat().replace("+", "%2B")
    assert "period" not in set(_filters(admin_client, ""))
    response = admin_client.get(changelist_url(RatedEvent) + f"?period={period}")
    assert response.status_code == 302 and "e=1" in response.url
    chosen = f"?tenant__id__exact={mine.tenant.pk}"
    assert "period" in set(_filters(admin_client, chosen))
    assert listed(admin_client, RatedEvent, f"{chosen}&period={period}") == {rated.pk}


def _filters(client, query: str) -> list:
    specs = client.get(changelist_url(RatedEvent) + query).context["cl"].filter_specs
    return [getattr(spec, "parameter_name", None) for spec in specs if spec.has_output()]


def test_written_date_filter_reads_the_id_window_of_the_chosen_days(admin_client, db):
    """Thirty raw events persisted one a day, in id order: each day finds its own."""
    setup = priced_setup()
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    ids = []
    for age in range(29, -1, -1):
        moment = today - timedelta(days=age)
        ids.append(
            RawEvent.objects.create(
                tenant=setup.tenant, event_id=f"day-{age}", subject="customer:1", metric=setup.metric.code,
                quantity=Decimal(1), timestamp=moment, received_at=moment, created_at=moment,
            ).pk
        )
    by_age = dict(zip(range(29, -1, -1), ids))
    assert listed(admin_client, RawEvent, "?created_at=today") == {by_age[0]}
    assert listed(admin_client, RawEvent, "?created_at=yesterday") == {by_age[1]}
    assert listed(admin_client, RawEvent, "?created_at=7d") == {by_age[age] for age in range(7)}
    day = (today - timedelta(days=12)).date().isoformat()
    assert listed(admin_client, RawEvent, f"?created_at={day}") == {by_age[12]}
    assert listed(admin_client, RawEvent, "?created_at=1999-01-01") == set()
    response = admin_client.get(changelist_url(RawEvent) + "?created_at=not-a-day")
    assert response.status_code == 302 and "e=1" in response.url  # the admin's "bad filter" answer


def test_a_hand_typed_date_drill_down_is_refused(admin_client, two_tenants):
    """The old date_hierarchy URLs filtered a date part of an unindexed column along the id walk."""
    for url in (changelist_url(RawEvent) + "?timestamp__year=2026", changelist_url(RatedEvent) + "?event_timestamp__month=1"):
        assert admin_client.get(url).status_code == 400, url
    assert admin_client.get(changelist_url(WalletEntry) + "?created_at__date=2026-01-01").status_code == 400


def test_the_count_stops_at_the_cap(admin_client, two_tenants, monkeypatch):
    monkeypatch.setattr(ledger, "COUNT_CAP", 2)
    page = admin_client.get(changelist_url(RawEvent)).content.decode()  # 4 raw events
    assert "more than 2 raw events" in page
    monkeypatch.setattr(ledger, "COUNT_CAP", 10)
    assert "4 raw events" in admin_client.get(changelist_url(RawEvent)).content.decode()


def test_lists_cannot_be_sorted_by_a_column(admin_client, two_tenants):
    response = admin_client.get(changelist_url(RatedEvent) + "?o=0")  # id ascending, were it sortable
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == list(RatedEvent.objects.order_by("-id"))


# --- every query a ledger page runs is indexed -----------------------------------------------------


def _ledger_pages(setups, *, as_operator: bool) -> list[str]:
    mine, _ = setups
    rated = RatedEvent.objects.get(tenant=mine.tenant)
    scope = "" if as_operator else f"tenant__id__exact={mine.tenant.pk}&"  # a superuser picks a tenant first
    period = scope + "period=" + rated.period_start.isoformat().replace("+", "%2B")
    raw, rated_url = changelist_url(RawEvent), changelist_url(RatedEvent)
    # The metric filter is a filter over the scan by id: for an operator that scan is (tenant, id);
    # a superuser's, across tenants, is the primary key's (its capped count is not indexed).
    # Likewise "unresolved" of the (small) unmatched usage table: (tenant, id) for an operator.
    scoped = [
        raw + f"?metric={mine.metric.code}", rated_url + f"?metric={mine.metric.code}",
        changelist_url(UnmatchedUsage) + "?resolved=no",
    ]
    return (scoped if as_operator else []) + [
        raw, raw + "?q=same-id", raw + "?is_late__exact=1", raw + "?created_at=7d",
        rated_url, rated_url + "?q=same-id", rated_url + f"?q={mine.customer.external_id}", rated_url + f"?{period}",
        rated_url + "?rated_at=today",
        changelist_url(UnmatchedUsage), changelist_url(UnmatchedUsage) + "?q=same-id-stray",
        changelist_url(WalletEntry), changelist_url(WalletEntry) + f"?q={mine.customer.external_id}",
        changelist_url(WalletEntry) + "?created_at=today",
    ]


def _looked_up(url: str, *, as_operator: bool) -> str | None:
    """The column whose index condition finds the rows of a page filtered by a period, searched
    by event id or (for an operator) filtered to late events — not a filter over a walk along
    another index, which PostgreSQL chooses when it believes the rows spread evenly over the ids
    (a period's do not). Other pages: not asserted (on a few rows, either plan is as good)."""
    if "period=" in url:
        return "period_start"
    if url.startswith(changelist_url(RawEvent)) and "q=" in url:
        return "event_id"
    if "is_late__exact=1" in url and as_operator:
        return "using raw_event_late "  # the partial index of late events
    return None


def _plan(sql: str, *, search: bool = False) -> str:
    """PostgreSQL's plan for `sql` with sequential scans, bitmap scans and sorts priced out of
    reach, as they are at volume: a table scanned sequentially anyway has no index the query can
    use, and a page sorted anyway has no index that reads it in order. The test tables are tiny,
    where any index on the tenant and a sort of its few rows would otherwise win — and which plan
    the planner took then varied with what earlier tests of the session left in the statistics
    (bench/admin_read.py times the same pages at 10M rows). A search (`search`) pins its few rows
    by equality and may sort them: sorts stay allowed there."""
    settings = ("enable_seqscan", "enable_bitmapscan") + (() if search else ("enable_sort",))
    with connection.cursor() as cursor:
        for name in settings:
            cursor.execute(f"SET LOCAL {name} = off")
        cursor.execute("EXPLAIN " + sql)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        for name in settings:
            cursor.execute(f"RESET {name}")
    return plan


@pytest.mark.parametrize("as_operator", [True, False], ids=["operator", "superuser"])
def test_ledger_pages_scan_no_ledger_and_sort_none(client, admin_user, two_tenants, as_operator, monkeypatch):
    """Each query a ledger page runs, planned with sequential scans priced out: no ledger is
    scanned sequentially, no count is unbounded, no drill-down runs, and a list page (one row per
    page here, so that it is paginated as at volume: LIMIT, not the whole result) is read in the
    index's order, without a sort. A search pins its rows by equality first (a sort of those few
    rows is fine), so its sort is not checked."""
    monkeypatch.setattr(LedgerAdmin, "list_per_page", 1)
    mine = two_tenants[0]
    now = timezone.now()
    RawEvent.objects.bulk_create(  # a tenant with a history, and statistics that say so
        RawEvent(tenant=mine.tenant, event_id=f"history-{n}", subject="customer:1", metric=mine.metric.code,
                 quantity=Decimal(1), timestamp=now, received_at=now, created_at=now)
        for n in range(500)
    )
    with connection.cursor() as cursor:
        for table in sorted(LEDGER_TABLES):
            cursor.execute(f'ANALYZE "{table}"')
    client.force_login(ledger_operator(two_tenants[0].tenant) if as_operator else admin_user)
    checked = 0
    pages = _ledger_pages(two_tenants, as_operator=as_operator)
    for url in pages:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200, url
        for query in captured.captured_queries:
            sql = query["sql"]
            tables = {table for table in LEDGER_TABLES if f'"{table}"' in sql}
            if not tables or not sql.lstrip().upper().startswith("SELECT"):
                continue
            checked += 1
            assert "date_trunc" not in sql.lower(), f"{url}: a date drill-down over a ledger: {sql}"
            if "COUNT(" in sql.upper():
                assert "LIMIT" in sql.upper(), f"{url}: an unbounded count of a ledger: {sql}"
            plan = _plan(sql, search="q=" in url)
            for table in tables:
                assert f"Seq Scan on {table}" not in plan, f"{url}: {table} scanned sequentially:\n{sql}\n{plan}"
            if "q=" not in url and " LIMIT " in sql.upper() and "COUNT(" not in sql.upper():
                assert "Sort  (" not in plan, f"{url}: a ledger page sorted, not read in index order:\n{sql}\n{plan}"
            looked_up = _looked_up(url, as_operator=as_operator)
            if looked_up and "ORDER BY" in sql:  # the page's rows, not the filter's choices
                conditions = [line for line in plan.splitlines() if "Index Cond" in line or " using " in line]
                assert any(looked_up in line for line in conditions), f"{url}: {looked_up} not looked up:\n{sql}\n{plan}"
    assert checked >= len(pages)  # every page read its ledger, and every read was checked
