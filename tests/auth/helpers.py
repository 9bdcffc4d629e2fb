"""Helpers for the account tests: logging in through the real form, reading committed audit
events, and the text a message has in a given language."""

from __future__ import annotations

import re
from urllib.parse import urlencode

from flask_babel import force_locale, gettext
from sqlalchemy import select

from itvsh.core.audit import AuditEvent
from itvsh.extensions import db
from tests.conftest import csrf_token

PASSWORD = "correct horse battery"  # the make_user default


def post_login(client, email: str, password: str = PASSWORD, next_url: str | None = None, **kwargs):
    """Log in through the form, as a browser does (CSRF token read from the login page)."""
    token = csrf_token(client, "/login")
    url = "/login" if next_url is None else "/login?" + urlencode({"next": next_url})
    return client.post(url, data={"email": email, "password": password, "csrf_token": token}, **kwargs)


def audit_events(**filters) -> list[AuditEvent]:
    """Committed audit events matching ``filters`` (column=value), in chain order."""
    statement = select(AuditEvent).order_by(AuditEvent.seq)
    for column, value in filters.items():
        statement = statement.where(getattr(AuditEvent, column) == value)
    return list(db.session.execute(statement).scalars())


def translated(app, msgid: str, locale: str = "de", **variables) -> str:
    """``msgid`` as the app shows it in ``locale`` (the msgid itself while no catalogue has it)."""
    with app.test_request_context(), force_locale(locale):
        return gettext(msgid, **variables)


_VOLATILE = re.compile(r'(value|nonce|content)="[^"]*"|nonce-[\w-]+')


def page_text(response) -> str:
    """The body without per-request values (CSRF token, CSP nonce, echoed field values)."""
    return _VOLATILE.sub("", response.get_data(as_text=True))
