"""Languages: German by default, English on request, remembered per user; locale-aware filters."""

from __future__ import annotations

from flask import Flask, current_app, has_request_context, session
from flask_babel import format_datetime, get_locale
from flask_login import current_user

from itvsh.core.money import format_money

LANGUAGES = {"de": "Deutsch", "en": "English"}


def select_locale() -> str:
    """Explicit choice in this session, then the user's stored choice, then the configured default."""
    if not has_request_context():  # CLI commands and jobs: no session, no logged-in user
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = session.get("locale")
    if chosen in LANGUAGES:
        return chosen
    if current_user and current_user.is_authenticated and current_user.locale in LANGUAGES:
        return current_user.locale
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def current_language() -> str:
    return str(get_locale() or current_app.config["BABEL_DEFAULT_LOCALE"])[:2]


def register_i18n(app: Flask) -> None:
    @app.template_filter("money")
    def money_filter(cents):
        return "" if cents is None else format_money(cents, current_language())

    @app.template_filter("datetime")
    def datetime_filter(value, fmt="medium"):
        return "" if value is None else format_datetime(value, fmt)

    @app.context_processor
    def languages():
        return {"languages": LANGUAGES, "current_language": current_language}
