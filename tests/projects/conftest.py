"""Fixtures shared by the projects and OZG tests: the members of the shipped list (from the funding
fixtures), a small OZG catalogue, a person of the staff register with a secondment, and a project.
Everything is rolled back after each test."""

from __future__ import annotations

from datetime import date
from importlib import resources

import pytest
from sqlalchemy import select

from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import services as project_services
from itvsh.projects.catalogue import import_catalogue
from itvsh.projects.models import OzgService, Project
from tests.funding.conftest import (  # noqa: F401  (fixtures re-used here)
    AMT_ACHTERWEHR,
    KIEL,
    KREIS_RD_ECK,
    KRUMMWISCH,
    NON_MEMBER,
    category,
    members,
    open_year,
)
from tests.staffing.conftest import person, secondment  # noqa: F401

ACTOR = "projects-test"
LUEBECK = "01003000"  # kreisfreie Stadt
# (ozg_id, name, topic, responsibility): two Themenfelder, one service of the Land.
SMALL_CATALOGUE = (
    ("10000", "Elterngeld", "Familie & Kind", "municipal"),
    ("10003", "Geburtsanzeige", "Familie & Kind", "municipal"),
    ("10169", "Führerschein", "Mobilität & Reisen", "municipal"),
    ("10170", "Fahrzeugzulassung", "Mobilität & Reisen", "municipal"),
    ("10999", "Landesleistung", "Mobilität & Reisen", "land"),
)


@pytest.fixture
def catalogue(app) -> dict[str, OzgService]:
    """A small catalogue of five services (four municipal), by OZG-ID."""
    set_scope(db.session, ALL)
    services = {}
    for ozg_id, name, topic, responsibility in SMALL_CATALOGUE:
        service = OzgService(ozg_id=ozg_id, name=name, topic=topic, responsibility=responsibility)
        db.session.add(service)
        services[ozg_id] = service
    db.session.commit()
    set_scope(db.session, ALL)
    return services


@pytest.fixture
def project(app, members) -> Project:  # noqa: F811  (the fixture, not the import)
    """A running shared-service project from 2020-01-01 to 2030-12-31."""
    set_scope(db.session, ALL)
    project = project_services.create_project(
        db.session,
        ACTOR,
        name="Digitaler Bauantrag",
        kind="shared_service",
        description="Gemeinsames Online-Verfahren",
        starts_on=date(2020, 1, 1),
        ends_on=date(2030, 12, 31),
    )
    project_services.change_status(db.session, ACTOR, project, "planned")
    project_services.change_status(db.session, ACTOR, project, "running")
    db.session.commit()
    set_scope(db.session, ALL)
    return project


def shipped_catalogue() -> bytes:
    """The shipped OZG catalogue (557 services, see itvsh/data/SOURCES.md)."""
    return resources.files("itvsh.data").joinpath("ozg_services.csv").read_bytes()


@pytest.fixture
def full_catalogue(app) -> dict[str, OzgService]:
    """The shipped catalogue of 557 services (all municipal), imported, by OZG-ID."""
    set_scope(db.session, ALL)
    import_catalogue(db.session, ACTOR, shipped_catalogue(), source="ozg_services.csv")
    db.session.commit()
    set_scope(db.session, ALL)
    return {s.ozg_id: s for s in db.session.execute(select(OzgService)).scalars()}
