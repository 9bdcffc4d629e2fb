"""The isolation harness's world and plan (tests/test_isolation.py; the requests are in
tests/isolation_walk.py): the identities, the world it builds (tenants with canaries in their
private data, one login per identity), the plan of every route filled with tenant A's ids and
keys, and the rule of who may read and write what.

Later issues join by declaring their views (``roles_allowed`` + ``tenant_params``) and, when they
add a new kind of tenant object, by giving A one such object in :func:`build_world` and naming
its kind in :data:`World.values`; a route whose parameters cannot be filled fails the harness.
"""

from __future__ import annotations

import hashlib
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask
from sqlalchemy import select

from itvsh.api import MAX_PER_PAGE as API_MAX_PER_PAGE
from itvsh.auth.roles import Role
from itvsh.core.access import PUBLIC, declared_roles
from itvsh.core.tenancy import ALL, TenantOwned, pop_scope, push_scope

# --- identities -------------------------------------------------------------------------------

A_KEY = "01002000"  # Kiel, kreisfreie Stadt: the tenant whose private data must not leak
B_KEY = "01003000"  # Lübeck, another kreisfreie Stadt
AMT_KEY = "010585803"  # Amt Achterwehr (Kiel is not one of its Gemeinden)
AMT_GEMEINDE_KEY = "01058093"  # Krummwisch, a Gemeinde of Amt Achterwehr
KREIS_KEY = "01058"  # Kreis Rendsburg-Eckernförde


@dataclass(frozen=True)
class Identity:
    name: str
    role: str | None  # None: anonymous
    tenant: str | None = None
    # Tenants whose private data this identity may see; ALL for the federation and auditors.
    sees: frozenset[str] | str = frozenset()

    @property
    def anonymous(self) -> bool:
        return self.role is None


IDENTITIES = (
    Identity("anonymous", None),
    Identity("A", Role.MUNICIPALITY, A_KEY, frozenset({A_KEY})),
    Identity("B", Role.MUNICIPALITY, B_KEY, frozenset({B_KEY})),
    Identity("amt", Role.MUNICIPALITY, AMT_KEY, frozenset({AMT_KEY, AMT_GEMEINDE_KEY})),
    Identity("kreis", Role.MUNICIPALITY, KREIS_KEY, frozenset({KREIS_KEY})),
    Identity("auditor", Role.AUDITOR, None, ALL),
    Identity("staff", Role.STAFF, None, ALL),
    Identity("admin", Role.ADMIN, None, ALL),
)
BY_NAME = {identity.name: identity for identity in IDENTITIES}
# Tenants given a private contact with a canary; A's is the one the routes are filled with.
CANARY_TENANTS = (A_KEY, B_KEY, AMT_KEY, AMT_GEMEINDE_KEY, KREIS_KEY)
PASSWORD = "isolation harness password"


def may_see(identity: Identity, tenant_key: str) -> bool:
    return identity.sees == ALL or tenant_key in identity.sees


# --- the world --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Canary:
    tenant: str
    token: str  # in the contact's name and email
    phone: str

    def found_in(self, text: str) -> list[str]:
        found = []
        if self.token in text:
            found.append(f"token {self.token}")
        if self.phone in text:
            found.append(f"phone {self.phone}")
        return found


@dataclass
class World:
    """What the harness made: user ids and emails per identity, canaries per tenant, and the
    values that fill tenant parameters (all of them A's)."""

    users: dict[str, int]
    emails: dict[str, str]
    tokens: dict[str, str]  # an API token per logged-in identity
    tenant_ids: dict[str, int]
    canaries: dict[str, Canary]
    # kind -> A's value: what a route's tenant_params / an admin view's ?id= is filled with.
    values: dict[str, object]
    # admin model -> the kind of A's row that fills its ?id=
    model_kinds: dict[type, str] = field(default_factory=dict)


