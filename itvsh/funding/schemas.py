"""marshmallow schemas for funding in the API: fiscal years with their figures, allocations with
theirs, bookings, distributions and the write bodies.

Money is integer cents in fields named ``*_cents``. Inputs are strict JSON integers (no floats such
as ``12.345`` or ``1e5``, no strings such as ``"NaN"`` or ``"100"``, no booleans), greater than
zero unless said otherwise and at most :data:`~itvsh.core.money.MAX_CENTS`. Write bodies refuse
unknown fields (``unknown = RAISE``). Shapes are checked here; whether a year, category or
recipient exists and every limit of the ledger are rules of the services.
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, fields, validate

from itvsh.api import MAX_ID
from itvsh.core.money import MAX_CENTS
from itvsh.funding.distribution import MAX_LIST
from itvsh.funding.ledger import MAX_YEAR, MIN_YEAR
from itvsh.funding.models import (
    DEFAULT_APPROPRIATION_CENTS,
    AllocationStatus,
    BookingKind,
    DistributionMethod,
    DistributionSelection,
    RecipientKind,
    YearStatus,
)
from itvsh.tenants.schemas import Digits

YEAR_STATUSES = [s.value for s in YearStatus]
ALLOCATION_STATUSES = [s.value for s in AllocationStatus]
BOOKING_KINDS = [k.value for k in BookingKind]
RECIPIENT_KINDS = [k.value for k in RecipientKind]
METHODS = [m.value for m in DistributionMethod]
SELECTIONS = [s.value for s in DistributionSelection]
FEDERATION = RecipientKind.FEDERATION.value
CENTS = "integer cents (100 = 1.00 €)"


def cents(description: str, *, minimum: int = 1, **kwargs) -> fields.Integer:
    """A money input: a JSON integer of cents from ``minimum`` to MAX_CENTS, nothing else."""
    return fields.Integer(
        strict=True,
        validate=validate.Range(
            min=minimum,
            max=MAX_CENTS,
            error="Must be from {min} to {max} integer cents (at most 10,000,000,000.00 €).",
        ),
        error_messages={"invalid": "Must be a whole number of cents: a JSON integer, no decimals, no text."},
        metadata={"description": f"{description}, in {CENTS}"},
        **kwargs,
    )


def cents_out(description: str) -> fields.Integer:
    """A money figure in an answer (a sum of bookings unless said otherwise)."""
    return fields.Integer(dump_only=True, metadata={"description": f"{description}, in {CENTS}"})


def year_field(**kwargs) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=MIN_YEAR, max=MAX_YEAR),
        error_messages={"invalid": "Must be a year: a JSON integer such as 2025."},
        metadata={"description": "the fiscal year (= calendar year)"},
        **kwargs,
    )


def _key_field(*lengths: int, description: str, **kwargs) -> fields.String:
    validator = Digits(*lengths)
    return fields.String(
        validate=validator, metadata={"pattern": validator.pattern, "description": description}, **kwargs
    )


def _text(limit: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(max=limit), **kwargs)


def project_field(description: str, **kwargs) -> fields.Integer:
    """A project named by its id (null: none)."""
    return fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_ID, error="Must be an id from {min} to {max}."),
        error_messages={"invalid": "Must be a project id: a JSON integer."},
        metadata={"description": description},
        **kwargs,
    )


def _recipient_key(allocation) -> str | None:
    return allocation.municipality.key if allocation.municipality is not None else None


def _recipient_kreis(allocation) -> str | None:
    municipality = allocation.municipality
    if municipality is None:
        return None
    if municipality.kind == "kreis":
        return municipality.key
    return municipality.kreis.key if municipality.kreis is not None else None


# --- fiscal years ---------------------------------------------------------------------------------


class CategorySchema(Schema):
    """A budget category of one year with its plan and what is committed and paid in it."""

    code = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    position = fields.Integer(dump_only=True)
    planned_cents = cents_out("the planned amount (not a booking sum)")
    committed_cents = cents_out("committed in the category this year")
    paid_cents = cents_out("paid from the category this year")
    free_cents = cents_out("planned minus committed")


class FiscalYearSchema(Schema):
    """A fiscal year and its figures, each a sum of its bookings (public money: every role sees
    the year's totals)."""

    year = fields.Integer(dump_only=True)
    status = fields.String(dump_only=True, validate=validate.OneOf(YEAR_STATUSES))
    appropriation_cents = cents_out("the Land's appropriation (Ansatz) for the year")
    carried_in_cents = cents_out("carried into the year from the year before (Ausgabereste)")
    available_cents = cents_out("appropriation plus carried in: what may be committed")
    committed_cents = cents_out("committed in the year")
    paid_cents = cents_out("paid in the year")
    open_cents = cents_out("committed and not yet paid")
    free_cents = cents_out("available minus committed: still free to commit")
    note = fields.String(dump_only=True)
    closed_at = fields.DateTime(dump_only=True, allow_none=True)


class FiscalYearDetailSchema(FiscalYearSchema):
    categories = fields.List(fields.Nested(CategorySchema), dump_only=True)


class FiscalYearCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    year = year_field(required=True)
    appropriation_cents = cents(
        f"the appropriation (default {DEFAULT_APPROPRIATION_CENTS})",
        minimum=0,
        load_default=DEFAULT_APPROPRIATION_CENTS,
    )
    default_categories = fields.Boolean(
        load_default=True,
        truthy={True},
        falsy={False},
        metadata={"description": "start with the default categories, planned as shares of the appropriation"},
    )
    note = _text(2000, load_default="")


class FiscalYearUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    appropriation_cents = cents("the appropriation", minimum=0)
    note = _text(2000)


# --- bookings -------------------------------------------------------------------------------------


class BookingSchema(Schema):
    """One entry of the append-only ledger. The deltas are its signed effect on the figures of its
    year; a reversal names the booking it reverses."""

    id = fields.Integer(dump_only=True)
    year = fields.Function(lambda b: b.fiscal_year.year, dump_only=True, metadata={"type": "integer"})
    allocation_id = fields.Integer(dump_only=True)
    category = fields.Function(
        lambda b: b.category.code, dump_only=True, metadata={"type": "string", "description": "category code"}
    )
    recipient_kind = fields.Function(
        lambda b: b.allocation.recipient_kind,
        dump_only=True,
        metadata={"type": "string", "enum": RECIPIENT_KINDS},
    )
    recipient = fields.Function(
        lambda b: _recipient_key(b.allocation),
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "official key of the member"},
    )
    kind = fields.String(dump_only=True, validate=validate.OneOf(BOOKING_KINDS))
    amount_cents = cents_out("the amount, always > 0")
    committed_delta_cents = cents_out("its effect on the committed money of its year (signed)")
    paid_delta_cents = cents_out("its effect on the money paid in its year (signed)")
    available_delta_cents = cents_out("its effect on the money available in its year (signed)")
    reverses_id = fields.Integer(dump_only=True, allow_none=True)
    carried_from_id = fields.Integer(dump_only=True, allow_none=True)
    booked_on = fields.Date(dump_only=True)
    note = fields.String(dump_only=True)
    booked_by = fields.String(
        dump_only=True, metadata={"description": "who booked (not shown to municipality users)"}
    )
    created_at = fields.DateTime(dump_only=True)


