"""`itvsh ozg ...`: the catalogue import (happy path, a refused file exits non-zero listing every bad
line and writes nothing), the monthly snapshot (idempotent per month, a future month refused) and
the rebuild of the tallies -- each as "cli", committed once."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.models import OzgService, OzgSnapshot, OzgTally
from tests.projects.conftest import ACTOR, KIEL, KRUMMWISCH, shipped_catalogue


def run(runner, *args: str):
    result = runner.invoke(args=["ozg", *args])
    set_scope(db.session, ALL)
    return result


def succeeds(runner, *args: str) -> str:
    result = run(runner, *args)
    assert result.exit_code == 0, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def fails(runner, *args: str) -> str:
    result = run(runner, *args)
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.output


def _count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _events(action: str) -> list[AuditEvent]:
    return list(
        db.session.execute(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq))
        .scalars()
        .all()
    )


def _tallies() -> dict:
    db.session.expire_all()
    return {
        (t.scope, t.scope_id, t.topic): (t.possible, t.level1, t.level2, t.level3, t.level4)
        for t in db.session.execute(select(OzgTally)).scalars()
    }


# --- import --------------------------------------------------------------------------------------


def test_import_creates_the_catalogue_and_a_second_run_changes_nothing(runner, tmp_path):
    path = tmp_path / "ozg_services.csv"
    path.write_bytes(shipped_catalogue())
    output = succeeds(runner, "import", str(path))
    assert output.strip() == f"{path}: 557 created, 0 updated, 0 unchanged"
    assert _count(OzgService) == 557
    output = succeeds(runner, "import", str(path))
    assert output.strip() == f"{path}: 0 created, 0 updated, 557 unchanged"
    events = _events("import")
    assert [(e.actor, e.entity, e.after["created"]) for e in events] == [
        ("cli", "ozg_services", 557),
        ("cli", "ozg_services", 0),
    ]


def test_import_reports_services_missing_from_a_newer_file(runner, tmp_path, catalogue):
    path = tmp_path / "ozg_services.csv"
    path.write_bytes(shipped_catalogue())
    output = succeeds(runner, "import", str(path))
    assert output.strip() == (
        f"{path}: 554 created, 3 updated, 0 unchanged; 2 not in the file (kept, please review): 10170, 10999"
    )
    assert _count(OzgService) == 559


def test_a_bad_file_exits_1_lists_every_bad_line_and_writes_nothing(runner, tmp_path, catalogue):
    text = (
        shipped_catalogue().decode("utf-8").replace("\n10002,", "\n1002,").replace(",Geburtsanzeige,", ",,")
    )
    path = tmp_path / "broken.csv"
    path.write_text(text, encoding="utf-8")
    before = _count(OzgService), len(_events("import"))
    output = fails(runner, "import", str(path))
    assert "line 4: bad OZG-ID '1002': 5 digits" in output
    assert "line 5: missing name" in output
    assert f"Error: {path}: 2 bad line(s); nothing was imported" in output
    assert (_count(OzgService), len(_events("import"))) == before
    db.session.expire_all()
    assert catalogue["10000"].life_event == ""  # the good lines were not written either


def test_a_file_in_another_encoding_is_refused(runner, tmp_path):
    path = tmp_path / "windows.csv"
    path.write_bytes(shipped_catalogue().decode("utf-8").encode("cp1252"))
    output = fails(runner, "import", str(path))
    assert "line 3: not UTF-8 (byte 11); save the file as UTF-8" in output  # 10001 "Erklärung"
    assert "line 2:" not in output  # 10000 Elterngeld is plain ASCII
    assert "nothing was imported" in output
    assert _count(OzgService) == 0


def test_import_needs_an_existing_file(runner, tmp_path):
    result = run(runner, "import", str(tmp_path / "nowhere.csv"))
    assert result.exit_code == 2 and "does not exist" in result.output
    assert _count(OzgService) == 0


# --- snapshot ------------------------------------------------------------------------------------


def test_snapshot_stores_the_month_once(runner, members, catalogue):
    ozg.recompute_tallies(db.session)
    ozg.set_status(db.session, ACTOR, members[KIEL], catalogue["10000"], maturity=4)
    db.session.commit()
    set_scope(db.session, ALL)
    kreise = db.session.execute(
        select(func.count()).select_from(OzgTally).where(OzgTally.scope.in_(["land", "kreis"]))
    ).scalar_one()
    assert kreise == (1 + 15) * 3  # the Land and 15 Kreise (incl. kreisfreie Städte), 2 topics + all
    output = succeeds(runner, "snapshot", "--month", "2024-05")
    assert output.strip() == f"2024-05: snapshot stored ({kreise} rows)"
    ozg.set_status(db.session, ACTOR, members[KRUMMWISCH], catalogue["10000"], maturity=3)
    db.session.commit()
    output = succeeds(runner, "snapshot", "--month", "2024-05")
    assert output.strip() == "2024-05: a snapshot is stored already; nothing changed"
    land = db.session.execute(
        select(OzgSnapshot).where(OzgSnapshot.scope == "land", OzgSnapshot.topic == "")
    ).scalar_one()
    assert (land.month, land.possible, land.level3, land.level4) == (date(2024, 5, 1), 1106 * 4, 0, 1)
    assert _count(OzgSnapshot) == kreise
    assert [(e.actor, e.entity_id, e.after) for e in _events("snapshot")] == [
        ("cli", "2024-05-01", {"rows": kreise})
    ]


def test_snapshot_defaults_to_this_month_and_refuses_a_future_one(runner, members, catalogue):
    ozg.recompute_tallies(db.session)
    db.session.commit()
    this_month = date.today().replace(day=1)
    output = succeeds(runner, "snapshot")
    assert output.startswith(f"{this_month:%Y-%m}: snapshot stored (")
    assert set(db.session.execute(select(OzgSnapshot.month)).scalars()) == {this_month}
    following = date(this_month.year + (this_month.month == 12), this_month.month % 12 + 1, 1)
    output = fails(runner, "snapshot", "--month", f"{following:%Y-%m}")
    assert f"--month: {following:%Y-%m} lies in the future" in output
    result = run(runner, "snapshot", "--month", "2024-13")
    assert result.exit_code == 2 and "--month" in result.output
    assert set(db.session.execute(select(OzgSnapshot.month)).scalars()) == {this_month}


# --- recompute -----------------------------------------------------------------------------------


def test_recompute_rebuilds_the_tallies(runner, members, catalogue):
    ozg.recompute_tallies(db.session)
    ozg.set_status(db.session, ACTOR, members[KIEL], catalogue["10000"], maturity=3)
    ozg.set_status(db.session, ACTOR, members[KRUMMWISCH], catalogue["10169"], maturity=1)
    db.session.commit()
    set_scope(db.session, ALL)
    kept = _tallies()
    # drift: a tally row damaged by hand, another one lost
    db.session.execute(OzgTally.__table__.update().where(OzgTally.scope == "land").values(level3=99))
    db.session.execute(OzgTally.__table__.delete().where(OzgTally.scope == "kreis"))
    db.session.commit()
    set_scope(db.session, ALL)
    assert _tallies() != kept
    output = succeeds(runner, "recompute")
    assert output.strip() == f"{len(kept)} tally rows rebuilt"
    assert _tallies() == kept
    assert [(e.actor, e.entity, e.after) for e in _events("recompute")] == [
        ("cli", "ozg_tallies", {"rows": len(kept)})
    ]
