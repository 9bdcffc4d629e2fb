"""The tenant isolation harness (issue 3, item 6): every rule of ``app.url_map`` x its methods x
{anonymous, municipality A (Kiel), municipality B (Lübeck), an Amt user (Achterwehr), a Kreis user
(Rendsburg-Eckernförde), auditor, staff, admin}, with each route's parameters filled with A's ids
and keys (``tenant_params`` declarations, and ``?id=`` of the admin's model views).

A committed database per module holds the 1,201 tenants and a private contact with a canary for
A and four other tenants. The walk asserts: A (and staff/admin/auditors on admin routes) see A's
canary where the route is meant to show it (so it cannot pass vacuously); nobody without the right
sees any canary in any response; denied writes leave the database unchanged; nothing answers 500;
the central access check answers every route; another tenant's private object answers 404; and a
route without an access declaration, or with parameters the harness cannot fill, fails it.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import pytest
from flask import Flask

from itvsh import create_app
from itvsh.auth.roles import Role
from itvsh.core.access import public, roles_allowed, tenant_params
from itvsh.extensions import db
from tests.conftest import drop_database, migrated_database
from tests.conftest import test_config as config_for
from tests.isolation_support import (
    A_KEY,
    AMT_GEMEINDE_KEY,
    AMT_KEY,
    BY_NAME,
    IDENTITIES,
    KREIS_KEY,
    Probe,
    World,
    admitted,
    build_world,
    is_static,
    plan,
    undeclared_endpoints,
    write_entitled,
)
from tests.isolation_walk import Walker, csrf_from

FEDERATION_READERS = {"staff", "admin", "auditor"}


def _shape(rule: str) -> str:
    """A rule with its parameter names blanked: ``/api/v1/municipalities/<>``."""
    return re.sub(r"<[^>]*>", "<>", rule)


# Routes meant to show A's private data, and to whom: A's user (portal, API) and the federation
# (admin, API). Each must answer 200 WITH A's canary. Later issues add their routes here.
POSITIVE_CONTROLS = (
    ("/portal/", {"A"}),
    ("/portal/funding/", {"A"}),
    ("/portal/municipalities/<>", {"A"}),
    ("/api/v1/municipalities/<>", {"A"} | FEDERATION_READERS),
    ("municipalities.details_view", FEDERATION_READERS),
    ("municipality_contacts.index_view", FEDERATION_READERS),
    ("municipality_contacts.details_view", FEDERATION_READERS),
    ("municipality_contacts.edit_view", {"staff", "admin"}),
    ("municipality_contacts.export", FEDERATION_READERS),
    ("audit_events.details_view", {"admin", "auditor"}),
    ("audit_events.export", {"admin", "auditor"}),
    ("api.list_audit_events", {"admin", "auditor"}),
    ("/api/v1/allocations/<>", {"A"} | FEDERATION_READERS),
    ("api.list_allocations", {"A"} | FEDERATION_READERS),
    ("api.list_bookings", {"A"} | FEDERATION_READERS),
    ("funding_allocations.index_view", FEDERATION_READERS),
    ("funding_allocations.details_view", FEDERATION_READERS),
    ("funding_bookings.index_view", FEDERATION_READERS),
    ("/portal/staff/", {"A"}),
    ("assignments.index_view", FEDERATION_READERS),
    ("assignments.export", FEDERATION_READERS),
    ("api.list_assignments", {"A"} | FEDERATION_READERS),
    ("api.get_assignment", {"A"} | FEDERATION_READERS),
    ("municipalities.details_view", FEDERATION_READERS),
    ("reports.download", {"A"} | FEDERATION_READERS),
    ("api.get_report_file", {"A"} | FEDERATION_READERS),
)
# Routes the issue names: the harness must walk them (they are where the tenants issue shows
# private data).
REQUIRED_ROUTES = (
    "/portal/municipalities/<>",
    "/api/v1/municipalities/<>",
    "municipality_contacts.index_view",
)
# Pages about one tenant that another tenant's user must get 404 for (besides every route naming
# a private object by a tenant parameter).
OTHERS_GET_404 = ("/portal/municipalities/<>",)
# Writes that change the database when the right identity sends the harness's body: proof that
# the same request refused to the others would have done something.
WRITE_CONTROLS = (
    ("municipality_contacts.create_view", "staff"),  # a contact for A
    ("municipality_contacts.edit_view", "staff"),  # A's contact renamed
    ("municipality_contacts.action_view", "staff"),  # A's contact deleted (bulk action)
    ("municipalities.create_view", "staff"),
    ("municipalities.edit_view", "staff"),  # A renamed
    ("municipalities.membership_view", "staff"),  # A leaves today
    ("municipalities.import_view", "staff"),  # A renamed by the list
    ("municipalities.action_view", "staff"),  # bulk join/leave
    ("users.edit_view", "admin"),  # A's user deactivated
    ("users.action_view", "admin"),
    ("api.create_municipality", "staff"),
    ("api.update_municipality", "staff"),
    ("api.change_membership", "staff"),  # A joins again today
    ("api.create_user", "admin"),
)


@dataclass
class Walk:
    app: Flask
    world: World
    probes: list[Probe]
    problems: list[str]  # routes the harness could not fill
    walker: Walker


@pytest.fixture(scope="module")
def world_app(tmp_path_factory):
    url = migrated_database(tmp_path_factory, "isolation")
    app = create_app(config_for(url))
    with app.app_context():
        world = build_world(db.session)
        db.session.remove()
        engine = db.engine
    yield app, world, engine
    engine.dispose()
    drop_database(url)


@pytest.fixture(scope="module")
def walk(world_app):
    app, world, engine = world_app
    probes, problems = plan(app, world)
    walker = Walker(app, world, engine)
    walker.walk(probes)
    return Walk(app, world, probes, problems, walker)


def _matches(spec: str, result_or_probe) -> bool:
    probe = getattr(result_or_probe, "probe", result_or_probe)
    if spec.startswith("/"):
        return _shape(probe.rule) == spec
    return probe.endpoint == spec


# --- the plan covers everything -----------------------------------------------------------------


def test_every_endpoint_declares_who_may_use_it(walk):
    app = walk.app
    assert undeclared_endpoints(app) == [], "routes without roles_allowed/public"


def test_every_route_can_be_filled_with_tenant_a_values(walk):
    problems = walk.problems
    assert problems == [], "\n".join(problems)


def test_the_walk_covers_every_rule_method_and_identity(walk):
    app, probes, walker = walk.app, walk.probes, walk.walker
    wanted = {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if not is_static(rule.endpoint)
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    walked = Counter((r.probe.rule, r.probe.method, r.identity.name) for r in walker.results)
    assert {(rule, method) for rule, method, _ in walked} == wanted
    for rule, method in wanted:
        for identity in IDENTITIES:
            assert walked[(rule, method, identity.name)] >= 1, (rule, method, identity.name)
    print(
        f"\nisolation walk: {len(wanted)} rule x method pairs, {len(probes)} probes, "
        f"{len(walker.results)} probe requests ({walker.requests} requests in all)"
    )


@pytest.mark.parametrize("spec", REQUIRED_ROUTES)
def test_the_tenant_routes_of_the_issue_are_walked(walk, spec):
    probes = walk.probes
    assert any(_matches(spec, probe) for probe in probes), f"no route {spec} in app.url_map"


# --- what the walk found ----------------------------------------------------------------------


# The session cookie everywhere; an API token on the API, too.
_CONTROL_CASES = [(spec, who, "read") for spec, who in POSITIVE_CONTROLS] + [
    (spec, who, "bearer-read") for spec, who in POSITIVE_CONTROLS if spec.startswith(("/api/", "api."))
]


@pytest.mark.parametrize(
    ("spec", "who", "phase"), _CONTROL_CASES, ids=[f"{s}-{p}" for s, _, p in _CONTROL_CASES]
)
def test_positive_control_shows_a_canary_to_those_entitled(walk, spec, who, phase):
    walker = walk.walker
    reads = [r for r in walker.results if r.phase == phase and _matches(spec, r)]
    assert reads, f"no GET route {spec} was walked"
    for name in sorted(who):
        mine = [r for r in reads if r.identity.name == name]
        assert mine, (spec, name)
        shown = [r for r in mine if r.status == 200 and r.shows_a]
        assert shown, f"{name} did not get 200 with A's canary on {spec}: " + "; ".join(
            f"{r.probe.url} -> {r.status}" for r in mine
        )


def test_nobody_without_the_right_sees_a_tenants_private_data(walk):
    walker = walk.walker
    leaks = [
        f"{r} showed {key}'s private data: {', '.join(found)}"
        for r in walker.results
        for key, found in r.leaks.items()
    ]
    assert leaks == [], "\n".join(leaks)


def test_outsiders_never_see_a_canary_even_on_public_routes(walk):
    """The leak check above covers every canary; this one states the case of A's explicitly."""
    walker = walk.walker
    outsiders = {"anonymous", "B", "amt", "kreis"}
    shown = [str(r) for r in walker.results if r.identity.name in outsiders and r.shows_a]
    assert shown == []
    assert sum(1 for r in walker.results if r.identity.name in outsiders) > 100


