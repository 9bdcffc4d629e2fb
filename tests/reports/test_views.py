"""The ``/reports/`` screens through the test client: what each role sees and may ask for, a request
followed from ``pending`` through ``queued`` to a finished, audited download, a municipality user
kept to its own statements, bad input refused at its field with nothing recorded, an unreachable
job service, failed jobs and the retry, the admin's schedule switches, and a fixed number of SQL
statements per page whatever the number of reports."""

from __future__ import annotations

import gc
import hashlib
import re
from dataclasses import replace
from datetime import date
from html import unescape

import pytest
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.db import utcnow
from itvsh.core.settings import get_flag
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import ensure_municipality
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.reports import jobs, service, storage
from itvsh.reports.kinds import KINDS, OZG_EXPORT, kinds_for
from itvsh.reports.models import Report, ReportStatus
from itvsh.tenants import services as tenant_services
from itvsh.tenants.models import Municipality
from tests.api.test_query_count import recorded_statements
from tests.conftest import csrf_token

KIEL, LUEBECK, AMT_ACHTERWEHR = "01002000", "01003000", "010585803"
YEAR = 2024
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def render_broken(ctx, out) -> dict:
    raise ValueError("a bug in the renderer")


# --- set-up and helpers --------------------------------------------------------------------------


@pytest.fixture
def world(app, tmp_path):
    """Kiel and Lübeck members since 2019, the fiscal year 2024, report files in a folder of this
    test, the manual job service, and the ALL scope for the test's own reads."""
    app.config["ITVSH_REPORTS_DIR"] = str(tmp_path)
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


def report_count() -> int:
    set_scope(db.session, ALL)
    return db.session.execute(select(func.count()).select_from(Report)).scalar_one()


def audit_count(action: str | None = None) -> int:
    stmt = select(func.count()).select_from(AuditEvent)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return db.session.execute(stmt).scalar_one()


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
    """A report row as a job leaves it (finished with its file, or failed with a reason)."""
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
    if finished:
        report.file_name = KINDS[kind].file_name(report.parameters, fmt, (parameters or {}).get("ags"))
        path = storage.report_dir(report.id) / report.file_name
        path.write_bytes(body)
        report.file_size, report.sha256 = len(body), hashlib.sha256(body).hexdigest()
    db.session.commit()
    set_scope(db.session, ALL)
    return report


def post_request(client, kind: str, **fields):
    data = {"csrf_token": csrf_token(client, "/reports/"), "kind": kind, **fields}
    return client.post("/reports/", data=data)


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def report_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'class="itvsh-report-row" data-report-id="(\d+)"', html)]


def field_error(html: str, kind: str, field: str) -> str:
    match = re.search(rf'id="request-{kind}-{field}-error" class="invalid-feedback">([^<]*)<', html)
    assert match, f"no message at the field {field} of the {kind} form"
    return match.group(1)


# --- what each role sees -------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["admin", "staff", "auditor", "municipality"])
def test_each_role_sees_the_forms_of_its_kinds(world, login_as, client, role):
    login_as(role, KIEL if role == "municipality" else None, locale="en")

    response = client.get("/reports/")

    html = text(response)
    assert response.status_code == 200
    assert html.count("<h1") == 1
    shown = re.findall(r'data-kind="(\w+)"', html)
    assert shown == [kind.name for kind in kinds_for(role)]
    assert ('id="failed-heading"' in html) == (role in ("admin", "staff"))
    assert ('id="schedule-heading"' in html) == (role == "admin")
    assert "History" in html
    if role == "municipality":
        assert shown == ["municipality_statement"]
        assert '<select id="request-municipality_statement-ags" name="ags"' in html
        assert f'<option value="{KIEL}" selected>' in html
    else:
        assert '<input type="text" id="request-municipality_statement-ags" name="ags"' in html
    if "annual_funding" in shown:
        assert f'<option value="{YEAR}" selected>{YEAR}</option>' in html


def test_an_amt_user_may_choose_its_gemeinden(world, login_as, client):
    set_scope(db.session, ALL)
    amt = tenant_services.get_by_key(db.session, AMT_ACHTERWEHR)
    gemeinden = (
        db.session.execute(select(Municipality.key).where(Municipality.amt_id == amt.id)).scalars().all()
    )
    assert gemeinden
    login_as("municipality", AMT_ACHTERWEHR, locale="en")

    html = text(client.get("/reports/"))

    options = re.findall(r'<option value="(\d+)"', html.split('name="ags"', 1)[1].split("</select>", 1)[0])
    assert options[0] == AMT_ACHTERWEHR
    assert sorted(options[1:]) == sorted(gemeinden)