def build_world(session, actor: str = "isolation-test") -> World:
    """Tenants (the shipped list), memberships, a private contact with a canary for each canary
    tenant, one user per identity and an API token of A's user. Commits."""
    from itvsh.auth import services as auth_services
    from itvsh.auth.models import ApiToken, User
    from itvsh.core.audit import AuditEvent
    from itvsh.demo import shipped_list
    from itvsh.funding.models import Allocation, Booking, BudgetCategory, FiscalYear
    from itvsh.projects.models import Milestone, OzgService, OzgStatus, Project
    from itvsh.reports.models import Report
    from itvsh.staffing.models import Assignment, Secondment, StaffMember
    from itvsh.tenants import services as tenant_services
    from itvsh.tenants.importer import import_municipalities
    from itvsh.tenants.models import Membership, Municipality, MunicipalityContact

    previous = push_scope(session, ALL)
    try:
        if tenant_services.get_by_key(session, A_KEY) is None:
            import_municipalities(session, actor, shipped_list(), source="sh_municipalities.csv")
        tenants = {key: tenant_services.get_by_key(session, key) for key in CANARY_TENANTS}
        for key in (A_KEY, B_KEY, AMT_GEMEINDE_KEY):
            if not tenant_services.is_current_member(session, tenants[key].id):
                tenant_services.join(session, actor, tenants[key], date(2019, 1, 1))
        canaries, contacts = {}, {}
        for key in CANARY_TENANTS:
            token = f"cnry{key}x{secrets.token_hex(6)}"
            phone = "+49 " + "".join(secrets.choice("0123456789") for _ in range(11))
            contact = MunicipalityContact(
                municipality=tenants[key],
                role="Isolation canary",
                name=f"Canary {token}",
                email=f"{token}@canary.example",
                phone=phone,
                address=f"Canary street 1, {token}",
            )
            tenant_services.save_contact(session, actor, contact, None)
            canaries[key] = Canary(key, token, phone)
            contacts[key] = contact
        funding = _funding_canaries(session, actor, tenants, canaries)
        staffing = _staffing_canaries(session, actor, tenants, canaries)
        projects = _projects_world(session, actor, tenants)
        reports = _reports_world(session, actor, tenants, canaries)
        users, emails = {}, {}
        for identity in IDENTITIES:
            if identity.anonymous:
                continue
            email = f"iso-{identity.name}-{secrets.token_hex(4)}@test.example"
            user = auth_services.create_user(
                session, actor, email=email, role=identity.role, password=PASSWORD, tenant_key=identity.tenant
            )
            users[identity.name], emails[identity.name] = user.id, email
        session.flush()
        tokens = {
            name: auth_services.issue_token(session, actor, session.get(User, uid))
            for name, uid in users.items()
        }
        a = tenants[A_KEY]
        token_id = session.execute(select(ApiToken.id).where(ApiToken.user_id == users["A"])).scalar_one()
        membership_id = session.execute(
            select(Membership.id).where(Membership.municipality_id == a.id)
        ).scalar_one()
        session.commit()
        event_id = session.execute(
            select(AuditEvent.id).where(
                AuditEvent.entity == "municipality_contact",
                AuditEvent.action == "create",
                AuditEvent.entity_id == str(contacts[A_KEY].id),
            )
        ).scalar_one()
        values = {
            "municipality_key": a.key,
            "municipality_id": a.id,
            "contact_id": contacts[A_KEY].id,
            "membership_id": membership_id,
            "user_id": users["A"],
            "api_token_id": token_id,
            "audit_event_id": event_id,
            **funding,
            **staffing,
            **projects,
            **reports,
        }
        return World(
            users=users,
            emails=emails,
            tokens=tokens,
            tenant_ids={key: m.id for key, m in tenants.items()},
            canaries=canaries,
            values=values,
            # Admin model views are filled by model: A's row of that model.
            model_kinds={
                Municipality: "municipality_id",
                MunicipalityContact: "contact_id",
                Membership: "membership_id",
                User: "user_id",
                ApiToken: "api_token_id",
                AuditEvent: "audit_event_id",
                FiscalYear: "fiscal_year_id",
                BudgetCategory: "category_id",
                Allocation: "allocation_id",
                Booking: "booking_id",
                StaffMember: "staff_id",
                Secondment: "secondment_id",
                Assignment: "assignment",
                Project: "project_id",
                OzgService: "ozg_service_id",
                OzgStatus: "ozg_status_id",
                Milestone: "milestone_id",
                Report: "report_id",
            },
        )
    finally:
        pop_scope(session, previous)


