"""marshmallow schemas for projects and OZG in the API: projects (the public part every member sees,
and the full one with budget, people, milestones and services for the federation and auditors), the
OZG catalogue, the OZG status rows, and the write bodies.

Write bodies refuse unknown fields (``unknown = RAISE``) and check shapes here; every rule (status
transitions, milestones inside the project's period, membership, the maturity range of the model,
who may report for whom) is the services' and their message is what the caller reads. Money is
integer cents; people are named or shown by pseudonym as the staffing schemas decide
(``marshmallow.experimental.context.Context`` ``{"names": bool}``, pseudonyms without it).
"""

from __future__ import annotations

from datetime import date

from marshmallow import RAISE, Schema, fields, validate

from itvsh.api import MAX_ID
from itvsh.projects.models import (
    MaturityModel,
    ParticipationRole,
    ProjectKind,
    ProjectStatus,
    Responsibility,
)
from itvsh.staffing.schemas import person_name
from itvsh.tenants.schemas import Digits

PROJECT_KINDS = [k.value for k in ProjectKind]
PROJECT_STATUSES = [s.value for s in ProjectStatus]
PARTICIPATION_ROLES = [r.value for r in ParticipationRole]
RESPONSIBILITIES = [r.value for r in Responsibility]
MATURITY_MODELS = [m.value for m in MaturityModel]
CENTS = "integer cents (100 = 1.00 €)"
PER_MILLE = "per mille of full time (1000 = 100 %, 500 = half)"
MAX_SERVICES = 1000  # the catalogue has 557


