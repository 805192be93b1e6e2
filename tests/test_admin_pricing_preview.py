"""The metric config admin: the models' reference as help text, a JSON textarea for tiers, engine
errors on the config field naming the path, and the price preview at a few volumes (the
volume picking is a pure function, tested first)."""

from __future__ import annotations

import html
import json
import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from billing.rating import validate_config
from catalog import services
from catalog.admin.pricing_preview import (
    MAX_PREVIEWED_OVERRIDES,
    MAX_VOLUMES,
    MODEL_REFERENCE,
    preview_volumes,
    price_preview,
    price_preview_html,
)
from catalog.models import MetricConfig
from tests.factories import MetricFactory, priced_setup
from tests.test_admin import change_url, operator

TIERS = [
    {"up_to": "1000", "unit_amount": "0.01"},
    {"up_to": "10000", "unit_amount": "0.008"},
    {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
]
GRADUATED = {"model": "graduated", "tiers": TIERS}


def _volumes(config: dict) -> list[str]:
    return [f"{volume:f}" for volume in preview_volumes(validate_config(config))]


# --- which volumes (pure) ------------------------------------------------------------------


def test_tiered_volumes_are_each_boundary_and_just_past_it_plus_round_numbers():
    expected = ["0", "1", "10", "1000", "1001", "10000", "10001", "1000000"]
    assert _volumes(GRADUATED) == expected
    assert _volumes({**GRADUATED, "model": "volume"}) == expected


def test_a_fractional_boundary_is_passed_at_its_own_precision():
    tiers = [{"up_to": "2.5", "unit_amount": "1"}, {"up_to": None, "unit_amount": "0.5"}]
    assert _volumes({"model": "graduated", "tiers": tiers}) == ["0", "1", "2.5", "2.6", "10", "1000", "1000000"]


def test_percentage_previews_single_transactions():
    assert _volumes({"model": "percentage", "rate": "2.9", "fixed_fee": "0.30"}) == ["10", "100", "1000"]


def test_quota_free_units_and_packages_are_boundaries():
    assert _volumes({"model": "per_unit", "rate": "0.003"}) == ["0", "1", "10", "1000", "1000000"]
    assert _volumes({"model": "per_unit", "rate": "0.003", "included_free": "500"}) == [
        "0", "1", "10", "500", "501", "1000", "1000000",
    ]  # fmt: skip
    assert _volumes({"model": "included_quota", "quota": "1000", "overage_rate": "0.1"}) == [
        "0", "1", "10", "1000", "1001", "1000000",
    ]  # fmt: skip
    package = {"model": "package", "package_size": "100", "rate": "5", "free_units": "10"}
    assert _volumes(package) == ["0", "1", "10", "11", "110", "111", "210", "211", "1000", "1000000"]
    assert _volumes({"model": "flat", "amount": "49"}) == ["0", "1", "10", "1000", "1000000"]


def test_many_tiers_are_capped_lowest_boundaries_first():
    tiers = [{"up_to": str(100 * (n + 1)), "unit_amount": "1"} for n in range(40)] + [
        {"up_to": None, "unit_amount": "0"}
    ]
    volumes = preview_volumes(validate_config({"model": "graduated", "tiers": tiers}))
    assert len(volumes) <= MAX_VOLUMES and volumes == sorted(volumes)
    assert {Decimal(0), Decimal(1), Decimal(10), Decimal(1000), Decimal(1_000_000)} <= set(volumes)
    assert Decimal(100) in volumes and Decimal(101) in volumes and Decimal(4000) not in volumes


def test_preview_sections_per_override_and_none_when_invalid():
    config = {
        "model": "per_unit",
        "rate": "0.003",
        "overrides": [{"match": {"region": ["uk", "eu"]}, "price": GRADUATED}],
    }
    base, override = price_preview(config)
    assert (base.title, override.title) == ("base price (no override matches)", "override region=eu|uk")
    assert [(row.units, row.amount) for row in override.rows][3:5] == [("1,000", "10"), ("1,001", "10.008")]
    assert [(row.units, row.amount) for row in base.rows][-1] == ("1,000,000", "3,000")
    assert override.rows[4].lines == ("tier 1 (0, 1000]: 1,000 × 0.01 = 10", "tier 2 (1000, 10000]: 1 × 0.008 = 0.008")
    assert price_preview({"model": "graduated", "tiers": TIERS[:2]}) is None
    many = {**config, "overrides": [{"match": {"n": str(n)}, "price": GRADUATED} for n in range(12)]}
    assert len(price_preview(many)) == 1 + MAX_PREVIEWED_OVERRIDES


def test_a_section_names_its_limit_and_prices_as_without_it():
    limited = {**GRADUATED, "limit": {"units": "100000", "overage": "block"}}
    config = {"model": "per_unit", "rate": "0.003", "overrides": [{"match": {"region": "eu"}, "price": limited}]}
    base, override = price_preview(config)
    assert (base.limit, override.limit) == ("", "limit: 100,000 units (block)")
    assert override.rows == price_preview(GRADUATED)[0].rows
    [bill] = price_preview({"model": "per_unit", "rate": "1", "limit": {"units": "2.5", "overage": "bill"}})
    assert bill.limit == "limit: 2.5 units (bill)"
    assert '<p class="help">limit: 100,000 units (block)</p>' in price_preview_html(config)


def test_every_reference_example_is_a_valid_config():
    assert [model for model, _, _ in MODEL_REFERENCE] == [
        "per_unit", "flat", "included_quota", "graduated", "volume", "package", "percentage", "overrides", "limit",
    ]  # fmt: skip
    for _, _, example in MODEL_REFERENCE:
        validate_config(example)


# --- the admin pages ---------------------------------------------------------------------


@pytest.fixture
def setup(db):
    return priced_setup(rate="0.003")


@pytest.fixture
def operator_client(client, setup):
    client.force_login(operator(setup.tenant))
    return client


def _preview_rows(html: str) -> list[tuple[str, str]]:
    """(units, amount) of every row of the price previews on a page."""
    return re.findall(r'<td class="num">([^<]*)</td>\s*<td class="num">([^<]*)</td>', html)


def test_operator_edits_a_draft_config_to_graduated_and_sees_the_preview(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version)
    config = draft.metric_configs.get()
    form = {"version": draft.pk, "metric": setup.metric.pk, "config": json.dumps(GRADUATED), "_continue": "1"}
    response = operator_client.post(change_url(config), form)
    assert response.status_code == 302 and response.url == change_url(config)
    config.refresh_from_db()
    assert config.config == validate_config(GRADUATED)

    page = operator_client.get(change_url(config)).content.decode()
    assert "amount (USD)" in page
    assert _preview_rows(page) == [
        ("0", "0"),
        ("1", "0.01"),
        ("10", "0.1"),
        ("1,000", "10"),
        ("1,001", "10.008"),
        ("10,000", "82"),
        ("10,001", "87.005"),
        ("1,000,000", "5,037"),
    ]
    assert "tier 3 (10000, ∞): 1 × 0.005 + 5 = 5.005" in page
    textarea = html.unescape(
        re.search(r'<textarea name="config" cols="90" rows="18"[^>]*>(.*?)</textarea>', page, re.DOTALL)[1]
    )
    assert textarea.startswith('\n{\n  "model": "graduated",\n  "tiers": [\n    {\n      "up_to": "1000",\n')
    assert "package_size" in page and "overrides" in page  # the models' reference
    assert "a hard limit of units per period" in page

    version_page = operator_client.get(change_url(draft)).content.decode()
    assert "price-preview compact" in version_page and ("1,001", "10.008") in _preview_rows(version_page)
    assert "pricing-reference" in version_page


def test_an_invalid_config_shows_the_path_and_saves_nothing(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version)
    config = draft.metric_configs.get()
    before = config.config
    descending = {"model": "graduated", "tiers": [TIERS[1], TIERS[0], TIERS[2]]}
    form = {"version": draft.pk, "metric": setup.metric.pk, "config": json.dumps(descending)}
    response = operator_client.post(change_url(config), form)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["config"] == [
        "tiers[1].up_to: must be greater than the previous tier's up_to (10000): tiers must ascend"
    ]
    assert "No preview: the config is not valid." in response.content.decode()
    config.refresh_from_db()
    assert config.config == before
    assert MetricConfig.objects.filter(version=draft).count() == 1


def test_the_inline_validates_and_previews_the_submitted_config(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version)
    config = draft.metric_configs.get()
    form = {
        "effective_from_0": draft.effective_from.strftime("%Y-%m-%d"),
        "effective_from_1": "not a time",  # another field at fault: the page comes back with the preview
        "notes": "",
        "metric_configs-TOTAL_FORMS": "1",
        "metric_configs-INITIAL_FORMS": "1",
        "metric_configs-MIN_NUM_FORMS": "0",
        "metric_configs-MAX_NUM_FORMS": "1000",
        "metric_configs-0-id": str(config.pk),
        "metric_configs-0-version": str(draft.pk),
        "metric_configs-0-metric": str(setup.metric.pk),
        "metric_configs-0-config": json.dumps({"model": "package", "package_size": "100", "rate": "5"}),
    }
    response = operator_client.post(change_url(draft), form)
    assert response.status_code == 200
    assert ("101", "10") in _preview_rows(response.content.decode())  # the submitted package price
    config.refresh_from_db()
    assert config.config["model"] == "per_unit"

    form["effective_from_1"] = "00:00:00"
    form["metric_configs-0-config"] = '{"model": "package", "package_size": "100"}'
    response = operator_client.post(change_url(draft), form)
    assert response.status_code == 200
    inline_form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert inline_form.errors["config"] == ["rate: is required"]
    config.refresh_from_db()
    assert config.config["model"] == "per_unit"


def test_published_configs_show_a_read_only_preview_and_other_tenants_none(operator_client, setup):
    page = operator_client.get(change_url(setup.metric_config)).content.decode()
    assert 'name="config"' not in page
    assert ("1,000,000", "3,000") in _preview_rows(page)
    # The config itself reads as indented JSON, model first, on this page and the version's.
    pretty = '<pre class="pricing-config">{\n  &quot;model&quot;: &quot;per_unit&quot;,\n  &quot;rate&quot;: &quot;0.003&quot;'
    assert pretty in page
    assert pretty in operator_client.get(change_url(setup.version)).content.decode()
    other = priced_setup(rate="7")
    response = operator_client.get(change_url(other.metric_config), follow=True)
    assert ("1,000,000", "7,000,000") not in _preview_rows(response.content.decode())
    assert reverse("admin:index") in response.redirect_chain[-1][0]


def test_the_previews_read_the_currency_once_per_page(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version)

    def plan_and_version_queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert operator_client.get(change_url(draft)).status_code == 200
        tables = ('FROM "catalog_rateplan"', 'FROM "catalog_rateplanversion"')
        return sum(1 for query in captured.captured_queries if any(table in query["sql"] for table in tables))

    one = plan_and_version_queries()
    for _ in range(3):
        metric = MetricFactory(tenant=setup.tenant, product=setup.metric.product)
        services.metric_config_set(version=draft, metric=metric, config=GRADUATED)
    assert plan_and_version_queries() == one == 2  # the version, then its plan
