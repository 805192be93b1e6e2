"""The admin's price backtest in a real headless Chromium, against a live Aforo (gunicorn on the
test database): an operator fills the form (metric, candidate price, months), submits it, and
the page shows the totals, a row per customer and period, and the winners-and-losers chart drawn
by uPlot (static/js/backtest.js) from the same histogram the API answers."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.backtest import pricing_backtest
from tests.billing.test_backtest import GRADUATED, VOLUME, _history
from tests.browser.test_admin_confirm import PASSWORD, admin_log_in, text_of, web  # noqa: F401 - web: a fixture
from tests.conftest import wait_for

pytestmark = [pytest.mark.browser]


@pytest.fixture
def history(transactional_db):
    """Three customers' usage in one period, priced graduated; a superuser to look at it."""
    setups, start = _history(GRADUATED, (timezone.now() - timedelta(days=100)).replace(microsecond=0))
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    return setups, start


def test_an_operator_backtests_a_price_and_sees_the_table_and_the_chart(page, web, history):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    setups, start = history
    month = f"{start:%Y-%m}"
    expected = pricing_backtest(tenant_id=setups[0].tenant.pk, config=VOLUME, metric=setups[0].metric.code,
                                start=month, end=month)
    admin_log_in(page, web.url)
    page.get(f"{web.url}/admin/pricing/backtest/")
    Select(page.find_element(By.NAME, "metric")).select_by_value(str(setups[0].metric.pk))
    page.find_element(By.NAME, "config").send_keys(json.dumps(VOLUME))
    page.find_element(By.NAME, "start").send_keys(month)
    page.find_element(By.NAME, "end").send_keys(month)
    page.find_element(By.CSS_SELECTOR, "#content form [type=submit]").click()

    # uPlot drew the chart (backtest.js records the counts it plotted once the plot is built).
    chart = wait_for(
        lambda: page.execute_script(
            "var n = document.getElementById('backtest-chart');"
            "return n && n.dataset.points && n.querySelector('canvas') ? n : null;"),
        timeout=15, message="the backtest chart drawn",
    )
    plotted = json.loads(chart.get_attribute("data-points"))
    histogram = expected["distribution"]["histogram"]
    assert plotted == [bucket["customers"] for bucket in histogram]
    assert sum(plotted) == 3 and any(count > 0 for count in plotted)
    canvas = chart.find_element(By.TAG_NAME, "canvas")
    assert canvas.size["width"] >= 400 and canvas.size["height"] >= 150
    # Bars are on the canvas: some pixels are the series' fill, not all one colour.
    colours = page.execute_script(
        "var c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, seen = {};"
        "for (var i = 0; i < d.length; i += 4 * 97) { seen[d[i] + ',' + d[i+1] + ',' + d[i+2] + ',' + d[i+3]] = 1; }"
        "return Object.keys(seen).length;", canvas)
    assert colours > 2

    text = text_of(page)
    assert len(page.find_elements(By.CSS_SELECTOR, "tr.row")) == len(expected["rows"]) == 3
    for row in expected["customers"]:
        assert row["candidate"] in text and row["charged"] in text

    # A wrong price is named on its field; no table, no chart.
    config = page.find_element(By.NAME, "config")
    config.clear()
    config.send_keys('{"model": "volume", "tiers": []}')
    page.find_element(By.CSS_SELECTOR, "#content form [type=submit]").click()
    wait_for(lambda: "config.tiers" in text_of(page), timeout=15, message="the config's error shown")
    assert page.find_elements(By.CSS_SELECTOR, "tr.row") == []
    assert page.find_elements(By.CSS_SELECTOR, "#backtest-chart canvas") == []