def _funding_canaries(session, actor, tenants, canaries) -> dict:
    """An open year, and for each member canary tenant an approved, part-paid allocation whose
    purpose, file reference and payment note carry the tenant's canary. Returns A's ids."""
    from itvsh.funding import ledger
    from itvsh.funding.models import BudgetCategory
    from itvsh.tenants import services as tenant_services

    year = ledger.get_year(session, date.today().year)
    if year is None:
        year = ledger.create_fiscal_year(session, actor, date.today().year)
        ledger.open_year(session, actor, year)
    category = (
        session.execute(
            select(BudgetCategory).where(BudgetCategory.fiscal_year_id == year.id).order_by(BudgetCategory.id)
        )
        .scalars()
        .first()
    )
    values = {}
    for key, municipality in tenants.items():
        if not tenant_services.is_current_member(session, municipality.id):
            continue
        token = canaries[key].token
        allocation = ledger.create_allocation(
            session,
            actor,
            fiscal_year=year,
            category=category,
            recipient_kind="member",
            municipality=municipality,
            purpose=f"Canary {token}",
            amount_cents=1_000_00,
            file_reference=f"AZ-{token}",
        )
        ledger.approve(session, actor, allocation)
        payment = ledger.disburse(session, actor, allocation, 400_00, note=f"Canary {token}")
        if key == A_KEY:
            values = {
                "fiscal_year": year.year,
                "fiscal_year_id": year.id,
                "category_id": category.id,
                "allocation_id": allocation.id,
                "booking_id": payment.id,
            }
    return values


def _staffing_canaries(session, actor, tenants, canaries) -> dict:
    """One seconded person working a tenth of their time for each member canary tenant; the
    assignment's role text carries the tenant's canary (a member's staff assignments are its
    private data; the person's name is not). Returns A's ids."""
    from itvsh.staffing import services
    from itvsh.tenants import services as tenant_services

    person = services.create_staff_member(
        session,
        actor,
        name="Isolation Person",
        work_email=f"iso-person-{secrets.token_hex(4)}@itv-sh.example",
        annual_cost_cents=70_000_00,
    )
    secondment = services.create_secondment(
        session,
        actor,
        staff_member=person,
        instrument="abordnung",
        starts_on=date(2019, 1, 1),
        ends_on=None,
        fte=1000,
        cost_bearer="federation",
    )
    values = {"staff_id": person.id, "secondment_id": secondment.id}
    for key, municipality in tenants.items():
        if not tenant_services.is_current_member(session, municipality.id):
            continue
        assignment = services.create_assignment(
            session,
            actor,
            staff_member=person,
            municipality=municipality,
            starts_on=date(2019, 1, 1),
            ends_on=None,
            fte=100,
            role=f"Canary {canaries[key].token}",
        )
        if key == A_KEY:
            values["assignment"] = assignment.id
    return values