class StrictBoolean(fields.Boolean):
    """JSON true or false, nothing else (``fields.Boolean`` takes 1, "yes" and "on" as true)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


def _id(description: str, **kwargs) -> fields.Integer:
    return fields.Integer(
        strict=True,
        validate=validate.Range(min=1, max=MAX_ID, error="Must be an id from {min} to {max}."),
        error_messages={"invalid": "Must be an id: a JSON integer."},
        metadata={"description": description},
        **kwargs,
    )


def _text(limit: int, *, minimum: int = 0, **kwargs) -> fields.String:
    return fields.String(validate=validate.Length(min=minimum, max=limit), **kwargs)


def _key(description: str, *lengths: int, **kwargs) -> fields.String:
    validator = Digits(*lengths)
    return fields.String(
        validate=validator, metadata={"pattern": validator.pattern, "description": description}, **kwargs
    )


def _cents_out(description: str) -> fields.Integer:
    return fields.Integer(dump_only=True, metadata={"description": f"{description}, in {CENTS}"})


def _lead_name(project) -> str | None:
    return person_name(project.lead) if project.lead is not None else None


# --- projects (what is read) ----------------------------------------------------------------------


class ParticipantSchema(Schema):
    """A member taking part in a project (public)."""

    municipality = fields.Function(
        lambda p: p.municipality.key,
        dump_only=True,
        metadata={"type": "string", "description": "official key"},
    )
    municipality_name = fields.Function(
        lambda p: p.municipality.name, dump_only=True, metadata={"type": "string"}
    )
    role = fields.String(dump_only=True, metadata={"enum": PARTICIPATION_ROLES})
    joined_on = fields.Date(dump_only=True)


class MilestoneSchema(Schema):
    id = fields.Integer(dump_only=True)
    title = fields.String(dump_only=True)
    due_on = fields.Date(dump_only=True)
    done_on = fields.Date(dump_only=True, allow_none=True, metadata={"description": "null: not done yet"})
    note = fields.String(dump_only=True)


class ProjectServiceBriefSchema(Schema):
    """An OZG service a project delivers."""

    ozg_id = fields.String(dump_only=True)
    name = fields.String(dump_only=True)


class ProjectBudgetSchema(Schema):
    """The ledger sums of the allocations to the project, over all years."""

    allocated_cents = _cents_out("amounts of the approved (not cancelled) allocations")
    committed_cents = _cents_out("committed to the project")
    paid_cents = _cents_out("paid to the project")


class ProjectPersonSchema(Schema):
    """An assignment of a person to the project (auditors read pseudonyms unless names are allowed)."""

    assignment_id = fields.Integer(attribute="id", dump_only=True)
    staff_id = fields.Integer(attribute="staff_member_id", dump_only=True)
    name = fields.Function(lambda a: person_name(a.staff_member), dump_only=True, metadata={"type": "string"})
    starts_on = fields.Date(dump_only=True)
    ends_on = fields.Date(dump_only=True, allow_none=True, metadata={"description": "null: open end"})
    fte = fields.Integer(dump_only=True, metadata={"description": PER_MILLE})
    role = fields.String(dump_only=True)


class ProjectSchema(Schema):
    """What every logged-in user sees of a project (public data): name, kind, status, period and
    participating members."""

    id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    kind = fields.String(dump_only=True, metadata={"enum": PROJECT_KINDS})
    status = fields.String(dump_only=True, metadata={"enum": PROJECT_STATUSES})
    starts_on = fields.Date(dump_only=True, allow_none=True)
    ends_on = fields.Date(dump_only=True, allow_none=True)
    participants = fields.List(fields.Nested(ParticipantSchema), attribute="participations", dump_only=True)


class ProjectFullSchema(ProjectSchema):
    """A project as the federation and auditors see it: also description, lead, milestones, the OZG
    services it delivers, its budget (ledger sums) and its people (assignments)."""

    description = fields.String(dump_only=True)
    lead = fields.Integer(
        attribute="lead_id",
        dump_only=True,
        allow_none=True,
        metadata={"description": "the lead (staff register id)"},
    )
    lead_name = fields.Function(_lead_name, dump_only=True, metadata={"type": "string", "nullable": True})
    milestones = fields.List(fields.Nested(MilestoneSchema), dump_only=True)
    services = fields.List(fields.Nested(ProjectServiceBriefSchema), dump_only=True)
    budget = fields.Nested(ProjectBudgetSchema, dump_only=True)
    people = fields.List(fields.Nested(ProjectPersonSchema), dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True, allow_none=True)


# --- projects (write bodies) ----------------------------------------------------------------------


class ProjectCreateSchema(Schema):
    """A new project (status ``idea``; it moves on through ``POST .../status``)."""

    class Meta:
        unknown = RAISE

    name = _text(200, minimum=1, required=True)
    kind = fields.String(required=True, validate=validate.OneOf(PROJECT_KINDS))
    description = _text(10_000, load_default="")
    starts_on = fields.Date(allow_none=True, load_default=None)
    ends_on = fields.Date(allow_none=True, load_default=None)
    lead = _id("the lead (staff register id; null: none)", allow_none=True, load_default=None)


class ProjectUpdateSchema(Schema):
    """Any subset of the project's fields (not its status)."""

    class Meta:
        unknown = RAISE

    name = _text(200, minimum=1)
    kind = fields.String(validate=validate.OneOf(PROJECT_KINDS))
    description = _text(10_000)
    starts_on = fields.Date(allow_none=True)
    ends_on = fields.Date(allow_none=True)
    lead = _id("the lead (staff register id; null: none)", allow_none=True)


class ProjectStatusChangeSchema(Schema):
    """idea → planned → running → completed; cancelled from any unfinished status."""

    class Meta:
        unknown = RAISE

    status = fields.String(required=True, validate=validate.OneOf(PROJECT_STATUSES))
    on = fields.Date(
        load_default=None,
        validate=validate.Range(
            min=date(2000, 1, 1), max=date(2100, 12, 31), error="Must lie between 2000 and 2100."
        ),
        metadata={
            "description": "the day (default today): start day when it starts running without one, "
            "end day when it completes without one"
        },
    )


class ParticipantCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    municipality = _key("official key of the member (AGS, Amt or Kreis key)", 5, 8, 9, required=True)
    role = fields.String(
        validate=validate.OneOf(PARTICIPATION_ROLES), load_default=ParticipationRole.PARTICIPANT.value
    )
    joined_on = fields.Date(load_default=None, metadata={"description": "default today"})


class MilestoneCreateSchema(Schema):
    class Meta:
        unknown = RAISE

    title = _text(300, minimum=1, required=True)
    due_on = fields.Date(required=True, metadata={"description": "inside the project's period"})
    done_on = fields.Date(allow_none=True, load_default=None, metadata={"description": "not in the future"})
    note = _text(5000, load_default="")


class MilestoneUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    title = _text(300, minimum=1)
    due_on = fields.Date()
    done_on = fields.Date(allow_none=True)
    note = _text(5000)


class ProjectServicesSchema(Schema):
    """The whole list of OZG services the project delivers (an empty list: none)."""

    class Meta:
        unknown = RAISE

    ozg_ids = fields.List(
        _text(10, minimum=1),
        required=True,
        validate=validate.Length(max=MAX_SERVICES),
        metadata={"description": "OZG-IDs of the catalogue"},
    )


# --- the OZG catalogue ----------------------------------------------------------------------------


class OzgServiceSchema(Schema):
    """An OZG-Leistung of the catalogue (public)."""

    ozg_id = fields.String(dump_only=True)
    name = fields.String(dump_only=True)
    topic = fields.String(dump_only=True, metadata={"description": "Themenfeld"})
    life_event = fields.String(dump_only=True, metadata={"description": "Lebenslage"})
    leika_keys = fields.List(fields.String(), attribute="leika_key_list", dump_only=True)
    responsibility = fields.String(
        dump_only=True,
        metadata={
            "enum": RESPONSIBILITIES,
            "description": "who provides it; only municipal services count in municipal progress",
        },
    )


class OzgServiceUpdateSchema(Schema):
    class Meta:
        unknown = RAISE

    responsibility = fields.String(required=True, validate=validate.OneOf(RESPONSIBILITIES))


# --- OZG status -----------------------------------------------------------------------------------


class OzgStatusSchema(Schema):
    """What is known of one municipality's implementation of one service (public data). A pair of
    municipality and service without a row is at maturity 0."""

    municipality = fields.Function(
        lambda s: s.municipality.key, dump_only=True, metadata={"type": "string", "description": "AGS"}
    )
    municipality_name = fields.Function(
        lambda s: s.municipality.name, dump_only=True, metadata={"type": "string"}
    )
    ozg_id = fields.Function(lambda s: s.service.ozg_id, dump_only=True, metadata={"type": "string"})
    service = fields.Function(lambda s: s.service.name, dump_only=True, metadata={"type": "string"})
    topic = fields.Function(
        lambda s: s.service.topic, dump_only=True, metadata={"type": "string", "description": "Themenfeld"}
    )
    maturity = fields.Integer(dump_only=True, metadata={"description": "Reifegrad (model 1.x: 0 to 4)"})
    maturity_model = fields.String(dump_only=True, metadata={"enum": MATURITY_MODELS})
    online_since = fields.Date(dump_only=True, allow_none=True)
    url = fields.String(dump_only=True, metadata={"description": "the online service (empty: none)"})
    project = fields.Integer(
        attribute="project_id",
        dump_only=True,
        allow_none=True,
        metadata={"description": "delivering project"},
    )
    project_name = fields.Function(
        lambda s: s.project.name if s.project is not None else None,
        dump_only=True,
        metadata={"type": "string", "nullable": True},
    )
    efa = fields.Boolean(dump_only=True, metadata={"description": "an Einer-für-Alle service"})
    changed_at = fields.DateTime(dump_only=True)
    changed_by = fields.String(
        dump_only=True, metadata={"description": "who changed it (not shown to municipality users)"}
    )


class OzgStatusWriteSchema(Schema):
    """The whole status of one municipality's service (PUT: fields left out take their defaults).
    Maturity 0 with nothing else known removes the row."""

    class Meta:
        unknown = RAISE

    maturity = fields.Integer(
        strict=True,
        required=True,
        error_messages={"invalid": "Must be a whole number: a JSON integer."},
        metadata={"description": "Reifegrad (model 1.x: 0 to 4)", "minimum": 0, "maximum": 4},
    )
    maturity_model = fields.String(
        load_default=MaturityModel.V1.value, metadata={"enum": MATURITY_MODELS, "default": "1.x"}
    )
    online_since = fields.Date(
        allow_none=True, load_default=None, metadata={"description": "not in the future"}
    )
    url = fields.String(
        allow_none=True,
        load_default="",
        metadata={"description": "https:// address of the online service", "maxLength": 500},
    )
    project = _id("the delivering project (null: none)", allow_none=True, load_default=None)
    efa = StrictBoolean(
        load_default=False,
        metadata={"description": "an Einer-für-Alle service"},
    )