# --- allocations ----------------------------------------------------------------------------------


class AllocationSchema(Schema):
    """A Zuwendung and its figures (sums of its bookings over all years)."""

    id = fields.Integer(dump_only=True)
    year = fields.Function(
        lambda a: a.fiscal_year.year,
        dump_only=True,
        metadata={"type": "integer", "description": "the year it was granted from"},
    )
    current_year = fields.Function(
        lambda a: a.current_year.year,
        dump_only=True,
        metadata={"type": "integer", "description": "the year its bound money sits in (after carry-overs)"},
    )
    category = fields.Function(
        lambda a: a.category.code, dump_only=True, metadata={"type": "string", "description": "category code"}
    )
    category_name = fields.Function(lambda a: a.category.name, dump_only=True, metadata={"type": "string"})
    recipient_kind = fields.String(dump_only=True, validate=validate.OneOf(RECIPIENT_KINDS))
    recipient = fields.Function(
        _recipient_key,
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "official key of the member"},
    )
    recipient_name = fields.Function(
        lambda a: a.municipality.name if a.municipality is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True},
    )
    project = fields.Integer(
        attribute="project_id",
        dump_only=True,
        allow_none=True,
        metadata={"description": "the project receiving it (recipient_kind project)"},
    )
    project_name = fields.Function(
        lambda a: a.project.name if a.project is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True},
    )
    kreis = fields.Function(
        _recipient_kreis,
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "key of the recipient's Kreis"},
    )
    purpose = fields.String(dump_only=True)
    amount_cents = cents_out("the amount granted (not a booking sum)")
    status = fields.String(dump_only=True, validate=validate.OneOf(ALLOCATION_STATUSES))
    decision_date = fields.Date(dump_only=True, allow_none=True)
    file_reference = fields.String(dump_only=True)
    proof_of_use_due = fields.Date(dump_only=True, allow_none=True)
    proof_of_use_received = fields.Date(dump_only=True, allow_none=True)
    distribution_id = fields.Integer(dump_only=True, allow_none=True)
    note = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)
    committed_cents = cents_out("committed to the allocation")
    paid_cents = cents_out("paid on the allocation")
    open_cents = cents_out("committed and not yet paid")


