"""The metric config builder's live preview (catalog/admin/config_builder.py): the rating engine's
preview of the config as typed, or its error naming the path; staff only, POST only."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from catalog.admin.pricing_preview import price_preview_html

pytestmark = pytest.mark.django_db

URL = reverse("admin:catalog_metricconfig_preview")
GRADUATED = {"model": "graduated", "tiers": [{"up_to": "1000", "unit_amount": "0.01"}, {"up_to": None, "unit_amount": "0.005"}]}


def test_the_preview_is_the_engines(admin_client):
    response = admin_client.post(URL, {"config": json.dumps(GRADUATED), "currency": "EUR"})
    assert response.status_code == 200
    assert response.content.decode() == str(price_preview_html(GRADUATED, currency="EUR"))
    assert "5,005" in response.content.decode() or "5005" in response.content.decode()  # 1,000,000 units: 10 + 999,000 × 0.005


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ('{"model": "per_unit", "rate": 0.1}', "is a JSON float"),
        ('{"model": "per_unit", "rate": ', "Not JSON yet"),
        ('{"model": "graduated", "tiers": [{"up_to": "10", "unit_amount": "1"}, {"up_to": "5", "unit_amount": "1"}]}', "tiers[1]"),
        ('{"model": "nope"}', "Not a valid price"),
        ("[1, 2]", "Not a valid price"),
    ],
)
def test_an_invalid_config_says_why(admin_client, config, says):
    response = admin_client.post(URL, {"config": config, "currency": "bogus"})
    assert response.status_code == 200 and says in response.content.decode(), response.content


def test_staff_only_and_post_only(client, admin_client, django_user_model):
    assert client.post(URL, {"config": "{}"}).status_code == 302  # to the admin login
    django_user_model.objects.create_user("someone", password="pw")
    client.login(username="someone", password="pw")
    assert client.post(URL, {"config": "{}"}).status_code == 302
    assert admin_client.get(URL).status_code == 405


def test_the_config_textareas_carry_the_builder(admin_client):
    page = admin_client.get(reverse("admin:catalog_metricconfig_add")).content.decode()
    assert "js/config_builder.js" in page and f'data-preview-url="{URL}"' in page
