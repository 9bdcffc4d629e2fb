"""The OZG monitoring export (kind ``ozg_export``): its CSV is the public open data of
``/monitoring/ozg.csv`` byte for byte, its XLSX holds the same rows (read back with openpyxl) and
states the audit trail head and the licence; cells that a spreadsheet would run as a formula are
neutralised in both; keyset batches give the same rows whatever the batch size, each batch bounded;
a request runs end to end to a finished row whose SHA-256 and size are the file's."""

from __future__ import annotations

import csv
import hashlib
import io
from datetime import UTC, date, datetime

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.models import OzgService
from itvsh.reports import jobs, service, storage
from itvsh.reports.kinds import OZG_EXPORT, RenderContext
from itvsh.reports.models import Report, ReportStatus
from itvsh.reports.renderers import ozg as renderer
from tests.projects.conftest import (  # noqa: F401  (fixtures re-used here)
    ACTOR,
    KIEL,
    KRUMMWISCH,
    LUEBECK,
    catalogue,
    members,
)

COLUMNS = [
    "ags",
    "municipality",
    "kreis",
    "ozg_id",
    "service",
    "themenfeld",
    "maturity",
    "maturity_model",
    "online_since",
]
FORMULA_NAME = '=HYPERLINK("http://evil.example","Antrag")'
AT_NAME = "@SUM(1+1) Anmeldung"
HEAD_HASH = "ab" * 32


@pytest.fixture
def statuses(app, members, catalogue):  # noqa: F811  (the fixtures, not the imports)
    """Known statuses in three members: four municipal services (two with formula-like names) and
    one of the Land, which the open data leaves out."""
    set_scope(db.session, ALL)
    hostile = {}
    for ozg_id, name in (("20001", FORMULA_NAME), ("20002", AT_NAME)):
        hostile[ozg_id] = OzgService(ozg_id=ozg_id, name=name, topic="Ein- & Auswanderung")
        db.session.add(hostile[ozg_id])
    db.session.flush()
    services = {**catalogue, **hostile}
    plan = [
        (KIEL, "10000", 3, date(2021, 5, 1)),
        (KIEL, "10169", 4, None),
        (KIEL, "20001", 2, date(2022, 2, 28)),
        (KIEL, "10999", 4, date(2020, 1, 1)),  # the Land's service: not in the open data
        (KRUMMWISCH, "10003", 1, None),
        (KRUMMWISCH, "20002", 3, date(2023, 10, 9)),
        (LUEBECK, "10170", 3, date(2024, 6, 30)),
        (LUEBECK, "10000", 2, None),
    ]
    for key, ozg_id, maturity, since in plan:
        ozg.set_status(
            db.session, ACTOR, members[key], services[ozg_id], maturity=maturity, online_since=since
        )
    db.session.commit()
    set_scope(db.session, ALL)
    return plan


def context(fmt: str, progress=None) -> RenderContext:
    return RenderContext(
        session=db.session,
        report_id=None,
        kind=OZG_EXPORT,
        format=fmt,
        parameters={},
        municipality_id=None,
        locale="en",
        generated_at=datetime(2026, 11, 28, 9, 30, tzinfo=UTC),
        audit_seq=4711,
        audit_hash=HEAD_HASH,
        requested_by="auditor@test.example",
        progress=progress or (lambda percent: None),
    )


def render(fmt: str, progress=None) -> tuple[bytes, dict]:
    out = io.BytesIO()
    summary = renderer.render(context(fmt, progress), out)
    return out.getvalue(), summary


def open_data(client) -> bytes:
    response = client.get("/monitoring/ozg.csv", buffered=True)
    assert response.status_code == 200
    return response.get_data()


def csv_table(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))


def xlsx_rows(data: bytes) -> tuple[list[list], list[list]]:
    """(the About sheet's rows, the Status sheet's rows as the CSV writes them)."""
    book = load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["About", "Status"]
    about = [list(row) for row in book["About"].iter_rows(values_only=True)]
    rows = []
    for row in book["Status"].iter_rows(values_only=True):
        row = list(row)
        since = row[8]
        row[8] = since.date().isoformat() if isinstance(since, datetime) else (since or "")
        rows.append([str(value) if value is not None else "" for value in row])
    return about, rows


def test_csv_is_the_open_data(client, statuses):
    data, summary = render("csv")
    published = open_data(client)
    assert data == published  # same delimiter, columns, order and cells: a diff shows nothing
    table = csv_table(data)
    assert table[0] == COLUMNS
    municipal = [entry for entry in statuses if entry[1] != "10999"]
    assert len(table) - 1 == len(municipal) == summary["rows"] == 7
    assert summary["licence"] == "dl-de/by-2-0"
    assert "10999" not in {row[3] for row in table[1:]}
    kiel = {row[3]: row for row in table[1:] if row[0] == KIEL}
    assert kiel["10000"][1:3] == ["Kiel, Landeshauptstadt", "Kiel, Landeshauptstadt"]  # its own Kreis
    assert kiel["10000"][5:] == ["Familie & Kind", "3", "1.x", "2021-05-01"]
    assert kiel["10169"][8] == ""
    krummwisch = next(row for row in table[1:] if row[0] == KRUMMWISCH)
    assert krummwisch[2] == "Rendsburg-Eckernförde"


