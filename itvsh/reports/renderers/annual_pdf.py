"""The annual funding report as PDF: the header block of ``common.build_pdf`` (parameters,
generation time, audit head; page x of y on every page), the year's figures, by category with a bar
chart of committed and paid (``charts.py``), by Kreis, the largest recipients and the count per
booking kind. No booking list: its size stays bounded.
"""

from __future__ import annotations

from flask_babel import gettext as _

from itvsh.funding.models import BookingKind
from itvsh.reports.kinds import RenderContext
from itvsh.reports.renderers import common
from itvsh.reports.renderers.annual_data import Sums, YearSet
from itvsh.reports.renderers.annual_figures import (
    count_rows,
    figure_rows,
    labels_for_file,
    report_title,
    sorted_categories,
    sorted_kreise,
)

TOP_RECIPIENTS = 20


def write_pdf(ctx: RenderContext, out, data: YearSet) -> None:
    """The summary tables and the chart of the year's set, as a PDF on ``out``."""
    from reportlab.lib.units import mm
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table

    from itvsh.reports.renderers.charts import money_bar_chart

    styles = common.pdf_styles()
    labels = labels_for_file()
    locale = ctx.locale

    def money(cents):
        return "" if cents is None else common.money(cents, locale)

    def heading(text):
        return Paragraph(common.esc(text), styles["Heading2"])

    def table(rows, widths, numeric_from=1, total=False):
        t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
        style = common.table_style(numeric_from=numeric_from)
        if total:
            style.add("FONT", (0, -1), (-1, -1), "Helvetica-Bold", 8)
        t.setStyle(style)
        return t

    story = []
    story.append(heading(_("Year totals")))
    story.append(
        table(
            [[_("Figure"), _("Amount")], *[[label, money(cents)] for label, cents in figure_rows(data)]],
            [110, 50],
        )
    )
    story.append(Spacer(1, 3 * mm))
    counts = [
        [_("Count"), _("Number")],
        *[[label.strip(), str(n)] for label, n in count_rows(data, labels)],
    ]
    story.append(table(counts, [110, 50]))

    categories = sorted_categories(data)
    rows = [[_("Category"), _("Planned"), _("Committed"), _("Paid"), _("Open")]]
    for category in categories:
        s = data.by_category.get(category.id, Sums())
        rows.append(
            [
                _clip(category.name, 48),
                money(category.planned_cents),
                money(s.committed),
                money(s.paid),
                money(s.open),
            ]
        )
    rows.append(
        [
            _("Total"),
            money(data.planned_cents),
            money(data.total.committed),
            money(data.total.paid),
            money(data.total.open),
        ]
    )
    chart = money_bar_chart(
        [c.name for c in categories],
        [
            (_("Committed"), [data.by_category.get(c.id, Sums()).committed for c in categories]),
            (_("Paid"), [data.by_category.get(c.id, Sums()).paid for c in categories]),
        ],
        locale,
    )
    story += [
        Spacer(1, 4 * mm),
        KeepTogether([heading(_("By category")), table(rows, [66, 26, 26, 26, 26], total=True)]),
        Spacer(1, 3 * mm),
        chart,
    ]

    rows = [[_("Kreis"), _("Recipients"), _("Committed"), _("Paid"), _("Open")]]
    for kreis_id, s, recipients in sorted_kreise(data):
        rows.append(
            [
                _clip(data.kreis_label(kreis_id)[1], 50),
                str(recipients),
                money(s.committed),
                money(s.paid),
                money(s.open),
            ]
        )
    rows.append(
        [
            _("Total"),
            str(len(data.by_recipient)),
            money(data.total.committed),
            money(data.total.paid),
            money(data.total.open),
        ]
    )
    story += [Spacer(1, 4 * mm), heading(_("By Kreis")), table(rows, [70, 20, 26, 26, 26], total=True)]

    largest = sorted(
        ((data.recipient(*key), s) for key, s in data.by_recipient.items()),
        key=lambda item: (-item[1].committed, item[0].order),
    )[:TOP_RECIPIENTS]
    rows = [[_("Recipient"), _("Kreis"), _("Committed"), _("Paid")]]
    for recipient, s in largest:
        rows.append(
            [_clip(recipient.name, 40), _clip(recipient.kreis_name, 26), money(s.committed), money(s.paid)]
        )
    story += [
        Spacer(1, 4 * mm),
        heading(
            _("The %(n)s largest recipients (of %(total)s)", n=len(largest), total=len(data.by_recipient))
        ),
        table(rows, [64, 44, 30, 30], numeric_from=2),
    ]

    rows = [[_("Kind"), _("Bookings"), _("Committed"), _("Paid"), _("Carried in")]]
    for kind in BookingKind:
        s = data.by_kind.get(kind.value, Sums())
        rows.append(
            [
                labels["kind"][kind.value],
                str(s.bookings),
                money(s.committed),
                money(s.paid),
                money(s.available),
            ]
        )
    t = data.total
    rows.append([_("Total"), str(t.bookings), money(t.committed), money(t.paid), money(t.available)])
    story += [
        Spacer(1, 4 * mm),
        heading(_("Bookings by kind")),
        table(rows, [50, 20, 32, 32, 32], total=True),
    ]
    story += [Spacer(1, 4 * mm), Paragraph(common.esc(common.audit_line(ctx)), styles["Normal"])]
    ctx.progress(60)
    common.build_pdf(out, ctx, report_title(data), story)


def _clip(text, limit: int) -> str:
    text = str(text or "")
    return text if len(text) <= limit else text[: limit - 1] + "…"
