"""The admin's main menu is rendered once per role, page and language and then reused
(core/admin.py ``cached_menu``): a cached menu must never show one role's entries to another, keep
another page's entry highlighted, or speak another language."""

from __future__ import annotations

import re

from tests.auth.helpers import post_login

USERS = 'href="/admin/users/"'


def _client(app, make_user, role: str, **kwargs):
    client = app.test_client()
    assert post_login(client, make_user(role, **kwargs).email).status_code == 302
    return client


def _active_links(page: str) -> list[str]:
    menu = page.split('<ul class="nav navbar-nav mr-auto">', 1)[1].split("navbar-right", 1)[0]
    top = re.findall(r'<li class="active">\s*<a class="nav-link[^"]*" href="([^"]+)"', menu)
    return top + re.findall(r'class="dropdown-item active[^"]*"\s*href="([^"]+)"', menu)


def test_each_role_sees_only_its_entries_after_another_role_filled_the_cache(app, make_user):
    admin = _client(app, make_user, "admin")
    staff = _client(app, make_user, "staff")
    auditor = _client(app, make_user, "auditor")
    for _ in range(2):  # the second round is served from the cache
        assert USERS in admin.get("/admin/municipalities/").get_data(as_text=True)
        assert USERS not in staff.get("/admin/municipalities/").get_data(as_text=True)
        assert USERS not in auditor.get("/admin/municipalities/").get_data(as_text=True)


def test_the_current_page_is_the_highlighted_entry(app, make_user):
    staff = _client(app, make_user, "staff")
    for _ in range(2):
        municipalities = staff.get("/admin/municipalities/").get_data(as_text=True)
        years = staff.get("/admin/funding/years/").get_data(as_text=True)
        assert _active_links(municipalities) == ["/admin/municipalities/"]
        assert _active_links(years) == ["/admin/funding/years/"]


def test_the_menu_speaks_the_users_language(app, make_user):
    german = _client(app, make_user, "staff")
    english = _client(app, make_user, "staff", locale="en")
    for _ in range(2):
        assert "Kommunen" in german.get("/admin/municipalities/").get_data(as_text=True)
        page = english.get("/admin/municipalities/").get_data(as_text=True)
        assert "Municipalities" in page and "Kommunen" not in page
