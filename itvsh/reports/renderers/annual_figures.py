"""The labels and the summary tables that both the XLSX and the PDF of the annual funding report
print: the title, the year's figures, the counts, categories and Kreise in report order. Labels are
translated once per file (``ctx.locale`` is active), never per row.
"""

from __future__ import annotations

from flask_babel import gettext as _

from itvsh.funding.models import ALLOCATION_STATUS_LABELS, BOOKING_KIND_LABELS, BookingKind
from itvsh.reports.renderers.annual_data import (
    NO_KREIS,
    PROOF_DUE,
    PROOF_NOT_REQUIRED,
    PROOF_OVERDUE,
    PROOF_RECEIVED,
    PROOF_STATES,
    Category,
    Sums,
    YearSet,
)
from itvsh.reports.renderers.common import safe


def report_title(data: YearSet) -> str:
    """The report's title, with the year."""
    return _("Annual funding report (Mittelverwendungsbericht) %(year)s", year=data.year)


def labels_for_file() -> dict:
    """The translated labels of booking kinds, allocation statuses and proof-of-use states."""
    return {
        "kind": {k.value: safe(str(v)) for k, v in BOOKING_KIND_LABELS.items()},
        "status": {k.value: safe(str(v)) for k, v in ALLOCATION_STATUS_LABELS.items()},
        "proof": {
            PROOF_RECEIVED: _("received"),
            PROOF_OVERDUE: _("overdue"),
            PROOF_DUE: _("due"),
            PROOF_NOT_REQUIRED: _("not required"),
        },
    }


def figure_rows(data: YearSet) -> list[tuple[str, int]]:
    """The year's figures in cents, label first."""
    return [
        (_("Appropriation"), data.appropriation_cents),
        (_("Carried in from the previous year"), data.carried_in_cents),
        (_("Available"), data.available_cents),
        (_("Planned in the categories"), data.planned_cents),
        (_("Committed"), data.total.committed),
        (_("Paid"), data.total.paid),
        (_("Not yet committed"), data.available_cents - data.total.committed),
        (_("Open commitments (committed, not yet paid)"), data.total.open),
    ]


def count_rows(data: YearSet, labels: dict) -> list[tuple[str, int]]:
    """Bookings per kind, allocations per proof-of-use state, recipients, the last booking id."""
    rows = [(_("Bookings"), data.total.bookings)]
    rows += [
        (f"  {labels['kind'][kind.value]}", data.by_kind.get(kind.value, Sums()).bookings)
        for kind in BookingKind
    ]
    rows.append((_("Allocations"), data.allocations))
    rows += [
        (f"  {_('Proof of use')}: {labels['proof'][state]}", data.proof_counts.get(state, 0))
        for state in PROOF_STATES
    ]
    rows.append((_("Recipients"), len(data.by_recipient)))
    rows.append((_("Last booking included (id)"), data.max_booking_id))
    return rows


def sorted_categories(data: YearSet) -> list[Category]:
    """The categories with money in the set or of the year, the year's own first."""
    ids = set(data.categories) | set(data.by_category)
    return sorted(
        (data.categories.get(i) or Category(i, "", f"#{i}", data.year, None, (2, 0, 0, i)) for i in ids),
        key=lambda c: c.position,
    )


def sorted_kreise(data: YearSet) -> list[tuple[int | None, Sums, int]]:
    """(Kreis id, sums, recipients) by Kreis name; the bucket without a Kreis last."""
    kreise = data.kreis_sums()
    return sorted(
        ((k, s, n) for k, (s, n) in kreise.items()),
        key=lambda item: (item[0] is NO_KREIS, data.kreis_label(item[0])[1]),
    )
