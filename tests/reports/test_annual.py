"""The annual funding report (Mittelverwendungsbericht): every format reconciles with the ledger to
the cent.

One fiscal year is built through the ledger services: money carried in from the year before,
allocations to a kreisfreie Stadt (Kiel), to a Gemeinde and to the Kreis of Rendsburg-Eckernförde
(one Kreis), to a Gemeinde in Dithmarschen, to a shared project and to the federation itself;
approvals, payments, a repayment, a reversal, a release, a proof of use overdue and one received,
a draft, and a purpose that a spreadsheet would run as a formula. Each format is rendered into
memory and read back (openpyxl, pypdf, csv) and compared with ``ledger.year_figures`` and with
direct SQL sums; one report goes the whole way through ``request_report`` and the job.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

import pytest
from flask_babel import force_locale
from openpyxl import load_workbook
from pypdf import PdfReader
from sqlalchemy import event, func, select

from itvsh.core.audit import AuditChainHead
from itvsh.core.db import utcnow
from itvsh.core.money import format_money
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.funding import ledger
from itvsh.funding.models import Booking, FiscalYear
from itvsh.reports import jobs, service, storage
from itvsh.reports.kinds import RenderContext
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.renderers import annual
from itvsh.tenants import services as tenant_services
from tests.funding.conftest import (  # noqa: F401  (fixtures re-used here)
    ACTOR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    category,
    members,
    open_year,
)
from tests.projects.conftest import project  # noqa: F401

ARKEBEK = "01051002"  # a Gemeinde in Dithmarschen
LUEBECK = "01003000"  # kreisfreie Stadt
FORMULA = "=SUM(A1:A9) Breitband"
NO_KREIS_EN = "no Kreis (shared projects, the federation itself)"


@pytest.fixture(autouse=True)
def request_context(app):
    with app.test_request_context("/"):
        yield


def commit() -> None:
    db.session.commit()
    set_scope(db.session, ALL)


def member(key: str):
    return tenant_services.get_by_key(db.session, key)


def allocate(year, amount, *, key=None, code="zuweisungen", project=None, purpose="Digitalisierung", **kw):  # noqa: F811
    kind = "member" if key else ("project" if project is not None else "federation")
    allocation = ledger.create_allocation(
        db.session,
        ACTOR,
        fiscal_year=year,
        category=category(year, code),
        recipient_kind=kind,
        municipality=member(key) if key else None,
        project=project,
        purpose=purpose,
        amount_cents=amount,
        **kw,
    )
    commit()
    return allocation


def approve(allocation):
    booking = ledger.approve(db.session, ACTOR, allocation)
    commit()
    return booking


@pytest.fixture
def year(open_year, project):  # noqa: F811
    """The current year with every kind of booking; returns it with the allocations by name."""
    today = date.today()
    y = open_year.year
    # the year before: a commitment to Krummwisch, partly paid, carried into this year on closing
    previous = ledger.create_fiscal_year(db.session, ACTOR, y - 1)
    ledger.open_year(db.session, ACTOR, previous)
    commit()
    carried = allocate(previous, 70_000, key=KRUMMWISCH, purpose="Glasfaser Schule")
    ledger.approve(db.session, ACTOR, carried, on=date(y - 1, 3, 1))
    ledger.disburse(db.session, ACTOR, carried, 20_000, on=date(y - 1, 6, 1))
    commit()
    ledger.close_year(db.session, ACTOR, previous)
    commit()

    kiel = allocate(
        open_year,
        100_000,
        key=KIEL,
        decision_date=today - timedelta(days=30),
        proof_of_use_due=today - timedelta(days=1),
    )
    approve(kiel)
    ledger.disburse(db.session, ACTOR, kiel, 60_000)
    ledger.repay(db.session, ACTOR, kiel, 10_000, note="-zu viel gezahlt")
    commit()
    krummwisch = allocate(open_year, 50_000, key=KRUMMWISCH, purpose=FORMULA)
    approve(krummwisch)
    ledger.disburse(db.session, ACTOR, krummwisch, 50_000)
    ledger.settle(db.session, ACTOR, krummwisch, received_on=today)
    commit()
    arkebek = allocate(open_year, 30_000, key=ARKEBEK, proof_of_use_due=today + timedelta(days=90))
    approve(arkebek)
    wrong = ledger.disburse(db.session, ACTOR, arkebek, 10_000)
    commit()
    ledger.reverse(db.session, ACTOR, wrong, note="falscher Betrag")
    ledger.release(db.session, ACTOR, arkebek, 5_000)
    commit()
    kreis = allocate(open_year, 10_000, key=KREIS_RD_ECK)
    approve(kreis)
    federation = allocate(open_year, 20_000)
    approve(federation)
    ledger.disburse(db.session, ACTOR, federation, 20_000)
    commit()
    shared = allocate(open_year, 40_000, code="projekte", project=project)
    approve(shared)
    draft = allocate(open_year, 5_000, key=LUEBECK)
    return open_year, {
        "carried": carried,
        "kiel": kiel,
        "krummwisch": krummwisch,
        "arkebek": arkebek,
        "kreis": kreis,
        "federation": federation,
        "shared": shared,
        "draft": draft,
        "wrong": wrong,
    }


# --- helpers ----------------------------------------------------------------------------------------


def make(
    fiscal_year: FiscalYear, fmt: str, locale: str = "en", progress=None
) -> tuple[bytes, dict, RenderContext]:
    set_scope(db.session, ALL)
    head = db.session.execute(select(AuditChainHead).where(AuditChainHead.id == 1)).scalar_one()
    out = io.BytesIO()
    with force_locale(locale):
        ctx = RenderContext(
            session=db.session,
            report_id=None,
            kind="annual_funding",
            format=fmt,
            parameters={"year": fiscal_year.year},
            municipality_id=None,
            locale=locale,
            generated_at=utcnow(),
            audit_seq=head.last_seq,
            audit_hash=head.last_hash,
            requested_by="test",
            progress=progress or (lambda percent: None),
        )
        summary = annual.render(ctx, out)
    return out.getvalue(), summary, ctx


def sql_sums(fiscal_year: FiscalYear) -> tuple[int, int, int, int]:
    """committed, paid, carried in, count: straight from the bookings table."""
    row = db.session.execute(
        select(
            func.sum(Booking.committed_delta_cents),
            func.sum(Booking.paid_delta_cents),
            func.sum(Booking.available_delta_cents),
            func.count(),
        ).where(Booking.fiscal_year_id == fiscal_year.id)
    ).one()
    return int(row[0]), int(row[1]), int(row[2]), int(row[3])


def sheet(workbook, title: str) -> tuple[list[str], list[tuple]]:
    rows = list(workbook[title].iter_rows(values_only=True))
    return list(rows[0]), rows[1:]


def column(header: list[str], rows: list[tuple], name: str) -> list:
    index = header.index(name)
    return [row[index] for row in rows]


def body(rows: list[tuple], label_index: int, total_label: str = "Total") -> tuple[list[tuple], tuple]:
    """The rows of a summary sheet without its total row, and the total row."""
    assert rows[-1][label_index] == total_label
    return rows[:-1], rows[-1]


def figures_from_summary(rows: list[tuple]) -> dict[str, int]:
    start = next(i for i, row in enumerate(rows) if len(row) > 1 and row[1] == "amount_cents")
    found = {}
    for row in rows[start + 1 :]:
        if not row or row[0] is None:
            break
        found[row[0]] = row[1]
    return found


# --- XLSX -------------------------------------------------------------------------------------------


def test_xlsx_reconciles_with_the_ledger_to_the_cent(year):
    fiscal_year, made = year
    data, summary, ctx = make(fiscal_year, "xlsx")
    figures = ledger.year_figures(db.session, fiscal_year)
    committed, paid, carried_in, count = sql_sums(fiscal_year)
    assert (figures.committed_cents, figures.paid_cents, figures.carried_in_cents) == (
        committed,
        paid,
        carried_in,
    )
    # carried 50,000 + Kiel 100,000 + Krummwisch 50,000 + Arkebek 30,000 - 5,000 released + Kreis 10,000
    # + federation 20,000 + project 40,000; paid: Kiel 60,000 - 10,000, Krummwisch 50,000, federation 20,000
    assert (committed, paid, carried_in) == (295_000, 120_000, 50_000)
    workbook = load_workbook(io.BytesIO(data), read_only=True)
    assert workbook.sheetnames == [
        "Summary",
        "By category",
        "By recipient",
        "By Kreis",
        "Bookings",
        "Allocations",
    ]

    # every booking of the year, reversal and carry-over included; their deltas add up to the ledger
    header, bookings = sheet(workbook, "Bookings")
    assert len(bookings) == count == summary["bookings"]
    assert sum(column(header, bookings, "committed_delta_cents")) == committed
    assert sum(column(header, bookings, "paid_delta_cents")) == paid
    assert sum(column(header, bookings, "available_delta_cents")) == carried_in
    reversal = [row for row in bookings if row[header.index("Kind")] == "reversal"]
    assert [(r[header.index("Reverses booking")], r[header.index("paid_delta_cents")]) for r in reversal] == [
        (made["wrong"].id, -10_000)
    ]
    carry = [row for row in bookings if row[header.index("Kind")] == "carry-over"]
    assert [(r[header.index("Allocation")], r[header.index("available_delta_cents")]) for r in carry] == [
        (made["carried"].id, 50_000)
    ]
    assert "Glasfaser Schule" in column(header, bookings, "Purpose")
    assert "'" + FORMULA in column(header, bookings, "Purpose")
    assert FORMULA not in column(header, bookings, "Purpose")
    assert "'-zu viel gezahlt" in column(header, bookings, "Note")
    assert sorted(column(header, bookings, "ID")) == column(header, bookings, "ID")

    # the summary sheet: the header lines with the audit head, and the year's figures
    _header, summary_rows = sheet(workbook, "Summary")
    texts = [cell for row in summary_rows for cell in row if isinstance(cell, str)]
    assert f"#{ctx.audit_seq} {ctx.audit_hash}" in texts
    assert any(ctx.audit_hash in text and "itvsh audit verify" in text for text in texts)
    shown = figures_from_summary(summary_rows)
    assert shown["Committed"] == committed
    assert shown["Paid"] == paid
    assert shown["Appropriation"] == figures.appropriation_cents
    assert shown["Carried in from the previous year"] == carried_in
    assert shown["Available"] == figures.available_cents
    assert shown["Not yet committed"] == figures.free_cents
    assert shown["Open commitments (committed, not yet paid)"] == figures.open_cents
    assert summary == {
        "year": fiscal_year.year,
        "appropriation_cents": figures.appropriation_cents,
        "carried_in_cents": carried_in,
        "available_cents": figures.available_cents,
        "committed_cents": committed,
        "paid_cents": paid,
        "open_cents": committed - paid,
        "bookings": count,
        "allocations": 8,
        "max_booking_id": max(column(header, bookings, "ID")),
    }

    # by category: the year's four and the one the carried money came from; they add up
    header, rows = sheet(workbook, "By category")
    rows, total = body(rows, header.index("Category"))
    assert sum(column(header, rows, "committed_cents")) == committed == total[header.index("committed_cents")]
    assert sum(column(header, rows, "paid_cents")) == paid == total[header.index("paid_cents")]
    assert sum(column(header, rows, "carried_in_cents")) == carried_in
    names = column(header, rows, "Category")
    assert f"Zuweisungen an Kommunen (from {fiscal_year.year - 1})" in names
    projekte = rows[names.index("Gemeinsame Projekte")]
    assert projekte[header.index("committed_cents")] == 40_000

    # by recipient: each once, Krummwisch with both its allocations
    header, rows = sheet(workbook, "By recipient")
    rows, total = body(rows, header.index("Kind of recipient"))
    assert sum(column(header, rows, "committed_cents")) == committed == total[header.index("committed_cents")]
    by_key = {row[header.index("Key")]: row for row in rows}
    assert set(by_key) == {KIEL, KRUMMWISCH, ARKEBEK, KREIS_RD_ECK, f"project:{made['shared'].project_id}",
                           "federation"}  # fmt: skip
    assert by_key[KRUMMWISCH][header.index("committed_cents")] == 50_000 + 50_000
    assert by_key[KIEL][header.index("paid_cents")] == 50_000
    assert by_key[ARKEBEK][header.index("committed_cents")] == 25_000

    # by Kreis: a kreisfreie Stadt is its own; a Kreis and its Gemeinde count together
    header, rows = sheet(workbook, "By Kreis")
    rows, total = body(rows, header.index("Kreis"))
    assert sum(column(header, rows, "committed_cents")) == committed == total[header.index("committed_cents")]
    assert sum(column(header, rows, "paid_cents")) == paid
    by_name = {row[header.index("Kreis")]: row[header.index("committed_cents")] for row in rows}
    assert by_name == {
        member(KIEL).name: 100_000,
        "Rendsburg-Eckernförde": 100_000 + 10_000,
        "Dithmarschen": 25_000,
        NO_KREIS_EN: 60_000,
    }

    # allocations: the proof of use as of today; their sums in the year add up as well
    header, rows = sheet(workbook, "Allocations")
    by_id = {row[0]: row for row in rows}
    assert set(by_id) == {a.id for name, a in made.items() if name != "wrong"}
    names = ("kiel", "krummwisch", "arkebek", "draft")
    proof = {name: by_id[made[name].id][header.index("Proof of use")] for name in names}
    assert proof == {"kiel": "overdue", "krummwisch": "received", "arkebek": "due", "draft": "not required"}
    assert sum(column(header, rows, "committed_cents")) == committed
    assert sum(column(header, rows, "paid_cents")) == paid
    assert by_id[made["carried"].id][header.index("committed_cents")] == 50_000
    assert "'" + FORMULA in column(header, rows, "Purpose")


def test_bookings_that_arrive_while_the_report_is_made_stay_out(year, monkeypatch):
    """Between two batches another booking is written: the file and its totals are those of the
    bookings there were when the report started, and they still agree with each other."""
    fiscal_year, made = year
    before = ledger.year_figures(db.session, fiscal_year)
    _c, _p, _a, count = sql_sums(fiscal_year)
    monkeypatch.setattr(annual, "BATCH", 3)
    written = []

    def progress(percent):
        if not written:
            written.append(ledger.disburse(db.session, ACTOR, made["shared"], 1_000))
            commit()

    data, summary, _ctx = make(fiscal_year, "xlsx", progress=progress)
    assert written, "the report read its rows in several batches"
    assert ledger.year_figures(db.session, fiscal_year).paid_cents == before.paid_cents + 1_000
    workbook = load_workbook(io.BytesIO(data), read_only=True)
    header, bookings = sheet(workbook, "Bookings")
    assert written[0].id not in column(header, bookings, "ID")
    assert len(bookings) == count
    assert sum(column(header, bookings, "paid_delta_cents")) == before.paid_cents == summary["paid_cents"]
    assert summary["max_booking_id"] < written[0].id
    header, rows = sheet(workbook, "Allocations")
    assert sum(column(header, rows, "paid_cents")) == before.paid_cents


def test_statements_grow_only_by_batches(year, monkeypatch):
    fiscal_year, made = year

    def statements() -> int:
        """SELECTs the renderer sends (not the test's own, nor transaction control)."""
        counted = []

        def count(_conn, _cursor, statement, *_args):
            if statement.lstrip().upper().startswith("SELECT"):
                counted.append(statement)

        real_render = annual.render

        def render(ctx, out):
            event.listen(engine, "before_cursor_execute", count)
            try:
                return real_render(ctx, out)
            finally:
                event.remove(engine, "before_cursor_execute", count)

        engine = db.session.get_bind()
        monkeypatch.setattr(annual, "render", render)
        try:
            make(fiscal_year, "xlsx")
        finally:
            monkeypatch.setattr(annual, "render", real_render)
        return len(counted)

    few = statements()
    for _ in range(6):
        ledger.disburse(db.session, ACTOR, made["shared"], 1_000)
    approve(allocate(fiscal_year, 1_000, key=ARKEBEK))
    assert statements() == few  # more rows, the same statements
    monkeypatch.setattr(annual, "BATCH", 4)
    _c, _p, _a, count = sql_sums(fiscal_year)
    allocations = sum(1 for name in made if name != "wrong") + 1  # the fixture's and the new one
    assert (count, allocations) == (21, 9)
    # a listing of n rows reads n // batch + 1 batches (the last one short or empty)
    assert statements() - few == (count // 4 + 1 - 1) + (allocations // 4 + 1 - 1)


def test_german_by_default_english_on_request(year):
    fiscal_year, _made = year
    german = load_workbook(io.BytesIO(make(fiscal_year, "xlsx", locale="de")[0]), read_only=True)
    assert "Buchungen" in german.sheetnames and "Zuwendungen" in german.sheetnames
    header, rows = sheet(german, "Buchungen")
    kinds = set(column(header, rows, "Art"))
    assert {"Storno", "Mittelbindung"} <= kinds
    english = load_workbook(io.BytesIO(make(fiscal_year, "xlsx", locale="en")[0]), read_only=True)
    header, rows = sheet(english, "Bookings")
    assert {"reversal", "commitment", "carry-over"} <= set(column(header, rows, "Kind"))


# --- PDF --------------------------------------------------------------------------------------------


def test_pdf_shows_the_totals_pages_and_audit_head(year):
    fiscal_year, _made = year
    data, summary, ctx = make(fiscal_year, "pdf", locale="en")
    figures = ledger.year_figures(db.session, fiscal_year)
    reader = PdfReader(io.BytesIO(data))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert format_money(figures.committed_cents, "en") in text
    assert format_money(figures.paid_cents, "en") in text
    assert format_money(figures.available_cents, "en") in text
    assert f"page 1 of {len(reader.pages)}" in text
    assert ctx.audit_hash in text
    assert f"year={fiscal_year.year}" in text
    assert "Rendsburg-Eckernförde" in text  # the table by Kreis
    assert summary["committed_cents"] == figures.committed_cents


def test_pdf_in_german_formats_money_the_german_way(year):
    fiscal_year, _made = year
    data, _summary, _ctx = make(fiscal_year, "pdf", locale="de")
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    figures = ledger.year_figures(db.session, fiscal_year)
    text = text.replace("\xa0", " ")  # babel's no-break space comes out of the PDF as a plain one
    assert format_money(figures.committed_cents, "de").replace("\xa0", " ") in text  # "2.950,00 €"
    assert format_money(figures.paid_cents, "de").replace("\xa0", " ") in text
    assert format_money(figures.committed_cents, "en") not in text


# --- CSV --------------------------------------------------------------------------------------------


def test_csv_lists_every_booking_and_states_the_audit_head(year):
    fiscal_year, made = year
    data, summary, ctx = make(fiscal_year, "csv", locale="de")
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    header, rows = rows[0], rows[1:]
    assert header == list(annual.CSV_COLUMNS)
    committed, paid, carried_in, count = sql_sums(fiscal_year)
    ids = db.session.execute(
        select(Booking.id).where(Booking.fiscal_year_id == fiscal_year.id).order_by(Booking.id)
    ).scalars()
    assert [int(r[0]) for r in rows] == list(ids)
    assert len(rows) == count == summary["bookings"]

    def total(name):
        return sum(int(r[header.index(name)]) for r in rows)

    assert (total("committed_delta_cents"), total("paid_delta_cents"), total("available_delta_cents")) == (
        committed,
        paid,
        carried_in,
    )
    assert {(r[header.index("audit_seq")], r[header.index("audit_hash")]) for r in rows} == {
        (str(ctx.audit_seq), ctx.audit_hash)
    }
    reversal = [r for r in rows if r[header.index("kind")] == "reversal"]
    assert [(r[header.index("reverses_id")], r[header.index("kind_label")]) for r in reversal] == [
        (str(made["wrong"].id), "Storno")
    ]
    purposes = [r[header.index("purpose")] for r in rows]
    assert "'" + FORMULA in purposes and FORMULA not in purposes
    assert "'-zu viel gezahlt" in [r[header.index("note")] for r in rows]
    first = rows[0]
    assert first[header.index("amount_eur")] == format_money(int(first[header.index("amount_cents")]), "de")


# --- through the job; refusals -----------------------------------------------------------------------


def test_the_job_makes_the_report_from_a_request(year, make_user):
    fiscal_year, _made = year
    auditor = make_user("auditor")
    set_scope(db.session, ALL)
    report = service.request_report(
        db.session, auditor, "annual_funding", {"year": str(fiscal_year.year)}, fmt="xlsx", locale="en"
    )
    commit()
    assert jobs.dispatch(db.session, report)
    assert jobs.current_jobs().run_all() == ["finished"]
    set_scope(db.session, ALL)
    report = db.session.get(Report, report.id, populate_existing=True)
    assert report.status == ReportStatus.FINISHED
    assert report.file_name == f"annual-funding-{fiscal_year.year}.xlsx"
    figures = ledger.year_figures(db.session, fiscal_year)
    assert report.summary["committed_cents"] == figures.committed_cents
    assert report.summary["paid_cents"] == figures.paid_cents
    path = storage.final_path(report.id, report.file_name)
    workbook = load_workbook(path, read_only=True)
    header, bookings = sheet(workbook, "Bookings")
    assert sum(column(header, bookings, "committed_delta_cents")) == figures.committed_cents
    _header, summary_rows = sheet(workbook, "Summary")
    texts = [cell for row in summary_rows for cell in row if isinstance(cell, str)]
    assert f"#{report.audit_seq} {report.audit_hash}" in texts


def test_a_year_that_does_not_exist_is_refused(year, make_user):
    auditor = make_user("auditor")
    set_scope(db.session, ALL)
    before = db.session.execute(select(func.count()).select_from(Report)).scalar_one()
    with force_locale("en"), pytest.raises(RuleViolation) as refused:
        service.request_report(db.session, auditor, "annual_funding", {"year": 1999}, fmt="xlsx")
    assert refused.value.field == "year"
    assert "1999" in refused.value.message
    assert db.session.execute(select(func.count()).select_from(Report)).scalar_one() == before


def test_proof_state():
    today = date(2025, 6, 1)
    assert annual.proof_state("paid", date(2025, 5, 1), date(2025, 4, 1), today) == annual.PROOF_RECEIVED
    assert annual.proof_state("paid", date(2025, 5, 31), None, today) == annual.PROOF_OVERDUE
    assert annual.proof_state("paid", today, None, today) == annual.PROOF_DUE
    assert annual.proof_state("paid", None, None, today) == annual.PROOF_NOT_REQUIRED
    assert annual.proof_state("cancelled", date(2025, 1, 1), None, today) == annual.PROOF_NOT_REQUIRED


def test_a_file_that_would_not_reconcile_is_refused(year, monkeypatch):
    """The listed rows are checked against the grouped totals: if they differed (they cannot, with an
    append-only ledger), the renderer raises instead of writing a file that does not add up."""
    fiscal_year, _made = year
    real = annual.read_year

    def off_by_a_cent(*args, **kwargs):
        data = real(*args, **kwargs)
        data.total.committed += 1
        return data

    monkeypatch.setattr(annual, "read_year", off_by_a_cent)
    for fmt in ("xlsx", "csv"):
        with pytest.raises(annual.LedgerMoved, match="do not add up"):
            make(fiscal_year, fmt)
