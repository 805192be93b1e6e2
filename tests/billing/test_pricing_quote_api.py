"""POST /api/v1/pricing/quote: the rating engine's quote and breakdown of a config sent in the
body, exact decimal strings; a 400 names the field at fault as a path into the body."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from billing.api.pricing import GRADUATED_CONFIG, GRADUATED_QUOTE, PERCENTAGE_CONFIG, PERCENTAGE_QUOTE
from catalog.models import TenantToken
from tests.factories import TenantFactory, tenant_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/pricing/quote"
TIERS = [
    {"up_to": "1000", "unit_amount": "0.01"},
    {"up_to": "10000", "unit_amount": "0.008"},
    {"up_to": None, "unit_amount": "0.005", "flat_amount": "5"},
]


@pytest.fixture
def admin_token():
    return tenant_token(TenantFactory())


def _post(api_client, body, token: str | None):
    if token:
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    raw = body if isinstance(body, str) else json.dumps(body)
    return api_client.post(URL, data=raw, content_type="application/json")


def _quote(api_client, token: str, body) -> dict:
    response = _post(api_client, body, token)
    assert response.status_code == 200, response.content
    answer = response.json()
    lines = sum((Decimal(line["amount"]) for line in answer["breakdown"]), Decimal(0))
    assert lines == Decimal(answer["amount"])  # the breakdown always adds up to the quote
    return answer


# --- happy paths ----------------------------------------------------------------------------


def test_graduated_quote_with_its_tiers(api_client, admin_token):
    answer = _quote(api_client, admin_token, {"config": {"model": "graduated", "tiers": TIERS}, "units": "10001"})
    assert (answer["amount"], answer["model"], answer["dimension_key"], answer["units"]) == (
        "87.005",
        "graduated",
        "",
        "10001",
    )
    assert [(line["tier"], line["units"], line["amount"]) for line in answer["breakdown"]] == [
        (1, "1000", "10"),
        (2, "9000", "72"),
        (3, "1", "5.005"),
    ]
    assert answer["config"]["tiers"][0] == {"up_to": "1000", "unit_amount": "0.01", "flat_amount": "0"}


def test_the_documented_examples_are_what_the_api_answers(api_client, admin_token):
    assert _quote(api_client, admin_token, {"config": GRADUATED_CONFIG, "units": "12000"}) == GRADUATED_QUOTE
    assert _quote(api_client, admin_token, {"config": PERCENTAGE_CONFIG, "events": ["100", "50"]}) == PERCENTAGE_QUOTE


def test_volume_prices_every_unit_at_the_tier_the_total_falls_in(api_client, admin_token):
    config = {"model": "volume", "tiers": TIERS}
    at_bound = _quote(api_client, admin_token, {"config": config, "units": 1000})
    past_it = _quote(api_client, admin_token, {"config": config, "units": "1000.5"})
    assert (at_bound["amount"], past_it["amount"]) == ("10", "8.004")
    assert past_it["breakdown"] == [
        {
            "description": "all units at tier 2 (1000, 10000]",
            "tier": 2,
            "units": "1000.5",
            "unit_amount": "0.008",
            "flat_amount": "0",
            "amount": "8.004",
        }
    ]


def test_percentage_with_events_sums_them_exactly(api_client, admin_token):
    config = {"model": "percentage", "rate": "10", "fixed_fee": "0.05", "min_fee": "1"}
    answer = _quote(api_client, admin_token, {"config": config, "events": ["0.1", "0.2"]})
    assert answer["units"] == "0.3"  # not 0.30000000000000004
    assert [(line.get("units"), line["amount"]) for line in answer["breakdown"]] == [
        ("0.1", "0.06"),
        ("0.2", "0.07"),
        (None, "0.87"),  # up to the period minimum
    ]
    assert answer["amount"] == "1"
    agreeing = _quote(api_client, admin_token, {"config": config, "units": "0.3", "events": ["0.1", "0.2"]})
    assert agreeing["amount"] == "1"


def test_overrides_are_picked_by_the_dimensions(api_client, admin_token):
    config = {
        "model": "per_unit",
        "rate": "0.003",
        "overrides": [
            {"match": {"region": "eu"}, "price": {"model": "graduated", "tiers": TIERS}},
            {"match": {"region": "eu", "tool_name": ["search", "lookup"]}, "price": {"model": "flat", "amount": "9"}},
        ],
    }
    eu = _quote(api_client, admin_token, {"config": config, "units": "2000", "dimensions": {"region": "eu"}})
    assert (eu["model"], eu["dimension_key"], eu["amount"]) == ("graduated", "region=eu", "18")
    specific = {"region": "eu", "tool_name": "lookup", "gateway": "kong"}
    search = _quote(api_client, admin_token, {"config": config, "units": "2000", "dimensions": specific})
    assert (search["model"], search["dimension_key"], search["amount"]) == (
        "flat",
        "region=eu,tool_name=lookup|search",
        "9",
    )
    base = _quote(api_client, admin_token, {"config": config, "units": "2000", "dimensions": {"region": "us"}})
    assert (base["model"], base["dimension_key"], base["amount"]) == ("per_unit", "", "6")
    assert base["config"]["overrides"][1]["match"] == {"region": ["eu"], "tool_name": ["lookup", "search"]}


# --- errors name the field -------------------------------------------------------------------


GRADUATED = {"model": "graduated", "tiers": TIERS}


@pytest.mark.parametrize(
    ("body", "code", "field", "message"),
    [
        pytest.param(
            {"config": {"model": "graduated", "tiers": [TIERS[1], TIERS[0], TIERS[2]]}, "units": "1"},
            "invalid_config",
            "config.tiers[1].up_to",
            "tiers must ascend",
            id="tiers-not-ascending",
        ),
        pytest.param(
            {"config": {"model": "volume", "tiers": TIERS[:2]}, "units": "1"},
            "invalid_config",
            "config.tiers[1].up_to",
            "the last tier must be unbounded",
            id="last-tier-bounded",
        ),
        pytest.param(
            {"config": {"model": "banana"}, "units": "1"},
            "invalid_config",
            "config.model",
            "unknown pricing model 'banana'",
            id="unknown-model",
        ),
        pytest.param(
            {"config": {"model": "package", "package_size": "100"}, "units": "1"},
            "invalid_config",
            "config.rate",
            "is required",
            id="missing-parameter",
        ),
        pytest.param(
            '{"config": {"model": "per_unit", "rate": 0.003}, "units": "1"}',
            "invalid_config",
            "config.rate",
            "floats are inexact",
            id="float-in-config",
        ),
        pytest.param(
            {
                "config": {
                    "model": "per_unit",
                    "rate": "1",
                    "overrides": [{"match": {"region": "eu"}, "price": {"model": "flat"}}],
                },
                "units": "1",
            },
            "invalid_config",
            "config.overrides[0].price.amount",
            "is required",
            id="override-missing-parameter",
        ),
        pytest.param({"units": "1"}, "invalid_config", "config", "is required", id="no-config"),
        pytest.param({"config": ["per_unit"], "units": "1"}, "invalid_config", "config", "object", id="config-list"),
        pytest.param(
            f'{{"config": {json.dumps(GRADUATED)}, "units": 1.5}}',
            "invalid_usage",
            "units",
            "floats are inexact",
            id="float-units",
        ),
        pytest.param({"config": GRADUATED, "units": "-1"}, "invalid_usage", "units", "at least 0", id="negative-units"),
        pytest.param(
            f'{{"config": {json.dumps(PERCENTAGE_CONFIG)}, "events": ["1", 2.5]}}',
            "invalid_usage",
            "events[1]",
            "floats are inexact",
            id="float-event",
        ),
        pytest.param(
            {"config": PERCENTAGE_CONFIG, "units": "100", "events": ["60", "50"]},
            "invalid_usage",
            "units",
            "must equal the sum of events (110), got 100",
            id="units-not-the-sum-of-events",
        ),
        pytest.param(
            {"config": PERCENTAGE_CONFIG, "events": "100"}, "invalid_usage", "events", "list", id="events-not-a-list"
        ),
        pytest.param({"config": GRADUATED}, "invalid_usage", "units", "is required unless events", id="no-units"),
        pytest.param(
            {"config": GRADUATED, "units": "1", "dimensions": {"region": {"a": 1}}},
            "invalid_dimensions",
            "dimensions.region",
            "dimension values are strings",
            id="bad-dimension",
        ),
    ],
)
def test_a_bad_request_is_a_400_naming_the_field(api_client, admin_token, body, code, field, message):
    response = _post(api_client, body, admin_token)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert message in error["message"] and error["message"].startswith(f"{field}: ")


def test_a_body_that_is_not_a_quote_request_is_refused(api_client, admin_token):
    listed = _post(api_client, [{"config": GRADUATED}], admin_token)
    assert (listed.status_code, listed.json()["error"]["code"]) == (400, "invalid_body")
    extra = _post(api_client, {"config": GRADUATED, "units": "1", "unit": "1"}, admin_token)
    assert (extra.status_code, extra.json()["error"]["field"]) == (400, "unit")
    malformed = _post(api_client, '{"config": ', admin_token)
    assert (malformed.status_code, malformed.json()["error"]["code"]) == (400, "malformed_json")
    form = api_client.post(URL, {"units": "1"})  # multipart, not JSON
    assert (form.status_code, form.json()["error"]["code"]) == (415, "unsupported_media_type")


# --- credentials and the schema ----------------------------------------------------------------


def test_no_token_is_unauthenticated(api_client):
    response = _post(api_client, {"config": GRADUATED, "units": "1"}, None)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_credentials"


def test_an_ingest_token_is_refused(api_client):
    token = tenant_token(TenantFactory(), TenantToken.Kind.INGEST)
    response = _post(api_client, {"config": GRADUATED, "units": "1"}, token)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "wrong_credential_kind"


def test_the_schema_documents_the_quote(client):
    schema = client.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/v1/pricing/quote"]["post"]
    assert operation["operationId"] == "pricing_quote" and operation["tags"] == ["pricing"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "415"}
    request_examples = operation["requestBody"]["content"]["application/json"]["examples"]
    response_examples = operation["responses"]["200"]["content"]["application/json"]["examples"]
    assert set(request_examples) == set(response_examples) == {"GraduatedTiers", "PercentagePerTransaction"}
    assert response_examples["GraduatedTiers"]["value"] == GRADUATED_QUOTE
    components = schema["components"]["schemas"]
    assert {"config", "units", "events", "dimensions"} == set(components["QuoteRequest"]["properties"])
    assert components["QuoteRequest"]["required"] == ["config"]
    assert components["QuoteResult"]["properties"]["amount"] == {
        "type": "string",
        "format": "decimal",
        "example": "0.003",
        "description": "The exact charge for the period, unrounded; the lines sum to it.",
    }
