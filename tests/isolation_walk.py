"""The isolation harness's walk (tests/test_isolation.py): a test client per identity logged in
through the session cookie, write bodies that would change something if admitted (scraped from
the entitled user's form, or given explicitly), the database snapshot bracketing every write, and
the canary search in every response (unzipping XLSX exports)."""

from __future__ import annotations

import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date
from html.parser import HTMLParser

from flask import Flask
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from itvsh.extensions import db
from tests.isolation_support import (
    A_KEY,
    BY_NAME,
    HACKED,
    IDENTITIES,
    Identity,
    Probe,
    World,
    may_see,
    write_entitled,
)

LOGIN_ACTIONS = ("login", "login_failed")  # audited on every login: not what a snapshot compares

# --- form scraping ----------------------------------------------------------------------------

_TEXT_INPUTS = {"", "text", "email", "number", "date", "datetime-local", "hidden", "tel", "url", "search"}


class _FormParser(HTMLParser):
    """The POST forms of a page: their action and the fields a browser would submit."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None
        self._select_first: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag, attrs):
        a = {k: (v or "") for k, v in attrs}
        if tag == "form":
            if a.get("method", "get").lower() == "post":
                self._form = {"action": a.get("action", ""), "fields": [], "selects": set()}
                self.forms.append(self._form)
            return
        if self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "").lower()
            if kind in _TEXT_INPUTS or kind == "password":
                self._form["fields"].append([name, a.get("value", "")])
            elif kind in ("checkbox", "radio") and "checked" in a:
                self._form["fields"].append([name, a.get("value", "y")])
        elif tag == "select" and name:
            self._select, self._select_first = name, None
        elif tag == "option" and self._select is not None:
            value = a.get("value", "")
            if self._select_first is None:
                self._select_first = value
            if "selected" in a:
                self._form["fields"].append([self._select, value])
                self._form["selects"].add(self._select)
        elif tag == "textarea" and name:
            self._textarea = name
            self._form["fields"].append([name, ""])

    def handle_data(self, data):
        if self._textarea is not None and self._form is not None:
            self._form["fields"][-1][1] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select" and self._select is not None and self._form is not None:
            if self._select not in self._form["selects"] and self._select_first is not None:
                self._form["fields"].append([self._select, self._select_first])
            self._select = None
        elif tag == "textarea":
            self._textarea = None


_SITE_FORMS = ("/language", "/logout")


def main_form(html: str) -> list[list[str]] | None:
    """The fields of the page's main POST form (not the language switch or logout), or None."""
    parser = _FormParser()
    parser.feed(html)
    forms = [f for f in parser.forms if not f["action"].split("?")[0].endswith(_SITE_FORMS)]
    if not forms:
        return None
    return max(forms, key=lambda f: len(f["fields"]))["fields"]


def hostile(fields: list[list[str]], world: World) -> list[tuple[str, str]]:
    """A submission that changes something if it is admitted: the name gets a suffix, an
    ``active`` box is cleared, and empty fields naming a tenant object (``municipality_key`` ...)
    get A's, an empty official ``key`` a new one."""
    out = []
    for name, value in fields:
        if name == "active":
            continue
        if name == "name":
            value = f"{value} {HACKED}".strip()
        elif not value and name in world.values:
            value = str(world.values[name])
        elif not value and name == "key":
            value = NEW_KEYS["form"]
        out.append((name, value))
    if not any(name == "name" for name, _ in out):
        out.append(("name", HACKED))
    return out


# --- responses and the database ---------------------------------------------------------------


def response_text(response) -> str:
    """Body (unpacked when it is a zip file, as XLSX exports are) and headers, as text."""
    data = response.get_data()
    parts = [data.decode("utf-8", "replace")]
    if data[:2] == b"PK":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                parts.extend(archive.read(n).decode("utf-8", "replace") for n in archive.namelist())
        except zipfile.BadZipFile:
            pass
    parts.extend(f"{k}: {v}" for k, v in response.headers.items())
    return "\n".join(parts)


_CSRF_RE = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_from(html: str) -> str | None:
    match = _CSRF_RE.search(html)
    return match.group(1) if match else None


