"""Helpers shared by the browser tests: the login form, the page language, CSP messages."""

from __future__ import annotations

PASSWORD = "correct horse battery staple"


def login(page, email: str, password: str = PASSWORD) -> None:
    """Log in through the real login form (German by default)."""
    page.goto("/login")
    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(password)
    with page.expect_navigation():
        page.locator("form:has(input[name=password]) button[type=submit]").click()


def html_lang(page) -> str | None:
    return page.locator("html").get_attribute("lang")


def csp_violations(messages: list[str]) -> list[str]:
    """The console messages that report a Content-Security-Policy violation."""
    return [m for m in messages if "content security policy" in m.lower()]
