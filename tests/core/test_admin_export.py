"""Admin exports: they land in the audit trail, and a cell a spreadsheet would run as a formula
stays text (CSV and XLSX), because auditors open these files in Excel."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest
from sqlalchemy import select

from itvsh.core.audit import AuditEvent
from itvsh.extensions import db

FORMULA_EMAIL = "=1+2@formula.example"


@pytest.mark.parametrize("role", ["admin", "auditor"])
def test_export_is_audited(client, login_as, role):
    user = login_as(role)
    response = client.get("/admin/audit_events/export/csv/")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == "export")).scalars().all()
    assert [(e.actor, e.entity, e.after["format"]) for e in events] == [(user.email, "audit_events", "csv")]


def test_csv_export_neutralises_formulas(client, login_as, make_user):
    login_as("admin")
    make_user("staff", email=FORMULA_EMAIL)
    response = client.get("/admin/users/export/csv/")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    emails = [row[0] for row in rows[1:]]
    assert "'" + FORMULA_EMAIL in emails
    assert FORMULA_EMAIL not in emails


def test_xlsx_export_neutralises_formulas(client, login_as, make_user):
    login_as("admin")
    make_user("staff", email=FORMULA_EMAIL)
    response = client.get("/admin/users/export/xlsx/")
    assert response.status_code == 200
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    emails = [row[0] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert "'" + FORMULA_EMAIL in emails
    assert not any(isinstance(e, str) and e.startswith("=") for e in emails)


def test_municipality_user_cannot_export(client, login_as):
    login_as("municipality")
    assert client.get("/admin/users/export/csv/").status_code == 403
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "export")).first() is None