class AllocationDetailSchema(AllocationSchema):
    bookings = fields.List(fields.Nested(BookingSchema), dump_only=True)


class AllocationCreateSchema(Schema):
    """A draft allocation: to a member (``recipient``: its official key), to a shared project
    (``recipient_kind`` ``project``, ``project``: its id, no ``recipient``) or to the federation itself
    (``recipient_kind`` ``federation``, no ``recipient``)."""

    class Meta:
        unknown = RAISE

    year = year_field(required=True)
    category = fields.String(
        required=True, validate=validate.Length(min=1, max=40), metadata={"description": "category code"}
    )
    recipient_kind = fields.String(
        load_default=RecipientKind.MEMBER.value, validate=validate.OneOf(RECIPIENT_KINDS)
    )
    recipient = _key_field(
        5, 8, 9, description="official key of the member (AGS, Amt or Kreis key)", allow_none=True
    )
    project = project_field("the project receiving it (recipient_kind project; a planned or running one)")
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=500))
    amount_cents = cents("the amount granted", required=True)
    decision_date = fields.Date(allow_none=True, load_default=None)
    file_reference = _text(100, load_default="", metadata={"description": "Aktenzeichen"})
    proof_of_use_due = fields.Date(allow_none=True, load_default=None)
    note = _text(2000, load_default="")


class AllocationUpdateSchema(Schema):
    """Any subset; once approved only purpose, file reference, dates and note may change."""

    class Meta:
        unknown = RAISE

    category = fields.String(
        validate=validate.Length(min=1, max=40), metadata={"description": "category code"}
    )
    recipient_kind = fields.String(validate=validate.OneOf(RECIPIENT_KINDS))
    recipient = _key_field(5, 8, 9, description="official key of the member", allow_none=True)
    project = project_field("the project receiving it (recipient_kind project)")
    purpose = fields.String(validate=validate.Length(min=1, max=500))
    amount_cents = cents("the amount granted")
    decision_date = fields.Date(allow_none=True)
    file_reference = _text(100)
    proof_of_use_due = fields.Date(allow_none=True)
    proof_of_use_received = fields.Date(allow_none=True)
    note = _text(2000)


class ApproveSchema(Schema):
    class Meta:
        unknown = RAISE

    booked_on = fields.Date(
        load_default=None, metadata={"description": "date of the commitment (default today)"}
    )


class PaymentSchema(Schema):
    """A disbursement, release or repayment."""

    class Meta:
        unknown = RAISE

    amount_cents = cents("the amount", required=True)
    booked_on = fields.Date(load_default=None, metadata={"description": "booking date (default today)"})
    note = _text(500, load_default="")


class CancelSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = _text(500, load_default="")


class SettleSchema(Schema):
    class Meta:
        unknown = RAISE

    proof_of_use_received = fields.Date(
        load_default=None,
        metadata={"description": "when the proof of use arrived (default: the date already recorded)"},
    )


