"""Funding benchmark, measured against floors in the same run (../shared/design/BENCH.md):

(a) the preview of a per-capita split of 1,500,000.00 € over all member Gemeinden of the shipped
    list (``itvsh.funding.distribution.preview``: the ORM select of the current member Gemeinden,
    tenant scope, checks, largest remainder, the table of rows) against the floor "one bare Core
    select of the same columns with the same filter + the largest-remainder arithmetic in plain
    Python"; a warm-up each, then >= 5 alternating runs each, min and median (target: well under
    200 ms);
(b) bookings per second under contention: BENCH_THREADS (8) threads, each in its own app context,
    session and connection, book BENCH_BOOKINGS (100) disbursements each into the same year through
    ``ledger.disburse`` and commit each one (year lock, limit checks, booking, status, audit event
    chained at commit), against the floor "the same number of bare single-row INSERT + COMMIT
    transactions from the same threads" and, to show where the time goes, "lock the year row
    (SELECT ... FOR UPDATE; SQLite: BEGIN IMMEDIATE) + INSERT + COMMIT"; two alternating runs each,
    and the SQL statements of one booking.

Always on SQLite (a temporary file); also on PostgreSQL when ITVSH_BENCH_DATABASE_URL points at one
(scratch databases are created and dropped on that server). Results: bench/results/funding.json and
a table. Environment: BENCH_PREVIEW_RUNS (7), BENCH_THREADS (8), BENCH_BOOKINGS (100 per thread).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

from sqlalchemy import event, select, text
from sqlalchemy.engine import make_url

from bench.tenants import _app, _drop_database, _migrate, _scratch_database

RESULTS = Path(__file__).parent / "results"
PREVIEW_RUNS = max(5, int(os.environ.get("BENCH_PREVIEW_RUNS", "7")))
THREADS = max(2, int(os.environ.get("BENCH_THREADS", "8")))
BOOKINGS = max(10, int(os.environ.get("BENCH_BOOKINGS", "100")))  # per thread and run
LOAD_RUNS = 2
TOTAL_CENTS = 150_000_000
PAYMENT_CENTS = 100
ACTOR = "bench"


def _seed(app) -> None:
    """The shipped list, every municipality a member, the current year open."""
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.demo import shipped_list
    from itvsh.extensions import db
    from itvsh.funding import ledger
    from itvsh.tenants import services as tenant_services
    from itvsh.tenants.importer import import_municipalities
    from itvsh.tenants.models import Municipality

    with app.app_context():
        set_scope(db.session, ALL)
        import_municipalities(db.session, ACTOR, shipped_list(), source="sh_municipalities.csv")
        everyone = db.session.execute(select(Municipality)).scalars().all()
        tenant_services.join_many(db.session, ACTOR, everyone, date(2019, 1, 1))
        year = ledger.create_fiscal_year(db.session, ACTOR, date.today().year)
        ledger.open_year(db.session, ACTOR, year)
        db.session.commit()
        db.session.remove()


def _year_and_category(session):
    from itvsh.funding.models import BudgetCategory, FiscalYear

    year = session.execute(select(FiscalYear).where(FiscalYear.year == date.today().year)).scalar_one()
    category = session.execute(
        select(BudgetCategory).where(
            BudgetCategory.fiscal_year_id == year.id, BudgetCategory.code == "zuweisungen"
        )
    ).scalar_one()
    return year, category


# --- (a) the preview ---------------------------------------------------------------------------------


def _ours_preview(app) -> tuple[float, int, int]:
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.funding.distribution import preview

    with app.app_context():
        set_scope(db.session, ALL)
        year, category = _year_and_category(db.session)
        started = time.perf_counter()
        table = preview(
            db.session,
            fiscal_year=year,
            category=category,
            method="per_capita",
            selection="all",
            total_cents=TOTAL_CENTS,
        )
        elapsed = time.perf_counter() - started
        rows, allocated = len(table.rows), table.allocated_cents
        db.session.remove()
    return elapsed, rows, allocated


def _floor_preview(app) -> tuple[float, int, int]:
    """One Core select of the same columns with the same filter, then the largest remainder."""
    from itvsh.extensions import db
    from itvsh.tenants.models import LOCAL_KINDS, Membership, Municipality

    table, members = Municipality.__table__, Membership.__table__
    today = date.today()
    query = (
        select(table.c.id, table.c.key, table.c.name, table.c.population, table.c.population_date)
        .where(table.c.kind.in_([k.value for k in LOCAL_KINDS]))
        .where(
            table.c.id.in_(
                select(members.c.municipality_id)
                .where(members.c.joined_on <= today)
                .where(members.c.left_on.is_(None) | (members.c.left_on > today))
            )
        )
        .order_by(table.c.key)
    )
    with app.app_context():
        engine = db.engine
        started = time.perf_counter()
        with engine.connect() as conn:
            rows = conn.execute(query).all()
        weight_sum = sum(row.population for row in rows)
        shares, remainders = {}, []
        for row in rows:
            quota, remainder = divmod(TOTAL_CENTS * row.population, weight_sum)
            shares[row.key] = quota
            remainders.append((-remainder, row.key))
        remainders.sort()
        for _remainder, key in remainders[: TOTAL_CENTS - sum(shares.values())]:
            shares[key] += 1
        result = [(row.key, row.name, row.id, row.population, shares[row.key]) for row in rows]
        elapsed = time.perf_counter() - started
    return elapsed, len(result), sum(shares.values())


def _preview_statements(app) -> int:
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.funding.distribution import preview

    with app.app_context():
        set_scope(db.session, ALL)
        year, category = _year_and_category(db.session)
        with _counting(db.engine) as counted:
            preview(
                db.session,
                fiscal_year=year,
                category=category,
                method="per_capita",
                selection="all",
                total_cents=TOTAL_CENTS,
            )
        db.session.remove()
    return counted[0]


def bench_preview(app) -> dict:
    times: dict[str, list[float]] = {"ours": [], "floor": []}
    for run in range(PREVIEW_RUNS + 1):  # run 0 warms both up and is not counted
        for name, measure in (("ours", _ours_preview), ("floor", _floor_preview)):
            elapsed, rows, allocated = measure(app)
            assert allocated == TOTAL_CENTS, (name, allocated)
            assert rows == 1106, (name, rows)
            if run:
                times[name].append(elapsed)
    ours, floor = times["ours"], times["floor"]
    return {
        "gemeinden": 1106,
        "total_cents": TOTAL_CENTS,
        "runs": PREVIEW_RUNS,
        "statements": _preview_statements(app),
        "ours_ms": [round(t * 1000, 2) for t in ours],
        "floor_ms": [round(t * 1000, 2) for t in floor],
        "ours_ms_min": round(min(ours) * 1000, 2),
        "ours_ms_median": round(statistics.median(ours) * 1000, 2),
        "floor_ms_min": round(min(floor) * 1000, 2),
        "floor_ms_median": round(statistics.median(floor) * 1000, 2),
        "ratio_median": round(statistics.median(ours) / statistics.median(floor), 2),
        "ratio_min": round(min(ours) / min(floor), 2),
        "target": "well under 200 ms",
    }


# --- (b) bookings under contention -------------------------------------------------------------------


class _counting:
    """Count the SQL statements sent through ``engine`` (transaction control not counted)."""

    def __init__(self, engine):
        self.engine, self.count = engine, [0]

    def _on_execute(self, _conn, _cursor, statement, *_args):
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")):
            self.count[0] += 1

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._on_execute)
        return self.count

    def __exit__(self, *_exc):
        event.remove(self.engine, "before_cursor_execute", self._on_execute)


def _approved_allocations(app, count: int) -> list[int]:
    """One approved allocation per thread, to the federation itself, with room for every run."""
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.funding import ledger

    amount = PAYMENT_CENTS * BOOKINGS * (LOAD_RUNS + 2)
    with app.app_context():
        set_scope(db.session, ALL)
        year, category = _year_and_category(db.session)
        ids = []
        for n in range(count):
            allocation = ledger.create_allocation(
                db.session,
                ACTOR,
                fiscal_year=year,
                category=category,
                recipient_kind="federation",
                municipality=None,
                purpose=f"Bench {n}",
                amount_cents=amount,
            )
            ledger.approve(db.session, ACTOR, allocation)
            ids.append(allocation.id)
        db.session.commit()
        db.session.remove()
    return ids


def _in_threads(app, work) -> float:
    """Run ``work(thread_number)`` in THREADS threads with their own app contexts, released
    together; the wall time from the release until the last one is done."""
    start = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            with app.app_context():
                start.wait(timeout=120)
                work(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    start.wait(timeout=120)
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return elapsed


def _ours_bookings(app, allocation_ids: list[int]) -> float:
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.funding import ledger
    from itvsh.funding.models import Allocation

    def work(n: int) -> None:
        for i in range(BOOKINGS):
            set_scope(db.session, ALL)
            allocation = db.session.get(Allocation, allocation_ids[n])
            ledger.disburse(db.session, ACTOR, allocation, PAYMENT_CENTS, note=f"bench {n}/{i}")
            db.session.commit()
        db.session.remove()

    return _in_threads(app, work)


def _floor_table(app) -> None:
    from itvsh.extensions import db

    with app.app_context():
        serial = "SERIAL" if db.engine.dialect.name == "postgresql" else "INTEGER"
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    f"CREATE TABLE bench_floor (id {serial} PRIMARY KEY, thread INTEGER NOT NULL, "
                    "amount_cents BIGINT NOT NULL, note VARCHAR(500) NOT NULL)"
                )
            )


def _floor_bookings(app, *, lock: bool) -> float:
    """Bare single-row INSERT + COMMIT transactions (``lock``: after locking the year row)."""
    from itvsh.extensions import db

    with app.app_context():
        engine = db.engine
        year_id = _year_and_category(db.session)[0].id
        db.session.remove()
    postgres = engine.dialect.name == "postgresql"
    insert = text("INSERT INTO bench_floor (thread, amount_cents, note) VALUES (:t, :a, :n)")
    lock_year = text("SELECT id FROM fiscal_years WHERE id = :y" + (" FOR UPDATE" if postgres else ""))

    def work(n: int) -> None:
        for i in range(BOOKINGS):
            with engine.begin() as conn:  # SQLite: BEGIN IMMEDIATE (core/db.py)
                if lock:
                    conn.execute(lock_year, {"y": year_id}).scalar_one()
                conn.execute(insert, {"t": n, "a": PAYMENT_CENTS, "n": f"floor {n}/{i}"})

    return _in_threads(app, work)


def _booking_statements(app, allocation_id: int) -> int:
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.funding import ledger
    from itvsh.funding.models import Allocation

    with app.app_context():
        set_scope(db.session, ALL)
        allocation = db.session.get(Allocation, allocation_id)
        db.session.commit()
        with _counting(db.engine) as counted:
            ledger.disburse(db.session, ACTOR, allocation, PAYMENT_CENTS, note="counted")
            db.session.commit()
        db.session.remove()
    return counted[0]


def _rates(seconds: list[float]) -> dict:
    per_run = THREADS * BOOKINGS
    rates = [per_run / s for s in seconds]
    return {
        "seconds": [round(s, 3) for s in seconds],
        "per_second": [round(r, 1) for r in rates],
        "per_second_min": round(min(rates), 1),
        "per_second_median": round(statistics.median(rates), 1),
    }


def bench_bookings(app) -> dict:
    from itvsh.core.audit import verify_chain
    from itvsh.extensions import db

    allocation_ids = _approved_allocations(app, THREADS)
    _floor_table(app)
    measures = {
        "ours": lambda: _ours_bookings(app, allocation_ids),
        "floor_insert_commit": lambda: _floor_bookings(app, lock=False),
        "floor_lock_insert_commit": lambda: _floor_bookings(app, lock=True),
    }
    seconds: dict[str, list[float]] = {name: [] for name in measures}
    for _run in range(LOAD_RUNS):
        for name, measure in measures.items():
            seconds[name].append(measure())
    statements = _booking_statements(app, allocation_ids[0])
    with app.app_context():
        chain = verify_chain(db.session)  # the audit chain after all those parallel bookings
        db.session.remove()
    assert chain.ok, chain.problem
    result: dict = {
        "threads": THREADS,
        "bookings_per_thread_and_run": BOOKINGS,
        "runs": LOAD_RUNS,
        "statements_per_booking": statements,
        "audit_events_verified": chain.count,
    }
    for name, measured in seconds.items():
        result[name] = _rates(measured)
    ours = result["ours"]
    for floor in ("floor_insert_commit", "floor_lock_insert_commit"):
        result[f"ratio_to_{floor}_median"] = round(
            ours["per_second_median"] / result[floor]["per_second_median"], 3
        )
    return result


# --- main --------------------------------------------------------------------------------------------


def bench_database(base_url: str | None, tmp: Path, secret: str) -> dict:
    url = _scratch_database(base_url, tmp, "funding")
    try:
        app = _app(url, secret)
        _migrate(app)
        _seed(app)
        result = {"preview": bench_preview(app), "bookings": bench_bookings(app)}
        from itvsh.extensions import db

        with app.app_context():
            db.engine.dispose()
        return result
    finally:
        _drop_database(url)


def main() -> int:
    given = os.environ.get("ITVSH_BENCH_DATABASE_URL") or None
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if given and make_url(given).get_backend_name() == "postgresql":
        backends.append(("postgresql", given))
    tmp = Path(tempfile.mkdtemp(prefix="itvsh-bench-funding-"))
    secret = secrets.token_urlsafe(32)
    # shared, noisy machines (BENCH.md): the load beside the figures says how much to trust them
    results: dict = {
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "preview": {},
        "bookings": {},
    }
    try:
        for backend, base in backends:
            measured = bench_database(base, tmp, secret)
            results["preview"][backend] = measured["preview"]
            results["bookings"][backend] = measured["bookings"]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if given is None:
            os.environ.pop("ITVSH_BENCH_DATABASE_URL", None)
        else:
            os.environ["ITVSH_BENCH_DATABASE_URL"] = given
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "funding.json").write_text(json.dumps(results, indent=2))
    _print(results)
    return 0


def _print(results: dict) -> None:
    print(
        "funding: load average (1, 5, 15 min) before "
        f"{results['load_average_before']}, after {results['load_average_after']} on {os.cpu_count()} CPUs"
    )
    print(
        "funding: preview of a per-capita split of 1,500,000.00 EUR over the 1,106 member Gemeinden "
        "vs one bare select + the arithmetic in plain Python"
    )
    print(
        f"  {'database':<11} {'ours min':>9} {'median':>8} {'floor min':>10} {'median':>8} "
        f"{'ratio med':>10} {'min':>6} {'SQL':>4}"
    )
    for backend, row in results["preview"].items():
        print(
            f"  {backend:<11} {row['ours_ms_min']:>7.1f}ms {row['ours_ms_median']:>6.1f}ms "
            f"{row['floor_ms_min']:>8.1f}ms {row['floor_ms_median']:>6.1f}ms "
            f"{row['ratio_median']:>9.2f}x {row['ratio_min']:>5.2f}x {row['statements']:>4}"
            "   (target: well under 200 ms)"
        )
    print(
        f"funding: bookings per second, {THREADS} threads x {BOOKINGS} disbursements into one year, "
        f"a commit each, {LOAD_RUNS} runs"
    )
    print(f"  {'database':<11} {'what':<34} {'per s med':>10} {'min':>8} {'ours/this':>10}")
    labels = {
        "ours": "ledger.disburse + commit",
        "floor_insert_commit": "floor: INSERT + COMMIT",
        "floor_lock_insert_commit": "floor: lock year + INSERT + COMMIT",
    }
    for backend, row in results["bookings"].items():
        for name, label in labels.items():
            ratio = row.get(f"ratio_to_{name}_median", 1.0)
            print(
                f"  {backend:<11} {label:<34} {row[name]['per_second_median']:>10.1f} "
                f"{row[name]['per_second_min']:>8.1f} {ratio:>9.2f}x"
            )
        print(
            f"  {backend:<11} SQL statements per booking (with its commit): {row['statements_per_booking']}; "
            f"audit chain verified: {row['audit_events_verified']} events"
        )


if __name__ == "__main__":
    sys.exit(main())
