"""The customer dashboard in a real headless Chromium, against a live Aforo: events ingested
through the HTTP API, rated by the real consumer from the real broker, shown on the page a
customer reaches through the login form — the usage chart draws exactly the series the API
returns, the commitment burn-down and its bar move as more events are rated (the page's own
poll, waited for with a deadline), money is rounded with the exact figure on hover, and a
420 px phone screen never scrolls sideways."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from billing.models import RunningTotal
from catalog.models import CustomerUser, Subscription, TenantToken
from tests.browser.conftest import PHONE_WIDTH, log_in
from tests.conftest import wait_for
from tests.factories import funded_wallet, priced_setup, tenant_token
from tests.live import http_request

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

PASSWORD = "correct horse battery staple"
MISMATCH = "the floats uPlot plotted differ from the chart's exact data-points"


@pytest.fixture
def customer(transactional_db):
    """A prepaid customer at 0.5 USD a call with a 10 USD commitment, a funded wallet and a login."""
    setup = priced_setup(billing_mode="prepaid", rate="0.5")
    Subscription.objects.filter(pk=setup.subscription.pk).update(min_commitment=Decimal("10"))
    funded_wallet(setup.customer, "100")
    user = get_user_model().objects.create_user(f"browser-{setup.customer.pk}", password=PASSWORD)
    CustomerUser.objects.create(user=user, customer=setup.customer)
    setup.username = user.username
    return setup


def ingest(platform, setup, quantities: list[str], *, prefix: str) -> None:
    """POST the events to the live ingest API, then wait (deadline) until the consumer rated them."""
    before = _units(setup)
    at = (timezone.now() - timedelta(seconds=2)).isoformat()
    events = [
        {"event_id": f"{prefix}-{n}", "api_key": setup.api_key, "metric": setup.metric.code, "quantity": quantity, "timestamp": at}
        for n, quantity in enumerate(quantities)
    ]
    token = tenant_token(setup.tenant, TenantToken.Kind.INGEST)
    answer = http_request(platform.web.port, "POST", "/api/v1/events", body=orjson.dumps(events), token=token)
    assert answer.status == 202, answer.body
    expected = before + sum(Decimal(q) for q in quantities)
    wait_for(lambda: _units(setup) == expected, timeout=30, message=f"{expected} units rated")


def _units(setup) -> Decimal:
    return sum((t.units for t in RunningTotal.objects.filter(subscription_id=setup.subscription.pk)), Decimal(0))


def chart_points(driver, setup) -> list | None:
    """The points the usage chart of the customer's metric plotted: exact [start, units, amount]
    from its data-points, checked against the floats uPlot was handed."""
    points = driver.execute_script(
        """
        const key = "usage|" + arguments[0] + "|" + arguments[1];
        const chart = window.aforoCharts && window.aforoCharts[key];
        const node = document.querySelector('[data-chart-key="' + key + '"]');
        if (!chart || !node || !node.querySelector("canvas")) return null;
        const exact = JSON.parse(node.dataset.points);
        const plotted = chart.plotted;
        const same = exact.every((p, i) => plotted[0][i] === Date.parse(p[0]) / 1000
          && plotted[1][i] === parseFloat(p[1]) && plotted[2][i] === parseFloat(p[2]));
        return same && plotted[0].length === exact.length ? exact : arguments[2];
        """,
        setup.subscription.pk, setup.metric.code, MISMATCH,
    )
    if points == MISMATCH:
        pytest.fail(MISMATCH)
    return points


def burn_down(driver) -> dict | None:
    return driver.execute_script(
        """
        const text = document.querySelector("#insights .burn-text");
        const bar = document.querySelector("#insights .bar");
        if (!text || !bar) return null;
        return {text: text.textContent, now: bar.getAttribute("aria-valuenow"), width: bar.firstChild.style.width,
                titles: Array.from(text.querySelectorAll(".money")).map(m => m.title)};
        """
    )


def series_from_api(platform, setup, first: str, last: str) -> list[list[str]]:
    end = (datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(days=1)).isoformat()
    query = f"metric={setup.metric.code}&granularity=day&from={first.replace('+', '%2B')}&to={end.replace('+', '%2B')}"
    answer = http_request(
        platform.web.port, "GET", f"/api/v1/customers/{setup.customer.pk}/usage/series?{query}",
        token=tenant_token(setup.tenant, TenantToken.Kind.ADMIN),
    )
    assert answer.status == 200, answer.body
    return [[p["start"], p["units"], p["amount"]] for p in answer.json()["points"]]


def test_the_usage_chart_draws_the_series_of_the_rated_events(platform, customer, page):
    ingest(platform, customer, ["4", "6"], prefix="first")
    log_in(page, platform.url, customer.username, PASSWORD)

    plotted = wait_for(lambda: chart_points(page, customer), timeout=15, message="the usage chart drawn")
    assert plotted == series_from_api(platform, customer, plotted[0][0], plotted[-1][0])
    assert [p[1:] for p in plotted if p[1] != "0"] == [["10", "5"]]  # 4 + 6 calls at 0.5 USD, in today's bucket
    canvas_width = page.execute_script(
        "return document.querySelector('[data-chart-key=\"usage|%d|%s\"] canvas').width" % (customer.subscription.pk, customer.metric.code)
    )
    assert canvas_width > 100
    balance = page.execute_script(
        "const c = document.querySelector('.balance-chart'); return c && c.dataset.points ? JSON.parse(c.dataset.points) : null"
    )
    assert [point[1] for point in balance] == ["100", "98", "95"]  # after the top-up, then each debit
    page.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 1280, "height": 2600, "deviceScaleFactor": 1, "mobile": False}
    )
    page.save_screenshot(str(_screenshot_path("dashboard-desktop.png")))  # for a person to look at (var/ is not committed)


def test_the_burn_down_moves_as_more_events_are_rated(platform, customer, page):
    ingest(platform, customer, ["4", "6"], prefix="first")
    log_in(page, platform.url, customer.username, PASSWORD)
    first = wait_for(lambda: burn_down(page), timeout=15, message="the burn-down shown")
    assert first["text"] == "You have consumed 5.00 USD of your 10.00 USD commitment (50%)"
    assert (first["now"], first["width"], first["titles"]) == ("50", "50%", ["5 USD", "10 USD"])

    ingest(platform, customer, ["3", "2.5", "0.505"], prefix="more")  # 6.005 calls: 3.0025 USD more

    moved = wait_for(
        lambda: (state := burn_down(page)) and state["now"] != "50" and state, timeout=20,
        message="the burn-down moved on the page's poll",
    )
    assert moved["text"] == "You have consumed 8.00 USD of your 10.00 USD commitment (80.03%)"
    assert (moved["now"], moved["width"], moved["titles"]) == ("80.03", "80.03%", ["8.0025 USD", "10 USD"])
    redrawn = wait_for(lambda: (p := chart_points(page, customer)) and any(x[1] == "16.005" for x in p) and p, timeout=20,
                       message="the usage chart redrawn")
    assert [p[1:] for p in redrawn if p[1] != "0"] == [["16.005", "8.0025"]]
    hover = page.execute_script("const m = document.querySelector('.subscription .total .money'); return [m.textContent, m.title]")
    assert hover == ["8.00 USD", "8.0025 USD"]
    panels = page.execute_script("return [document.querySelector('#alerts').textContent, document.querySelector('#leases').textContent]")
    assert "No active alerts" in panels[0] and "No active leases" in panels[1]


def test_an_alert_appears_once_the_events_cross_its_threshold(platform, customer, page, usage_consumer):
    """The whole path: a commitment rule, events through the API, the usage consumer, the alerts
    consumer on the rated topic, the firing, and the page's poll showing it."""
    from notify.alerts import alert_rule_save

    usage_consumer("alerts")
    alert_rule_save(tenant_id=customer.tenant.pk, data={"kind": "commitment_percent", "thresholds": ["60"],
                                                        "name": "Commitment 60%"})
    ingest(platform, customer, ["4", "6"], prefix="under")  # 5.00 USD of 10: under 60 %
    log_in(page, platform.url, customer.username, PASSWORD)
    alerts_text = "return document.querySelector('#alerts').textContent"
    assert "No active alerts" in page.execute_script(alerts_text)
    ingest(platform, customer, ["3"], prefix="over")  # 6.50 USD: 65 %
    shown = wait_for(lambda: (text := page.execute_script(alerts_text)) and "Commitment 60%" in text and text,
                     timeout=20, message="the alert on the page's poll")
    assert "6.50 USD of the 10.00 USD minimum commitment used (65%)" in shown and "No active alerts" not in shown


