"""The annual funding report (Mittelverwendungsbericht) of one fiscal year, for the Land's auditors:
XLSX, PDF or CSV. ``render`` (the entry of the kinds registry) reads the year's bounded set
(``annual_data``) and writes it in the format asked for: ``annual_xlsx``, ``annual_pdf``, or the CSV
here. Every file reconciles with the ledger to the cent and states the audit chain head.

  * **CSV** (``common.CsvOut``: UTF-8 with BOM, ``;``): the bookings, one row each, under a single
    header row of fixed technical column names (the same in every locale, for import scripts); no
    preamble and no footer, so every CSV tool reads it as it is. The audit chain head is stated in
    the two last columns ``audit_seq`` and ``audit_hash`` of every row: a constant per file, but
    it survives any import, filter or sort, and an auditor can tie each row to
    ``itvsh audit verify``. (A year without bookings gives the header row only; the report row
    keeps the head as well.)

The names tests and the benchmark use (``BATCH``, ``read_year``, ``proof_state``, ``LedgerMoved``,
...) stay importable from here; ``render`` looks up ``BATCH`` and ``read_year`` in this module when
it runs, so setting them here takes effect.
"""

from __future__ import annotations

from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers import common
from itvsh.reports.renderers.annual_data import (
    BATCH,
    PROOF_DUE,
    PROOF_NOT_REQUIRED,
    PROOF_OVERDUE,
    PROOF_RECEIVED,
    PROOF_STATES,
    LedgerMoved,
    Sums,
    YearSet,
    booking_rows,
    bookings_moved,
    check_sums,
    naive_local,
    proof_state,
    read_year,
)
from itvsh.reports.renderers.annual_figures import labels_for_file
from itvsh.reports.renderers.annual_pdf import write_pdf
from itvsh.reports.renderers.annual_xlsx import write_xlsx
from itvsh.reports.renderers.common import BERLIN

__all__ = [
    "BATCH",
    "CSV_COLUMNS",
    "FORMATS",
    "PROOF_DUE",
    "PROOF_NOT_REQUIRED",
    "PROOF_OVERDUE",
    "PROOF_RECEIVED",
    "PROOF_STATES",
    "LedgerMoved",
    "YearSet",
    "proof_state",
    "read_year",
    "render",
]

# The CSV's columns: fixed technical names (not translated), money in cents.
CSV_COLUMNS = (
    "booking_id",
    "booked_on",
    "booked_at",
    "kind",
    "kind_label",
    "allocation_id",
    "recipient_kind",
    "recipient_key",
    "recipient_name",
    "kreis",
    "category_code",
    "category_name",
    "amount_cents",
    "amount_eur",
    "committed_delta_cents",
    "paid_delta_cents",
    "available_delta_cents",
    "reverses_id",
    "carried_from_id",
    "purpose",
    "note",
    "booked_by",
    "audit_seq",
    "audit_hash",
)


# --- CSV ------------------------------------------------------------------------------------------


def write_csv(ctx: RenderContext, out, data: YearSet) -> None:
    """The bookings of the set, one CSV row each, under the header row ``CSV_COLUMNS``."""
    labels = labels_for_file()
    kinds, categories, recipient = labels["kind"], data.categories, data.recipient
    locale, seq, head = ctx.locale, ctx.audit_seq, ctx.audit_hash
    writer = common.CsvOut(out)
    writer.row(CSV_COLUMNS)
    committed = paid = available = count = 0
    for batch in booking_rows(ctx, data, 5, 95):
        for row in batch:
            id_, booked_on, created_at, kind, allocation_id, category_id, amount, c, p, a = row[:10]
            reverses, carried, note, booked_by, rkind, municipality_id, project_id, purpose = row[10:]
            who = recipient(rkind, municipality_id, project_id)
            category = categories.get(category_id)
            local = naive_local(created_at)
            writer.row(
                [
                    id_,
                    booked_on.isoformat(),
                    local.isoformat(sep=" ", timespec="seconds") if local else "",
                    kind,
                    kinds.get(kind, kind),
                    allocation_id,
                    rkind,
                    who.key,
                    who.name,
                    who.kreis_name,
                    category.code if category else "",
                    category.name if category else category_id,
                    amount,
                    common.money(amount, locale),
                    c,
                    p,
                    a,
                    "" if reverses is None else reverses,
                    "" if carried is None else carried,
                    purpose,
                    note,
                    booked_by,
                    seq,
                    head,
                ]
            )
            committed += c
            paid += p
            available += a
            count += 1
    writer.close()
    check_sums(Sums(committed, paid, available, count), data.total, bookings_moved())


# --- the renderer ---------------------------------------------------------------------------------

FORMATS = {"xlsx": write_xlsx, "pdf": write_pdf, "csv": write_csv}


def render(ctx: RenderContext, out) -> dict:
    """Write the annual funding report of ``ctx.parameters["year"]`` in ``ctx.format`` to ``out``;
    return the year's totals in cents, the number of bookings and the highest booking id included."""
    write = FORMATS.get(ctx.format)
    if write is None:
        raise ValueError(f"the annual funding report comes as xlsx, pdf or csv, not {ctx.format!r}")
    today = ctx.generated_at.astimezone(BERLIN).date()
    data = read_year(ctx.session, int(ctx.parameters["year"]), today, batch=BATCH)
    ctx.progress(5)
    write(ctx, out, data)
    return data.summary()
