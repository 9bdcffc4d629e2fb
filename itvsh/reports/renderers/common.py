"""What the renderers share: formula-safe cells, reading rows in bounded batches, money as text,
and the frame of every PDF (title, parameters, generation time and audit head on the first page;
page x of y and the report's name on every page).

Memory stays bounded whatever the data size: rows are read in keyset batches (never one result
held whole, never a server-side cursor across a progress write — progress commits), and XLSX is
written by openpyxl in write-only mode.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from flask_babel import gettext as _
from sqlalchemy import Select
from sqlalchemy.orm import Session

from itvsh.core.admin import neutralise_formula
from itvsh.core.money import format_money
from itvsh.reports.kinds import RenderContext

BATCH = 2000
BERLIN = ZoneInfo("Europe/Berlin")


def safe(value):
    """A cell value a spreadsheet will not run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR)."""
    return neutralise_formula(value)


def safe_row(values: Sequence) -> list:
    return [neutralise_formula(v) for v in values]


def batches(session: Session, statement: Select, key_column, size: int = BATCH) -> Iterator[list]:
    """Rows of ``statement`` in batches of ``size``, by keyset on ``key_column`` (unique, ascending;
    it must be the first selected column). Each batch is one short query, so a progress write
    between two batches is safe and memory holds one batch."""
    last = None
    while True:
        stmt = statement.order_by(key_column).limit(size)
        if last is not None:
            stmt = stmt.where(key_column > last)
        rows = session.execute(stmt).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]
        if len(rows) < size:
            return


def money(cents: int | None, locale: str) -> str:
    return format_money(int(cents or 0), locale)


def local_time(moment: datetime) -> str:
    return moment.astimezone(BERLIN).strftime("%Y-%m-%d %H:%M:%S %Z")


def audit_line(ctx: RenderContext) -> str:
    """The sentence every file carries: the audit chain head when it was made."""
    return _(
        "Audit trail head at generation: event #%(seq)s, hash %(hash)s (compare with `itvsh audit verify`).",
        seq=ctx.audit_seq,
        hash=ctx.audit_hash,
    )


def header_lines(ctx: RenderContext, title: str) -> list[tuple[str, str]]:
    """Label/value pairs that head every file: title, parameters, time, requester, audit head."""
    parameters = ", ".join(f"{k}={v}" for k, v in sorted(ctx.parameters.items())) or "—"
    return [
        (_("Report"), title),
        (_("Parameters"), parameters),
        (_("Generated at"), local_time(ctx.generated_at)),
        (_("Requested by"), ctx.requested_by),
        (_("Audit trail head"), f"#{ctx.audit_seq} {ctx.audit_hash}"),
    ]


class CsvOut:
    """A CSV writer on the binary file ``out`` (UTF-8 with BOM for Excel, ``;`` as German Excel
    expects, every cell formula-safe)."""

    def __init__(self, out, delimiter: str = ";"):
        out.write("\ufeff".encode())
        self._text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        self._writer = csv.writer(self._text, delimiter=delimiter)

    def row(self, values: Sequence) -> None:
        self._writer.writerow(safe_row(values))

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # leave ``out`` open for the job to close


# --- PDF ---------------------------------------------------------------------------------------


def pdf_styles():
    from reportlab.lib.styles import getSampleStyleSheet

    styles = getSampleStyleSheet()
    styles["Normal"].fontSize = 9
    styles["Normal"].leading = 11
    return styles


def build_pdf(out, ctx: RenderContext, title: str, story: list) -> None:
    """Lay out ``story`` (reportlab flowables) on A4 with the header block first and on every page
    a footer: title, generation time, "page x of y"."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
    from reportlab.platypus.doctemplate import LayoutError  # noqa: F401  (for callers)

    styles = pdf_styles()
    generated = local_time(ctx.generated_at)

    class NumberedCanvas(_numbered_canvas_class()):
        footer_left = f"{title} · {generated}"
        footer_label = _("page %(page)s of %(pages)s")

    head = Table(
        [
            [Paragraph(f"<b>{esc(k)}</b>", styles["Normal"]), Paragraph(esc(v), styles["Normal"])]
            for k, v in header_lines(ctx, title)
        ],
        colWidths=[35 * mm, 135 * mm],
    )
    head.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LINEBELOW", (0, -1), (-1, -1), 0.5, colors.grey)])
    )
    doc = SimpleDocTemplate(
        out,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=20 * mm,
        title=title,
        author="IT-Verbund Schleswig-Holstein",
        subject=audit_line(ctx),
    )
    doc.build(
        [Paragraph(esc(title), styles["Title"]), head, Spacer(1, 6 * mm), *story], canvasmaker=NumberedCanvas
    )


def esc(text) -> str:
    """``text`` as reportlab Paragraph markup: ``&``, ``<`` and ``>`` escaped."""
    from xml.sax.saxutils import escape

    return escape(str(text))


def _numbered_canvas_class():
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    class Numbered(canvas.Canvas):
        """Draws the footer once the page count is known (two-pass: pages are kept, then drawn)."""

        footer_left = ""
        footer_label = "%(page)s / %(pages)s"

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages = []

        def showPage(self):
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont("Helvetica", 7)
                self.drawString(18 * mm, 10 * mm, self.footer_left)
                self.drawRightString(
                    self._pagesize[0] - 18 * mm,
                    10 * mm,
                    self.footer_label % {"page": self._pageNumber, "pages": total},
                )
                super().showPage()
            super().save()

    return Numbered


def table_style(header_rows: int = 1, numeric_from: int | None = None):
    """The look of every data table: grey header row, thin grid, numbers right-aligned."""
    from reportlab.lib import colors
    from reportlab.platypus import TableStyle

    commands = [
        ("FONT", (0, 0), (-1, -1), "Helvetica", 8),
        ("FONT", (0, 0), (-1, header_rows - 1), "Helvetica-Bold", 8),
        ("BACKGROUND", (0, 0), (-1, header_rows - 1), colors.HexColor("#e8e8e8")),
        ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]
    if numeric_from is not None:
        commands.append(("ALIGN", (numeric_from, 0), (-1, -1), "RIGHT"))
    return TableStyle(commands)
