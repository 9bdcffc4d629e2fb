"""The proof-of-use overview (kind ``proof_of_use``): the decided allocations whose proof of use is
overdue (due before ``as_of``) or due within the window (``as_of`` .. ``as_of`` + 60 days) and not
yet received — the boundaries exactly; never a received, cancelled or draft one. Overdue rows come
first, each group by due date. XLSX read back with openpyxl, CSV parsed, the PDF's text: the same
rows, the audit head, formula-like text neutralised in the spreadsheets. A request runs end to end.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta

import pypdf
import pytest
from flask_babel import force_locale
from openpyxl import load_workbook

from itvsh.core.money import format_money
from itvsh.core.tenancy import ALL, pop_scope, push_scope, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.reports import jobs, service, storage
from itvsh.reports.kinds import KINDS, PROOF_OF_USE, RenderContext
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.renderers import proof_of_use as renderer
from tests.funding.conftest import ACTOR, KIEL, KRUMMWISCH, category
from tests.projects.conftest import members, open_year, project  # noqa: F401

HEAD_HASH = "ef" * 32
FORMULA = '=HYPERLINK("http://evil.example","Nachweis")'
WINDOW = renderer.DUE_WINDOW_DAYS


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text.replace("\u00a0", " ").replace("\u202f", " "))


@pytest.fixture
def as_of(app) -> date:
    """A day after today, so every due date below can lie after today's decisions."""
    return date.today() + timedelta(days=100)


@pytest.fixture
def dues(app, members, open_year, project, as_of):  # noqa: F811  (the fixtures, not the imports)
    """Allocations around the window's edges, by name: the listed ones and the ones left out."""
    set_scope(db.session, ALL)

    def allocation(name, due, *, key=KIEL, approve=True, **kw):
        a = ledger.create_allocation(
            db.session,
            ACTOR,
            fiscal_year=open_year,
            category=category(open_year, kw.pop("code", "zuweisungen")),
            recipient_kind=kw.pop("recipient_kind", "member"),
            municipality=members[key] if key else None,
            purpose=kw.pop("purpose", name),
            amount_cents=kw.pop("cents", 10_000_00),
            file_reference=f"AZ-{name}",
            proof_of_use_due=due,
            **kw,
        )
        if approve:
            ledger.approve(db.session, ACTOR, a)
        return a

    made = {
        "due_today": allocation("due-today", as_of, cents=1_000_00),
        "due_in_window": allocation("due-in-60-days", as_of + timedelta(days=WINDOW), cents=2_000_00),
        "after_window": allocation("due-in-61-days", as_of + timedelta(days=WINDOW + 1)),
        "overdue_one_day": allocation(
            "overdue-one-day", as_of - timedelta(days=1), key=KRUMMWISCH, cents=4_000_00
        ),
        "received": allocation("received", as_of - timedelta(days=30)),
        "cancelled": allocation("cancelled", as_of - timedelta(days=5)),
        "draft": allocation("draft", as_of - timedelta(days=5), approve=False),
        "formula": allocation("formula", as_of + timedelta(days=10), purpose=FORMULA, cents=8_000_00),
        "project": allocation(
            "project",
            as_of - timedelta(days=10),
            key=None,
            recipient_kind="project",
            project=project,
            code="projekte",
            cents=16_000_00,
        ),
        "no_due_date": allocation("no-due-date", None),
    }
    ledger.disburse(db.session, ACTOR, made["overdue_one_day"], 1_500_00)
    ledger.update_allocation(db.session, ACTOR, made["received"], proof_of_use_received=date.today())
    ledger.cancel(db.session, ACTOR, made["cancelled"], reason="withdrawn")
    db.session.commit()
    set_scope(db.session, ALL)
    return made


LISTED = ["project", "overdue_one_day", "due_today", "formula", "due_in_window"]  # report order


def context(fmt: str, as_of: date, progress=None) -> RenderContext:
    parameters, municipality_id = KINDS[PROOF_OF_USE].validate(db.session, {"as_of": as_of.isoformat()}, ALL)
    assert municipality_id is None
    return RenderContext(
        session=db.session,
        report_id=None,
        kind=PROOF_OF_USE,
        format=fmt,
        parameters=parameters,
        municipality_id=None,
        locale="en",
        generated_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        audit_seq=4711,
        audit_hash=HEAD_HASH,
        requested_by="auditor@test.example",
        progress=progress or (lambda percent: None),
    )