def _projects_world(session, actor, tenants) -> dict:
    """A small OZG catalogue, a running project A takes part in (with a milestone), and A's status of
    one service. All of it is public data (the monitoring shows it); private to staff are the
    project's budget and people, which carry no tenant. Returns the ids."""
    from itvsh.projects import ozg
    from itvsh.projects import services as project_services
    from itvsh.projects.models import OzgService

    services = [
        OzgService(ozg_id=ozg_id, name=name, topic=topic)
        for ozg_id, name, topic in (
            ("10000", "Elterngeld", "Familie & Kind"),
            ("10169", "Führerschein", "Mobilität & Reisen"),
        )
    ]
    session.add_all(services)
    session.flush()
    ozg.recompute_tallies(session)
    project = project_services.create_project(
        session, actor, name="Isolation Project", kind="shared_service", starts_on=date(2020, 1, 1)
    )
    project_services.change_status(session, actor, project, "planned")
    project_services.change_status(session, actor, project, "running")
    project_services.add_participant(session, actor, project, tenants[A_KEY], "pilot")
    milestone = project_services.add_milestone(
        session, actor, project, title="Isolation milestone", due_on=date(2020, 6, 1)
    )
    project_services.set_services(session, actor, project, services)
    status = ozg.set_status(session, actor, tenants[A_KEY], services[0], maturity=3, project=project).status
    return {
        "ozg_status_id": status.id,
        "project_id": project.id,
        "milestone_id": milestone.id,
        "ozg_id": services[0].ozg_id,
        "ozg_service_id": services[0].id,
    }


def _reports_world(session, actor, tenants, canaries) -> dict:
    """For each member canary tenant a finished statement whose file carries the tenant's canary
    (a member's statements are its private data), as a job would have left it. Returns A's id."""
    from flask import current_app

    from itvsh.reports.models import Report, ReportStatus
    from itvsh.tenants import services as tenant_services

    values = {}
    for key, municipality in tenants.items():
        if not tenant_services.is_current_member(session, municipality.id):
            continue
        report = Report(
            kind="municipality_statement",
            format="pdf",
            parameters={"ags": key},
            municipality_id=municipality.id,
            status=ReportStatus.FINISHED.value,
            progress=100,
            requested_by_label=actor,
            file_name=f"statement-{key}.pdf",
            summary={},
            error="",
        )
        session.add(report)
        session.flush()
        folder = Path(current_app.config["ITVSH_REPORTS_DIR"]) / str(report.id)
        folder.mkdir(parents=True, exist_ok=True)
        body = f"%PDF-1.4 statement of {key}: Canary {canaries[key].token}\n".encode()
        (folder / report.file_name).write_bytes(body)
        report.file_size = len(body)
        report.sha256 = hashlib.sha256(body).hexdigest()
        if key == A_KEY:
            values["report_id"] = report.id
    return values


# --- the plan ---------------------------------------------------------------------------------

# Route parameters that name no tenant's object, and how to fill them. Anything else must be
# declared with tenant_params (or added here deliberately): the harness refuses to guess.
UNTYPED_PARAMS: dict[str, tuple] = {
    "export_type": ("csv", "xlsx"),
    "year": (date.today().year,),  # a fiscal year: its totals are public money
}
# Undeclared parameters that still name A's objects (admin-only routes need no tenant_params).
UNDECLARED_KINDS = {
    "user_id": "user_id",
    "staff_id": "staff_id",  # the staff register and secondments: federation data, no tenant's
    "secondment_id": "secondment_id",
    "project_id": "project_id",  # projects, their milestones and the OZG catalogue: public data
    "milestone_id": "milestone_id",
    "ozg_id": "ozg_id",
}
# Tenant-param kinds naming public master data (another tenant may read it, without private parts);
# every other kind names a private object, which another tenant's user must get 404 for.
PUBLIC_KINDS = frozenset(
    {
        "municipality_key",
        "municipality_id",
        "fiscal_year",
        "fiscal_year_id",
        "category_id",
        "project_id",
        "milestone_id",
        "ozg_id",
        "ozg_service_id",
        "ozg_status_id",
    }
)
SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})
HACKED = "HACKED by the isolation harness"


class Unfillable(Exception):
    """A route parameter the harness does not know how to fill: handle it explicitly."""


