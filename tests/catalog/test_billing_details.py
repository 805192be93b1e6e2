"""Seller details on the tenant and buyer details on the customer (aforo.billing_details): all
optional, validated with an error naming the field in the API, the admin and full_clean; a
country is read case-insensitively and stored as its ISO 3166-1 alpha-2 code."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from aforo.billing_details import ISO_3166_COUNTRIES, address_lines, country_name
from catalog.models import Customer, Tenant
from tests.factories import CustomerFactory, TenantFactory
from tests.test_admin import change_url, operator

pytestmark = pytest.mark.django_db

DETAILS = {
    "billing_name": "Acme SAS", "billing_address": "12 rue de la Paix\n75002 Paris", "country": "fr",
    "tax_id": "FR40303265045", "billing_email": "ap@acme.example",
}


def test_the_customer_api_takes_and_returns_billing_details(admin, tenant):
    created = admin.post("/api/v1/customers", {"name": "Acme", **DETAILS})
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["country"] == "FR"  # " fr " is read as FR
    assert {key: body[key] for key in DETAILS if key != "country"} == {k: v for k, v in DETAILS.items() if k != "country"}
    stored = Customer.objects.get(pk=body["id"])
    assert (stored.country, stored.tax_id, address_lines(stored.billing_address)) == (
        "FR", "FR40303265045", ["12 rue de la Paix", "75002 Paris"]
    )
    cleared = admin.patch(f"/api/v1/customers/{body['id']}", {"country": "", "tax_id": ""})
    assert cleared.status_code == 200 and cleared.json()["country"] == "" and cleared.json()["tax_id"] == ""
    plain = admin.post("/api/v1/customers", {"name": "No details"}).json()
    assert plain["country"] == "" and plain["billing_address"] == "" and plain["billing_email"] == ""


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("country", "XX", "ISO 3166-1"),
        ("country", "Germany", "ISO 3166-1"),
        ("country", "EU", "ISO 3166-1"),
        ("tax_id", "ABC", "at least one digit"),
        ("tax_id", "DE12;drop", "letters, digits"),
        ("tax_id", "1" * 33, "32"),
        ("billing_address", "\n".join(f"line {n}" for n in range(7)), "at most 6 lines"),
        ("billing_address", "x" * 101, "longer than 100"),
        ("billing_address", "Main St\x07", "control character"),
        ("billing_email", "not-an-email", "email"),
    ],
)
def test_a_bad_billing_detail_is_a_400_naming_the_field(admin, field, value, says):
    response = admin.post("/api/v1/customers", {"name": "Acme", field: value})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error" and set(error["fields"]) == {field}
    assert says.lower() in " ".join(error["fields"][field]).lower()


def test_seller_details_are_validated_by_full_clean():
    tenant = TenantFactory()
    tenant.country, tenant.tax_id, tenant.address = " de ", "DE123456789", "Torstraße 1\r\n10119 Berlin"
    tenant.full_clean()
    assert tenant.country == "DE"
    tenant.country, tenant.tax_id = "ZZ", "-"
    with pytest.raises(ValidationError) as refused:
        tenant.full_clean()
    assert set(refused.value.message_dict) == {"country", "tax_id"}


def test_the_country_table_is_iso_3166_alpha_2():
    assert len(ISO_3166_COUNTRIES) == 249
    assert all(len(code) == 2 and code.isupper() for code in ISO_3166_COUNTRIES)
    assert country_name("DE") == "Germany" and country_name("GB") == "United Kingdom"


def test_a_tenant_operator_edits_a_customers_billing_details_in_the_admin(client):
    tenant = TenantFactory()
    customer = CustomerFactory(tenant=tenant)
    client.force_login(operator(tenant))
    url = change_url(customer)
    page = client.get(url)
    assert page.status_code == 200 and "Billing details" in page.content.decode()
    form = {"name": customer.name, "external_id": customer.external_id, "email": "", **DETAILS, "country": "zz"}
    refused = client.post(url, form)
    assert refused.status_code == 200 and "ISO 3166-1" in refused.content.decode()
    saved = client.post(url, {**form, "country": "fr"})
    assert saved.status_code == 302, saved.content.decode()[:2000]
    customer.refresh_from_db()
    assert (customer.country, customer.billing_name, customer.tax_id) == ("FR", "Acme SAS", "FR40303265045")
    assert client.get(reverse("admin:catalog_customer_add")).status_code == 200


def test_the_superuser_sets_a_tenants_seller_details_in_the_admin(admin_client):
    tenant = TenantFactory()
    form = {"name": tenant.name, "slug": tenant.slug, "legal_name": "Aforo Demo GmbH", "address": "Torstraße 1",
            "country": "DE", "tax_id": "DE123456789", "billing_email": "billing@aforo.example",
            "default_net_terms_days": "30", "default_invoice_grace_hours": "0"}
    response = admin_client.post(change_url(tenant), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    tenant = Tenant.objects.get(pk=tenant.pk)
    assert (tenant.legal_name, tenant.country, tenant.tax_id) == ("Aforo Demo GmbH", "DE", "DE123456789")


def test_the_demos_seller_and_buyer_details_are_valid():
    from aforo.demo.seed import BILLING_DETAILS, SELLER_DETAILS

    tenant = TenantFactory(**SELLER_DETAILS)
    tenant.full_clean()
    for external_id, details in BILLING_DETAILS.items():
        Customer(tenant=tenant, name=external_id, external_id=external_id, **details).full_clean()
