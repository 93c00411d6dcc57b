"""Signing in and out of the dashboard in real headless Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from conftest import RunningServer

pytestmark = pytest.mark.browser


def try_key(page: Page, url: str, key: str) -> None:
    page.goto(url + "/login")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def test_pages_need_a_sign_in(server: RunningServer, chromium: Browser) -> None:
    """Without the cookie the overview redirects to a sign-in form with a labelled field."""
    page = chromium.new_page()
    errors: list[str] = []
    page.on("console", lambda msg: errors.extend([msg.text] if msg.type == "error" else []))
    page.goto(server.url + "/")
    assert page.url == server.url + "/login"
    assert page.get_by_role("heading", name="Sign in").is_visible()
    assert page.get_by_label("API key").is_visible()
    assert errors == []  # favicon and stylesheet load fine


@pytest.mark.parametrize(
    ("which", "message"),
    [("ingest", "sign in with a read or admin key"), ("wrong", "not valid")],
)
def test_unusable_keys_are_refused_with_a_reason(
    server: RunningServer, chromium: Browser, which: str, message: str
) -> None:
    """An ingest key or an unknown key stays on the form with an alert saying why."""
    page = chromium.new_page()
    key = server.ingest_key if which == "ingest" else "wk_read_not-a-real-key"
    try_key(page, server.url, key)
    assert page.url == server.url + "/login"
    assert message in page.get_by_role("alert").inner_text()
    assert page.context.cookies() == []


def test_admin_key_signs_in_and_sign_out_clears_the_cookie(
    server: RunningServer, chromium: Browser
) -> None:
    """An admin key signs in with a strict HttpOnly cookie; signing out removes it."""
    context = chromium.new_context()
    page = context.new_page()
    try_key(page, server.url, server.admin_key)
    assert page.url == server.url + "/"
    (cookie,) = context.cookies()
    assert cookie["name"] == "wk_key" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/"
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(server.url + "/login")
    assert context.cookies() == []
    page.goto(server.url + "/")
    assert page.url == server.url + "/login"
