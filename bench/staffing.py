"""Staffing benchmark, measured against floors in the same run (../shared/design/BENCH.md):

(a) checking a new assignment against one person's history of BENCH_HISTORY (120) monthly
    assignments, in a database where 1 other person has such a history ("small") and in one where
    BENCH_OTHERS (500) other people have ("large"): ``services.check_assignment`` alone, and the
    whole unit of work ``services.create_assignment`` (lock, check, insert, audit) followed by a
    rollback; BENCH_CHECKS (100) checks per run, a warm-up, then BENCH_RUNS (5) runs alternating between the
    two databases, min and median per check. The figure is the ratio large/small (target ~1.0x:
    the check reads only the person's own rows) and the SQL statements per check, which must be
    equal at both sizes. Floor: one bare Core select of the person's assignments in that secondment
    (the least any check has to read).
(b) the capacity timeline over 10 years (``services.capacity`` from January 2019 to December 2028,
    as the timeline screen calls it: the people chosen, then their months) for 5 and for 50 people
    with 10 years of assignments each: the statements (must be the same for 5 and 50) and the time
    per person-month, against the floor "the same secondment and assignment rows read with two bare
    Core selects".

The other people's histories are written with Core inserts (an import would do the same); the
person under test gets hers through the services. Always on SQLite (temporary files); also on
PostgreSQL when ITVSH_BENCH_DATABASE_URL points at one (scratch databases are created and dropped
on that server). Results: bench/results/staffing.json and a table.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bench.funding import _counting
from bench.tenants import _app, _drop_database, _migrate, _scratch_database

RESULTS = Path(__file__).parent / "results"
HISTORY = max(12, int(os.environ.get("BENCH_HISTORY", "120")))  # assignments per person (months)
OTHERS = max(50, int(os.environ.get("BENCH_OTHERS", "500")))  # other people in the large database
CHECKS = max(20, int(os.environ.get("BENCH_CHECKS", "100")))  # checks per run
RUNS = max(3, int(os.environ.get("BENCH_RUNS", "5")))
CAPACITY_RUNS = max(2, int(os.environ.get("BENCH_CAPACITY_RUNS", "5")))
TIMELINE_PEOPLE = (5, 50)
SECONDED_FROM = date(2019, 1, 1)
TIMELINE = (date(2019, 1, 1), date(2028, 12, 31))
PERSON_FTE, CANDIDATE_FTE = 600, 400  # each month 60 % planned; a candidate of 40 % just fits
ACTOR = "bench"


def _months(count: int) -> list[tuple[date, date]]:
    from itvsh.staffing.periods import month_end, months

    firsts = months(SECONDED_FROM, date(SECONDED_FROM.year + (count + 11) // 12, 12, 31))[:count]
    return [(first, month_end(first)) for first in firsts]


# --- seeding --------------------------------------------------------------------------------------


def _seed(app, others: int) -> dict:
    """Members, the person under test with her history (through the services) and ``others``
    people with the same kind of history (Core inserts)."""
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.demo import shipped_list
    from itvsh.extensions import db
    from itvsh.staffing import services
    from itvsh.tenants import services as tenant_services
    from itvsh.tenants.importer import import_municipalities
    from itvsh.tenants.models import LOCAL_KINDS, Municipality

    history = _months(HISTORY)
    with app.app_context():
        session = db.session
        set_scope(session, ALL)
        import_municipalities(session, ACTOR, shipped_list(), source="sh_municipalities.csv")
        everyone = session.execute(select(Municipality)).scalars().all()
        tenant_services.join_many(session, ACTOR, everyone, date(2018, 1, 1))
        targets = (
            session.execute(
                select(Municipality)
                .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
                .order_by(Municipality.key)
                .limit(50)
            )
            .scalars()
            .all()
        )
        person = services.create_staff_member(
            session,
            ACTOR,
            name="Bea Bench",
            work_email="bea.bench@bench.example",
            annual_cost_cents=70_000_00,
        )
        secondment = services.create_secondment(
            session,
            ACTOR,
            staff_member=person,
            instrument="abordnung",
            starts_on=SECONDED_FROM,
            ends_on=None,
            fte=1000,
        )
        for n, (first, last) in enumerate(history):
            services.create_assignment(
                session,
                ACTOR,
                staff_member=person,
                municipality=targets[n % len(targets)],
                starts_on=first,
                ends_on=last,
                fte=PERSON_FTE,
            )
        session.commit()
        ids = {
            "person": person.id,
            "secondment": secondment.id,
            "target": targets[0].id,
            "targets": [t.id for t in targets],
        }
        session.remove()
        _insert_others(db.engine, others, ids["targets"], history)
    return ids


def _insert_others(engine, others: int, targets: list[int], history) -> None:
    from itvsh.staffing.models import Assignment, Secondment, StaffMember

    staff, seconded, assigned = StaffMember.__table__, Secondment.__table__, Assignment.__table__
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(
            staff.insert(),
            [
                {
                    "name": f"Other {n:04d}",
                    "work_email": f"other{n}@bench.example",
                    "home_authority": "",
                    "notes": "",
                    "annual_cost_cents": 60_000_00,
                    "pseudonym": f"MA-X{n:05d}",
                    "created_at": now,
                }
                for n in range(others)
            ],
        )
        people = conn.execute(select(staff.c.id).where(staff.c.pseudonym.like("MA-X%"))).scalars().all()
        conn.execute(
            seconded.insert(),
            [
                {
                    "staff_member_id": person,
                    "instrument": "zuweisung",
                    "starts_on": SECONDED_FROM,
                    "ends_on": None,
                    "fte": 1000,
                    "cost_bearer": "land",
                    "legal_reference": "",
                    "note": "",
                    "created_at": now,
                }
                for person in people
            ],
        )
        secondment_of = dict(
            conn.execute(
                select(seconded.c.staff_member_id, seconded.c.id).where(
                    seconded.c.staff_member_id.in_(people)
                )
            ).all()
        )
        rows = [
            {
                "staff_member_id": person,
                "secondment_id": secondment_of[person],
                "target_kind": "member",
                "municipality_id": targets[(n + k) % len(targets)],
                "starts_on": first,
                "ends_on": last,
                "fte": 500 + 100 * ((n + k) % 6),
                "role": "",
                "created_at": now,
            }
            for n, person in enumerate(people)
            for k, (first, last) in enumerate(history)
        ]
        for start in range(0, len(rows), 10_000):
            conn.execute(assigned.insert(), rows[start : start + 10_000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


# --- (a) checking a new assignment ----------------------------------------------------------------


def _check_once(session, member, target, month: tuple[date, date], kind: str) -> None:
    from itvsh.staffing import services

    if kind == "check":
        services.check_assignment(
            session,
            member,
            target_kind="member",
            municipality=target,
            starts_on=month[0],
            ends_on=month[1],
            fte=CANDIDATE_FTE,
        )
    else:
        services.create_assignment(
            session,
            ACTOR,
            staff_member=member,
            municipality=target,
            starts_on=month[0],
            ends_on=month[1],
            fte=CANDIDATE_FTE,
        )


def _time_checks(app, ids: dict, kind: str) -> float:
    """Seconds per check: CHECKS checks of ``kind`` in a row, each its own unit of work (rolled back)."""
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.staffing.models import StaffMember
    from itvsh.tenants.models import Municipality

    history = _months(HISTORY)
    with app.app_context():
        session = db.session
        set_scope(session, ALL)
        member = session.get(StaffMember, ids["person"])
        target = session.get(Municipality, ids["target"])
        started = time.perf_counter()
        for n in range(CHECKS):
            _check_once(session, member, target, history[(7 * n) % len(history)], kind)
            session.rollback()  # the refusal path of a view; here it also throws the insert away
            set_scope(session, ALL)
        elapsed = time.perf_counter() - started
        session.remove()
    return elapsed / CHECKS


def _time_floor(app, ids: dict) -> float:
    """Seconds per bare Core select of the person's assignments in the secondment."""
    from itvsh.extensions import db
    from itvsh.staffing.models import Assignment

    table = Assignment.__table__
    query = (
        select(table.c.id, table.c.starts_on, table.c.ends_on, table.c.fte)
        .where(table.c.staff_member_id == ids["person"], table.c.secondment_id == ids["secondment"])
        .order_by(table.c.starts_on, table.c.id)
    )
    with app.app_context():
        engine = db.engine
        started = time.perf_counter()
        for _n in range(CHECKS):
            with engine.connect() as conn:
                rows = conn.execute(query).all()
        elapsed = time.perf_counter() - started
    assert len(rows) == HISTORY, len(rows)
    return elapsed / CHECKS


