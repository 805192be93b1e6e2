"""The metric config builder in a real headless Chromium against a live Aforo: an operator picks a
graduated price, fills two tiers in the form (never touching the JSON), sees the JSON written and
the rating engine's preview of those prices before saving, then saves — and the saved config is
exactly what the form built. Editing the JSON by hand updates the form."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from catalog import services
from catalog.models import MetricConfig
from tests.browser.test_admin_confirm import PASSWORD, admin_log_in, web  # noqa: F401 - `web` is a fixture
from tests.conftest import wait_for
from tests.factories import MetricFactory, OfferingFactory, RatePlanFactory, TenantFactory

pytestmark = [pytest.mark.browser]

BUILT = {"model": "graduated", "tiers": [{"up_to": "1000", "unit_amount": "0.01"}, {"up_to": None, "unit_amount": "0.005"}]}


@pytest.fixture
def draft(transactional_db):
    from django.utils import timezone

    tenant = TenantFactory()
    plan = RatePlanFactory(tenant=tenant, offering=OfferingFactory(tenant=tenant), currency="EUR")
    version = services.rate_plan_version_create(rate_plan=plan, effective_from=timezone.now())
    metric = MetricFactory(tenant=tenant)
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    return version, metric


def _textarea_json(driver):
    from selenium.webdriver.common.by import By

    try:
        return json.loads(driver.find_element(By.CSS_SELECTOR, "textarea.pricing-config").get_attribute("value"))
    except ValueError:
        return None


def test_an_operator_builds_a_graduated_price_sees_its_preview_and_saves_it(web, draft, page):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    version, metric = draft
    admin_log_in(page, web.url)
    page.get(f"{web.url}{reverse('admin:catalog_metricconfig_add')}?version={version.pk}&metric={metric.pk}&tenant={version.tenant_id}")
    builder = page.find_element(By.CSS_SELECTOR, ".config-builder")
    Select(builder.find_element(By.CSS_SELECTOR, "[data-key=model]")).select_by_value("graduated")
    wait_for(lambda: page.find_elements(By.CSS_SELECTOR, "[data-tier='0'][data-key=unit_amount]"), timeout=10, message="a tier row")
    page.find_element(By.CSS_SELECTOR, "[data-tier='0'][data-key=up_to]").send_keys("1000")
    page.find_element(By.CSS_SELECTOR, "[data-tier='0'][data-key=unit_amount]").send_keys("0.01")
    page.find_element(By.CSS_SELECTOR, "[data-action=add-tier]").click()
    wait_for(lambda: page.find_elements(By.CSS_SELECTOR, "[data-tier='1'][data-key=unit_amount]"), timeout=10, message="a second tier")
    page.find_element(By.CSS_SELECTOR, "[data-tier='1'][data-key=unit_amount]").send_keys("0.005")
    wait_for(lambda: _textarea_json(page) == BUILT, timeout=10, message=f"the JSON built by the form: {_textarea_json(page)}")

    # The preview is the engine's, for exactly this config: 1,000,000 units cost 10 + 999,000 × 0.005 = 5,005.
    preview = page.find_element(By.CSS_SELECTOR, ".cb-preview")
    wait_for(lambda: json.loads(preview.get_attribute("data-config") or "null") == BUILT, timeout=15, message="the preview of it")
    assert "5,005" in preview.text and "1,000,000" in preview.text, preview.text

    # A hand edit of the JSON shows in the form.
    textarea = page.find_element(By.CSS_SELECTOR, "textarea.pricing-config")
    textarea.clear()
    textarea.send_keys(json.dumps({**BUILT, "tiers": [BUILT["tiers"][0], {"up_to": None, "unit_amount": "0.004"}]}))
    wait_for(lambda: page.find_element(By.CSS_SELECTOR, "[data-tier='1'][data-key=unit_amount]").get_attribute("value") == "0.004",
             timeout=10, message="the form follows the JSON")
    tier = page.find_element(By.CSS_SELECTOR, "[data-tier='1'][data-key=unit_amount]")
    tier.clear()
    tier.send_keys("0.005")
    wait_for(lambda: _textarea_json(page) == BUILT, timeout=10, message="back to the built config")

    page.find_element(By.CSS_SELECTOR, "input[name=_save]").click()
    wait_for(lambda: MetricConfig.objects.filter(version=version, metric=metric).exists(), timeout=15,
             message=f"the config saved ({page.current_url})")
    from billing.rating import validate_config

    assert MetricConfig.objects.get(version=version, metric=metric).config == validate_config(BUILT)  # stored normalised
