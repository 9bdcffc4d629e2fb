"""The message catalogues: German is complete, formal and consistent with the code, the compiled .mo
files and the .pot template are current (a new untranslated string fails here; `make translations`
re-extracts, updates and compiles), and the running app really speaks German by default and English
after the switch -- including flask-admin's own strings and WTForms' validation messages."""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_keywords, parse_mapping_cfg
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po
from flask import g, request_started

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "itvsh"
TRANSLATIONS = PACKAGE / "translations"
POT = TRANSLATIONS / "messages.pot"
LOCALES = ("de", "en")
REMAKE = "run `make translations` (re-extract, update, compile) and translate the new German entries"

# Python %-format placeholders: %(name)s, %(n)d, %(limit)s, ... and a literal %%.
PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[-#0 +]*(?:\*|\d+)?(?:\.\d+)?[diouxXeEfFgGcrsa%]")
INFORMAL = re.compile(r"\b(du|dich|dir|dein|deine|deinen|deinem|deiner|deines|euch|euer|eure)\b", re.I)


def po_path(locale: str) -> Path:
    return TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po"


def load_po(path: Path, locale: str | None = None):
    with path.open("rb") as fh:
        return read_po(fh, locale=locale)


def ids(catalog) -> set:
    """The msgids of a catalogue; plural entries as (singular, plural) tuples."""
    return {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalog if m.id}


def placeholders(text: str) -> list[str]:
    return sorted(match.group(0) for match in PLACEHOLDER.finditer(text))


def makefile_keywords() -> list[str]:
    """The -k options of the Makefile's `translations` extract command (the test extracts the same way)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line for line in text.splitlines() if "pybabel extract" in line]
    assert len(lines) == 1, "the Makefile should run `pybabel extract` exactly once (target translations)"
    args = shlex.split(lines[0])
    return [args[i + 1] for i, arg in enumerate(args) if arg == "-k"]


def extract_ids() -> set:
    """Extract the package's messages as `pybabel extract -F babel.cfg ... itvsh` does."""
    with (ROOT / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, filename="babel.cfg")
    keywords = dict(DEFAULT_KEYWORDS)
    keywords.update(parse_keywords(makefile_keywords()))
    found = set()
    for _filename, _lineno, message, _comments, _context in extract_from_dir(
        PACKAGE, method_map, options_map, keywords=keywords
    ):
        if isinstance(message, (list, tuple)):
            if message[0]:
                found.add(tuple(message))
        elif message:
            found.add(message)
    return found


@pytest.fixture(scope="module")
def de_catalog():
    return load_po(po_path("de"), "de")


# --- the catalogues themselves ---------------------------------------------------------------


def test_catalogues_exist_for_german_and_english_only():
    assert POT.is_file()
    present = {p.name for p in TRANSLATIONS.iterdir() if p.is_dir()}
    assert present == set(LOCALES)
    for locale in LOCALES:
        assert po_path(locale).is_file()
        assert po_path(locale).with_suffix(".mo").is_file()


def test_every_german_message_is_translated_and_none_is_fuzzy(de_catalog):
    assert not de_catalog.fuzzy, "the German catalogue's header is marked fuzzy"
    assert de_catalog.num_plurals == 2
    assert len(ids(de_catalog)) > 100  # guards against an empty or truncated catalogue
    untranslated, fuzzy = [], []
    for message in de_catalog:
        if not message.id:
            continue
        if message.fuzzy:
            fuzzy.append(message.id)
        if message.pluralizable:
            if len(message.string) != 2 or not all(s.strip() for s in message.string):
                untranslated.append(message.id)
        elif not message.string.strip():
            untranslated.append(message.id)
    assert untranslated == [], f"untranslated German entries ({REMAKE}): {untranslated}"
    assert fuzzy == [], f"fuzzy German entries (check them and remove the flag): {fuzzy}"


def test_german_placeholders_equal_those_of_the_msgid(de_catalog):
    wrong = []
    for message in de_catalog:
        if not message.id:
            continue
        # German plurals: form 0 is the singular (n == 1) and matches msgid, form 1 msgid_plural.
        pairs = list(zip(message.id, message.string, strict=True)) if message.pluralizable else []
        pairs = pairs or [(message.id, message.string)]
        for source, translated in pairs:
            if placeholders(source) != placeholders(translated):
                wrong.append((source, translated))
    assert wrong == []
    # Babel's own checks (python-format consistency, plural form count) agree.
    assert [(m.id, errors) for m, errors in de_catalog.check()] == []


def test_placeholder_pattern_sees_the_placeholders_it_must():
    assert placeholders("%(num)d Konten, %(email)s, %(key)s, 100 %%") == [
        "%%",
        "%(email)s",
        "%(key)s",
        "%(num)d",
    ]
    assert placeholders("Kein Platzhalter") == []


def test_german_uses_the_formal_register(de_catalog):
    strings = [s for m in de_catalog if m.id for s in ([m.string] if isinstance(m.string, str) else m.string)]
    assert [s for s in strings if INFORMAL.search(s)] == []
    assert any(re.search(r"\bSie\b", s) for s in strings)


def test_english_catalogue_has_the_same_messages_and_keeps_the_source_text():
    english = load_po(po_path("en"), "en")
    assert not english.fuzzy
    assert ids(english) == ids(load_po(POT))
    # The source strings are English: entries are left empty (gettext shows the msgid) or equal it.
    for message in english:
        if message.id and not message.pluralizable and message.string:
            assert message.string == message.id


@pytest.mark.parametrize("locale", LOCALES)
def test_compiled_mo_matches_the_po(locale):
    catalog = load_po(po_path(locale), locale)
    fresh = io.BytesIO()
    write_mo(fresh, catalog)  # what `pybabel compile` writes (fuzzy entries left out)
    fresh.seek(0)
    with po_path(locale).with_suffix(".mo").open("rb") as fh:
        shipped = read_mo(fh)
    expected = read_mo(fresh)

    def messages(cat):
        return {(m.id if isinstance(m.id, str) else tuple(m.id)): m.string for m in cat if m.id}

    assert messages(shipped) == messages(expected), f"{locale}/messages.mo is stale: {REMAKE}"
    if locale == "de":
        assert len(messages(shipped)) == len(ids(catalog))


def test_makefile_extracts_with_every_keyword_the_code_uses():
    keywords = makefile_keywords()
    for keyword in ("_l", "lazy_gettext", "ngettext:1,2"):
        assert keyword in keywords


def test_pot_and_catalogues_are_current_with_the_code():
    extracted = extract_ids()
    assert "Log in" in extracted  # templates are scanned
    assert "Federation staff" in extracted  # lazy_gettext as _l is scanned
    assert ("%(num)d account was deactivated.", "%(num)d accounts were deactivated.") in extracted
    template = ids(load_po(POT))
    assert extracted - template == set(), f"strings missing from messages.pot: {REMAKE}"
    assert template - extracted == set(), f"messages.pot holds strings the code no longer has: {REMAKE}"
    for locale in LOCALES:
        assert ids(load_po(po_path(locale), locale)) == template, (
            f"{locale}/messages.po not updated: {REMAKE}"
        )


def test_extraction_leaves_out_flask_admins_own_strings():
    # `_gettext` in the overridden flask-admin templates belongs to flask-admin's "admin" catalogue.
    extracted = extract_ids()
    assert "Add Filter" not in extracted
    assert "With selected" not in extracted


# --- the running app ------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_g_per_request(request):
    """Give every test-client request a fresh ``g``, as a real server does.

    The ``app`` fixture keeps one app context pushed for the whole test, and Flask reuses it for
    each request, so ``g`` would survive between requests: Flask-Babel caches the locale there
    (``g._flask_babel``), which would hide a language switch, as Flask-Login does with the user.
    """
    if "app" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")

    def clear_g(sender, **extra):
        for name in list(vars(g)):
            delattr(g, name)

    request_started.connect(clear_g, app, weak=False)
    yield
    request_started.disconnect(clear_g, app)


def html_lang(html: str) -> str:
    match = re.search(r'<html lang="(\w+)"', html)
    assert match, "the page has no <html lang=...>"
    return match.group(1)


def switch_language(client, csrf, language: str, page: str = "/login") -> None:
    response = client.post("/language", data={"language": language, "csrf_token": csrf(page), "next": page})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(page)


def test_login_page_is_german_by_default_and_english_after_the_switch(client, csrf):
    page = client.get("/login").get_data(as_text=True)
    assert html_lang(page) == "de"
    assert "<title>Anmelden · ITV-SH</title>" in page
    assert "Verwaltungssystem des IT-Verbunds Schleswig-Holstein." in page
    assert "Log in" not in page

    switch_language(client, csrf, "en")
    page = client.get("/login").get_data(as_text=True)
    assert html_lang(page) == "en"
    assert "<title>Log in · ITV-SH</title>" in page
    assert "Anmelden" not in page

    switch_language(client, csrf, "de")
    assert html_lang(client.get("/login").get_data(as_text=True)) == "de"


def test_failed_login_message_is_german(client, csrf):
    response = client.post(
        "/login", data={"email": "nobody@test.example", "password": "wrong password!", "csrf_token": csrf()}
    )
    assert response.status_code == 401
    assert "E-Mail-Adresse oder Passwort ist falsch, oder das Konto ist deaktiviert." in response.get_data(
        as_text=True
    )


def test_admin_dashboard_is_german_for_staff_and_english_after_the_switch(client, login_as, csrf):
    login_as("staff")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Willkommen in der Verwaltung des ITV-SH" in page
    assert "Verbundmitarbeitende" in page  # the role label in the account menu
    assert "Abmelden" in page

    switch_language(client, csrf, "en", "/admin/")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Welcome to the ITV-SH administration" in page
    assert "Federation staff" in page
    assert "Willkommen" not in page


def test_stored_language_of_the_user_is_used(client, login_as):
    login_as("staff", locale="en")
    page = client.get("/admin/").get_data(as_text=True)
    assert "Welcome to the ITV-SH administration" in page


def test_flask_admin_speaks_german_too(client, login_as, csrf):
    login_as("admin")
    page = client.get("/admin/users/").get_data(as_text=True)
    # flask-admin's own catalogue ("admin" domain) follows our locale selector ...
    for german in ("Liste", "Filter hinzufügen", "Mit Auswahl"):
        assert german in page
    assert "Add Filter" not in page
    # ... next to our strings: menu entries and column labels.
    for german in ("Konten", "Prüfpfad", "Kommunen", "E-Mail-Adresse", "Rolle"):
        assert german in page

    switch_language(client, csrf, "en", "/admin/users/")
    page = client.get("/admin/users/").get_data(as_text=True)
    for english in ("Add Filter", "With selected", "Accounts", "Audit trail"):
        assert english in page
    assert "Filter hinzufügen" not in page


def test_form_validation_messages_are_german(client, login_as, csrf):
    login_as("staff")
    response = client.post("/account/password", data={"csrf_token": csrf("/account/password")})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "Dieses Feld wird benötigt." in page  # WTForms' own catalogue
    assert "This field is required." not in page
