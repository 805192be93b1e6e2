"""Rate plan versions and metric configs over the API: drafts are editable, published
versions are immutable (409 `version_published`), revise copies, configs are engine-validated."""

from __future__ import annotations

from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

import pytest

from catalog import services
from catalog.models import MetricConfig, RatePlanVersion
from tests.factories import MetricFactory, OfferingFactory, ProductFactory, RatePlanFactory

pytestmark = pytest.mark.django_db

JAN = datetime(2026, 1, 1, tzinfo=dt_timezone.utc)
PER_UNIT = {"model": "per_unit", "rate": "0.003", "included_free": "1000"}


@pytest.fixture
def plan(tenant):
    return RatePlanFactory(tenant=tenant, offering=OfferingFactory(tenant=tenant))


@pytest.fixture
def metric(tenant):
    return MetricFactory(tenant=tenant, product=ProductFactory(tenant=tenant))


@pytest.fixture
def draft(plan):
    return services.rate_plan_version_create(rate_plan=plan, effective_from=JAN)


@pytest.fixture
def published(draft, metric):
    services.metric_config_set(version=draft, metric=metric, config=PER_UNIT)
    return services.rate_plan_version_publish(version=draft)


def test_create_numbers_drafts_in_sequence(admin, plan):
    first = admin.post("/api/v1/rate-plan-versions", {"rate_plan": plan.id, "effective_from": JAN.isoformat()})
    assert first.status_code == 201, first.content
    body = first.json()
    assert (body["rate_plan"], body["version"], body["status"], body["published_at"], body["metric_configs"]) == (
        plan.id, 1, "draft", None, []
    )
    second = admin.post(
        "/api/v1/rate-plan-versions", {"rate_plan": plan.id, "effective_from": JAN.isoformat(), "notes": "n"}
    )
    assert second.json()["version"] == 2 and second.json()["notes"] == "n"
    assert list(RatePlanVersion.objects.filter(rate_plan=plan).values_list("version", flat=True)) == [1, 2]


def test_create_ignores_client_status_and_version(admin, plan):
    response = admin.post(
        "/api/v1/rate-plan-versions",
        {"rate_plan": plan.id, "effective_from": JAN.isoformat(), "status": "published", "version": 9},
        format="json",
    )
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["version"]) == ("draft", 1)


def test_create_requires_effective_from(admin, plan):
    response = admin.post("/api/v1/rate-plan-versions", {"rate_plan": plan.id})
    assert response.status_code == 400
    assert list(response.json()["error"]["fields"]) == ["effective_from"]


def test_draft_can_be_edited(admin, draft):
    later = JAN + timedelta(days=31)
    response = admin.patch(
        f"/api/v1/rate-plan-versions/{draft.id}", {"effective_from": later.isoformat(), "notes": "Feb"}
    )
    assert response.status_code == 200, response.content
    assert response.json()["notes"] == "Feb" and response.json()["status"] == "draft"
    draft.refresh_from_db()
    assert (draft.effective_from, draft.notes) == (later, "Feb")


@pytest.mark.parametrize("method", ["patch", "put"])
def test_editing_a_published_version_is_409_pointing_at_revise(admin, published, method):
    before = RatePlanVersion.objects.filter(pk=published.pk).values().get()
    response = getattr(admin, method)(
        f"/api/v1/rate-plan-versions/{published.id}", {"effective_from": JAN.isoformat(), "notes": "changed"}
    )
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "version_published"
    assert f"POST /api/v1/rate-plan-versions/{published.id}/revise" in error["message"]
    assert RatePlanVersion.objects.filter(pk=published.pk).values().get() == before


def test_publish_requires_a_metric_config(admin, draft):
    response = admin.post(f"/api/v1/rate-plan-versions/{draft.id}/publish")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_not_publishable"
    assert "metric config" in response.json()["error"]["message"]
    draft.refresh_from_db()
    assert draft.status == RatePlanVersion.Status.DRAFT


