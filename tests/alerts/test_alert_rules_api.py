"""Alert rules through the API and the admin: create, read, change, delete (kept once fired),
one per scope, every field validated with an error naming it, tenants apart; firings listed."""

from __future__ import annotations

import pytest

from billing.alerts.evaluate import AlertEvaluator
from notify.models import AlertRule
from tests.alerts.test_alert_evaluate import rate
from tests.factories import priced_setup, tenant_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(api_client):
    setup = priced_setup(rate="0.01", included_free="100")
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(setup.tenant)}")
    return api_client, setup


def test_rules_are_managed_and_their_firings_listed(operator, api_client):
    client, setup = operator
    created = client.post("/api/v1/alert-rules", {"kind": "quota_percent", "thresholds": ["100", 80],
                                                  "metric": setup.metric.code, "name": "Quota"}, format="json")
    assert created.status_code == 201, created.content
    rule = created.json()
    assert (rule["thresholds"], rule["metric"], rule["factor"]) == (["80", "100"], setup.metric.code, None)
    again = client.post("/api/v1/alert-rules", {"kind": "quota_percent", "thresholds": ["50"], "metric": setup.metric.code},
                        format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "duplicate_rule"
    plan_default = client.post("/api/v1/alert-rules", {"kind": "quota_percent", "thresholds": ["50"], "metric": setup.metric.code,
                                                       "rate_plan": setup.rate_plan.pk}, format="json")
    assert plan_default.status_code == 201
    patched = client.patch(f"/api/v1/alert-rules/{rule['id']}", {"thresholds": ["90"]}, format="json")
    assert patched.status_code == 200 and patched.json()["thresholds"] == ["90"]
    assert client.delete(f"/api/v1/alert-rules/{plan_default.json()['id']}").status_code == 204

    AlertEvaluator().evaluate([rate(setup, "a", "95")])
    [firing] = client.get("/api/v1/alerts", {"customer": setup.customer.pk, "active": "true"}).json()["results"]
    assert (firing["rule"], firing["threshold"], firing["event_id"]) == (rule["id"], "90.000000", "a")
    deleted = client.delete(f"/api/v1/alert-rules/{rule['id']}")
    assert deleted.status_code == 409 and deleted.json()["error"]["code"] == "rule_has_firings"
    assert client.get("/api/v1/alerts", {"kind": "anomaly"}).json()["results"] == []
    assert client.get("/api/v1/alerts", {"kind": "nope"}).status_code == 400

    other = priced_setup()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tenant_token(other.tenant)}")
    assert client.get(f"/api/v1/alert-rules/{rule['id']}").status_code == 404
    assert client.get("/api/v1/alerts").json()["results"] == []
    foreign = client.post("/api/v1/alert-rules", {"kind": "quota_percent", "thresholds": ["1"],
                                                  "subscription": setup.subscription.pk}, format="json")
    assert foreign.status_code == 400 and foreign.json()["error"]["field"] == "subscription"