def test_denied_writes_leave_the_database_unchanged(walk):
    walker = walk.walker
    denied = [r for r in walker.results if r.phase == "denied-write"]
    assert len(denied) > 50
    changed = [f"{r}: {'; '.join(r.changed)}" for r in denied if r.changed]
    assert changed == [], "\n".join(changed)
    admitted_answers = [str(r) for r in denied if r.status not in (401, 403, 404)]
    assert admitted_answers == [], "denied writes must answer 401/403/404"


def test_every_write_carried_a_valid_csrf_token(walk):
    walker = walk.walker
    writes = [r for r in walker.results if r.probe.is_write]
    assert len(writes) > 100
    assert [str(r) for r in writes if r.csrf_refused] == []
    assert walker.csrf_failures == 0


def test_nothing_answers_a_server_error(walk):
    walker = walk.walker
    errors = [str(r) for r in walker.results if r.status >= 500]
    assert errors == [], "\n".join(errors)


def test_the_central_check_answers_every_route_for_those_without_the_role(walk):
    app, walker = walk.app, walk.walker
    wrong = []
    for r in walker.results:
        if admitted(app, r.identity, r.probe):
            continue
        if not r.identity.anonymous:
            expected = r.status == 403
        elif r.probe.is_api or r.probe.is_write:
            expected = r.status == 401
        else:
            expected = r.status == 302 and r.location.startswith("/login?next=")
        if not expected:
            wrong.append(f"{r} (Location {r.location!r})")
    assert wrong == [], "\n".join(wrong)