def _check_statements(app, ids: dict, kind: str) -> int:
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.staffing.models import StaffMember
    from itvsh.tenants.models import Municipality

    with app.app_context():
        session = db.session
        set_scope(session, ALL)
        member = session.get(StaffMember, ids["person"])
        target = session.get(Municipality, ids["target"])
        with _counting(db.engine) as counted:
            _check_once(session, member, target, _months(HISTORY)[5], kind)
        session.rollback()
        session.remove()
    return counted[0]


def _summary(seconds: list[float]) -> dict:
    return {
        "ms": [round(s * 1000, 3) for s in seconds],
        "ms_min": round(min(seconds) * 1000, 3),
        "ms_median": round(statistics.median(seconds) * 1000, 3),
    }


def bench_check(apps: dict, ids: dict) -> dict:
    kinds = ("check", "create_rollback", "floor")
    times: dict[str, dict[str, list[float]]] = {size: {k: [] for k in kinds} for size in apps}
    for run in range(RUNS + 1):  # run 0 warms everything up and is not counted
        for size, app in apps.items():
            measured = {
                "check": _time_checks(app, ids[size], "check"),
                "create_rollback": _time_checks(app, ids[size], "create"),
                "floor": _time_floor(app, ids[size]),
            }
            if run:
                for kind, seconds in measured.items():
                    times[size][kind].append(seconds)
    result: dict = {
        "history": HISTORY,
        "other_people": {"small": 1, "large": OTHERS},
        "other_assignments": {"small": HISTORY, "large": OTHERS * HISTORY},
        "checks_per_run": CHECKS,
        "runs": RUNS,
    }
    for size in apps:
        result[size] = {kind: _summary(times[size][kind]) for kind in kinds}
        result[size]["statements"] = {
            "check": _check_statements(apps[size], ids[size], "check"),
            "create_rollback": _check_statements(apps[size], ids[size], "create"),
        }
    for kind in ("check", "create_rollback"):
        result[f"{kind}_ratio_large_to_small_median"] = round(
            result["large"][kind]["ms_median"] / result["small"][kind]["ms_median"], 3
        )
        result[f"{kind}_ratio_large_to_small_min"] = round(
            result["large"][kind]["ms_min"] / result["small"][kind]["ms_min"], 3
        )
        result[f"{kind}_ratio_to_floor_median"] = round(
            result["large"][kind]["ms_median"] / result["large"]["floor"]["ms_median"], 2
        )
        result[f"{kind}_statements_equal"] = (
            result["small"]["statements"][kind] == result["large"]["statements"][kind]
        )
    return result


