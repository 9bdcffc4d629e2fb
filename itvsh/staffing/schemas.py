"""marshmallow schemas for staffing in the API: the staff register, secondments, assignments (the
full view for the federation and auditors, the narrow one for members), capacity and the bodies.

Shares of full time are integers per mille (``fte``: 1000 = 100 %). Money is integer cents. Write
bodies refuse unknown fields (``unknown = RAISE``) and check shapes here; every rule (a share of
1..1000, periods, overlaps, membership of the target, capacity) is the staffing services' and their
message is what the caller reads.

Whether a person is shown by name or by pseudonym is decided once per answer by the caller and
passed in ``marshmallow.experimental.context.Context`` as ``{"names": bool}``; without it the
schemas show pseudonyms (fail closed).
"""

from __future__ import annotations

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema
from marshmallow.experimental.context import Context

from itvsh.api import MAX_ID
from itvsh.core.money import MAX_CENTS
from itvsh.funding.schemas import year_field
from itvsh.staffing.models import CostBearer, Instrument, TargetKind
from itvsh.tenants.schemas import Digits

INSTRUMENTS = [i.value for i in Instrument]
COST_BEARERS = [c.value for c in CostBearer]
TARGET_KINDS = [t.value for t in TargetKind]
STATES = ["none", "free", "planned", "full", "over"]
CENTS = "integer cents (100 = 1.00 €)"
PER_MILLE = "per mille of full time (1000 = 100 %, 500 = half)"


def names_shown() -> bool:
    """Whether this answer names people (else it shows their pseudonyms)."""
    return bool(Context.get({}).get("names", False))


def _shown(member, value: str) -> str:
    return value if names_shown() else member.pseudonym


def home_authority(member) -> str | None:
    """The home authority only where names are shown: with two people, it would name them."""
    return member.home_authority if names_shown() else None


def person_name(member) -> str:
    return _shown(member, member.name)


def person_email(member) -> str:
    return _shown(member, member.work_email)


# --- field makers -------------------------------------------------------------------------------


def _share(**kwargs) -> fields.Integer:
    """A share per mille: any JSON integer here; the service refuses what is not 1..1000."""
    return fields.Integer(
        strict=True,
        error_messages={"invalid": "Must be a whole number per mille: a JSON integer (500 = 50 %)."},
        metadata={"description": PER_MILLE, "minimum": 1, "maximum": 1000},
        **kwargs,
    )


def _id(description: str, **kwargs) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID, error="Must be an id from {min} to {max}."),
        error_messages={"invalid": "Must be an id: a JSON integer."},
        metadata={"description": description},
        **kwargs,
    )


def _text(limit: int, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(max=limit), **kwargs)


def _key(**kwargs) -> fields.String:
    validator = Digits(5, 8, 9)
    return fields.String(
        validate=validator,
        metadata={
            "pattern": validator.pattern,
            "description": "official key of the member (AGS, Amt or Kreis)",
        },
        **kwargs,
    )


def _cents_in(description: str, **kwargs) -> fields.Integer:
    return fields.Integer(
        strict=True,
        error_messages={"invalid": "Must be a whole number of cents: a JSON integer, no decimals, no text."},
        metadata={"description": f"{description}, in {CENTS}", "minimum": 0, "maximum": MAX_CENTS},
        **kwargs,
    )


def _cents_out(description: str, **kwargs) -> fields.Integer:
    return fields.Integer(dump_only=True, metadata={"description": f"{description}, in {CENTS}"}, **kwargs)


def _day(description: str, **kwargs) -> fields.Date:
    return fields.Date(metadata={"description": description}, **kwargs)


# --- the staff register ---------------------------------------------------------------------------


class SecondmentBriefSchema(Schema):
    """A secondment as part of a person or an assignment."""

    id = fields.Integer(dump_only=True)
    instrument = fields.String(dump_only=True, metadata={"enum": INSTRUMENTS})
    starts_on = fields.Date(dump_only=True)
    ends_on = fields.Date(dump_only=True, allow_none=True, metadata={"description": "null: open end"})
    fte = fields.Integer(dump_only=True, metadata={"description": PER_MILLE})
    cost_bearer = fields.String(dump_only=True, metadata={"enum": COST_BEARERS})


