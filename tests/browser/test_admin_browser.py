"""The admin in a real browser under the real Content-Security-Policy: German login and dashboard,
municipality users refused, delete still asks first, bulk actions work, no CSP violations, and the
language switch. These prove what a test client cannot: that the CSP-safe templates and
``static/js/admin-csp.js`` actually run."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.helpers import PASSWORD, csp_violations, html_lang, login

pytestmark = pytest.mark.browser

# Records form submissions inside the page: a dismissed confirm must stop the submit synchronously,
# so after the click returns this tells deterministically whether anything was sent.
RECORD_SUBMITS = """() => {
    window.__submits = [];
    document.addEventListener("submit", (event) => window.__submits.push(event.target.action));
}"""
# The "With selected" ("Mit Auswahl") toggle: the dropdown whose menu holds the bulk actions.
ACTIONS_TOGGLE = (
    "xpath=//a[contains(@class, 'dropdown-toggle')][following-sibling::div[1]//a[@data-model-action]]"
)


def test_staff_log_in_through_the_form_and_see_the_german_dashboard(page, console, live_server):
    email = live_server.make_user("staff")

    response = page.goto("/admin/")
    assert re.search(r"/login\?next=(/|%2F)admin", page.url), page.url
    assert response.status == 200
    assert html_lang(page) == "de"
    submit = page.get_by_role("button", name="Anmelden")
    expect(submit).to_be_visible()

    page.locator("input[name=email]").fill(email)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        submit.click()

    assert page.url == f"{live_server.url}/admin/"
    assert html_lang(page) == "de"
    expect(page.locator("h1")).to_contain_text("Willkommen")
    expect(page.locator("nav")).to_contain_text(live_server.german("Overview"))
    expect(page.locator(".itvsh-account")).to_contain_text(email)
    assert csp_violations(console) == []


def test_wrong_password_is_refused_in_german(page, live_server):
    email = live_server.make_user("staff")
    login(page, email, "not the password at all")

    assert "/login" in page.url
    assert html_lang(page) == "de"
    expect(page.locator(".alert-danger")).to_have_text(
        live_server.german("Email or password is wrong, or the account is deactivated.")
    )
    expect(page.get_by_role("button", name="Anmelden")).to_be_visible()


def test_municipality_user_is_refused_at_admin(page, console, live_server):
    email = live_server.make_user("municipality")
    login(page, email)
    assert page.url == f"{live_server.url}/portal/"

    response = page.goto("/admin/")

    assert response.status == 403
    assert html_lang(page) == "de"
    expect(page.locator("h1")).to_contain_text("403")
    expect(page.locator("h1")).to_contain_text(live_server.german("Access denied"))
    expect(page.locator(".itvsh-dashboard")).to_have_count(0)
    assert csp_violations(console) == []


def test_delete_asks_first(page, console, live_server):
    admin = live_server.make_user("admin")
    owner = live_server.make_user("staff")
    token_id, prefix = live_server.issue_token(owner)
    login(page, admin)
    page.goto("/admin/api_tokens/")
    row = page.locator("tr", has_text=prefix)
    delete = row.locator("button[data-confirm]")
    expect(delete).to_have_count(1)
    page.evaluate(RECORD_SUBMITS)

    dialogs = []

    def dismiss(dialog):
        dialogs.append((dialog.type, dialog.message))
        dialog.dismiss()

    page.once("dialog", dismiss)
    delete.click()

    assert len(dialogs) == 1
    assert dialogs[0][0] == "confirm"
    assert dialogs[0][1] == delete.get_attribute("data-confirm")
    assert page.evaluate("window.__submits") == []
    assert live_server.token_revoked(token_id) is False

    def accept(dialog):
        dialogs.append((dialog.type, dialog.message))
        dialog.accept()

    page.once("dialog", accept)
    with page.expect_navigation():
        delete.click()

    assert len(dialogs) == 2
    assert dialogs[1][0] == "confirm"
    assert live_server.token_revoked(token_id) is True
    assert "/admin/api_tokens/" in page.url
    assert csp_violations(console) == []


def test_bulk_action_deactivates_the_selected_user(page, console, live_server):
    admin = live_server.make_user("admin")
    target = live_server.make_user("staff")
    bystander = live_server.make_user("staff")
    login(page, admin)
    page.goto("/admin/users/?page_size=100")
    page.evaluate(RECORD_SUBMITS)

    page.locator("tr", has_text=target).locator("input.action-checkbox").check()
    toggle = page.locator(ACTIONS_TOGGLE)
    action = page.locator("a[data-model-action=deactivate]")

    dialogs = []

    def dismiss(dialog):
        dialogs.append(dialog.type)
        dialog.dismiss()

    toggle.click()
    page.once("dialog", dismiss)
    action.click()

    assert dialogs == ["confirm"]
    assert page.evaluate("window.__submits") == []
    assert live_server.user_state(target)[0] is True

    def accept(dialog):
        dialogs.append(dialog.type)
        dialog.accept()

    toggle.click()
    page.once("dialog", accept)
    with page.expect_navigation():
        action.click()

    assert dialogs == ["confirm", "confirm"]
    expect(page.locator(".alert-success")).to_be_visible()
    assert live_server.user_state(target)[0] is False
    assert live_server.user_state(bystander)[0] is True
    assert live_server.user_state(admin)[0] is True
    assert csp_violations(console) == []


def test_bulk_action_without_selection_submits_nothing(page, live_server):
    admin = live_server.make_user("admin")
    login(page, admin)
    page.goto("/admin/users/")
    page.evaluate(RECORD_SUBMITS)
    alerts = []

    def record(dialog):
        alerts.append(dialog.type)
        dialog.accept()

    page.locator(ACTIONS_TOGGLE).click()
    page.once("dialog", record)
    page.locator("a[data-model-action=deactivate]").click()

    assert alerts == ["alert"]
    assert page.evaluate("window.__submits") == []
    assert live_server.user_state(admin)[0] is True


def test_pages_load_without_csp_violations(page, console, live_server):
    admin = live_server.make_user("admin")
    other = live_server.make_user("staff")
    live_server.issue_token(other)
    login(page, admin)
    paths = [
        "/admin/",
        "/admin/users/",
        "/admin/users/new/",
        "/admin/api_tokens/",
        "/admin/municipalities/",
        "/admin/audit_events/",
    ]
    for path in paths:
        response = page.goto(path)
        assert response.status == 200, path
    # The edit and details pages of an account, reached as a user would.
    page.goto(f"/admin/users/?search={other}")
    page.locator("tr", has_text=other).locator("a[href*='/edit/']").click()
    page.wait_for_load_state()
    assert "/admin/users/edit/" in page.url
    page.go_back()
    page.locator("tr", has_text=other).locator("a[href*='/details/']").click()
    page.wait_for_load_state()
    assert "/admin/users/details/" in page.url

    assert csp_violations(console) == []
    assert [m for m in console if m.startswith(("error", "pageerror"))] == []


def test_language_switch_to_english_and_back(page, console, live_server):
    email = live_server.make_user("staff")
    login(page, email)
    assert html_lang(page) == "de"

    with page.expect_navigation():
        page.get_by_role("button", name="English").click()

    assert page.url == f"{live_server.url}/admin/"
    assert html_lang(page) == "en"
    expect(page.locator("h1")).to_contain_text("Welcome")
    assert live_server.user_state(email)[1] == "en"

    with page.expect_navigation():
        page.get_by_role("button", name="Deutsch").click()

    assert html_lang(page) == "de"
    assert live_server.user_state(email)[1] == "de"
    assert csp_violations(console) == []


def test_language_switch_on_the_login_page(page, live_server):
    page.goto("/login")
    assert html_lang(page) == "de"

    with page.expect_navigation():
        page.get_by_role("button", name="English").click()

    assert html_lang(page) == "en"
    expect(page.get_by_role("button", name="Log in")).to_be_visible()