# --- (b) the capacity timeline --------------------------------------------------------------------


def _timeline(app, people: int) -> tuple[float, int, int]:
    """One timeline: choose the first ``people`` people, then their capacity month by month.
    Returns (seconds, statements, person-months)."""
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.staffing import services
    from itvsh.staffing.models import StaffMember

    with app.app_context():
        session = db.session
        set_scope(session, ALL)
        with _counting(db.engine) as counted:
            started = time.perf_counter()
            chosen = list(
                session.execute(select(StaffMember).order_by(StaffMember.id).limit(people)).scalars()
            )
            rows = services.capacity(session, *TIMELINE, staff_members=chosen)
            elapsed = time.perf_counter() - started
        cells = sum(len(row.months) for row in rows)
        assert len(rows) == people and cells == people * 120, (len(rows), cells)
        assert all(m.state in ("planned", "full") for row in rows for m in row.months[:HISTORY])
        session.remove()
    return elapsed, counted[0], cells


def _timeline_floor(app, people: int) -> float:
    """The same people's secondment and assignment rows read with two bare Core selects."""
    from itvsh.extensions import db
    from itvsh.staffing.models import Assignment, Secondment, StaffMember

    staff, seconded, assigned = StaffMember.__table__, Secondment.__table__, Assignment.__table__
    first, last = TIMELINE
    with app.app_context():
        engine = db.engine
        started = time.perf_counter()
        with engine.connect() as conn:
            ids = conn.execute(select(staff.c.id).order_by(staff.c.id).limit(people)).scalars().all()
            conn.execute(
                select(seconded).where(
                    seconded.c.staff_member_id.in_(ids),
                    seconded.c.starts_on <= last,
                    seconded.c.ends_on.is_(None) | (seconded.c.ends_on >= first),
                )
            ).all()
            conn.execute(
                select(assigned).where(
                    assigned.c.staff_member_id.in_(ids),
                    assigned.c.starts_on <= last,
                    assigned.c.ends_on.is_(None) | (assigned.c.ends_on >= first),
                )
            ).all()
        elapsed = time.perf_counter() - started
    return elapsed


