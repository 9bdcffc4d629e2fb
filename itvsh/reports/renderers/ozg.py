"""The OZG monitoring export (kind ``ozg_export``): the public open data of ``/monitoring/ozg.csv``
as a report file, so what an auditor downloads and what the public sees agree row for row.

Rows and columns are those of the open data (``itvsh.projects.monitoring.COLUMNS``, read with its
``open_data_statement``): every known status row of a municipal OZG service in a Gemeinde or Stadt,
ordered by AGS and OZG-ID. A (municipality, service) pair without a row has maturity 0 and is not
written, as in the open data.

* CSV: byte for byte the open data's format — UTF-8 without BOM, ``,`` as delimiter, CRLF line
  ends, the same header and cell texts (``monitoring.csv_cells``: text cells formula-safe,
  ``online_since`` as YYYY-MM-DD) — so ``diff export.csv ozg.csv`` shows only what changed in
  between. (``common.CsvOut`` writes a BOM and ``;`` for German Excel; the XLSX is the file for
  Excel.)
* XLSX (openpyxl write-only): a sheet "About" (report, parameters, generation time, requester,
  audit trail head, licence dl-de/by-2-0, sources, notes and the columns' meaning) and a sheet
  "Status" with the header and the rows; AGS and OZG-ID stay text, maturity is a number and
  ``online_since`` a date.

Memory stays bounded: municipalities are read in keyset batches (``common.batches`` on the AGS),
each batch's status rows with one short query (at most about ``common.BATCH`` rows), and progress
is written between batches — rows done / rows in total, counted once at the start.
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import BinaryIO

from flask_babel import gettext as _
from sqlalchemy import func, select

from itvsh.projects.models import OzgService, OzgStatus, Responsibility
from itvsh.projects.monitoring import (
    ATTRIBUTION,
    COLUMN_NAMES,
    COLUMNS,
    LICENCE,
    LOCAL_KIND_VALUES,
    NOTES,
    csv_cells,
    open_data_statement,
)
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers.common import BATCH, batches, header_lines, safe, safe_row
from itvsh.tenants.models import Municipality

ABOUT_SHEET = "About"
STATUS_SHEET = "Status"
DATE_FORMAT = "yyyy-mm-dd"


def _municipal_services():
    return OzgService.responsibility == Responsibility.MUNICIPAL.value


def _local_municipalities():
    return Municipality.kind.in_(LOCAL_KIND_VALUES)


def _status_statement(municipality_ids: list[int]):
    """The open data's rows (``monitoring.open_data_statement``) of ``municipality_ids``, in its order."""
    return (
        open_data_statement()
        .where(OzgStatus.municipality_id.in_(municipality_ids))
        .order_by(Municipality.key, OzgService.ozg_id)
    )


def status_batches(ctx: RenderContext):
    """The open data's rows in batches of about ``BATCH`` rows, with progress between batches."""
    session = ctx.session
    total = session.execute(
        select(func.count(OzgStatus.id))
        .join(Municipality, Municipality.id == OzgStatus.municipality_id)
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .where(_municipal_services(), _local_municipalities())
    ).scalar_one()
    services = session.execute(select(func.count(OzgService.id)).where(_municipal_services())).scalar_one()
    per_batch = max(1, BATCH // max(1, services))  # municipalities whose rows fill about one batch
    done = 0
    places = select(Municipality.key, Municipality.id).where(_local_municipalities())
    for group in batches(session, places, Municipality.key, per_batch):
        rows = session.execute(_status_statement([row.id for row in group])).all()
        if rows:
            yield rows
        done += len(rows)
        if total:
            ctx.progress(min(99, done * 100 // total))


def render(ctx: RenderContext, out: BinaryIO) -> dict:
    written = _xlsx(ctx, out) if ctx.format == "xlsx" else _csv(ctx, out)
    return {"rows": written, "licence": LICENCE["id"]}


# --- CSV: the open data's format ------------------------------------------------------------------


def _csv(ctx: RenderContext, out: BinaryIO) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text, lineterminator="\r\n")
    writer.writerow(COLUMN_NAMES)
    written = 0
    for rows in status_batches(ctx):
        writer.writerows(csv_cells(row) for row in rows)
        written += len(rows)
    text.flush()
    text.detach()  # the job closes ``out``
    return written


# --- XLSX ------------------------------------------------------------------------------------------


def _about_rows(ctx: RenderContext, title: str) -> list[list]:
    rows: list[list] = [[safe(label), safe(str(value))] for label, value in header_lines(ctx, title)]
    rows += [
        [],
        [_("Licence"), f"{LICENCE['name']} ({LICENCE['id']})"],
        [_("Licence text"), LICENCE["url"]],
        [],
        [_("Sources")],
        *([_("Source"), text] for text in ATTRIBUTION.values()),
        [],
        [_("Notes")],
        *([_("Note"), text] for text in NOTES),
        [],
        [_("Column"), _("Meaning")],
        *([name, str(description)] for name, description, _example in COLUMNS),
    ]
    return rows


def _xlsx(ctx: RenderContext, out: BinaryIO) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    title = _("OZG monitoring export")
    book = Workbook(write_only=True)
    about = book.create_sheet(ABOUT_SHEET)
    about.column_dimensions["A"].width = 24
    about.column_dimensions["B"].width = 100
    bold = Font(bold=True)
    heading = WriteOnlyCell(about, value=title)
    heading.font = Font(bold=True, size=14)
    about.append([heading])
    for row in _about_rows(ctx, title):
        about.append(row)

    sheet = book.create_sheet(STATUS_SHEET)
    for letter, width in zip("ABCDEFGHI", (10, 36, 28, 9, 60, 28, 9, 15, 13), strict=True):
        sheet.column_dimensions[letter].width = width
    sheet.freeze_panes = "A2"
    header = []
    for name in COLUMN_NAMES:
        cell = WriteOnlyCell(sheet, value=name)
        cell.font = bold
        header.append(cell)
    sheet.append(header)
    written = 0
    for rows in status_batches(ctx):
        for ags, name, kreis, ozg_id, service, topic, maturity, model, since in rows:
            sheet.append(
                [
                    *safe_row((ags, name, kreis, ozg_id, service, topic)),
                    maturity,
                    safe(model),
                    _date_cell(sheet, since),
                ]
            )
        written += len(rows)
    book.save(out)
    return written


def _date_cell(sheet, value: date | None):
    from openpyxl.cell import WriteOnlyCell

    if value is None:
        return None
    cell = WriteOnlyCell(sheet, value=value)
    cell.number_format = DATE_FORMAT
    return cell