def test_another_tenants_private_object_answers_404(walk):
    """A municipality user admitted to a route that names one of A's private objects by a tenant
    parameter (later: allocations, projects ...), or to a page about A, gets 404: not the object,
    and not a 403 that confirms it exists."""
    app, walker = walk.app, walk.walker
    checked, wrong = 0, []
    for r in walker.results:
        if r.identity.role != Role.MUNICIPALITY or r.identity.name == "A" or r.probe.admin_view:
            continue
        if not admitted(app, r.identity, r.probe):
            continue
        if r.probe.private or any(_matches(spec, r) for spec in OTHERS_GET_404):
            checked += 1
            if r.status != 404:
                wrong.append(str(r))
    assert wrong == [], "\n".join(wrong)
    assert checked >= 3 * len(OTHERS_GET_404)


@pytest.mark.parametrize(
    ("identity", "key", "sees"),
    [
        ("amt", AMT_GEMEINDE_KEY, True),  # an Amt sees its Gemeinden
        ("amt", AMT_KEY, True),
        ("amt", KREIS_KEY, False),
        ("kreis", KREIS_KEY, True),  # a Kreis sees the Kreis only
        ("kreis", AMT_GEMEINDE_KEY, False),
        ("kreis", AMT_KEY, False),
        ("B", AMT_GEMEINDE_KEY, False),
    ],
)
def test_hierarchy_scope_on_the_portal(walk, identity, key, sees):
    """The hierarchy's rule, with the other canaries: an Amt user's portal shows its Gemeinden's
    private data, a Kreis user's only the Kreis's."""
    app, walker = walk.app, walk.walker
    rule = next(r for r in app.url_map.iter_rules() if _shape(r.rule) == "/portal/municipalities/<>")
    probe = Probe(endpoint=rule.endpoint, rule=rule.rule, method="GET", url=f"/portal/municipalities/{key}")
    result = walker.run(BY_NAME[identity], probe, "hierarchy")
    if sees:
        assert result.status == 200
        assert key in result.shown, f"{identity} does not see {key}'s contact on its portal page"
    else:
        assert result.status == 404
        assert key not in result.shown
    assert result.leaks == {}