def render(fmt: str, as_of: date, progress=None) -> tuple[bytes, dict]:
    out = io.BytesIO()
    previous = push_scope(db.session, ALL)
    try:
        with force_locale("en"):  # as the job does for a report asked for in English
            summary = renderer.render(context(fmt, as_of, progress), out)
    finally:
        pop_scope(db.session, previous)
    return out.getvalue(), summary


def csv_parts(data: bytes) -> tuple[list[list[str]], list[list[str]]]:
    """(the header block's rows, the table's rows with its column row first)."""
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline=""), delimiter=";"))
    blank = rows.index([])
    return rows[:blank], rows[blank + 1 :]


def xlsx_parts(data: bytes) -> tuple[list[list], list[list]]:
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    blank = next(i for i, row in enumerate(rows) if all(value is None for value in row))
    return rows[:blank], rows[blank + 1 :]


def test_the_window_boundaries_and_the_order(dues, as_of):
    rows = [row for batch in renderer.proof_rows(db.session, as_of) for row in batch]
    by_id = {a.id: name for name, a in dues.items()}
    assert [by_id[row.allocation_id] for row in rows] == LISTED
    shown = {by_id[row.allocation_id]: row for row in rows}
    assert (shown["due_today"].status, shown["due_today"].days) == ("due", 0)
    assert (shown["due_in_window"].status, shown["due_in_window"].days) == ("due", WINDOW)
    assert (shown["overdue_one_day"].status, shown["overdue_one_day"].days) == ("overdue", 1)
    assert (shown["project"].status, shown["project"].days) == ("overdue", 10)
    # A day later, what was due today is overdue by one day; what was 61 days away is now in the window.
    later = [row for batch in renderer.proof_rows(db.session, as_of + timedelta(days=1)) for row in batch]
    later_by_name = {by_id[row.allocation_id]: row for row in later}
    assert (later_by_name["due_today"].status, later_by_name["due_today"].days) == ("overdue", 1)
    assert later_by_name["after_window"].days == WINDOW


def test_small_batches_give_the_same_rows(dues, as_of):
    whole = [row for batch in renderer.proof_rows(db.session, as_of) for row in batch]
    batches = list(renderer.proof_rows(db.session, as_of, size=2))
    assert [len(batch) for batch in batches] == [2, 2, 1]
    assert [row for batch in batches for row in batch] == whole


def test_csv_lists_the_rows_with_recipients_and_figures(dues, as_of):
    data, summary = render("csv", as_of)
    head, table = csv_parts(data)
    assert table[0] == list(renderer.COLUMNS)
    records = [dict(zip(table[0], row, strict=True)) for row in table[1:]]
    assert [int(r["allocation_id"]) for r in records] == [dues[name].id for name in LISTED]
    krummwisch = records[1]
    assert krummwisch["status"] == "overdue" and krummwisch["days"] == "1"
    assert krummwisch["due_date"] == (as_of - timedelta(days=1)).isoformat()
    assert krummwisch["recipient_kind"] == "member" and krummwisch["recipient_key"] == KRUMMWISCH
    assert krummwisch["recipient_name"] == "Krummwisch" and krummwisch["kreis"] == "Rendsburg-Eckernförde"
    assert krummwisch["category"] == "Zuweisungen an Kommunen"
    assert krummwisch["file_reference"] == "AZ-overdue-one-day"
    assert (krummwisch["amount_cents"], krummwisch["paid_cents"]) == ("400000", "150000")
    assert krummwisch["fiscal_year"] == str(date.today().year)
    shared = records[0]
    assert shared["recipient_kind"] == "project" and shared["recipient_name"] == "Digitaler Bauantrag"
    assert shared["recipient_key"] == "" and shared["kreis"] == ""
    kiel = records[2]
    assert kiel["recipient_key"] == KIEL and kiel["kreis"] == kiel["recipient_name"]  # a kreisfreie Stadt
    # The formula stays text.
    assert records[3]["purpose"] == "'" + FORMULA
    # The header block states the parameters and the audit head.
    block = {row[0]: row[1] for row in head}
    assert block["Parameters"] == f"as_of={as_of.isoformat()}"
    assert block["Audit trail head"] == f"#4711 {HEAD_HASH}"
    assert any("itvsh audit verify" in row[1] for row in head)
    assert summary == {
        "as_of": as_of.isoformat(),
        "window_days": WINDOW,
        "overdue": 2,
        "due": 3,
        "overdue_amount_cents": 20_000_00,
        "due_amount_cents": 11_000_00,
        "overdue_paid_cents": 1_500_00,
        "due_paid_cents": 0,
    }


