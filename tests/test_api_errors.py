"""Errors raised outside any DRF view are the API's JSON error shape under /api/ (DEBUG off here;
tests/test_hostile_input.py runs a server with DEBUG on), and Django's pages elsewhere."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v2/nothing", "/api/v1/customers/abc/usage", "/api/v1/events/"])
def test_an_unknown_api_url_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "No such resource."}}


@pytest.mark.django_db
def test_an_unknown_page_outside_the_api_stays_html(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")