class StaffMemberSchema(Schema):
    """A person in the staff register. Auditors read the pseudonym in ``name`` and ``work_email``
    unless an admin allows them names."""

    id = fields.Integer(dump_only=True)
    name = fields.Function(person_name, dump_only=True, metadata={"type": "string"})
    work_email = fields.Function(person_email, dump_only=True, metadata={"type": "string"})
    home_authority = fields.Function(
        home_authority,
        dump_only=True,
        metadata={"type": "string", "description": "Stammdienststelle (null where names are hidden)"},
    )
    pseudonym = fields.String(dump_only=True, metadata={"description": "stable, e.g. MA-7K2P9Q"})
    annual_cost_cents = _cents_out(
        "personnel cost of one full-time year (null: not on record)", allow_none=True
    )
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)


class StaffMemberDetailSchema(StaffMemberSchema):
    notes = fields.String(dump_only=True, metadata={"description": "not shown where names are hidden"})
    secondments = fields.List(fields.Nested(SecondmentBriefSchema), dump_only=True)


class StaffMemberCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = _text(200, required=True)
    work_email = _text(254, required=True)
    home_authority = _text(200, load_default="")
    notes = _text(5000, load_default="")
    annual_cost_cents = _cents_in("personnel cost of one full-time year", allow_none=True, load_default=None)


class StaffMemberUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    name = _text(200)
    work_email = _text(254)
    home_authority = _text(200)
    notes = _text(5000)
    annual_cost_cents = _cents_in("personnel cost of one full-time year (null: none)", allow_none=True)


# --- secondments ------------------------------------------------------------------------------------


class StaffCostSchema(Schema):
    """A secondment's personnel cost for one year, booked as an allocation to the federation."""

    id = fields.Integer(dump_only=True)
    secondment_id = fields.Integer(dump_only=True)
    year = fields.Integer(dump_only=True, metadata={"description": "the fiscal year"})
    allocation_id = fields.Integer(dump_only=True)
    amount_cents = _cents_out("the cost booked for the year")
    created_at = fields.DateTime(dump_only=True)


class SecondmentSchema(SecondmentBriefSchema):
    staff_id = fields.Integer(attribute="staff_member_id", dump_only=True)
    name = fields.Function(lambda s: person_name(s.staff_member), dump_only=True, metadata={"type": "string"})
    legal_reference = fields.String(dump_only=True)
    note = fields.String(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)


class SecondmentDetailSchema(SecondmentSchema):
    costs = fields.List(fields.Nested(StaffCostSchema), dump_only=True)


class SecondmentCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    staff_id = _id("the person (staff register id)", required=True)
    instrument = fields.String(required=True, validate=validate.OneOf(INSTRUMENTS))
    starts_on = _day("first day", required=True)
    ends_on = _day("last day (null: open end)", allow_none=True, load_default=None)
    fte = _share(required=True)
    cost_bearer = fields.String(validate=validate.OneOf(COST_BEARERS), load_default=CostBearer.LAND.value)
    legal_reference = _text(300, load_default="")
    note = _text(5000, load_default="")


class SecondmentUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    instrument = fields.String(validate=validate.OneOf(INSTRUMENTS))
    starts_on = _day("first day")
    ends_on = _day("last day (null: open end)", allow_none=True)
    fte = _share()
    cost_bearer = fields.String(validate=validate.OneOf(COST_BEARERS))
    legal_reference = _text(300)
    note = _text(5000)


class StaffCostRequestSchema(Schema):
    class Meta:
        unknown = RAISE

    year = year_field(required=True)


# --- assignments ------------------------------------------------------------------------------------