def test_publish_sets_status_and_effective_from(admin, draft, metric):
    services.metric_config_set(version=draft, metric=metric, config=PER_UNIT)
    effective = JAN + timedelta(days=10)
    response = admin.post(
        f"/api/v1/rate-plan-versions/{draft.id}/publish", {"effective_from": effective.isoformat()}
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "published" and body["published_at"] is not None
    assert [(c["metric"], c["metric_code"], c["config"]) for c in body["metric_configs"]] == [
        (metric.id, metric.code, PER_UNIT)
    ]
    draft.refresh_from_db()
    assert (draft.status, draft.effective_from) == (RatePlanVersion.Status.PUBLISHED, effective)
    assert draft.published_at is not None

    again = admin.post(f"/api/v1/rate-plan-versions/{draft.id}/publish")
    assert again.status_code == 409 and again.json()["error"]["code"] == "version_published"


def test_publish_keeps_the_drafts_effective_from_without_a_body(admin, draft, metric):
    services.metric_config_set(version=draft, metric=metric, config=PER_UNIT)
    response = admin.post(f"/api/v1/rate-plan-versions/{draft.id}/publish")
    assert response.status_code == 200
    draft.refresh_from_db()
    assert (draft.status, draft.effective_from) == (RatePlanVersion.Status.PUBLISHED, JAN)


def test_publish_refuses_a_second_version_effective_at_the_same_instant(admin, published, plan, metric):
    other = services.rate_plan_version_create(rate_plan=plan, effective_from=JAN)
    services.metric_config_set(version=other, metric=metric, config=PER_UNIT)
    response = admin.post(f"/api/v1/rate-plan-versions/{other.id}/publish")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "version_not_publishable"
    other.refresh_from_db()
    assert other.status == RatePlanVersion.Status.DRAFT


def test_revise_copies_configs_into_the_next_draft(admin, published, metric, plan):
    effective = JAN + timedelta(days=60)
    response = admin.post(
        f"/api/v1/rate-plan-versions/{published.id}/revise", {"effective_from": effective.isoformat()}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["rate_plan"], body["version"], body["status"]) == (plan.id, published.version + 1, "draft")
    assert [(c["metric"], c["config"]) for c in body["metric_configs"]] == [(metric.id, PER_UNIT)]
    revision = RatePlanVersion.objects.get(pk=body["id"])
    assert revision.effective_from == effective
    # The original is untouched and still priced.
    published.refresh_from_db()
    assert published.status == RatePlanVersion.Status.PUBLISHED
    assert list(published.metric_configs.values_list("config", flat=True)) == [PER_UNIT]
    # And the revision is editable: change its price.
    config_id = body["metric_configs"][0]["id"]
    changed = admin.patch(f"/api/v1/metric-configs/{config_id}", {"config": {"model": "per_unit", "rate": "0.002"}})
    assert changed.status_code == 200, changed.content
    assert MetricConfig.objects.get(pk=config_id).config == {"model": "per_unit", "rate": "0.002", "included_free": "0"}
    assert list(published.metric_configs.values_list("config", flat=True)) == [PER_UNIT]


def test_version_list_filters_and_nests_configs(admin, published, draft, plan, tenant):
    other_plan_version = services.rate_plan_version_create(
        rate_plan=RatePlanFactory(tenant=tenant, offering=plan.offering), effective_from=JAN
    )
    listed = admin.get(f"/api/v1/rate-plan-versions?rate_plan={plan.id}").json()["results"]
    assert [v["id"] for v in listed] == [published.id]
    assert len(listed[0]["metric_configs"]) == 1
    drafts = admin.get("/api/v1/rate-plan-versions?status=draft").json()["results"]
    assert [v["id"] for v in drafts] == [other_plan_version.id]
    bad = admin.get("/api/v1/rate-plan-versions?status=live")
    assert bad.status_code == 400 and list(bad.json()["error"]["fields"]) == ["status"]


# --- metric configs ---------------------------------------------------------------------------


def test_metric_config_create_normalises_and_replaces(admin, draft, metric):
    created = admin.post(
        "/api/v1/metric-configs",
        {"version": draft.id, "metric": metric.id, "config": {"model": "per_unit", "rate": "0.0030"}},
        format="json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["config"] == {"model": "per_unit", "rate": "0.003", "included_free": "0"}  # normalised
    replaced = admin.post(
        "/api/v1/metric-configs", {"version": draft.id, "metric": metric.id, "config": PER_UNIT}
    )
    assert replaced.status_code == 200
    assert replaced.json()["id"] == created.json()["id"]
    assert list(MetricConfig.objects.filter(version=draft).values_list("config", flat=True)) == [PER_UNIT]
    listed = admin.get(f"/api/v1/metric-configs?version={draft.id}").json()["results"]
    assert [row["id"] for row in listed] == [created.json()["id"]]
    retrieved = admin.get(f"/api/v1/rate-plan-versions/{draft.id}").json()
    assert [c["config"] for c in retrieved["metric_configs"]] == [PER_UNIT]


def test_metric_config_of_a_draft_can_be_deleted(admin, draft, metric):
    config = services.metric_config_set(version=draft, metric=metric, config=PER_UNIT)
    response = admin.delete(f"/api/v1/metric-configs/{config.id}")
    assert response.status_code == 204
    assert not MetricConfig.objects.filter(pk=config.id).exists()


def test_metric_configs_of_a_published_version_are_immutable(admin, published, tenant):
    config = published.metric_configs.get()
    other_metric = MetricFactory(tenant=tenant, product=ProductFactory(tenant=tenant))
    attempts = [
        admin.post("/api/v1/metric-configs", {"version": published.id, "metric": other_metric.id, "config": PER_UNIT}),
        # Even an invalid config is a 409 first: the version is what makes it impossible.
        admin.post("/api/v1/metric-configs", {"version": published.id, "metric": other_metric.id, "config": {}}),
        admin.patch(f"/api/v1/metric-configs/{config.id}", {"config": {"model": "per_unit", "rate": "9"}}),
        admin.put(
            f"/api/v1/metric-configs/{config.id}",
            {"version": published.id, "metric": config.metric_id, "config": {"model": "per_unit", "rate": "9"}},
            format="json",
        ),
        admin.delete(f"/api/v1/metric-configs/{config.id}"),
    ]
    for response in attempts:
        assert response.status_code == 409, response.content
        assert response.json()["error"]["code"] == "version_published"
        assert f"/rate-plan-versions/{published.id}/revise" in response.json()["error"]["message"]
    assert list(MetricConfig.objects.filter(version=published).values_list("id", "config")) == [(config.id, PER_UNIT)]


def test_metric_config_version_and_metric_are_fixed(admin, draft, metric, tenant):
    config = services.metric_config_set(version=draft, metric=metric, config=PER_UNIT)
    other_metric = MetricFactory(tenant=tenant, product=metric.product)
    response = admin.patch(f"/api/v1/metric-configs/{config.id}", {"metric": other_metric.id})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"metric": ["Cannot be changed after creation."]}


@pytest.mark.parametrize(
    ("config", "message_start"),
    [
        ({"model": "tiered_magic", "rate": "1"}, "model: unknown pricing model 'tiered_magic'"),
        ({"rate": "1"}, "model: is required"),
        ({"model": "per_unit"}, "rate: is required"),
        ({"model": "per_unit", "rate": "-0.01"}, "rate: must be at least 0"),
        ({"model": "per_unit", "rate": 0.003}, "rate: must be a decimal string"),
        ({"model": "per_unit", "rate": "abc"}, "rate: must be a finite decimal"),
        ({"model": "per_unit", "rate": "NaN"}, "rate: must be a finite decimal"),
        ({"model": "per_unit", "rate": "1", "included_free": "-5"}, "included_free: must be at least 0"),
        ({"model": "per_unit", "rate": "1", "discount": "5"}, "discount: is not a parameter"),
        ("per_unit", "config: must be an object"),
    ],
)
def test_invalid_metric_config_is_a_400_naming_the_field(admin, draft, metric, config, message_start):
    response = admin.post("/api/v1/metric-configs", {"version": draft.id, "metric": metric.id, "config": config})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["config"]
    assert error["fields"]["config"][0].startswith(message_start), error
    assert not MetricConfig.objects.filter(version=draft).exists()


def test_invalid_metric_config_update_is_a_400(admin, draft, metric):
    config = services.metric_config_set(version=draft, metric=metric, config=PER_UNIT)
    response = admin.patch(f"/api/v1/metric-configs/{config.id}", {"config": {"model": "per_unit"}})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"config": ["rate: is required"]}
    config.refresh_from_db()
    assert config.config == PER_UNIT
