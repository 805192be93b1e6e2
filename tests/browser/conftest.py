"""Fixtures for tests in a real headless Chromium driven by Selenium: the browser (Debian's
chromium + chromium-driver, which scripts/test installs when missing), and a live Aforo — gunicorn
on the test database, with the usage consumer on the same real broker topics — so a page shows
what the real pipeline rated. The tests are skipped, with the reason, only when Chromium is not
installed on this machine."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import wait_for
from tests.live import LiveWeb, live_web_env

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
PHONE_WIDTH = 420


def pytest_collection_modifyitems(items):
    if CHROMIUM and CHROMEDRIVER:
        return
    reason = (
        "Chromium is not installed (apt-get install chromium chromium-driver; scripts/test does it): "
        f"chromium={CHROMIUM!r}, chromedriver={CHROMEDRIVER!r}"
    )
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the session (each test logs in afresh: cookies are cleared)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,1000", "--disable-extensions", "--no-first-run"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser):
    """The browser, reset between tests: no cookies, desktop viewport."""
    browser.delete_all_cookies()
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    yield browser
    browser.delete_all_cookies()
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


@dataclass
class Platform:
    web: LiveWeb

    @property
    def url(self) -> str:
        return self.web.url


@pytest.fixture
def platform(kafka, usage_consumer) -> Iterator[Platform]:
    """gunicorn producing to this test's topics, and the usage consumer reading them; the data
    is committed (transactional_db) so the server sees it. The server stops before the
    database is flushed."""
    usage_consumer()
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka["bootstrap"], "KAFKA_TOPIC_USAGE": kafka["usage"],
        "KAFKA_TOPIC_USAGE_DLQ": kafka["dlq"], "KAFKA_TOPIC_RATED": kafka["rated"],
        "KAFKA_CONSUMER_GROUP_USAGE": kafka["group"],
    }
    web = LiveWeb(env=live_web_env(settings)).start()
    try:
        yield Platform(web)
    finally:
        web.stop()


def log_in(driver, base_url: str, username: str, password: str) -> None:
    """Through the login form, as a person would; lands on the dashboard."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form.stacked button[type=submit]").click()
    wait_for(lambda: driver.current_url.rstrip("/").endswith("/dashboard"), timeout=15, message="landing on /dashboard/")
    wait_for(lambda: driver.execute_script("return document.readyState") == "complete", timeout=15, message="page load")