def test_entitled_writes_are_real_writes(walk):
    """The harness's write bodies do something when admitted (staff renaming and deleting A's
    contact, an admin deactivating A's user ...), so the same requests refused to everyone else
    prove something by changing nothing."""
    walker = walk.walker
    for spec, name in WRITE_CONTROLS:
        writes = [r for r in walker.results if r.probe.is_write and _matches(spec, r)]
        mine = [r for r in writes if r.identity.name == name]
        assert mine, f"{name}'s write {spec} was not sent"
        assert all(r.phase == "entitled-write" for r in mine)
        assert any(r.changed for r in mine), f"{name}'s write {spec} changed nothing: " + "; ".join(
            f"{r.probe} -> {r.status}" for r in mine
        )
        refused = {r.identity.name for r in writes if r.phase == "denied-write"}
        assert refused >= {"anonymous", "B", "amt", "kreis"}, (spec, refused)


# --- the harness itself fails on undeclared or unfillable routes --------------------------------


@pytest.fixture
def identity_clients(app, make_user):
    """A test client per identity of the harness (logged in through the session cookie) and its
    CSRF token, in the rolled-back ``app`` database."""

    def make() -> dict[str, tuple]:
        clients = {}
        for identity in IDENTITIES:
            client = app.test_client()
            if not identity.anonymous:
                user = make_user(identity.role, identity.tenant)
                with client.session_transaction() as session:
                    session["_user_id"] = user.get_id()
                    session["_fresh"] = True
            page = client.get("/login" if identity.anonymous else "/logout")
            clients[identity.name] = (client, csrf_from(page.get_data(as_text=True)))
        return clients

    return make


def test_a_route_without_access_declaration_fails_the_harness_and_is_denied(app, identity_clients):
    secret = "undeclared route secret"

    @tenant_params(key="municipality_key")
    def undeclared(key):
        return f"{secret} {key}"

    app.add_url_rule("/portal/test-undeclared/<key>", "test_undeclared", undeclared, methods=["GET", "POST"])
    app.add_url_rule("/api/v1/test-undeclared/<key>", "test_api_undeclared", undeclared)
    assert undeclared_endpoints(app) == ["test_api_undeclared", "test_undeclared"]
    for name, (client, token) in identity_clients().items():
        assert token, name
        for method, path in (
            ("GET", f"/portal/test-undeclared/{A_KEY}"),
            ("POST", f"/portal/test-undeclared/{A_KEY}"),
            ("GET", f"/api/v1/test-undeclared/{A_KEY}"),
        ):
            response = client.open(path, method=method, data={"csrf_token": token})
            assert response.status_code == 403, (name, method, path, response.status_code)
            assert secret not in response.get_data(as_text=True)


def test_a_route_whose_parameters_the_harness_cannot_fill_fails_the_plan(world_app):
    _app, world, _engine = world_app
    app = create_app(config_for("sqlite://"))

    @roles_allowed(Role.STAFF)
    def mystery(thing_id):
        return "ok"

    @roles_allowed(Role.MUNICIPALITY)
    @tenant_params(assignment_id="assignment_id")
    def assignment(assignment_id):
        return "ok"

    @public
    def fine(key):
        return "ok"

    app.add_url_rule("/test/mystery/<int:thing_id>", "test_mystery", mystery)
    app.add_url_rule("/test/assignments/<int:assignment_id>", "test_assignment", assignment)
    app.add_url_rule("/test/fine/<key>", "test_fine", tenant_params(key="municipality_key")(fine))
    probes, problems = plan(app, world)
    assert len(problems) == 2, problems
    assert any("/test/mystery/<int:thing_id>" in p and "'thing_id'" in p for p in problems)
    assert any("/test/assignments/<int:assignment_id>" in p and "'assignment_id'" in p for p in problems)
    assert [p.url for p in probes if p.endpoint == "test_fine"] == [f"/test/fine/{A_KEY}"]


def test_the_harness_knows_who_may_write(world_app):
    """The harness's own rule for which writes may change the database (a sanity check of it)."""
    app, world, _engine = world_app
    probes, _ = plan(app, world)
    by = {(p.endpoint, p.method) for p in probes}
    assert ("auth.login", "POST") in by
    login = next(p for p in probes if p.endpoint == "auth.login" and p.method == "POST")
    assert all(write_entitled(app, identity, login) for identity in IDENTITIES)
    admin_write = next(p for p in probes if p.endpoint == "municipalities.edit_view" and p.method == "POST")
    assert [i.name for i in IDENTITIES if write_entitled(app, i, admin_write)] == ["staff", "admin"]
    assert not write_entitled(app, BY_NAME["auditor"], admin_write)