class ReverseSchema(Schema):
    class Meta:
        unknown = RAISE

    note = fields.String(
        required=True, validate=validate.Length(min=1, max=500), metadata={"description": "the reason"}
    )
    booked_on = fields.Date(load_default=None, metadata={"description": "booking date (default today)"})


# --- distributions -----------------------------------------------------------------------------------


class DistributionParametersSchema(Schema):
    """``key`` of the Kreis or Amt (selection ``kreis``/``amt``), or ``keys`` of the Gemeinden
    (selection ``list``)."""

    class Meta:
        unknown = RAISE

    key = _key_field(5, 9, description="Kreis key (5 digits) or Amt key (9 digits)")
    keys = fields.List(
        _key_field(8, description="AGS of a Gemeinde"),
        validate=validate.Length(min=1, max=MAX_LIST),
        metadata={"description": f"official keys of the Gemeinden (at most {MAX_LIST})"},
    )


class DistributionPreviewRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    year = year_field(required=True)
    category = fields.String(
        required=True, validate=validate.Length(min=1, max=40), metadata={"description": "category code"}
    )
    method = fields.String(required=True, validate=validate.OneOf(METHODS))
    selection = fields.String(required=True, validate=validate.OneOf(SELECTIONS))
    parameters = fields.Nested(DistributionParametersSchema, load_default=dict)
    total_cents = cents("the amount to split", required=True)
    base_cents = cents("the base amount per Gemeinde (base_plus_per_capita only)", minimum=0, load_default=0)


class DistributionCreateSchema(DistributionPreviewRequestSchema):
    purpose = fields.String(required=True, validate=validate.Length(min=1, max=500))
    decision_date = fields.Date(allow_none=True, load_default=None)
    file_reference = _text(100, load_default="", metadata={"description": "Aktenzeichen"})
    proof_of_use_due = fields.Date(allow_none=True, load_default=None)


class PreviewRowSchema(Schema):
    key = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    population = fields.Integer(dump_only=True)
    amount_cents = cents_out("the share")


class PreviewTotalsSchema(Schema):
    recipients = fields.Integer(dump_only=True)
    population = fields.Integer(dump_only=True)
    amount_cents = cents_out("the sum of the shares (always the total)")


class DistributionPreviewSchema(Schema):
    """The table of shares: largest-remainder rounding, so they add up exactly to the total."""

    year = fields.Function(lambda p: p.fiscal_year.year, dump_only=True, metadata={"type": "integer"})
    category = fields.Function(lambda p: p.category.code, dump_only=True, metadata={"type": "string"})
    method = fields.String(dump_only=True, validate=validate.OneOf(METHODS))
    selection = fields.String(dump_only=True, validate=validate.OneOf(SELECTIONS))
    parameters = fields.Dict(dump_only=True)
    total_cents = cents_out("the amount split")
    base_cents = cents_out("the base amount per Gemeinde")
    population_date = fields.Date(dump_only=True, allow_none=True)
    rows = fields.List(fields.Nested(PreviewRowSchema), dump_only=True)
    totals = fields.Nested(PreviewTotalsSchema, dump_only=True)


class DistributionSchema(Schema):
    """A distribution as created: the key, its parameters, the population date and its draft
    allocations."""

    id = fields.Integer(dump_only=True)
    year = fields.Function(lambda d: d.fiscal_year.year, dump_only=True, metadata={"type": "integer"})
    category = fields.Function(lambda d: d.category.code, dump_only=True, metadata={"type": "string"})
    method = fields.String(dump_only=True, validate=validate.OneOf(METHODS))
    selection = fields.String(dump_only=True, validate=validate.OneOf(SELECTIONS))
    parameters = fields.Dict(dump_only=True)
    total_cents = cents_out("the amount split")
    base_cents = cents_out("the base amount per Gemeinde")
    population_date = fields.Date(dump_only=True, allow_none=True)
    recipients = fields.Integer(dump_only=True)
    purpose = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    allocation_count = fields.Integer(dump_only=True)
    allocation_ids = fields.List(fields.Integer(), dump_only=True)