def test_xlsx_has_the_open_data_rows_and_states_the_audit_head(client, statuses):
    data, summary = render("xlsx")
    about, rows = xlsx_rows(data)
    assert rows == csv_table(open_data(client))
    assert summary["rows"] == len(rows) - 1 == 7
    cells = [str(value) for row in about for value in row if value is not None]
    assert any(HEAD_HASH in cell and "4711" in cell for cell in cells)
    assert any("dl-de/by-2-0" in cell for cell in cells)
    assert any("Destatis" in cell for cell in cells)
    book = load_workbook(io.BytesIO(data))
    kiel_since = next(r for r in book["Status"].iter_rows(min_row=2) if r[0].value == KIEL and r[8].value)
    assert kiel_since[0].data_type == "s" and kiel_since[3].data_type == "s"  # AGS, OZG-ID stay text
    assert kiel_since[6].data_type == "n"  # maturity is a number
    assert kiel_since[8].is_date


def test_formula_like_names_are_neutralised_in_both(client, statuses):
    csv_data, _summary = render("csv")
    services = {row[3]: row[4] for row in csv_table(csv_data)[1:]}
    assert services["20001"] == "'" + FORMULA_NAME
    assert services["20002"] == "'" + AT_NAME
    book = load_workbook(io.BytesIO(render("xlsx")[0]))
    cells = {row[3].value: row[4] for row in book["Status"].iter_rows(min_row=2)}
    for ozg_id, name in (("20001", FORMULA_NAME), ("20002", AT_NAME)):
        assert cells[ozg_id].value == "'" + name
        assert cells[ozg_id].data_type == "s"  # text, not a formula
    assert not any(
        cell.data_type == "f" for sheet in book.worksheets for row in sheet.iter_rows() for cell in row
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_small_batches_give_the_same_rows_with_bounded_batches(client, statuses, monkeypatch, fmt):
    whole, _summary = render(fmt)
    municipal = db.session.execute(
        select(func.count(OzgService.id)).where(OzgService.responsibility == "municipal")
    ).scalar_one()
    monkeypatch.setattr(renderer, "BATCH", 1)  # one municipality per batch
    sizes = []
    original = renderer.status_batches

    def recording(ctx):
        for rows in original(ctx):
            sizes.append(len(rows))
            yield rows

    monkeypatch.setattr(renderer, "status_batches", recording)
    progress = []
    small, _summary = render(fmt, progress.append)
    if fmt == "csv":
        assert small == whole
    else:
        assert xlsx_rows(small)[1] == xlsx_rows(whole)[1]
    assert sizes == [3, 2, 2]  # Kiel, Lübeck, Krummwisch (by AGS), each its own query
    assert max(sizes) <= municipal
    assert progress == sorted(progress) and progress[-1] == 99
    assert {3 * 100 // 7, 5 * 100 // 7} <= set(progress)  # rows done / rows in total


def test_empty_export_has_the_header_only(client, catalogue):  # noqa: F811
    data, summary = render("csv")
    assert data == open_data(client) == b",".join(c.encode() for c in COLUMNS) + b"\r\n"
    assert summary["rows"] == 0
    assert xlsx_rows(render("xlsx")[0])[1] == [COLUMNS]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_request_runs_to_a_finished_report_with_the_files_digest(client, make_user, statuses, fmt):
    auditor = make_user("auditor")
    set_scope(db.session, ALL)
    report = service.request_report(db.session, auditor, OZG_EXPORT, {}, fmt=fmt, locale="en")
    db.session.commit()
    assert jobs.dispatch(db.session, report)
    assert jobs.current_jobs().run_all() == ["finished"]
    set_scope(db.session, ALL)
    done = db.session.get(Report, report.id, populate_existing=True)
    assert done.status == ReportStatus.FINISHED
    assert done.file_name == f"ozg-export.{fmt}"
    data = storage.final_path(done.id, done.file_name).read_bytes()
    assert done.sha256 == hashlib.sha256(data).hexdigest()
    assert done.file_size == len(data)
    assert done.summary == {"rows": 7, "licence": "dl-de/by-2-0"}
    # The head the file states is an event of the chain: the auditor can find it with `audit verify`.
    head = db.session.execute(select(AuditEvent.hash).where(AuditEvent.seq == done.audit_seq)).scalar_one()
    assert head == done.audit_hash
    if fmt == "csv":
        assert data == open_data(client)
    else:
        about, rows = xlsx_rows(data)
        assert rows == csv_table(open_data(client))
        assert any(done.audit_hash in str(value) for row in about for value in row if value)


def test_only_federation_and_auditors_may_ask(make_user, catalogue):  # noqa: F811
    user = make_user("municipality", KIEL)
    set_scope(db.session, ALL)
    before = db.session.execute(select(func.count(Report.id))).scalar_one()
    with pytest.raises(RuleViolation) as caught:
        service.request_report(db.session, user, OZG_EXPORT, {}, fmt="csv")
    assert caught.value.field == "kind"
    with pytest.raises(RuleViolation) as caught:
        service.request_report(db.session, make_user("staff"), OZG_EXPORT, {}, fmt="pdf")
    assert caught.value.field == "format"
    set_scope(db.session, ALL)
    assert db.session.execute(select(func.count(Report.id))).scalar_one() == before