def test_a_420px_phone_screen_never_scrolls_sideways(platform, customer, page):
    ingest(platform, customer, ["4", "6"], prefix="first")
    page.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": PHONE_WIDTH, "height": 900, "deviceScaleFactor": 1, "mobile": True}
    )
    log_in(page, platform.url, customer.username, PASSWORD)
    wait_for(lambda: chart_points(page, customer), timeout=15, message="the usage chart drawn")

    layout = page.execute_script(
        """
        const doc = document.documentElement;
        const overflowing = Array.from(document.querySelectorAll("body *")).filter(node => {
          const box = node.getBoundingClientRect();
          return box.width > 0 && (box.right > window.innerWidth + 0.5 || box.left < -0.5) && !node.closest(".table-scroll");
        }).map(node => node.tagName + "." + node.className);
        const charts = Array.from(document.querySelectorAll(".chart canvas")).map(c => [
          c.getBoundingClientRect().width, c.closest(".chart").getBoundingClientRect().width]);
        const scrollers = Array.from(document.querySelectorAll(".table-scroll")).map(s => s.scrollWidth > s.clientWidth);
        return {inner: window.innerWidth, scroll: doc.scrollWidth, bodyScroll: document.body.scrollWidth,
                overflowing, charts, scrollers};
        """
    )
    assert layout["inner"] == PHONE_WIDTH
    assert layout["scroll"] <= PHONE_WIDTH and layout["bodyScroll"] <= PHONE_WIDTH, layout
    assert layout["overflowing"] == [], layout["overflowing"]
    assert layout["charts"] and all(canvas <= box + 0.5 and box < PHONE_WIDTH for canvas, box in layout["charts"]), layout
    assert any(layout["scrollers"]), "a wide table scrolls inside its card at this width"
    page.save_screenshot(str(_screenshot_path("dashboard-420px.png")))


MONEY_CASES = [
    ("1234.5", "USD"), ("0.0075", "USD"), ("0.0049", "USD"), ("0.005", "USD"), ("9.995", "USD"), ("-2.345", "USD"),
    ("-0.001", "USD"), ("999999.999", "USD"), ("1500.4", "JPY"), ("1500.5", "JPY"), ("0.0005", "KWD"),
    ("12.34567", "CLF"), ("0", "JPY"), ("-0.5", "JPY"), ("123456789012345678901234567890.125", "USD"),
]


def test_the_pages_money_formatting_matches_the_servers(platform, customer, page):
    """static/js/money.js, which re-renders every amount on each poll, rounds exactly as
    aforo.money.money_display does on the server (strings only: no float on the way)."""
    from aforo.money import money_display

    log_in(page, platform.url, customer.username, PASSWORD)
    shown = page.execute_script(
        "return arguments[0].map(c => { const s = window.aforoMoney.span(c[0], c[1]); return [s.textContent, s.title]; })",
        [list(case) for case in MONEY_CASES],
    )
    assert shown == [[f"{money_display(Decimal(amount), currency)} {currency}", f"{amount} {currency}"] for amount, currency in MONEY_CASES]


def _screenshot_path(name: str):
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "var" / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path / name