@dataclass
class Snapshot:
    """Every table's rows (digest and count), the audit trail counted without login events."""

    tables: dict[str, tuple[int, int]] = field(default_factory=dict)
    a_contact: tuple | None = None

    def diff(self, other: Snapshot) -> list[str]:
        changed = [
            f"{name}: {self.tables[name][0]} -> {other.tables.get(name, (None,))[0]} rows"
            + (" (contents changed)" if self.tables[name][0] == other.tables.get(name, (None,))[0] else "")
            for name in self.tables
            if self.tables[name] != other.tables.get(name)
        ]
        if self.a_contact != other.a_contact:
            changed.append(f"A's contact: {self.a_contact} -> {other.a_contact}")
        return changed


def snapshot(engine, a_contact_id: int) -> Snapshot:
    from itvsh.tenants.models import MunicipalityContact

    result = Snapshot()
    with engine.connect() as conn:
        # The raw DB-API cursor: reading every row through SQLAlchemy's result machinery costs
        # ten times more, and a snapshot brackets every write of the walk.
        cursor = conn.connection.dbapi_connection.cursor()
        for table in db.metadata.sorted_tables:
            if table.name == "audit_chain_head":
                continue  # moves with login events; the events themselves are counted below
            if table.name == "audit_events":
                count = conn.execute(
                    select(func.count()).select_from(table).where(table.c.action.not_in(LOGIN_ACTIONS))
                ).scalar_one()
                result.tables[table.name] = (count, 0)
                continue
            order = ", ".join(f'"{c.name}"' for c in table.primary_key.columns)
            cursor.execute(f'SELECT * FROM "{table.name}" ORDER BY {order}')
            rows = cursor.fetchall()
            # hash() of the rows' tuples: compared within this process only, and 10x cheaper than
            # digesting their text.
            try:
                digest = hash(tuple(map(tuple, rows)))
            except TypeError:  # JSON columns come back as dicts and lists on PostgreSQL
                digest = hash(tuple(tuple(_hashable(value) for value in row) for row in rows))
            result.tables[table.name] = (len(rows), digest)
        cursor.close()
        contacts = MunicipalityContact.__table__
        row = conn.execute(select(contacts).where(contacts.c.id == a_contact_id)).one_or_none()
        result.a_contact = tuple(row) if row is not None else None
        conn.rollback()
    return result


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, (dict, list)) else value


# --- the walk ---------------------------------------------------------------------------------

# Write bodies that change something when admitted -- so that the same request refused to
# someone else proves something by changing nothing (test_entitled_writes_are_real_writes).
# Callables of the world, called per request. API writes default to a new name; page writes to
# the form the entitled user gets at the same URL (see ``hostile``), else these.
NEW_KEYS = {"form": "01099001", "api": "01099002"}  # valid Gemeinde keys that are not in the list


def _renamed_list() -> bytes:
    from itvsh.demo import shipped_list

    data = shipped_list()
    renamed = data.replace(b'"Kiel, Landeshauptstadt",kreisfreie', f'"Kiel, {HACKED}",kreisfreie'.encode())
    assert renamed != data
    return renamed


API_BODIES: dict[str, object] = {
    "api.request_report": lambda w: {
        "kind": "municipality_statement",
        "format": "pdf",
        "parameters": {"ags": A_KEY},
    },
    "api.create_user": lambda w: {
        "email": "intruder@test.example",
        "role": "admin",
        "password": "an intruder's long password",
        "tenant": None,
    },
    "api.update_user": lambda w: {"active": False},
    "api.create_municipality": lambda w: {"key": NEW_KEYS["api"], "kind": "gemeinde", "name": HACKED},
    "api.change_membership": lambda w: {"action": "join", "on": date.today().isoformat(), "note": HACKED},
    "api.put_ozg_status": lambda w: {"maturity": 2},  # A's own status: a real write for A and staff
}
FORM_BODIES: dict[str, object] = {
    # the form on the detail page
    "municipalities.membership_view": lambda w: [
        ("id", str(w.values["municipality_id"])),
        ("change", "leave"),
        ("on", date.today().isoformat()),
        ("note", HACKED),
    ],
    "municipalities.import_view": lambda w: [
        ("file", (io.BytesIO(_renamed_list()), "sh_municipalities.csv")),
    ],
}
DESTRUCTIVE_VIEWS = frozenset({"delete_view", "action_view"})