def test_anonymous_is_sent_to_the_login(world, client):
    response = client.get("/reports/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


# --- a request followed to the download ----------------------------------------------------------


def test_a_staff_request_goes_pending_queued_finished_and_downloads_with_an_audit_event(
    world, login_as, client
):
    user = login_as("staff", locale="en")
    before = report_count()

    response = post_request(client, OZG_EXPORT, format="csv")

    assert response.status_code == 302
    report_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    assert report_count() == before + 1
    report = row(report_id)
    assert (report.kind, report.format, report.requested_by_id, report.locale) == (
        OZG_EXPORT,
        "csv",
        user.id,
        "en",
    )
    assert report.status == ReportStatus.QUEUED  # committed pending, then handed to the job service
    assert jobs.current_jobs().enqueued == [report_id]
    page = client.get(response.headers["Location"])
    assert "Your report is queued" in text(page)
    assert 'data-open="1"' in text(page)
    assert client.get(f"/reports/{report_id}/status").get_json()["status"] == "queued"
    assert client.get(f"/reports/{report_id}/download").status_code == 409

    assert jobs.current_jobs().run_all() == ["finished"]

    state = client.get(f"/reports/{report_id}/status").get_json()
    assert state["status"] == "finished"
    assert state["open"] is False
    assert state["progress"] == 100
    assert state["download_url"] == f"/reports/{report_id}/download"
    report = row(report_id)
    stored = (storage.reports_root() / str(report_id) / report.file_name).read_bytes()
    downloads = audit_count("download")

    download = client.get(state["download_url"])

    assert download.status_code == 200
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert report.file_name in download.headers["Content-Disposition"]
    assert download.mimetype == "text/csv"
    assert download.get_data() == stored
    assert hashlib.sha256(stored).hexdigest() == report.sha256
    download.close()
    assert audit_count("download") == downloads + 1
    event = db.session.execute(
        select(AuditEvent).where(AuditEvent.action == "download").order_by(AuditEvent.seq.desc()).limit(1)
    ).scalar_one()
    assert (event.entity, event.entity_id, event.actor_id) == ("report", str(report_id), user.id)
    assert event.after == {"file": report.file_name, "sha256": report.sha256}
    page = text(client.get(f"/reports/{report_id}"))
    assert report.sha256 in page
    assert f"/reports/{report_id}/download" in page
    history = text(client.get("/reports/"))
    assert report_ids(history) == [report_id]


def test_the_report_page_carries_the_progress_bar_and_the_script(world, login_as, client):
    login_as("staff", locale="en")
    report_id = int(post_request(client, OZG_EXPORT, format="xlsx").headers["Location"].rsplit("/", 1)[1])

    html = text(client.get(f"/reports/{report_id}"))

    assert re.search(r'<progress id="report-progress"[^>]*aria-valuenow="0"', html)
    assert f'data-status-url="/reports/{report_id}/status"' in html
    assert re.search(r'<script src="/static/js/reports\.js" nonce="[^"]+" defer>', html)
    assert " on" + "click=" not in html  # no inline handlers (the CSP forbids them)
    assert "Refresh" in html
    assert html.count("<h1") == 1


def test_an_unreachable_job_service_leaves_the_report_pending_and_says_so(world, login_as, client, app):
    app.extensions["itvsh_jobs"] = jobs.RqJobs(jobs.redis_for_jobs(UNREACHABLE_REDIS))
    login_as("staff", locale="en")

    response = post_request(client, OZG_EXPORT, format="csv")

    assert response.status_code == 302
    report_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert row(report_id).status == ReportStatus.PENDING
    page = text(client.get(response.headers["Location"]))
    assert (
        "The job service is not reachable right now; your report is recorded and will be made "
        "when it is back." in page
    )
    assert client.get(f"/reports/{report_id}/status").get_json()["status"] == "pending"


def test_a_download_leaves_no_file_open_even_if_the_client_never_closes_it(world, login_as, client):
    login_as("staff", locale="en")
    report = stored_report(body=b"x" * (storage.CHUNK + 10))

    downloads = audit_count("download")

    for method in (client.get, client.head):
        response = method(f"/reports/{report.id}/download")
        assert response.status_code == 200
        assert response.content_length == storage.CHUNK + 10
        response.get_data()  # read, never closed
        del response
    gc.collect()  # an open file would now warn (ResourceWarning), which fails the test
    assert audit_count("download") == downloads + 1  # the HEAD request sent no file


def test_a_missing_file_is_a_clear_410_and_no_download_event(world, login_as, client):
    login_as("staff", locale="en")
    report = stored_report()
    (storage.reports_root() / str(report.id) / report.file_name).unlink()
    downloads = audit_count("download")

    response = client.get(f"/reports/{report.id}/download")

    assert response.status_code == 410
    assert "no longer stored" in text(response)
    assert audit_count("download") == downloads


# --- municipality users --------------------------------------------------------------------------


def test_a_municipality_user_sees_and_reaches_only_its_own_statements(world, login_as, client):
    own = stored_report(
        "municipality_statement",
        "pdf",
        municipality_id=world[KIEL],
        parameters={"ags": KIEL},
        body=b"%PDF own",
    )
    other = stored_report(
        "municipality_statement", "pdf", municipality_id=world[LUEBECK], parameters={"ags": LUEBECK}
    )
    federation = stored_report()
    login_as("municipality", KIEL, locale="en")

    html = text(client.get("/reports/"))

    assert report_ids(html) == [own.id]
    for report_id in (other.id, federation.id):
        assert client.get(f"/reports/{report_id}").status_code == 404
        assert client.get(f"/reports/{report_id}/status").status_code == 404
        assert client.get(f"/reports/{report_id}/download").status_code == 404
    assert client.get(f"/reports/{own.id}").status_code == 200
    download = client.get(f"/reports/{own.id}/download")
    assert download.status_code == 200
    assert download.get_data() == b"%PDF own"
    assert download.mimetype == "application/pdf"
    download.close()


def test_a_municipality_user_asks_for_its_own_statement(world, login_as, client):
    user = login_as("municipality", KIEL, locale="en")

    response = post_request(client, "municipality_statement", ags=KIEL, year=str(YEAR), format="pdf")

    assert response.status_code == 302
    report = row(int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (report.kind, report.municipality_id, report.requested_by_id) == (
        "municipality_statement",
        world[KIEL],
        user.id,
    )
    assert report.parameters == {"ags": KIEL, "year": YEAR}
    assert report.status == ReportStatus.QUEUED
    assert client.get(f"/reports/{report.id}/status").get_json()["status"] == "queued"


@pytest.mark.parametrize(
    ("kind", "fields", "field", "message"),
    [
        ("annual_funding", {"year": str(YEAR), "format": "xlsx"}, None, "You may not ask for this report."),
        (
            "municipality_statement",
            {"ags": LUEBECK, "format": "pdf"},
            "ags",
            f"There is no member with the key {LUEBECK}.",
        ),
    ],
)
def test_a_municipality_user_is_refused_other_reports_and_members(
    world, login_as, client, kind, fields, field, message
):
    login_as("municipality", KIEL, locale="en")
    reports, events = report_count(), audit_count()

    response = post_request(client, kind, **fields)

    assert response.status_code == 400
    html = text(response)
    assert message in html
    assert "The report was not requested; nothing was recorded." in html
    if field:
        assert field_error(html, kind, field) == message
    assert report_count() == reports
    assert audit_count() == events


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fields", "field", "message"),
    [
        ("no_such_kind", {}, None, "Unknown report kind no_such_kind"),
        (
            "annual_funding",
            {"year": "abc", "format": "xlsx"},
            "year",
            "The fiscal year must be a whole number.",
        ),
        ("annual_funding", {"year": "1999", "format": "xlsx"}, "year", "There is no fiscal year 1999."),
        ("annual_funding", {"year": "", "format": "xlsx"}, "year", "Please give the fiscal year."),
        (
            "annual_funding",
            {"year": str(YEAR), "format": "docx"},
            "format",
            "This report comes as xlsx, pdf, csv",
        ),
        (
            "municipality_statement",
            {"ags": "99999999", "format": "pdf"},
            "ags",
            "There is no member with the key",
        ),
        ("municipality_statement", {"ags": "01051001", "format": "pdf"}, "ags", "never been a member"),
        (
            "proof_of_use",
            {"as_of": "tomorrow", "format": "csv"},
            "as_of",
            "Please give a date as YYYY-MM-DD.",
        ),
        (
            "ozg_snapshot",
            {"month": "2024-13", "format": "none"},
            "month",
            "Please give the month as YYYY-MM.",
        ),
    ],
)
def test_bad_input_is_refused_at_its_field_and_nothing_is_recorded(
    world, login_as, client, kind, fields, field, message
):
    login_as("staff", locale="en")
    reports, events = report_count(), audit_count()

    response = post_request(client, kind, **fields)

    assert response.status_code == 400
    html = text(response)
    assert message in html
    if field:
        assert message in field_error(html, kind, field)
        assert f'id="request-{kind}-{field}"' in html
    assert report_count() == reports
    assert audit_count() == events
    assert jobs.current_jobs().enqueued == []


# --- auditors --------------------------------------------------------------------------------------


def test_an_auditor_asks_for_the_annual_report_and_downloads_but_never_retries_or_schedules(
    world, login_as, client
):
    login_as("auditor", locale="en")

    response = post_request(client, "annual_funding", year=str(YEAR), format="xlsx")

    assert response.status_code == 302
    report = row(int(response.headers["Location"].rsplit("/", 1)[1]))
    assert (report.kind, report.parameters) == ("annual_funding", {"year": YEAR})
    finished = stored_report()
    download = client.get(f"/reports/{finished.id}/download")
    assert download.status_code == 200
    download.close()
    failed = stored_report(status="failed", error="It broke.")
    reports = report_count()
    token = csrf_token(client, "/reports/")
    assert client.post(f"/reports/{failed.id}/retry", data={"csrf_token": token}).status_code == 403
    assert client.post("/reports/schedule", data={"csrf_token": token}).status_code == 403
    assert report_count() == reports
    assert "Retry" not in text(client.get(f"/reports/{failed.id}"))


# --- failed jobs and the retry -------------------------------------------------------------------


def test_a_failed_job_shows_its_readable_reason_and_staff_retry_it(world, login_as, client, monkeypatch):
    monkeypatch.setitem(KINDS, OZG_EXPORT, replace(KINDS[OZG_EXPORT], renderer=f"{__name__}:render_broken"))
    user = login_as("staff", locale="en")
    report_id = int(post_request(client, OZG_EXPORT, format="csv").headers["Location"].rsplit("/", 1)[1])
    assert jobs.current_jobs().run_all() == ["failed"]
    reason = "An internal error stopped the report (ValueError); the details are in the worker's log."

    state = client.get(f"/reports/{report_id}/status").get_json()
    page = text(client.get(f"/reports/{report_id}"))
    index = text(client.get("/reports/"))

    assert (state["status"], state["error"], state["download_url"]) == ("failed", reason, None)
    assert reason in page
    assert "Traceback" not in page and "a bug in the renderer" not in page
    assert f'action="/reports/{report_id}/retry"' in page
    failed_section = index.split('id="failed-heading"', 1)[1].split('id="history-heading"', 1)[0]
    assert reason in failed_section
    assert f'action="/reports/{report_id}/retry"' in failed_section
    assert client.get(f"/reports/{report_id}/download").status_code == 409

    monkeypatch.undo()
    reports = report_count()
    response = client.post(
        f"/reports/{report_id}/retry", data={"csrf_token": csrf_token(client, "/reports/")}
    )

    assert response.status_code == 302
    new_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert new_id != report_id
    assert report_count() == reports + 1
    new = row(new_id)
    assert (new.kind, new.format, new.trigger, new.requested_by_id) == (OZG_EXPORT, "csv", "retry", user.id)
    assert new.status == ReportStatus.QUEUED
    assert row(report_id).status == ReportStatus.FAILED  # the failed one stays, for the history
    assert jobs.current_jobs().run_all() == ["finished"]
    assert client.get(f"/reports/{new_id}/status").get_json()["status"] == "finished"


def test_only_a_failed_report_can_be_retried(world, login_as, client):
    login_as("staff", locale="en")
    finished = stored_report()
    reports = report_count()

    response = client.post(
        f"/reports/{finished.id}/retry",
        data={"csrf_token": csrf_token(client, "/reports/")},
        follow_redirects=True,
    )

    assert "Only a failed report can be retried." in text(response)
    assert report_count() == reports


def test_a_municipality_user_may_not_retry(world, login_as, client):
    failed = stored_report(
        "municipality_statement",
        "pdf",
        status="failed",
        municipality_id=world[KIEL],
        parameters={"ags": KIEL},
        error="It broke.",
    )
    login_as("municipality", KIEL, locale="en")
    reports = report_count()

    response = client.post(
        f"/reports/{failed.id}/retry", data={"csrf_token": csrf_token(client, "/reports/")}
    )

    assert response.status_code == 403
    assert report_count() == reports
    assert "It broke." in text(client.get(f"/reports/{failed.id}"))


# --- history: filter and pages -------------------------------------------------------------------


def test_the_history_is_newest_first_filtered_and_paged(world, login_as, client):
    login_as("staff", locale="en")
    made = [stored_report() for _ in range(27)]
    failed = stored_report(status="failed", error="It broke.")
    ids = [r.id for r in (*made, failed)]

    page_one = text(client.get("/reports/"))
    first = report_ids(page_one)
    second = report_ids(text(client.get("/reports/?page=2")))
    only_failed = report_ids(text(client.get("/reports/?status=failed")))

    assert len(first) == 25
    assert "28 reports" in page_one
    assert "Page 1 of 2" in page_one
    assert first + second == sorted(ids, reverse=True)
    assert only_failed == [failed.id]
    assert report_ids(text(client.get("/reports/?kind=annual_funding"))) == []
    assert report_ids(text(client.get("/reports/?status=bogus&page=x")))[:25] == first


# --- schedule --------------------------------------------------------------------------------------


def test_the_admin_switches_the_schedule(world, login_as, client):
    login_as("admin", locale="en")
    html = text(client.get("/reports/"))
    assert (
        'id="schedule-monthly-snapshot" name="monthly_snapshot" value="y" class="form-check-input" checked'
        in html
    )
    events = audit_count()

    response = client.post(
        "/reports/schedule", data={"csrf_token": csrf_token(client, "/reports/"), "monthly_snapshot": "y"}
    )

    assert response.status_code == 302
    assert get_flag(db.session, service.SCHEDULE_MONTHLY_SNAPSHOT, True) is True
    assert get_flag(db.session, service.SCHEDULE_ANNUAL_ON_CLOSE, True) is False
    assert audit_count() == events + 1  # only the change is recorded
    html = text(client.get("/reports/"))
    assert 'id="schedule-annual-on-close" name="annual_on_close" value="y" class="form-check-input">' in html
    assert "The schedule was saved." in html


@pytest.mark.parametrize("role", ["staff", "auditor", "municipality"])
def test_only_the_admin_may_switch_the_schedule(world, login_as, client, role):
    login_as(role, KIEL if role == "municipality" else None, locale="en")

    response = client.post("/reports/schedule", data={"csrf_token": csrf_token(client, "/reports/")})

    assert response.status_code == 403
    assert get_flag(db.session, service.SCHEDULE_ANNUAL_ON_CLOSE, True) is True


# --- SQL statements per page -----------------------------------------------------------------------


def _statements(client, url: str) -> int:
    db.session.expunge_all()  # a cold session, as a new request in production has
    with recorded_statements() as statements:
        response = client.get(url)
    assert response.status_code == 200
    return len(statements)


def _fill(total: int, kiel_id: int) -> None:
    have = report_count()
    for n in range(have, total):
        if n % 3 == 0:
            stored_report(
                "municipality_statement",
                "pdf",
                municipality_id=kiel_id,
                parameters={"ags": KIEL, "year": YEAR},
            )
        elif n % 3 == 1:
            stored_report(status="failed", error="It broke.")
        else:
            stored_report()


@pytest.mark.parametrize("role", ["admin", "staff", "auditor", "municipality"])
def test_the_pages_run_the_same_number_of_statements_for_few_and_many_reports(world, login_as, client, role):
    login_as(role, KIEL if role == "municipality" else None, locale="en")
    _fill(3, world[KIEL])
    one = stored_report(
        "municipality_statement", "pdf", municipality_id=world[KIEL], parameters={"ags": KIEL}
    )
    few = {url: _statements(client, url) for url in ("/reports/", f"/reports/{one.id}")}

    _fill(60, world[KIEL])

    many = {url: _statements(client, url) for url in ("/reports/", f"/reports/{one.id}")}
    assert many == few
    assert few["/reports/"] <= 10
