"""The reports API (/api/v1/reports): a staff request followed from 202 ``queued`` to a finished
report whose file downloads with an audit event; what each role lists and reaches (a municipality
user only its own statements, another tenant's report 404); the kinds and members a municipality
user may ask for; Bearer tokens; an unreachable job service (202 ``pending`` with a notice); bad
input refused with a problem naming the field and nothing recorded; the file's states (409, 410);
the retry of failed reports (staff and admin only); idempotency keys; and the OpenAPI document."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import func, select

from itvsh.auth import services as auth_services
from itvsh.core.audit import AuditEvent
from itvsh.core.db import utcnow
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import ensure_municipality
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.reports import jobs, storage
from itvsh.reports.kinds import KINDS, OZG_EXPORT, OZG_SNAPSHOT
from itvsh.reports.models import Report, ReportStatus
from itvsh.tenants import services as tenant_services
from tests.api.helpers import assert_problem, field_errors
from tests.api.test_query_count import recorded_statements
from tests.conftest import csrf_token

KIEL, LUEBECK, UNKNOWN_KEY = "01002000", "01003000", "01099001"
YEAR = 2024
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
STATEMENT = "municipality_statement"
QUEUED = "Your report is queued; this page shows when it is ready."
UNREACHABLE = (
    "The job service is not reachable right now; your report is recorded and will be made when it is back."
)
REPORT_FIELDS = {
    "id",
    "kind",
    "format",
    "parameters",
    "municipality",
    "status",
    "progress",
    "error",
    "trigger",
    "requested_by",
    "created_at",
    "queued_at",
    "started_at",
    "finished_at",
    "file_name",
    "file_size",
    "sha256",
    "audit_seq",
    "audit_hash",
    "summary",
    "download",
}


def render_broken(ctx, out) -> dict:
    raise ValueError("a bug in the renderer")


# --- set-up and helpers --------------------------------------------------------------------------


@pytest.fixture
def world(app):
    """Kiel and Lübeck members since 2019, the fiscal year 2024, the manual job service."""
    set_scope(db.session, ALL)
    members = {}
    for key in (KIEL, LUEBECK):
        municipality, _created = ensure_municipality(db.session, key)  # imports the shipped list
        if not tenant_services.is_current_member(db.session, municipality.id):
            tenant_services.join(db.session, "test", municipality, date(2019, 1, 1))
        members[key] = municipality.id
    ledger.create_fiscal_year(db.session, "test", YEAR)
    db.session.commit()
    set_scope(db.session, ALL)
    assert isinstance(jobs.current_jobs(), jobs.ManualJobs)
    return members


@pytest.fixture
def as_user(client, login_as):
    """Log in as a new user of ``role`` who reads English; returns the headers a cookie-session
    write needs (the CSRF token)."""

    def login(role: str, tenant: str | None = None):
        user = login_as(role, tenant, locale="en")
        token = csrf_token(client, "/reports/")
        set_scope(db.session, ALL)
        return user, {"X-CSRFToken": token}

    return login


def send(client, method: str, url: str, headers: dict | None = None, body=None):
    response = client.open(url, method=method, json=body, headers=headers or {})
    set_scope(db.session, ALL)  # the request left its own scope on the test's session
    return response


def ok(response, status: int = 200) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:800])
    return response.get_json()


def counts() -> tuple[int, int, int]:
    """Reports, audit events, enqueued jobs: unchanged after every refusal."""
    db.session.commit()
    set_scope(db.session, ALL)
    reports = db.session.execute(select(func.count()).select_from(Report)).scalar_one()
    events = db.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    enqueued = jobs.current_jobs().enqueued if isinstance(jobs.current_jobs(), jobs.ManualJobs) else []
    return reports, events, len(enqueued)


def downloads(report_id: int) -> int:
    return db.session.execute(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.action == "download", AuditEvent.entity_id == str(report_id))
    ).scalar_one()


def row(report_id: int) -> Report:
    set_scope(db.session, ALL)
    return db.session.get(Report, report_id, populate_existing=True)


def stored_report(
    kind: str = OZG_EXPORT,
    fmt: str = "csv",
    *,
    status: str = ReportStatus.FINISHED.value,
    municipality_id: int | None = None,
    parameters: dict | None = None,
    body: bytes = b"a;b\n1;2\n",
    error: str = "",
) -> Report:
    """A report row as a job leaves it (finished with its file, failed with a reason, or open)."""
    set_scope(db.session, ALL)
    finished = status == ReportStatus.FINISHED.value
    report = Report(
        kind=kind,
        format=fmt,
        parameters=parameters or {},
        municipality_id=municipality_id,
        status=status,
        progress=100 if finished else 0,
        requested_by_label="someone@test.example",
        finished_at=utcnow() if status in (ReportStatus.FINISHED.value, ReportStatus.FAILED.value) else None,
        summary={},
        error=error,
    )
    db.session.add(report)
    db.session.flush()
    if finished and KINDS[kind].produces_file:
        report.file_name = KINDS[kind].file_name(report.parameters, fmt, (parameters or {}).get("ags"))
        path = storage.report_dir(report.id) / report.file_name
        path.write_bytes(body)
        report.file_size, report.sha256 = len(body), hashlib.sha256(body).hexdigest()
    db.session.commit()
    set_scope(db.session, ALL)
    return report


def statement_of(world, key: str, **kwargs) -> Report:
    return stored_report(
        STATEMENT,
        "pdf",
        municipality_id=world[key],
        parameters={"ags": key},
        body=b"%PDF " + key.encode(),
        **kwargs,
    )


# --- the whole flow ------------------------------------------------------------------------------


def test_a_staff_request_is_accepted_queued_finished_and_its_file_downloads_with_an_audit_event(
    world, client, as_user
):
    user, headers = as_user("staff")
    reports, events, _ = counts()

    response = send(client, "POST", "/api/v1/reports", headers, {"kind": OZG_EXPORT, "format": "csv"})

    body = ok(response, 202)
    report_id = body["id"]
    assert response.headers["Location"] == f"/api/v1/reports/{report_id}"
    assert set(body) == REPORT_FIELDS | {"notice"}
    assert (body["kind"], body["format"], body["parameters"], body["status"]) == (
        OZG_EXPORT,
        "csv",
        {},
        "queued",
    )
    assert (body["municipality"], body["trigger"], body["requested_by"]) == (None, "user", user.email)
    assert body["notice"] == QUEUED
    assert body["queued_at"] and body["download"] is None and body["sha256"] is None
    assert counts()[:2] == (reports + 1, events + 1)  # the row and its "request" event
    report = row(report_id)
    assert (report.requested_by_id, report.locale, report.status) == (user.id, "en", ReportStatus.QUEUED)
    assert jobs.current_jobs().enqueued == [report_id]
    assert_problem(send(client, "GET", f"/api/v1/reports/{report_id}/file"), 409)

    assert jobs.current_jobs().run_all() == ["finished"]

    shown = ok(send(client, "GET", response.headers["Location"]))
    report = row(report_id)
    assert (shown["status"], shown["progress"], shown["error"]) == ("finished", 100, "")
    assert shown["sha256"] == report.sha256 and len(shown["sha256"]) == 64
    assert (shown["file_name"], shown["file_size"]) == (report.file_name, report.file_size)
    assert (shown["audit_seq"], shown["audit_hash"]) == (report.audit_seq, report.audit_hash)
    assert shown["started_at"] and shown["finished_at"]
    assert shown["download"] == f"/api/v1/reports/{report_id}/file"
    stored = (storage.reports_root() / str(report_id) / report.file_name).read_bytes()
    before = downloads(report_id)

    download = send(client, "GET", shown["download"])

    assert download.status_code == 200
    assert download.get_data() == stored
    assert hashlib.sha256(download.get_data()).hexdigest() == shown["sha256"]
    assert download.mimetype == "text/csv"
    assert download.headers["Content-Disposition"] == f"attachment; filename={report.file_name}"
    download.close()
    assert downloads(report_id) == before + 1
    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "download").order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar_one()
    assert (event.entity, event.entity_id, event.actor_id) == ("report", str(report_id), user.id)
    assert event.after == {"file": report.file_name, "sha256": report.sha256}
    listed = ok(send(client, "GET", "/api/v1/reports"))
    assert [item["id"] for item in listed["items"]] == [report_id]
    assert listed["items"][0] == shown


def test_a_head_request_sends_no_file_and_records_no_download(world, client, as_user):
    as_user("staff")
    report = stored_report()

    response = send(client, "HEAD", f"/api/v1/reports/{report.id}/file")

    assert response.status_code == 200
    assert response.content_length == report.file_size
    assert downloads(report.id) == 0


def test_an_unreachable_job_service_answers_202_pending_with_a_notice(world, client, as_user, app):
    app.extensions["itvsh_jobs"] = jobs.RqJobs(jobs.redis_for_jobs(UNREACHABLE_REDIS))
    _user, headers = as_user("staff")

    response = send(client, "POST", "/api/v1/reports", headers, {"kind": OZG_EXPORT, "format": "xlsx"})

    body = ok(response, 202)
    assert (body["status"], body["queued_at"], body["notice"]) == ("pending", None, UNREACHABLE)
    assert row(body["id"]).status == ReportStatus.PENDING
    assert ok(send(client, "GET", response.headers["Location"]))["status"] == "pending"


# --- what each role reaches ------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["staff", "auditor", "admin"])
def test_the_federation_lists_and_reaches_every_report(world, client, as_user, role):
    as_user(role)
    federation = stored_report()
    kiel, luebeck = statement_of(world, KIEL), statement_of(world, LUEBECK)
    failed = stored_report(status=ReportStatus.FAILED.value, error="It broke.")

    listed = ok(send(client, "GET", "/api/v1/reports"))
    only_failed = ok(send(client, "GET", "/api/v1/reports?status=failed"))
    statements = ok(send(client, "GET", f"/api/v1/reports?kind={STATEMENT}"))

    assert [item["id"] for item in listed["items"]] == [failed.id, luebeck.id, kiel.id, federation.id]
    assert listed["meta"] == {"page": 1, "per_page": 50, "total": 4, "pages": 1}
    assert [item["id"] for item in only_failed["items"]] == [failed.id]
    assert only_failed["items"][0]["error"] == "It broke."
    assert [item["id"] for item in statements["items"]] == [luebeck.id, kiel.id]
    assert statements["items"][0]["municipality"] == LUEBECK
    for report in (federation, kiel, luebeck):
        assert ok(send(client, "GET", f"/api/v1/reports/{report.id}"))["id"] == report.id
        download = send(client, "GET", f"/api/v1/reports/{report.id}/file")
        assert download.status_code == 200
        download.close()
    assert downloads(luebeck.id) == 1


def test_a_municipality_user_lists_and_reaches_only_its_own_statements(world, client, as_user):
    as_user("municipality", KIEL)
    own = statement_of(world, KIEL)
    other = statement_of(world, LUEBECK)
    federation = stored_report()

    listed = ok(send(client, "GET", "/api/v1/reports"))
    annual = ok(send(client, "GET", "/api/v1/reports?kind=ozg_export"))

    assert [item["id"] for item in listed["items"]] == [own.id]
    assert listed["meta"]["total"] == 1
    assert listed["items"][0]["municipality"] == KIEL
    assert annual["items"] == [] and annual["meta"]["total"] == 0
    for report in (other, federation):
        for url in (f"/api/v1/reports/{report.id}", f"/api/v1/reports/{report.id}/file"):
            body = assert_problem(send(client, "GET", url), 404)
            assert LUEBECK not in str(body)
    assert downloads(other.id) == 0
    assert (
        ok(send(client, "GET", f"/api/v1/reports/{own.id}"))["download"] == f"/api/v1/reports/{own.id}/file"
    )
    download = send(client, "GET", f"/api/v1/reports/{own.id}/file")
    assert download.status_code == 200
    assert download.get_data() == b"%PDF " + KIEL.encode()
    assert download.mimetype == "application/pdf"
    download.close()
    assert downloads(own.id) == 1


def test_a_municipality_user_asks_for_its_own_statement(world, client, as_user):
    user, headers = as_user("municipality", KIEL)

    body = ok(
        send(
            client,
            "POST",
            "/api/v1/reports",
            headers,
            {"kind": STATEMENT, "format": "pdf", "parameters": {"ags": KIEL, "year": YEAR}},
        ),
        202,
    )

    assert (body["kind"], body["status"], body["municipality"]) == (STATEMENT, "queued", KIEL)
    assert body["parameters"] == {"ags": KIEL, "year": YEAR}
    report = row(body["id"])
    assert (report.municipality_id, report.requested_by_id) == (world[KIEL], user.id)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"kind": STATEMENT, "parameters": {"ags": LUEBECK}},
            "parameters.ags",
            f"There is no member with the key {LUEBECK}.",
        ),
        (
            {"kind": STATEMENT, "parameters": {"ags": UNKNOWN_KEY}},
            "parameters.ags",
            f"There is no member with the key {UNKNOWN_KEY}.",
        ),
        (
            {"kind": "annual_funding", "parameters": {"year": YEAR}},
            "kind",
            "You may not ask for this report.",
        ),
        ({"kind": OZG_EXPORT}, "kind", "You may not ask for this report."),
    ],
)
def test_a_municipality_user_is_refused_other_members_and_kinds(world, client, as_user, body, field, message):
    _user, headers = as_user("municipality", KIEL)
    before = counts()

    errors = field_errors(send(client, "POST", "/api/v1/reports", headers, body))

    assert errors == {field: [message]}
    assert counts() == before


def test_another_tenants_key_reads_exactly_like_an_unknown_one(world, client, as_user):
    _user, headers = as_user("municipality", KIEL)

    def answer(key: str) -> dict:
        body = assert_problem(
            send(client, "POST", "/api/v1/reports", headers, {"kind": STATEMENT, "parameters": {"ags": key}}),
            422,
        )
        return {k: (v.replace(key, "KEY") if isinstance(v, str) else v) for k, v in body.items()} | {
            "errors": {f: [m.replace(key, "KEY") for m in ms] for f, ms in body["errors"].items()}
        }

    assert answer(LUEBECK) == answer(UNKNOWN_KEY)


@pytest.mark.parametrize("role", ["auditor", "admin"])
def test_auditors_and_admins_ask_for_the_annual_report(world, client, as_user, role):
    _user, headers = as_user(role)

    body = ok(
        send(
            client,
            "POST",
            "/api/v1/reports",
            headers,
            {"kind": "annual_funding", "format": "pdf", "parameters": {"year": YEAR}},
        ),
        202,
    )

    assert (body["kind"], body["format"], body["parameters"], body["status"]) == (
        "annual_funding",
        "pdf",
        {"year": YEAR},
        "queued",
    )


def test_the_format_defaults_to_the_kinds_first(world, client, as_user):
    _user, headers = as_user("staff")

    body = ok(send(client, "POST", "/api/v1/reports", headers, {"kind": "proof_of_use"}), 202)

    assert body["format"] == KINDS["proof_of_use"].formats[0]
    assert body["parameters"] == {"as_of": date.today().isoformat()}


@pytest.mark.parametrize("role", ["staff", "municipality"])
def test_the_list_runs_the_same_statements_for_few_and_many_reports(world, client, as_user, role):
    as_user(role, KIEL if role == "municipality" else None)

    def statements() -> int:
        db.session.expunge_all()  # a cold session, as a new request in production has
        with recorded_statements() as sent:
            assert send(client, "GET", "/api/v1/reports").status_code == 200
        return len(sent)

    statement_of(world, KIEL)
    stored_report()
    few = statements()
    for _ in range(5):
        statement_of(world, KIEL)
        statement_of(world, LUEBECK)
        stored_report()

    assert statements() == few


# --- tokens and sessions ---------------------------------------------------------------------------


def test_a_bearer_token_reads_and_requests_without_csrf(world, client, make_user):
    staff = make_user("staff", locale="en")
    municipal = make_user("municipality", KIEL, locale="en")
    tokens = {user.id: auth_services.issue_token(db.session, "test", user) for user in (staff, municipal)}
    db.session.commit()
    own, other = statement_of(world, KIEL), statement_of(world, LUEBECK)

    def bearer(user) -> dict:
        return {"Authorization": f"Bearer {tokens[user.id]}"}

    body = ok(
        send(client, "POST", "/api/v1/reports", bearer(staff), {"kind": OZG_EXPORT, "format": "csv"}), 202
    )
    assert (body["status"], body["requested_by"]) == ("queued", staff.email)
    listed = ok(send(client, "GET", "/api/v1/reports", bearer(municipal)))
    assert [item["id"] for item in listed["items"]] == [own.id]
    assert_problem(send(client, "GET", f"/api/v1/reports/{other.id}", bearer(municipal)), 404)
    download = send(client, "GET", f"/api/v1/reports/{own.id}/file", bearer(municipal))
    assert download.status_code == 200
    download.close()
    assert downloads(own.id) == 1


def test_without_login_or_csrf_nothing_is_recorded(world, client, login_as):
    login_as("staff", locale="en")  # an account (and its audit event) that never logs in here
    anonymous = client.application.test_client()
    before = counts()
    assert_problem(send(anonymous, "GET", "/api/v1/reports"), 401)
    assert_problem(send(anonymous, "POST", "/api/v1/reports", body={"kind": OZG_EXPORT}), 401)
    assert_problem(send(client, "POST", "/api/v1/reports", body={"kind": OZG_EXPORT}), 400)  # no CSRF token
    assert counts() == before


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "no_such_kind"}, "kind", "Unknown report kind no_such_kind"),
        ({"kind": 7}, "kind", "Not a valid string."),
        ({}, "kind", "Missing data for required field."),
        ({"kind": OZG_EXPORT, "colour": "red"}, "colour", "Unknown field."),
        ({"kind": OZG_EXPORT, "format": "docx"}, "format", "This report comes as csv, xlsx, not as docx."),
        ({"kind": OZG_EXPORT, "format": 3}, "format", "Not a valid string."),
        (
            {"kind": "annual_funding", "parameters": {"year": 1999}},
            "parameters.year",
            "There is no fiscal year 1999.",
        ),
        ({"kind": "annual_funding", "parameters": {}}, "parameters.year", "Please give the fiscal year."),
        (
            {"kind": "annual_funding", "parameters": {"year": "abc"}},
            "parameters.year",
            "The fiscal year must be a whole number.",
        ),
        (
            {"kind": "annual_funding", "parameters": {"year": 2024.5}},
            "parameters.year",
            "The fiscal year must be a whole number.",
        ),
        (
            {"kind": "annual_funding", "parameters": {"year": True}},
            "parameters.year",
            "The fiscal year must be a whole number.",
        ),
        (
            {"kind": "annual_funding", "parameters": {"year": [YEAR]}},
            "parameters.year",
            "The fiscal year must be a whole number.",
        ),
        (
            {"kind": "annual_funding", "parameters": {"year": 10**30}},
            "parameters.year",
            "Must be a whole number of at most ten digits.",
        ),
        (
            {"kind": "annual_funding", "parameters": [YEAR]},
            "parameters",
            "The parameters must be given as named values.",
        ),
        (
            {"kind": "annual_funding", "parameters": "year=2024"},
            "parameters",
            "The parameters must be given as named values.",
        ),
        ({"kind": "annual_funding", "parameters": None}, "parameters", "Field may not be null."),
        (
            {"kind": STATEMENT, "parameters": {"ags": "0100\x002000"}},
            "parameters.ags",
            "Text must not contain NUL characters or invalid Unicode.",
        ),
        (
            {"kind": STATEMENT, "parameters": {"ags": "99999999"}},
            "parameters.ags",
            "There is no member with the key 99999999.",
        ),
        ({"kind": STATEMENT, "parameters": {"ags": "01051001"}}, "parameters.ags", "never been a member"),
        ({"kind": "proof_of_use", "parameters": {"as_of": "tomorrow"}}, "parameters.as_of", "YYYY-MM-DD"),
        ({"kind": OZG_SNAPSHOT, "parameters": {"month": "2024-13"}}, "parameters.month", "YYYY-MM."),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_recorded(
    world, client, as_user, body, field, message
):
    _user, headers = as_user("staff")
    before = counts()

    errors = field_errors(send(client, "POST", "/api/v1/reports", headers, body))

    assert field in errors, errors
    assert any(message in m for m in errors[field]), errors
    assert counts() == before


@pytest.mark.parametrize("data", [b"not json", b"[1, 2]", b'"x"'])
def test_a_body_that_is_no_json_object_is_a_400(world, client, as_user, data):
    _user, headers = as_user("staff")
    before = counts()

    response = client.post(
        "/api/v1/reports", data=data, headers={**headers, "Content-Type": "application/json"}
    )

    assert_problem(response, 400)
    assert counts() == before


@pytest.mark.parametrize("query", ["kind=nope", "status=done", "page=0", "per_page=x"])
def test_bad_list_filters_are_refused(world, client, as_user, query):
    as_user("staff")

    response = send(client, "GET", f"/api/v1/reports?{query}")

    assert response.status_code in (400, 422)
    body = assert_problem(response, response.status_code)
    if response.status_code == 422:
        assert set(body["errors"]) == {query.split("=")[0]}


@pytest.mark.parametrize("report_id", [999_999, 2**31, 10**20])
def test_an_unknown_report_is_a_404_problem(world, client, as_user, report_id):
    as_user("staff")
    for suffix in ("", "/file"):
        assert_problem(send(client, "GET", f"/api/v1/reports/{report_id}{suffix}"), 404)


# --- the file's states -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "message"),
    [
        ("pending", "not finished yet"),
        ("queued", "not finished yet"),
        ("running", "not finished yet"),
        ("failed", "This report failed; there is no file."),
    ],
)
def test_an_unfinished_or_failed_report_has_no_file_yet(world, client, as_user, status, message):
    as_user("auditor")
    report = stored_report(status=status, error="It broke." if status == "failed" else "")

    body = assert_problem(send(client, "GET", f"/api/v1/reports/{report.id}/file"), 409)

    assert message in body["detail"]
    assert ok(send(client, "GET", f"/api/v1/reports/{report.id}"))["download"] is None
    assert downloads(report.id) == 0


def test_a_file_no_longer_stored_is_a_410_and_no_download(world, client, as_user):
    as_user("staff")
    report = stored_report()
    (storage.reports_root() / str(report.id) / report.file_name).unlink()

    body = assert_problem(send(client, "GET", f"/api/v1/reports/{report.id}/file"), 410)

    assert "no longer stored" in body["detail"]
    assert downloads(report.id) == 0


def test_a_changed_file_is_a_410(world, client, as_user):
    as_user("staff")
    report = stored_report(body=b"12345")
    (storage.reports_root() / str(report.id) / report.file_name).write_bytes(b"123456")

    assert_problem(send(client, "GET", f"/api/v1/reports/{report.id}/file"), 410)


def test_a_job_that_makes_no_file_has_none_to_download(world, client, as_user):
    as_user("staff")
    snapshot = stored_report(OZG_SNAPSHOT, "none", parameters={"month": "2024-05"})

    body = assert_problem(send(client, "GET", f"/api/v1/reports/{snapshot.id}/file"), 404)

    assert body["detail"] == "This job makes no file."
    assert ok(send(client, "GET", f"/api/v1/reports/{snapshot.id}"))["download"] is None


# --- retry -----------------------------------------------------------------------------------------


def test_staff_retry_a_failed_job_and_the_new_report_finishes(world, client, as_user, monkeypatch):
    monkeypatch.setitem(KINDS, OZG_EXPORT, replace(KINDS[OZG_EXPORT], renderer=f"{__name__}:render_broken"))
    user, headers = as_user("staff")
    failed_id = ok(
        send(client, "POST", "/api/v1/reports", headers, {"kind": OZG_EXPORT, "format": "xlsx"}), 202
    )["id"]
    assert jobs.current_jobs().run_all() == ["failed"]
    failed = ok(send(client, "GET", f"/api/v1/reports/{failed_id}"))
    assert failed["status"] == "failed"
    assert failed["error"] == (
        "An internal error stopped the report (ValueError); the details are in the worker's log."
    )
    monkeypatch.undo()
    reports, events, _ = counts()

    response = send(client, "POST", f"/api/v1/reports/{failed_id}/retry", headers)

    body = ok(response, 202)
    assert body["id"] != failed_id
    assert response.headers["Location"] == f"/api/v1/reports/{body['id']}"
    assert (body["kind"], body["format"], body["trigger"], body["status"]) == (
        OZG_EXPORT,
        "xlsx",
        "retry",
        "queued",
    )
    assert body["notice"] == QUEUED
    assert counts()[:2] == (reports + 1, events + 1)
    assert row(body["id"]).requested_by_id == user.id
    assert row(failed_id).status == ReportStatus.FAILED  # the failed one stays, for the history
    assert jobs.current_jobs().run_all() == ["finished"]
    assert ok(send(client, "GET", f"/api/v1/reports/{body['id']}"))["status"] == "finished"


def test_an_admin_retries_with_an_empty_object_body(world, client, as_user):
    _user, headers = as_user("admin")
    failed = stored_report(status="failed", error="It broke.")

    body = ok(send(client, "POST", f"/api/v1/reports/{failed.id}/retry", headers, {}), 202)

    assert (body["trigger"], body["status"]) == ("retry", "queued")


def test_only_a_failed_report_can_be_retried(world, client, as_user):
    _user, headers = as_user("staff")
    finished = stored_report()
    before = counts()

    errors = field_errors(send(client, "POST", f"/api/v1/reports/{finished.id}/retry", headers))

    assert errors == {"status": ["Only a failed report can be retried."]}
    assert counts() == before


def test_a_retry_body_takes_no_fields(world, client, as_user):
    _user, headers = as_user("staff")
    failed = stored_report(status="failed", error="It broke.")
    before = counts()

    errors = field_errors(
        send(client, "POST", f"/api/v1/reports/{failed.id}/retry", headers, {"format": "pdf"})
    )

    assert errors == {"format": ["Unknown field."]}
    assert counts() == before


@pytest.mark.parametrize("role", ["auditor", "municipality"])
def test_auditors_and_municipality_users_may_not_retry(world, client, as_user, role):
    _user, headers = as_user(role, KIEL if role == "municipality" else None)
    failed = statement_of(world, KIEL, status="failed", error="It broke.")
    before = counts()

    assert_problem(send(client, "POST", f"/api/v1/reports/{failed.id}/retry", headers), 403)

    assert counts() == before


def test_a_retry_of_another_tenants_report_is_not_found(world, client, as_user):
    _user, headers = as_user("staff")
    assert_problem(send(client, "POST", "/api/v1/reports/999999/retry", headers), 404)


# --- idempotency ---------------------------------------------------------------------------------


def test_the_same_idempotency_key_answers_the_first_report_and_records_nothing_more(world, client, as_user):
    _user, headers = as_user("staff")
    headers = {**headers, "Idempotency-Key": "report-request-1"}
    request = {"kind": OZG_EXPORT, "format": "csv"}
    first = ok(send(client, "POST", "/api/v1/reports", headers, request), 202)
    before = counts()

    again = send(client, "POST", "/api/v1/reports", headers, request)

    body = ok(again, 202)
    assert body["id"] == first["id"]
    assert again.headers["Location"] == f"/api/v1/reports/{first['id']}"
    assert body["status"] == "queued"
    assert counts() == before  # no row, no event, no second job
    errors = field_errors(send(client, "POST", "/api/v1/reports", headers, {**request, "format": "xlsx"}))
    assert errors == {"Idempotency-Key": ["This idempotency key was already used for a different request."]}
    assert counts() == before


def test_another_users_idempotency_key_is_refused(world, client, as_user):
    _user, headers = as_user("staff")
    request = {"kind": OZG_EXPORT}
    ok(send(client, "POST", "/api/v1/reports", {**headers, "Idempotency-Key": "shared-key"}, request), 202)
    _other, headers = as_user("staff")
    before = counts()

    errors = field_errors(
        send(client, "POST", "/api/v1/reports", {**headers, "Idempotency-Key": "shared-key"}, request)
    )

    assert list(errors) == ["Idempotency-Key"]
    assert counts() == before


def test_a_retry_honours_its_idempotency_key(world, client, as_user):
    _user, headers = as_user("staff")
    headers = {**headers, "Idempotency-Key": "retry-1"}
    failed = stored_report(status="failed", error="It broke.")

    first = ok(send(client, "POST", f"/api/v1/reports/{failed.id}/retry", headers), 202)
    before = counts()
    again = ok(send(client, "POST", f"/api/v1/reports/{failed.id}/retry", headers), 202)

    assert again["id"] == first["id"]
    assert counts() == before


# --- the OpenAPI document --------------------------------------------------------------------------


def test_the_openapi_document_describes_the_reports_endpoints(world, client):
    spec = ok(client.get("/api/v1/openapi.json"))
    paths = spec["paths"]

    assert set(paths["/api/v1/reports"]) == {"get", "post"}
    assert set(paths["/api/v1/reports/{report_id}"]) == {"get"}
    assert set(paths["/api/v1/reports/{report_id}/file"]) == {"get"}
    assert set(paths["/api/v1/reports/{report_id}/retry"]) == {"post"}
    post = paths["/api/v1/reports"]["post"]
    assert "202" in post["responses"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/ReportRequest")
    assert "Idempotency-Key" in [p["name"] for p in post["parameters"]]
    assert {p["name"] for p in paths["/api/v1/reports"]["get"]["parameters"]} >= {"kind", "status", "page"}
    assert paths["/api/v1/reports/{report_id}/retry"]["post"]["description"] == "Roles: admin, staff"
    schemas = spec["components"]["schemas"]
    assert set(schemas["Report"]["properties"]) == REPORT_FIELDS
    assert "notice" in schemas["ReportRequested"]["properties"]
    assert set(schemas["ReportRequest"]["properties"]) == {"kind", "format", "parameters"}