def test_xlsx_reads_back_the_same_rows(dues, as_of):
    data, summary = render("xlsx", as_of)
    head, table = xlsx_parts(data)
    assert table[0] == [*renderer.COLUMNS, *renderer.XLSX_EXTRA]
    csv_head, csv_table = csv_parts(render("csv", as_of)[0])
    assert [row[:2] for row in head] == [[label or None, value] for label, value in csv_head]
    for sheet_row, text_row in zip(table[1:], csv_table[1:], strict=True):
        due = sheet_row[2]
        assert isinstance(due, datetime) and due.date().isoformat() == text_row[2]
        assert ["" if v is None else str(v) for i, v in enumerate(sheet_row[:14]) if i != 2] == [
            v for i, v in enumerate(text_row) if i != 2
        ]
        assert isinstance(sheet_row[12], int) and isinstance(sheet_row[13], int)  # cents stay numbers
        assert sheet_row[14] * 100 == sheet_row[12] and sheet_row[15] * 100 == sheet_row[13]
    assert table[4][10] == "'" + FORMULA
    assert sum(row[12] for row in table[1:] if row[0] == "overdue") == summary["overdue_amount_cents"]
    assert any(HEAD_HASH in str(value) for row in head for value in row if value)


def test_pdf_shows_the_overdue_allocation_and_the_counts(dues, as_of):
    data, summary = render("pdf", as_of)
    text = flat("\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages))
    assert "overdue-one-day" in text and "Krummwisch" in text and KRUMMWISCH in text
    assert (as_of - timedelta(days=1)).isoformat() in text
    assert flat(format_money(4_000_00, "en")) in text and flat(format_money(1_500_00, "en")) in text
    assert flat(format_money(summary["overdue_amount_cents"], "en")) in text
    for left_out in ("after_window", "received", "cancelled", "draft", "no_due_date"):
        assert f"AZ-{left_out.replace('_', '-')}" not in text
    assert HEAD_HASH in text and re.search(r"page 1 of \d+", text)


def test_nothing_due_gives_an_empty_table(dues, as_of):
    long_before = as_of - timedelta(days=400)
    data, summary = render("csv", long_before)
    assert csv_parts(data)[1] == [list(renderer.COLUMNS)]
    assert (summary["overdue"], summary["due"]) == (0, 0)
    pdf, _summary = render("pdf", long_before)
    assert pdf.startswith(b"%PDF")


@pytest.mark.parametrize("fmt", ["xlsx", "csv", "pdf"])
def test_request_runs_to_a_finished_report(dues, as_of, make_user, fmt):
    auditor = make_user("auditor")
    set_scope(db.session, ALL)
    report = service.request_report(
        db.session, auditor, PROOF_OF_USE, {"as_of": as_of.isoformat()}, fmt=fmt, locale="en"
    )
    db.session.commit()
    assert jobs.dispatch(db.session, report)
    assert jobs.current_jobs().run_all() == ["finished"]
    set_scope(db.session, ALL)
    done = db.session.get(Report, report.id, populate_existing=True)
    assert done.status == ReportStatus.FINISHED
    assert done.file_name == f"proof-of-use-{as_of.isoformat()}.{fmt}"
    assert (done.summary["overdue"], done.summary["due"]) == (2, 3)
    data = storage.final_path(done.id, done.file_name).read_bytes()
    if fmt == "pdf":
        text = flat("\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages))
        assert done.audit_hash in text and "overdue-one-day" in text
    else:
        head = csv_parts(data)[0] if fmt == "csv" else xlsx_parts(data)[0]
        assert [f"#{done.audit_seq} {done.audit_hash}"] == [
            row[1] for row in head if row[0] == "Audit trail head"
        ]