def bench_capacity(app) -> dict:
    result: dict = {"months": 120, "assignments_per_person": HISTORY, "runs": CAPACITY_RUNS}
    for people in TIMELINE_PEOPLE:
        _timeline(app, people)  # warm-up
        ours, floor, statements = [], [], set()
        for _run in range(CAPACITY_RUNS):
            elapsed, counted, cells = _timeline(app, people)
            ours.append(elapsed)
            statements.add(counted)
            floor.append(_timeline_floor(app, people))
        result[str(people)] = {
            "person_months": cells,
            "statements": sorted(statements),
            "ours": _summary(ours),
            "floor": _summary(floor),
            "us_per_person_month_median": round(statistics.median(ours) / cells * 1e6, 2),
            "us_per_person_month_min": round(min(ours) / cells * 1e6, 2),
            "ratio_to_floor_median": round(statistics.median(ours) / statistics.median(floor), 1),
        }
    small, large = (result[str(n)] for n in TIMELINE_PEOPLE)
    result["statements_equal"] = small["statements"] == large["statements"] and len(small["statements"]) == 1
    result["per_person_month_ratio_50_to_5_median"] = round(
        large["us_per_person_month_median"] / small["us_per_person_month_median"], 3
    )
    return result


# --- main -----------------------------------------------------------------------------------------


def bench_database(base_url: str | None, tmp: Path, secret: str) -> dict:
    urls = {size: _scratch_database(base_url, tmp, f"staffing_{size}") for size in ("small", "large")}
    apps: dict = {}
    try:
        ids = {}
        seeding = {}
        for size, others in (("small", 1), ("large", OTHERS)):
            started = time.perf_counter()
            apps[size] = _app(urls[size], secret)
            _migrate(apps[size])
            ids[size] = _seed(apps[size], others)
            seeding[size] = round(time.perf_counter() - started, 1)
        result = {
            "seeding_seconds": seeding,
            "check": bench_check(apps, ids),
            "capacity": bench_capacity(apps["large"]),
        }
        return result
    finally:
        from itvsh.extensions import db

        for app in apps.values():
            with app.app_context():
                db.engine.dispose()
        for url in urls.values():
            _drop_database(url)


