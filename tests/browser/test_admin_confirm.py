"""The operator admin's destructive actions in a real headless Chromium, against a live Aforo
(gunicorn on the test database): a wallet adjustment shows the balance before and after and is
refused below zero until "Allow a negative balance" is ticked; "Void and reissue" chosen from the
invoice list shows its confirmation page and acts only once a reason is typed. Then every list
page of the admin fits a 1280 px screen (no sideways scrolling)."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from billing.models import Invoice
from billing.settlement import settlement_run
from tests.billing.test_settlement import rate
from tests.conftest import wait_for
from tests.factories import funded_wallet, priced_setup
from tests.live import LiveWeb, live_web_env
from tests.test_admin import everything  # noqa: F401 - a fixture: a row of every model the admin registers
from wallets.models import Wallet, WalletEntry

pytestmark = [pytest.mark.browser]

PASSWORD = "correct horse battery staple"
DESKTOP_WIDTH = 1280


@pytest.fixture
def web(transactional_db) -> Iterator[LiveWeb]:
    """gunicorn on the test database (committed data: transactional_db); no broker needed here."""
    server = LiveWeb(env=live_web_env({})).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def books(transactional_db):
    """A superuser, a customer's 100 USD wallet, and a settled invoice (15 calls at 0.333 USD: 5.00 USD)."""
    setup = priced_setup(rate="0.333")
    rate(setup, "a", "10")
    rate(setup, "b", "5")
    setup.invoice = settlement_run(subscription_id=setup.subscription.pk, at=timezone.now()).invoice
    setup.wallet = funded_wallet(setup.customer, "100")
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    return setup


def admin_log_in(driver, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/admin/login/")
    driver.find_element(By.NAME, "username").send_keys("root")
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "#login-form input[type=submit]").click()
    wait_for(lambda: driver.current_url.rstrip("/").endswith("/admin"), timeout=15, message="landing on /admin/")


def text_of(driver) -> str:
    """The page's #content text; "" while a submitted form's next page is still loading (polled
    with wait_for, so a click followed by a read never races the navigation)."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By

    try:
        return driver.find_element(By.ID, "content").text
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def screenshot(driver, name: str) -> None:
    path = Path(__file__).resolve().parents[2] / "var" / "browser"
    path.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path / name))  # for a person to look at (var/ is not committed)


def test_wallet_adjust_and_void_and_reissue_confirm_in_the_real_admin(web, books, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    admin_log_in(page, web.url)
    wallet = books.wallet

    # -- Adjust: refused below zero, then allowed; the confirmation shows before and after --
    page.get(web.url + reverse("admin:wallets_wallet_change", args=[wallet.pk]))
    page.find_element(By.CSS_SELECTOR, ".object-tools a[href$='/adjust/']").click()
    page.find_element(By.NAME, "amount").send_keys("-150")
    page.find_element(By.NAME, "reason").send_keys("chargeback on the November top-up")
    page.find_element(By.CSS_SELECTOR, "input[type=submit].default").click()
    wait_for(lambda: "below zero" in text_of(page), timeout=15, message="the negative-balance refusal")
    assert "from 100 USD to -50 USD" in text_of(page)
    page.find_element(By.NAME, "allow_negative_balance").click()
    page.find_element(By.CSS_SELECTOR, "input[type=submit].default").click()
    wait_for(lambda: "Nothing has changed yet" in text_of(page), timeout=15, message="the adjustment's confirmation")
    rows = [row.text for row in page.find_elements(By.CSS_SELECTOR, "table.confirm-subjects tbody tr")]
    assert rows[0] == "balance 100.00 USD −150.00 USD -50.00 USD", rows
    assert "The balance goes below zero (-50.00 USD)" in text_of(page)
    screenshot(page, "admin-adjust-confirm.png")
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal(100)  # nothing moved yet
    page.find_element(By.NAME, "_confirm").click()
    wait_for(lambda: "balance now -50" in page.find_element(By.CSS_SELECTOR, "ul.messagelist").text, timeout=15,
             message="the adjustment's success message")
    entry = WalletEntry.objects.get(wallet=wallet, kind=WalletEntry.Kind.ADJUSTMENT)
    assert (entry.amount, entry.reason) == (Decimal(-150), "chargeback on the November top-up")
    assert Wallet.objects.get(pk=wallet.pk).balance == Decimal(-50)

    # -- Void and reissue: chosen from the list, confirmed only with a reason --
    invoice = books.invoice
    page.get(web.url + reverse("admin:billing_invoice_changelist"))
    page.find_element(By.CSS_SELECTOR, f"input.action-select[value='{invoice.pk}']").click()
    Select(page.find_element(By.NAME, "action")).select_by_value("void_and_reissue")
    page.find_element(By.CSS_SELECTOR, "button[name=index], input[name=index]").click()
    wait_for(lambda: "What will happen" in text_of(page), timeout=15, message="the void confirmation")
    assert invoice.number in text_of(page) and "5.00 USD" in text_of(page)  # 15 × 0.333 = 4.995
    screenshot(page, "admin-void-confirm.png")
    page.find_element(By.NAME, "_confirm").click()  # no reason typed
    wait_for(lambda: "A reason is required" in text_of(page), timeout=15, message="the missing reason's error")
    assert Invoice.objects.get(pk=invoice.pk).status == "finalized"
    page.find_element(By.NAME, "reason").send_keys("billed to the wrong entity")
    page.find_element(By.NAME, "_confirm").click()
    wait_for(lambda: page.find_elements(By.CSS_SELECTOR, "ul.messagelist"), timeout=15, message="back on the list")
    voided = Invoice.objects.get(pk=invoice.pk)
    replacement = Invoice.objects.get(replaces=voided)
    assert (voided.status, voided.void_reason) == ("void", "billed to the wrong entity")
    assert f"reissued as {replacement.number}" in page.find_element(By.CSS_SELECTOR, "ul.messagelist").text


def test_every_admin_list_fits_a_1280px_screen(web, everything, page):
    """Each registered model's changelist, with rows in it (tests.test_admin's `everything`: a row
    of every model, in two tenants), never scrolls sideways at 1280 px, seen by a superuser (who
    also gets the tenant column)."""
    get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    admin_log_in(page, web.url)
    page.set_window_size(DESKTOP_WIDTH, 1000)
    overflowing = {}
    for model in sorted(admin.site._registry, key=lambda m: m._meta.label):
        page.get(web.url + reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        wait_for(lambda: page.execute_script("return document.readyState") == "complete", timeout=15, message="load")
        # The page, and the results table inside its own horizontally scrolling box (Django's
        # `.results` has overflow-x: auto, so a too-wide table scrolls there, not the page).
        widths = page.execute_script(
            """const box = document.querySelector('#changelist .results');
            return [document.documentElement.scrollWidth, window.innerWidth,
                    box ? box.scrollWidth : 0, box ? box.clientWidth : 0];"""
        )
        if widths[0] > widths[1] or widths[2] > widths[3]:
            overflowing[model._meta.label] = widths
    assert overflowing == {}, f"list pages wider than the {DESKTOP_WIDTH} px window: {overflowing}"