@dataclass
class Result:
    identity: Identity
    probe: Probe
    phase: str  # "read", "bearer-read" (API with a token), "denied-write", "entitled-write"
    status: int
    location: str
    leaks: dict[str, list[str]]  # tenant key -> what of its canary was found
    changed: list[str] | None = None  # snapshot differences (writes only)
    shown: frozenset[str] = frozenset()  # tenants whose canary is in the response
    csrf_refused: bool = False  # the app refused the request's CSRF token

    @property
    def shows_a(self) -> bool:
        """A's canary is in the response (what the positive controls look for)."""
        return A_KEY in self.shown

    def __str__(self) -> str:
        return f"{self.identity.name}: {self.probe} -> {self.status}"


class Walker:
    """Sends the probes as each identity: one test client per identity, logged in through the
    session cookie (never the throttled login form), with a valid CSRF token on writes."""

    def __init__(self, app: Flask, world: World, engine):
        self.app, self.world, self.engine = app, world, engine
        self.clients: dict[str, object] = {}
        self.tokens: dict[str, str] = {}
        self.forms: dict[tuple[str, str], list[list[str]] | None] = {}
        self.results: list[Result] = []
        self.requests = 0
        self._last_snapshot: Snapshot | None = None  # still true while no request was sent since
        self.csrf_failures = 0
        # Count refused CSRF tokens (the app's own answer stays): a write refused for its token
        # would pass "denied writes change nothing" vacuously.
        from flask_wtf.csrf import CSRFError

        from itvsh.core.errors import handle_csrf_error

        def count_csrf_failure(exc):
            self.csrf_failures += 1
            return handle_csrf_error(exc)

        app.register_error_handler(CSRFError, count_csrf_failure)

    # sessions
    def client(self, identity: Identity):
        if identity.name not in self.clients:
            self.clients[identity.name] = self.app.test_client()
            self.log_in(identity)
        return self.clients[identity.name]

    def log_in(self, identity: Identity) -> None:
        """(Re-)establish the identity's session: after a logout or password change its session
        version moved on, so read it again."""
        if identity.anonymous:
            return
        from itvsh.auth.models import User

        users = User.__table__
        with self.engine.connect() as conn:
            version = conn.execute(
                select(users.c.session_version).where(users.c.id == self.world.users[identity.name])
            ).scalar_one()
        with self.clients[identity.name].session_transaction() as session:
            session["_user_id"] = f"{self.world.users[identity.name]}:{version}"
            session["_fresh"] = True

    def csrf(self, identity: Identity) -> str:
        client = self.client(identity)
        with client.session_transaction() as session:
            fresh = "csrf_token" in session
        if not fresh or identity.name not in self.tokens:
            page = client.get("/login" if identity.anonymous else "/logout")
            self._count()
            token = csrf_from(page.get_data(as_text=True))
            assert token, f"no CSRF token for {identity.name} (status {page.status_code})"
            self.tokens[identity.name] = token
        return self.tokens[identity.name]

    def _count(self) -> None:
        self.requests += 1
        self._last_snapshot = None

    # bodies
    def owner(self, identity: Identity, probe: Probe) -> Identity | None:
        """Whose rendering of the form a write submits: the caller's when it may write, otherwise
        the first identity that may (so a denied write is the write an entitled user would send)."""
        if write_entitled(self.app, identity, probe):
            return identity
        for name in ("A", "admin", "staff"):
            if write_entitled(self.app, BY_NAME[name], probe):
                return BY_NAME[name]
        return None

    def form_fields(self, identity: Identity, probe: Probe) -> list[list[str]] | None:
        owner = self.owner(identity, probe)
        if owner is None:
            return None
        key = (owner.name, probe.url)
        if key not in self.forms:
            page = self.client(owner).get(probe.url)
            self._count()
            self.forms[key] = main_form(page.get_data(as_text=True)) if page.status_code == 200 else None
        return self.forms[key]

    def send(self, identity: Identity, probe: Probe, bearer: bool = False):
        self._count()
        if bearer:  # a token instead of the session cookie: a client without one
            headers = {"Authorization": f"Bearer {self.world.tokens[identity.name]}"}
            return self.app.test_client().open(probe.url, method=probe.method, headers=headers)
        client = self.client(identity)
        if not probe.is_write:
            return client.get(probe.url)
        token = self.csrf(identity)
        headers = {"X-CSRFToken": token}
        if probe.is_api:
            body = API_BODIES.get(probe.endpoint, lambda w: {"name": HACKED})(self.world)
            return client.open(probe.url, method=probe.method, json=body, headers=headers)
        if probe.endpoint in FORM_BODIES:
            fields = FORM_BODIES[probe.endpoint](self.world)
        elif probe.body:
            fields = list(probe.body)
        else:
            scraped = [f for f in (self.form_fields(identity, probe) or []) if f[0] != "csrf_token"]
            fields = hostile(scraped, self.world)
        fields.append(("csrf_token", token))
        return client.open(probe.url, method=probe.method, data=_multidict(fields), headers=headers)

    # checks
    def leaks(self, identity: Identity, text: str) -> dict[str, list[str]]:
        return {
            key: found
            for key, canary in self.world.canaries.items()
            if not may_see(identity, key) and (found := canary.found_in(text))
        }

    def run(self, identity: Identity, probe: Probe, phase: str, bearer: bool = False) -> Result:
        before = None
        if probe.is_write and not bearer:
            # Prepare first (CSRF token, the owner's form), so the snapshot brackets one request.
            self.csrf(identity)
            if not probe.is_api and not probe.body and probe.endpoint not in FORM_BODIES:
                self.form_fields(identity, probe)
            before = self._last_snapshot or snapshot(self.engine, self.world.values["contact_id"])
        failures = self.csrf_failures
        response = self.send(identity, probe, bearer)
        text = response_text(response)
        result = Result(
            identity=identity,
            probe=probe,
            phase=phase,
            status=response.status_code,
            location=response.headers.get("Location", ""),
            leaks=self.leaks(identity, text),
            shown=frozenset(key for key, canary in self.world.canaries.items() if canary.found_in(text)),
            csrf_refused=self.csrf_failures > failures,
        )
        if before is not None:
            self._last_snapshot = snapshot(self.engine, self.world.values["contact_id"])
            result.changed = before.diff(self._last_snapshot)
            self.log_in(identity)  # a logout or password change ends the session: start again
        self.results.append(result)
        return result

    def walk(self, probes: list[Probe]) -> list[Result]:
        """Reads first (every identity), then the writes nobody may make (each bracketed by a
        snapshot), then the writes the caller may make, destructive ones last."""
        for probe in probes:
            if not probe.is_write:
                for identity in IDENTITIES:
                    self.run(identity, probe, "read")
        for probe in probes:
            if probe.is_api and not probe.is_write:
                for identity in IDENTITIES:
                    if not identity.anonymous:
                        self.run(identity, probe, "bearer-read", bearer=True)
        writes = [p for p in probes if p.is_write]
        for probe in writes:
            for identity in IDENTITIES:
                if not write_entitled(self.app, identity, probe):
                    self.run(identity, probe, "denied-write")
        entitled = [
            (identity, probe)
            for probe in writes
            for identity in IDENTITIES
            if write_entitled(self.app, identity, probe)
        ]
        entitled.sort(key=lambda pair: (_destructive(pair[1]), IDENTITIES.index(pair[0])))
        for identity, probe in entitled:
            self.run(identity, probe, "entitled-write")
        return self.results


def _destructive(probe: Probe) -> bool:
    return probe.view_name in DESTRUCTIVE_VIEWS or probe.method == "DELETE" or probe.endpoint == "auth.logout"


def _multidict(fields: list[tuple[str, str]]) -> MultiDict:
    return MultiDict(fields)
