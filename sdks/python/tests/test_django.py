"""The Django middleware in a minimal Django project (settings configured here), billed into the
real platform. Skipped when Django is not installed."""

from __future__ import annotations

import pytest
from conftest import Platform

django = pytest.importorskip("django")

from django.conf import settings  # noqa: E402


@pytest.fixture(scope="module")
def django_client(platform: Platform):
    from aforo_sdk import Client

    client = Client(url=platform.url, token=platform.ingest_token, flush_interval=0.1, register_atexit=False)
    if not settings.configured:
        settings.configure(
            DEBUG=False, SECRET_KEY="test", ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
            MIDDLEWARE=["aforo_sdk.django.AforoMiddleware"],
            AFORO={"client": client, "metric": "api_calls", "api_key_header": "X-Customer-Key"},
        )
        django.setup()
    yield client
    client.close()


def hello(request):
    from django.http import HttpResponse

    return HttpResponse("hello")


def missing(request):
    from django.http import HttpResponseNotFound

    return HttpResponseNotFound("no")


def _urls():
    from django.urls import path

    return [path("hello", hello), path("missing", missing)]


urlpatterns = _urls() if False else []  # filled lazily below: Django must be configured first


def test_django_middleware_bills_each_successful_request(platform: Platform, django_client):
    from django.test import Client as DjangoTestClient

    urlpatterns[:] = _urls()
    initech = platform.customers["Initech"]["api_key"]
    before = platform.units("Initech", "api_calls")
    browser = DjangoTestClient(headers={"X-Customer-Key": initech})
    assert [browser.get("/hello").status_code for _ in range(8)] == [200] * 8
    assert browser.get("/missing").status_code == 404  # a 4xx is not billed by default
    assert django_client.flush(20)
    assert django_client.metrics.sent == 8
    assert platform.wait_units("Initech", "api_calls", before + 8) == before + 8
