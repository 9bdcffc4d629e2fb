"""The FTE-months that went to each shared project in a year (staffing's effort page and service)."""

from __future__ import annotations

import html
from datetime import date
from fractions import Fraction

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.staffing import services as staffing
from tests.projects.conftest import ACTOR, KIEL


def test_effort_per_project_next_to_the_members(client, login_as, members, project, person, secondment):
    staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=None,
        project=project,
        target_kind="project",
        starts_on=date(2021, 1, 1),
        ends_on=date(2021, 12, 31),
        fte=500,
    )
    staffing.create_assignment(
        db.session,
        ACTOR,
        staff_member=person,
        municipality=members[KIEL],
        starts_on=date(2021, 7, 1),
        ends_on=date(2021, 12, 31),
        fte=500,
    )
    db.session.commit()
    set_scope(db.session, ALL)
    effort = staffing.effort_by_target(db.session, 2021)
    assert effort.by_project == {project.id: Fraction(6)}  # half time for twelve months
    assert effort.projects_total == 6 and effort.total == 3  # the member's three FTE-months apart
    login_as("staff")
    body = html.unescape(client.get("/admin/staffing/effort/?year=2021").get_data(as_text=True))
    section = body.split("itvsh-effort-projects", 1)[1].split("</section>", 1)[0]
    assert project.name in section and 'data-fraction="6/1"' in section
