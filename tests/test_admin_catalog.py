"""Catalog admin behaviour: API keys shown once and stored hashed, revocation, and the rate
plan version lifecycle (draft editing with validated configs, publish, read-only published
versions, revise)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.urls import reverse
from django.utils import timezone

from catalog import services
from catalog.models import ApiKey, MetricConfig, RatePlan, RatePlanVersion, key_hash
from tests.factories import MetricFactory, priced_setup
from tests.test_admin import change_url, changelist_url, operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup():
    return priced_setup(rate="0.003")


@pytest.fixture
def operator_client(client, setup):
    client.force_login(operator(setup.tenant))
    return client


def _messages(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


# --- API keys -----------------------------------------------------------------------------


def test_api_key_add_shows_the_key_once_and_stores_only_its_hash(operator_client, setup):
    form = {"app": setup.app.pk, "name": "ci"}
    response = operator_client.post(reverse("admin:catalog_apikey_add"), form, follow=True)
    assert response.status_code == 200
    shown = [m for m in _messages(response) if "copy it now" in m]
    assert len(shown) == 1
    secret = shown[0].split(": ", 1)[1].split(" ")[0]
    api_key = ApiKey.objects.get(name="ci")
    assert secret.startswith("sk_live_") and len(secret) > 40
    assert api_key.key_hash == key_hash(secret) and api_key.prefix == secret[:16]
    assert api_key.tenant_id == setup.tenant.pk and api_key.app_id == setup.app.pk
    stored = [str(v) for v in ApiKey.objects.filter(pk=api_key.pk).values().get().values()]
    assert secret not in stored
    assert not LogEntry.objects.filter(object_repr__contains=secret).exists()
    assert not LogEntry.objects.filter(change_message__contains=secret).exists()
    # Never again: not on the next page, the key's own page or the list.
    for url in (changelist_url(ApiKey), change_url(api_key)):
        page = operator_client.get(url)
        assert secret not in page.content.decode()
        assert not any("copy it now" in m for m in _messages(page))


def test_api_key_of_another_tenants_app_cannot_be_added(operator_client):
    other = priced_setup()
    response = operator_client.post(reverse("admin:catalog_apikey_add"), {"app": other.app.pk, "name": "sneaky"})
    assert response.status_code == 200
    assert "app" in response.context["adminform"].form.errors
    assert not ApiKey.objects.filter(name="sneaky").exists()


def test_revoking_keys_asks_for_confirmation_and_a_reason(operator_client, setup):
    kept, _ = services.api_key_create(app=setup.app, name="kept")
    doomed = ApiKey.objects.get(name="test key")
    gone, _ = services.api_key_create(app=setup.app, name="gone")
    services.api_key_revoke(api_key=gone, reason="rotated", revoked_by="admin:someone")
    selection = {"action": "revoke_selected", "_selected_action": [doomed.pk, gone.pk]}

    page = operator_client.post(changelist_url(ApiKey), selection)  # the action: the confirmation page only
    html = page.content.decode()
    assert page.status_code == 200 and page.templates[0].name == "admin/confirm_destructive.html"
    assert doomed.prefix in html and "revoked already" in html and 'name="reason"' in html
    assert any("no longer match" in c for c in page.context["consequences"])
    assert ("action", "revoke_selected") in page.context["carry"]
    no_reason = operator_client.post(changelist_url(ApiKey), {**selection, "_confirm": "1", "reason": " "})
    assert no_reason.status_code == 200 and no_reason.context["form"].errors["reason"]
    doomed.refresh_from_db()
    assert doomed.revoked_at is None

    done = operator_client.post(
        changelist_url(ApiKey), {**selection, "_confirm": "1", "reason": "leaked in a CI log"}, follow=True
    )
    assert any("Revoked 1 key(s) (leaked in a CI log)" in m and "1 were revoked already" in m for m in _messages(done))
    doomed.refresh_from_db()
    gone.refresh_from_db()
    kept.refresh_from_db()
    assert doomed.revoked_at is not None and kept.revoked_at is None
    assert (doomed.revoked_reason, doomed.revoked_by) == ("leaked in a CI log", "admin:operator")
    assert (gone.revoked_reason, gone.revoked_by) == ("rotated", "admin:someone")  # the first revocation stands
    assert LogEntry.objects.filter(object_id=str(doomed.pk), change_message="Revoked: leaked in a CI log").exists()
    listing = operator_client.get(changelist_url(ApiKey) + "?status=revoked")
    assert {k.pk for k in listing.context["cl"].result_list} == {doomed.pk, gone.pk}
    assert "leaked in a CI log" in operator_client.get(change_url(doomed)).content.decode()


# --- rate plan versions ---------------------------------------------------------------------


def test_published_version_is_read_only_with_a_revise_button(operator_client, setup):
    page = operator_client.get(change_url(setup.version))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="effective_from_0"' not in html and 'name="notes"' not in html
    assert 'name="metric_configs-0-config"' not in html and 'name="_save"' not in html
    assert reverse("admin:catalog_rateplanversion_revise", args=[setup.version.pk]) in html
    assert reverse("admin:catalog_rateplanversion_publish", args=[setup.version.pk]) not in html
    refused = operator_client.post(change_url(setup.version), {"notes": "changed", "effective_from_0": "2020-01-01"})
    assert refused.status_code == 403
    config_page = operator_client.get(change_url(setup.metric_config))
    assert config_page.status_code == 200 and 'name="config"' not in config_page.content.decode()
    assert operator_client.post(change_url(setup.metric_config), {"config": "{}"}).status_code == 403
    setup.version.refresh_from_db()
    setup.metric_config.refresh_from_db()
    assert setup.version.notes == "" and setup.metric_config.config["rate"] == "0.003"


def test_revise_creates_the_next_draft_and_redirects_to_it(operator_client, setup):
    response = operator_client.post(reverse("admin:catalog_rateplanversion_revise", args=[setup.version.pk]))
    draft = RatePlanVersion.objects.get(rate_plan=setup.rate_plan, version=setup.version.version + 1)
    assert response.status_code == 302 and response.url == change_url(draft)
    assert draft.status == RatePlanVersion.Status.DRAFT
    copied = list(draft.metric_configs.values_list("metric_id", "config"))
    assert copied == [(setup.metric.pk, setup.metric_config.config)]
    page = operator_client.get(response.url)
    assert any(f"Created draft {draft}" in m for m in _messages(page))
    assert 'name="metric_configs-0-config"' in page.content.decode()
    assert reverse("admin:catalog_rateplanversion_publish", args=[draft.pk]) in page.content.decode()
    revise_url = reverse("admin:catalog_rateplanversion_revise", args=[setup.version.pk])
    assert operator_client.get(revise_url).status_code == 405


def _draft_form(draft: RatePlanVersion, configs: list[tuple[MetricConfig | None, int, str]]) -> dict:
    data = {
        "effective_from_0": draft.effective_from.strftime("%Y-%m-%d"),
        "effective_from_1": draft.effective_from.strftime("%H:%M:%S"),
        "notes": "new prices",
        "metric_configs-TOTAL_FORMS": str(len(configs)),
        "metric_configs-INITIAL_FORMS": str(sum(1 for c in configs if c[0] is not None)),
        "metric_configs-MIN_NUM_FORMS": "0",
        "metric_configs-MAX_NUM_FORMS": "1000",
    }
    for index, (existing, metric_id, config_text) in enumerate(configs):
        data[f"metric_configs-{index}-id"] = str(existing.pk) if existing else ""
        data[f"metric_configs-{index}-version"] = str(draft.pk)
        data[f"metric_configs-{index}-metric"] = str(metric_id)
        data[f"metric_configs-{index}-config"] = config_text
    return data


def test_draft_config_is_validated_by_the_rating_engine_on_the_field(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version)
    existing = draft.metric_configs.get()
    response = operator_client.post(
        change_url(draft), _draft_form(draft, [(existing, setup.metric.pk, '{"model": "per_unit", "rate": 0.004}')])
    )
    assert response.status_code == 200
    inline_form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert inline_form.errors["config"] == ['rate: must be a decimal string such as "0.003", not 0.004 (floats are inexact)']
    existing.refresh_from_db()
    assert existing.config["rate"] == "0.003"

    saved = operator_client.post(
        change_url(draft), _draft_form(draft, [(existing, setup.metric.pk, '{"model": "per_unit", "rate": "0.004"}')])
    )
    assert saved.status_code == 302
    existing.refresh_from_db()
    draft.refresh_from_db()
    assert existing.config["rate"] == "0.004" and draft.notes == "new prices"


def test_metric_config_admin_shows_engine_errors_on_the_config_field(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version)
    other_metric = MetricFactory(tenant=setup.tenant, product=setup.metric.product)
    response = operator_client.post(
        reverse("admin:catalog_metricconfig_add"),
        {"version": draft.pk, "metric": other_metric.pk, "config": '{"model": "banana"}'},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["config"][0].startswith("model: unknown pricing model 'banana'; expected one of ['per_unit', 'flat',")
    form = operator_client.get(reverse("admin:catalog_metricconfig_add")).context["adminform"].form
    assert set(form.fields["version"].queryset) == {draft}  # drafts only


def test_publish_a_draft_and_errors_become_messages(operator_client, setup):
    tomorrow = timezone.now() + timedelta(days=1)
    empty = services.rate_plan_version_create(rate_plan=setup.rate_plan, effective_from=tomorrow)
    response = operator_client.post(reverse("admin:catalog_rateplanversion_publish", args=[empty.pk]), follow=True)
    assert response.status_code == 200
    assert any("was not published" in m and "prices no metric" in m for m in _messages(response))
    empty.refresh_from_db()
    assert empty.status == RatePlanVersion.Status.DRAFT

    draft = services.rate_plan_version_revise(version=setup.version, effective_from=timezone.now() + timedelta(days=2))
    response = operator_client.post(reverse("admin:catalog_rateplanversion_publish", args=[draft.pk]))
    assert response.status_code == 302 and response.url == change_url(draft)
    draft.refresh_from_db()
    assert draft.is_published and draft.published_at is not None
    again = operator_client.post(reverse("admin:catalog_rateplanversion_publish", args=[draft.pk]))
    assert again.status_code == 403


def test_add_a_version_with_its_configs(operator_client, setup):
    effective = (timezone.now() + timedelta(days=3)).replace(microsecond=0)
    data = {
        "rate_plan": str(setup.rate_plan.pk),
        "effective_from_0": effective.strftime("%Y-%m-%d"),
        "effective_from_1": effective.strftime("%H:%M:%S"),
        "notes": "autumn prices",
        "metric_configs-TOTAL_FORMS": "1",
        "metric_configs-INITIAL_FORMS": "0",
        "metric_configs-MIN_NUM_FORMS": "0",
        "metric_configs-MAX_NUM_FORMS": "1000",
        "metric_configs-0-id": "",
        "metric_configs-0-version": "",
        "metric_configs-0-metric": str(setup.metric.pk),
        "metric_configs-0-config": '{"model": "per_unit", "rate": 2}',
    }
    response = operator_client.post(reverse("admin:catalog_rateplanversion_add"), data)
    assert response.status_code == 302, response.context and response.context["errors"]
    version = RatePlanVersion.objects.get(notes="autumn prices")
    assert version.version == setup.version.version + 1 and version.status == RatePlanVersion.Status.DRAFT
    assert version.tenant_id == setup.tenant.pk and version.effective_from == effective
    config = version.metric_configs.get()
    assert config.tenant_id == setup.tenant.pk
    assert config.config == {"model": "per_unit", "rate": "2", "included_free": "0"}


def test_list_actions_publish_and_revise(operator_client, setup):
    draft = services.rate_plan_version_revise(version=setup.version, effective_from=timezone.now() + timedelta(days=5))
    publish = {"action": "publish_selected", "_selected_action": [draft.pk]}
    operator_client.post(changelist_url(RatePlanVersion), publish)
    draft.refresh_from_db()
    assert draft.is_published
    operator_client.post(changelist_url(RatePlanVersion), {"action": "revise_selected", "_selected_action": [draft.pk]})
    assert RatePlanVersion.objects.filter(rate_plan=setup.rate_plan).count() == 3
    newest = RatePlanVersion.objects.filter(rate_plan=setup.rate_plan).order_by("-version").first()
    assert newest.version == draft.version + 1 and newest.status == RatePlanVersion.Status.DRAFT


# --- rate plans -----------------------------------------------------------------------------


def test_rate_plan_currency_must_be_an_active_iso_4217_code(operator_client, setup):
    form = {"offering": setup.rate_plan.offering_id, "code": "test-money", "name": "Test money"}
    for currency in ("XTS", "XXX", "ABC"):
        refused = operator_client.post(reverse("admin:catalog_rateplan_add"), {**form, "currency": currency})
        assert refused.status_code == 200, currency
        assert refused.context["adminform"].form.errors["currency"] == [
            f"'{currency}' is not an active ISO 4217 currency code (upper case, e.g. USD)."
        ]
    assert not RatePlan.objects.filter(code="test-money").exists()
    added = operator_client.post(reverse("admin:catalog_rateplan_add"), {**form, "currency": "KWD"})
    assert added.status_code == 302
    assert RatePlan.objects.get(code="test-money").currency == "KWD"


def test_a_new_subscription_form_starts_with_the_tenants_default_invoice_terms(operator_client, setup):
    setup.tenant.default_net_terms_days, setup.tenant.default_invoice_grace_hours = 10, 24
    setup.tenant.save()
    form = operator_client.get(reverse("admin:catalog_subscription_add")).context["adminform"].form
    assert (form.initial["net_terms_days"], form.initial["invoice_grace_hours"]) == (10, 24)