class MemberAssignmentSchema(Schema):
    """What a member sees of a person working for it: name, work email, period, share, role."""

    id = fields.Integer(dump_only=True)
    municipality = fields.Function(
        lambda a: a.municipality.key if a.municipality is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True, "description": "official key (null: a project)"},
    )
    municipality_name = fields.Function(
        lambda a: a.municipality.name if a.municipality is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True},
    )
    name = fields.Function(lambda a: person_name(a.staff_member), dump_only=True, metadata={"type": "string"})
    work_email = fields.Function(
        lambda a: person_email(a.staff_member), dump_only=True, metadata={"type": "string"}
    )
    starts_on = fields.Date(dump_only=True)
    ends_on = fields.Date(dump_only=True, allow_none=True, metadata={"description": "null: open end"})
    fte = fields.Integer(dump_only=True, metadata={"description": PER_MILLE})
    role = fields.String(dump_only=True)


class AssignmentSchema(MemberAssignmentSchema):
    """The full assignment (admin, staff, auditors)."""

    staff_id = fields.Integer(attribute="staff_member_id", dump_only=True)
    pseudonym = fields.Function(
        lambda a: a.staff_member.pseudonym, dump_only=True, metadata={"type": "string"}
    )
    home_authority = fields.Function(
        lambda a: home_authority(a.staff_member),
        dump_only=True,
        metadata={"type": "string", "description": "null where names are hidden"},
    )
    annual_cost_cents = fields.Function(
        lambda a: a.staff_member.annual_cost_cents,
        dump_only=True,
        metadata={
            "type": "integer",
            "nullable": True,
            "description": f"the person's personnel cost of one full-time year, in {CENTS}",
        },
    )
    target_kind = fields.String(dump_only=True, metadata={"enum": TARGET_KINDS})
    project = fields.Integer(
        attribute="project_id",
        dump_only=True,
        allow_none=True,
        metadata={"description": "the project worked for (target_kind project)"},
    )
    project_name = fields.Function(
        lambda a: a.project.name if a.project is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True},
    )
    secondment = fields.Nested(SecondmentBriefSchema, dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)


class AssignmentCreateSchema(Schema):
    """Work for a member (``municipality``: its official key) or for a shared project (``project``:
    its id, a planned or running one, the assignment inside its period) -- one of the two."""

    class Meta:
        unknown = RAISE

    staff_id = _id("the person (staff register id)", required=True)
    municipality = _key()
    project = _id("the project worked for (instead of a member)")
    starts_on = _day("first day", required=True)
    ends_on = _day("last day (null: open end)", allow_none=True, load_default=None)
    fte = _share(required=True)
    role = _text(300, load_default="")

    @validates_schema
    def _one_target(self, data: dict, **_kwargs) -> None:
        if "municipality" in data and "project" in data:
            raise ValidationError("Name either a member or a project, not both.", "project")
        if "municipality" not in data and "project" not in data:
            raise ValidationError(
                "Name the member (municipality) or the project (project) the person works for.",
                "municipality",
            )


class AssignmentUpdateSchema(Schema):
    """Any subset; an assignment keeps its kind of target (a member's gets another member, a
    project's another project)."""

    class Meta:
        unknown = RAISE

    municipality = _key()
    project = _id("another project (for an assignment to a project)")
    starts_on = _day("first day")
    ends_on = _day("last day (null: open end)", allow_none=True)
    fte = _share()
    role = _text(300)


# --- capacity ---------------------------------------------------------------------------------------


class MonthCapacitySchema(Schema):
    month = fields.Function(
        lambda m: m.month.strftime("%Y-%m"), dump_only=True, metadata={"type": "string", "example": "2025-01"}
    )
    available = fields.Integer(
        dump_only=True, metadata={"description": f"average over the month, {PER_MILLE}"}
    )
    assigned = fields.Integer(
        dump_only=True, metadata={"description": f"average over the month, {PER_MILLE}"}
    )
    free = fields.Integer(
        dump_only=True, metadata={"description": "available minus assigned (never below 0)"}
    )
    state = fields.String(dump_only=True, metadata={"enum": STATES})
    over = fields.Boolean(dump_only=True, metadata={"description": "over-planned on at least one day"})


class CapacitySchema(Schema):
    """One person's capacity month by month."""

    staff_id = fields.Function(lambda p: p.staff_member.id, dump_only=True, metadata={"type": "integer"})
    name = fields.Function(lambda p: person_name(p.staff_member), dump_only=True, metadata={"type": "string"})
    months = fields.List(fields.Nested(MonthCapacitySchema), dump_only=True)