BAD = [
    pytest.param({"kind": "sometimes", "thresholds": ["1"]}, "kind", id="kind"),
    pytest.param({"kind": "quota_percent"}, "thresholds", id="no-thresholds"),
    pytest.param({"kind": "quota_percent", "thresholds": []}, "thresholds", id="empty"),
    pytest.param({"kind": "quota_percent", "thresholds": [80.5]}, "thresholds", id="float"),
    pytest.param({"kind": "quota_percent", "thresholds": ["NaN"]}, "thresholds", id="nan"),
    pytest.param({"kind": "quota_percent", "thresholds": ["Infinity"]}, "thresholds", id="inf"),
    pytest.param({"kind": "quota_percent", "thresholds": ["0"]}, "thresholds", id="zero"),
    pytest.param({"kind": "quota_percent", "thresholds": ["-5"]}, "thresholds", id="negative"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1001"]}, "thresholds", id="over-1000-percent"),
    pytest.param({"kind": "spend_amount", "thresholds": ["1e13"]}, "thresholds", id="huge"),
    pytest.param({"kind": "quota_percent", "thresholds": ["80", "80.0"]}, "thresholds", id="twice"),
    pytest.param({"kind": "quota_percent", "thresholds": ["0.0000001"]}, "thresholds", id="too-precise"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"] * 21}, "thresholds", id="too-many"),
    pytest.param({"kind": "quota_percent", "thresholds": "80"}, "thresholds", id="not-a-list"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "metric": "nope"}, "metric", id="unknown-metric"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "metric": ["x"]}, "metric", id="metric-list"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "rate_plan": 10**12}, "rate_plan", id="unknown-plan"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "rate_plan": "1"}, "rate_plan", id="plan-text"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "subscription": True}, "subscription", id="sub-bool"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "factor": "3"}, "factor", id="factor-not-anomaly"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "is_active": "yes"}, "is_active", id="active-text"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "color": "red"}, "color", id="unknown-field"),
    pytest.param({"kind": "quota_percent", "thresholds": ["1"], "name": "x" * 101}, "name", id="long-name"),
    pytest.param({"kind": "anomaly", "thresholds": ["1"]}, "thresholds", id="anomaly-thresholds"),
    pytest.param({"kind": "anomaly", "factor": "1"}, "factor", id="factor-1"),
    pytest.param({"kind": "anomaly", "factor": "3.001"}, "factor", id="factor-precise"),
    pytest.param({"kind": "anomaly", "window_minutes": 0}, "window_minutes", id="window-0"),
    pytest.param({"kind": "anomaly", "window_minutes": 61}, "window_minutes", id="window-61"),
    pytest.param({"kind": "anomaly", "window_minutes": 10, "baseline_minutes": 5}, "baseline_minutes", id="baseline-short"),
    pytest.param({"kind": "anomaly", "baseline_minutes": 1441}, "baseline_minutes", id="baseline-long"),
    pytest.param({"kind": "anomaly", "min_units": "-1"}, "min_units", id="min-units-negative"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_rules_are_refused_naming_the_field(operator, body, field):
    client, _ = operator
    response = client.post("/api/v1/alert-rules", body, format="json")
    assert response.status_code == 400, response.content
    assert (response.json()["error"]["code"], response.json()["error"]["field"]) == ("validation_error", field)
    assert not AlertRule.objects.exists()


def test_a_commitment_rule_has_no_metric_and_a_rule_is_not_both_plan_and_subscription(operator):
    client, setup = operator
    response = client.post("/api/v1/alert-rules", {"kind": "commitment_percent", "thresholds": ["50"],
                                                   "metric": setup.metric.code}, format="json")
    assert response.json()["error"]["field"] == "metric"
    response = client.post("/api/v1/alert-rules", {"kind": "spend_amount", "thresholds": ["50"], "rate_plan": setup.rate_plan.pk,
                                                   "subscription": setup.subscription.pk}, format="json")
    assert response.json()["error"]["field"] == "subscription"


def test_the_admin_creates_a_rule_with_the_api_checks(admin_client):
    setup = priced_setup()
    page = admin_client.get("/admin/notify/alertrule/add/")
    assert page.status_code == 200
    base = {"tenant": setup.tenant.pk, "kind": "anomaly", "name": "Spikes", "thresholds": "[]", "is_active": "on"}
    refused = admin_client.post("/admin/notify/alertrule/add/", {**base, "factor": "0.5"})
    assert refused.status_code == 200 and "above 1 and at most 1000" in refused.content.decode()
    created = admin_client.post("/admin/notify/alertrule/add/", {**base, "factor": "4"})
    assert created.status_code == 302, created.content.decode()[:2000]
    rule = AlertRule.objects.get()
    assert (rule.factor, rule.window_minutes, rule.baseline_minutes) == (4, 5, 60)
    assert admin_client.get("/admin/notify/alertfiring/").status_code == 200
