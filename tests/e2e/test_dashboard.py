"""Log in through the form, use the dashboard, log out; the phone-sized menu."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.e2e

PASSWORD = "pw-for-tests-123"
SCREENSHOT = "/tmp/e2e-dashboard.png"


def log_in(page: Page, base_url: str, username: str) -> None:
    page.goto(base_url + "/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_analyst_logs_in_sees_the_dashboard_and_logs_out(page: Page, live_server, make_user):
    make_user("analyst", username="ana")

    log_in(page, live_server.url, "ana")

    expect(page).to_have_url(live_server.url + "/")
    expect(page.get_by_role("heading", name="Welcome, ana")).to_be_visible()
    nav = page.locator("nav.nav")
    expect(nav.get_by_role("link", name="Models")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_have_count(0)  # analysts are not admins
    expect(nav.locator(".badge")).to_have_text(["analyst"])
    # The stylesheet is served (live_server serves static files): the top bar is styled, not default.
    assert page.locator("header.topbar").evaluate("e => getComputedStyle(e).display") == "flex"
    page.screenshot(path=SCREENSHOT, full_page=True)

    nav.get_by_role("link", name="Models").click()
    expect(page).to_have_url(live_server.url + "/models/")

    page.get_by_role("button", name="Log out").click()

    expect(page).to_have_url(live_server.url + "/accounts/login/")
    page.goto(live_server.url + "/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_wrong_password_stays_on_the_login_page(page: Page, live_server, make_user):
    make_user("analyst", username="ana")

    page.goto(live_server.url + "/accounts/login/")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_text("did not match")).to_be_visible()
    expect(page).to_have_url(live_server.url + "/accounts/login/")


def test_phone_menu_toggle_opens_the_nav(browser, live_server, make_user):
    make_user("analyst", username="ana")
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        log_in(page, live_server.url, "ana")
        expect(page.get_by_role("heading", name="Welcome, ana")).to_be_visible()
        burger = page.locator("label.nav-burger")
        models_link = page.locator("nav.nav").get_by_role("link", name="Models")

        expect(burger).to_be_visible()
        expect(models_link).to_be_hidden()

        burger.tap()

        expect(models_link).to_be_visible()
        expect(page.locator("#nav-toggle")).to_be_checked()
    finally:
        context.close()


def test_wide_screen_has_no_menu_toggle(page: Page, live_server, make_user):
    make_user("analyst", username="ana")
    page.set_viewport_size({"width": 1280, "height": 800})

    log_in(page, live_server.url, "ana")

    expect(page.locator("label.nav-burger")).to_be_hidden()
    expect(page.locator("nav.nav").get_by_role("link", name="Models")).to_be_visible()