@dataclass(frozen=True)
class Probe:
    endpoint: str
    rule: str
    method: str
    url: str
    kinds: tuple[str, ...] = ()  # tenant kinds filled in (A's objects)
    admin_view: str | None = None  # the admin view's endpoint, for its model views
    body: tuple = ()  # fixed form fields (admin delete/action/ajax), as pairs

    @property
    def is_write(self) -> bool:
        return self.method != "GET"

    @property
    def is_api(self) -> bool:
        return self.url.startswith("/api/")

    @property
    def view_name(self) -> str:
        return self.endpoint.split(".", 1)[1] if "." in self.endpoint else self.endpoint

    @property
    def private(self) -> bool:
        """It names one of A's private objects (not only public master data)."""
        return any(kind not in PUBLIC_KINDS for kind in self.kinds)

    def __str__(self) -> str:
        return f"{self.method} {self.url} [{self.endpoint}]"


def is_static(endpoint: str) -> bool:
    return endpoint == "static" or endpoint.endswith(".static")


def admin_views(app: Flask) -> dict:
    return app.extensions.get("itvsh_admin_views", {})


def _value(world: World, kind: str, where: str):
    if kind not in world.values:
        raise Unfillable(
            f"{where}: tenant parameter kind {kind!r} is unknown to the harness -- give tenant A an "
            f"object of that kind in tests/isolation_support.py build_world and add it to World.values"
        )
    return world.values[kind]


def _admin_model_kind(view, world: World) -> str:
    model = getattr(view, "model", None)
    kind = world.model_kinds.get(model)
    if kind is None:
        if model is not None and issubclass(model, TenantOwned):
            raise Unfillable(
                f"admin view {view.endpoint} shows the tenant-owned model {model.__name__}: give tenant A "
                f"a row of it in build_world and map the model in World.model_kinds"
            )
        raise Unfillable(
            f"admin view {view.endpoint} shows {getattr(model, '__name__', model)!r}, which the harness "
            f"does not know: map it to one of A's rows in World.model_kinds"
        )
    return kind


def plan(app: Flask, world: World) -> tuple[list[Probe], list[str]]:
    """Every rule x method (static, HEAD and OPTIONS aside), filled with A's ids and keys.
    Returns the probes and the routes that could not be filled (each a reason)."""
    probes: list[Probe] = []
    problems: list[str] = []
    views = admin_views(app)
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: (r.rule, r.endpoint)):
        if is_static(rule.endpoint):
            continue
        where = f"{rule.rule} ({rule.endpoint})"
        try:
            probes.extend(_probes_for(app, rule, views, world, where))
        except Unfillable as exc:
            problems.append(str(exc) if str(exc).startswith(rule.rule) else f"{where}: {exc}")
    return probes, problems