def main() -> int:
    given = os.environ.get("ITVSH_BENCH_DATABASE_URL") or None
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if given and make_url(given).get_backend_name() == "postgresql":
        backends.append(("postgresql", given))
    tmp = Path(tempfile.mkdtemp(prefix="itvsh-bench-staffing-"))
    secret = secrets.token_urlsafe(32)
    # shared, noisy machines (BENCH.md): the load beside the figures says how much to trust them
    results: dict = {
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "check": {},
        "capacity": {},
    }
    started = time.perf_counter()
    try:
        for backend, base in backends:
            measured = bench_database(base, tmp, secret)
            results["check"][backend] = measured["check"]
            results["capacity"][backend] = measured["capacity"]
            results.setdefault("seeding_seconds", {})[backend] = measured["seeding_seconds"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if given is None:
            os.environ.pop("ITVSH_BENCH_DATABASE_URL", None)
        else:
            os.environ["ITVSH_BENCH_DATABASE_URL"] = given
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "staffing.json").write_text(json.dumps(results, indent=2))
    _print(results)
    return 0


def _print(results: dict) -> None:
    print(
        "staffing: load average (1, 5, 15 min) before "
        f"{results['load_average_before']}, after {results['load_average_after']} on {os.cpu_count()} CPUs; "
        f"{results['total_seconds']} s in all"
    )
    print(
        f"staffing: checking a new assignment against one person's {HISTORY} assignments, with 1 other "
        f"person vs {OTHERS} other people of {HISTORY} assignments each in the database; "
        f"{CHECKS} checks x {RUNS} runs, ms per check"
    )
    print(
        f"  {'database':<11} {'what':<28} {'small min':>10} {'median':>8} {'large min':>10} {'median':>8} "
        f"{'large/small':>12} {'SQL small/large':>16}"
    )
    labels = {
        "check": "services.check_assignment",
        "create_rollback": "create_assignment + rollback",
        "floor": "floor: select her rows",
    }
    for backend, row in results["check"].items():
        for kind, label in labels.items():
            small, large = row["small"][kind], row["large"][kind]
            ratio = large["ms_median"] / small["ms_median"]
            sql = (
                f"{row['small']['statements'][kind]}/{row['large']['statements'][kind]}"
                if kind in row["small"]["statements"]
                else "1/1"
            )
            print(
                f"  {backend:<11} {label:<28} {small['ms_min']:>8.2f}ms {small['ms_median']:>6.2f}ms "
                f"{large['ms_min']:>8.2f}ms {large['ms_median']:>6.2f}ms {ratio:>11.2f}x {sql:>16}"
            )
        print(
            f"  {backend:<11} check / floor (large, median): {row['check_ratio_to_floor_median']}x; "
            f"create + rollback / floor: {row['create_rollback_ratio_to_floor_median']}x  "
            "(target: large/small ~1.0x, equal SQL)"
        )
    print(
        "staffing: capacity timeline 2019-01..2028-12 (120 months), people with "
        f"{HISTORY} assignments each; floor: the same rows by two bare Core selects"
    )
    print(
        f"  {'database':<11} {'people':>6} {'SQL':>4} {'ours min':>9} {'median':>8} {'floor med':>10} "
        f"{'ours/floor':>10} {'us/person-month':>16}"
    )
    for backend, row in results["capacity"].items():
        for people in TIMELINE_PEOPLE:
            cell = row[str(people)]
            print(
                f"  {backend:<11} {people:>6} {','.join(map(str, cell['statements'])):>4} "
                f"{cell['ours']['ms_min']:>7.1f}ms {cell['ours']['ms_median']:>6.1f}ms "
                f"{cell['floor']['ms_median']:>8.1f}ms {cell['ratio_to_floor_median']:>9.1f}x "
                f"{cell['us_per_person_month_median']:>16.1f}"
            )
        print(
            f"  {backend:<11} statements equal for 5 and 50 people: {row['statements_equal']}; "
            f"time per person-month 50 vs 5: {row['per_person_month_ratio_50_to_5_median']}x"
        )


if __name__ == "__main__":
    sys.exit(main())