def _probes_for(app, rule, views, world, where) -> list[Probe]:
    view_fn = app.view_functions[rule.endpoint]
    declared: dict[str, str] = dict(getattr(view_fn, "itvsh_tenant_params", None) or {})
    admin_view = views.get(rule.endpoint.split(".", 1)[0])
    methods = sorted(set(rule.methods or ()) - SKIPPED_METHODS)
    # Path arguments: declared tenant params, or deliberately untyped ones.
    choices: dict[str, tuple] = {}
    kinds: list[str] = []
    for name in sorted(rule.arguments):
        if name in declared:
            choices[name] = (_value(world, declared[name], where),)
            kinds.append(declared[name])
        elif name in UNDECLARED_KINDS:
            choices[name] = (_value(world, UNDECLARED_KINDS[name], where),)
            kinds.append(UNDECLARED_KINDS[name])
        elif name in UNTYPED_PARAMS:
            choices[name] = UNTYPED_PARAMS[name]
        else:
            raise Unfillable(
                f"{where}: cannot fill the parameter {name!r}: declare it with "
                f"itvsh.core.access.tenant_params or add it to UNTYPED_PARAMS in tests/isolation_support.py"
            )
    # Declared params that are not path arguments travel in the query string (and form bodies).
    query: dict[str, object] = {}
    for name, kind in sorted(declared.items()):
        if name not in rule.arguments:
            query[name] = _value(world, kind, where)
            kinds.append(kind)
    if rule.rule.startswith("/api/") and "GET" in methods and not rule.arguments:
        # API lists: the largest page, so a leak (or a positive control's canary) is not hidden
        # behind the first page of newer rows
        query["per_page"] = API_MAX_PER_PAGE
    view_name = rule.endpoint.split(".", 1)[1] if "." in rule.endpoint else rule.endpoint
    body_variants: list[tuple] = [()]
    if admin_view is not None and hasattr(admin_view, "model"):
        if view_name in ("details_view", "edit_view"):
            kind = _admin_model_kind(admin_view, world)
            query["id"] = world.values[kind]
            kinds.append(kind)
        elif view_name == "delete_view":
            kind = _admin_model_kind(admin_view, world)
            body_variants = [(("id", str(world.values[kind])), ("url", admin_view.url + "/"))]
            kinds.append(kind)
        elif view_name == "action_view":
            kind = _admin_model_kind(admin_view, world)
            names = [name for name, _text in admin_view._actions] or ["delete"]
            body_variants = [(("action", name), ("rowid", str(world.values[kind]))) for name in names]
            kinds.append(kind)
        elif view_name == "ajax_update":
            kind = _admin_model_kind(admin_view, world)
            editable = [c if isinstance(c, str) else c.key for c in (admin_view.column_editable_list or ())]
            column = editable[0] if editable else "name"
            body_variants = [(("list_form_pk", str(world.values[kind])), (column, HACKED))]
            kinds.append(kind)
        elif view_name == "ajax_lookup":
            refs = sorted(getattr(admin_view, "_form_ajax_refs", None) or {}) or ["none"]
            body_variants = [()]
            query_variants = [{"name": ref, "query": "Ki"} for ref in refs]
            return [
                _probe(rule, method, values, {**query, **q}, kinds, admin_view, ())
                for method in methods
                for values in _product(choices)
                for q in query_variants
            ]
    return [
        _probe(rule, method, values, query, kinds, admin_view, body)
        for method in methods
        for values in _product(choices)
        for body in (body_variants if method != "GET" else [()])
    ]


def _product(choices: dict[str, tuple]) -> list[dict]:
    names = sorted(choices)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(choices[n] for n in names))]


def _probe(rule, method, values, query, kinds, admin_view, body) -> Probe:
    _domain, path = rule.build(values, append_unknown=False)
    url = path + ("?" + urlencode(query) if query else "")
    return Probe(
        endpoint=rule.endpoint,
        rule=rule.rule,
        method=method,
        url=url,
        kinds=tuple(dict.fromkeys(kinds)),
        admin_view=admin_view.endpoint if admin_view is not None else None,
        body=body,
    )


def undeclared_endpoints(app: Flask) -> list[str]:
    """Endpoints (static aside) without roles_allowed/public: the central check denies them, and
    the harness refuses them."""
    return sorted(
        {
            rule.endpoint
            for rule in app.url_map.iter_rules()
            if not is_static(rule.endpoint) and declared_roles(app, rule.endpoint) is None
        }
    )


# --- who may do what --------------------------------------------------------------------------


def admitted(app: Flask, identity: Identity, probe: Probe) -> bool:
    """The central access check lets ``identity`` reach the view at all."""
    roles = declared_roles(app, probe.endpoint)
    if roles == PUBLIC:
        return True
    return not identity.anonymous and identity.role in roles


def write_entitled(app: Flask, identity: Identity, probe: Probe) -> bool:
    """May this write change the database? Public writes act on the caller's own session
    (login, logout, language); everything else needs the role, write rights (auditors read
    only), and -- for a municipality user -- the objects must be its own (A's) or not named."""
    roles = declared_roles(app, probe.endpoint)
    if roles == PUBLIC:
        return True
    if identity.anonymous or identity.role not in roles:
        return False
    if identity.role == Role.AUDITOR:
        return probe.admin_view is None and not probe.kinds
    if identity.role == Role.MUNICIPALITY:
        return identity.name == "A" or not probe.kinds
    return True
