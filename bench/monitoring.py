"""Monitoring benchmark, measured against floors in the same run (../shared/design/BENCH.md), with
the shipped 1,106 Gemeinden x 557 OZG services (616,042 status rows, Core inserts, then
``ozg.recompute_tallies`` and one audit event, as a load writes), seven years of support to members
(~7,700 allocations, ~17,700 bookings) and monthly snapshots since 2019:

(a) SQL statements of ``/monitoring/`` (with and without a search and a year) and of a
    municipality's page, at 10 % and at 100 % of the status rows, both for a visit while the
    overview is kept and for the first visit after a change (target: <= 4, equal at both sizes);
    and of the open data (and its 304);
(b) latency of those pages in-process (Flask test client), BENCH_LATENCY_RUNS requests after a
    warm-up, kept and first-visit, at 10 % and at 100 % of the rows (target: ratio ~1; a
    municipality's page lists its own known statuses, so it grows with them), and beside it the
    live GROUP BY the page avoids (share >= 3 per Kreis over the status rows);
(c) the CSV's streaming memory: a fresh process reads ``/monitoring/ozg.csv`` chunk by chunk; its
    resident memory sampled at every chunk, at 10 % and 100 % of the rows (target: the same
    growth, independent of the size);
(d) requests/s of ``/monitoring/`` under wrk (2 threads, 8 connections, BENCH_SECONDS each, two
    alternating runs) against gunicorn with 2 sync workers, beside the floor "C" of BENCH.md: a bare
    JSON list of 50 municipalities via marshmallow with the total count, in the same app
    (target: >= 0.5x).

Always on SQLite (a temporary file); also on PostgreSQL when ITVSH_BENCH_DATABASE_URL points at one
(the benchmark creates and drops its own scratch database there). Results:
bench/results/monitoring.json and a table. Environment: BENCH_SECONDS (6), BENCH_LATENCY_RUNS (20).
"""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path

from sqlalchemy import delete, event, func, insert, select
from sqlalchemy.engine import make_url

RESULTS = Path(__file__).parent / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "6"))
LATENCY_RUNS = max(10, int(os.environ.get("BENCH_LATENCY_RUNS", "20")))
ACTOR = "bench"
KIEL, KRUMMWISCH = "01002000", "01058093"
FIRST_YEAR = 2019
JSON_LIST = "/_bench/json-list"
# maturity by a hash of (municipality, service): about 35 % 0, 20 % 1, 15 % 2, 20 % 3, 10 % 4
LEVELS = (0,) * 7 + (1,) * 4 + (2,) * 3 + (3,) * 4 + (4,) * 2
_LEVEL_BOUNDS = [LEVELS.index(n + 1) for n in range(4)]  # bucket < bound: level n


# --- the app under load: ours, plus BENCH.md's floor C ----------------------------------------------


def make_monitoring_bench_app():
    """The bench app (bench/wsgi.py: our app with the constant-JSON and SELECT 1 floors) plus the
    floor C of BENCH.md: a public JSON list of 50 municipalities via marshmallow, with the total
    count (two statements)."""
    from flask import jsonify
    from marshmallow import Schema, fields
    from sqlalchemy.orm import load_only, noload

    from bench.wsgi import make_bench_app
    from itvsh.core.access import public
    from itvsh.extensions import db
    from itvsh.tenants.models import Municipality

    app = make_bench_app()

    class MunicipalitySchema(Schema):
        key = fields.String()
        name = fields.String()
        kind = fields.String()
        population = fields.Integer(allow_none=True)

    schema = MunicipalitySchema(many=True)

    @app.get(JSON_LIST)
    @public
    def json_list():
        total = db.session.execute(select(func.count()).select_from(Municipality)).scalar_one()
        rows = (
            db.session.execute(
                select(Municipality)
                .options(
                    load_only(
                        Municipality.key, Municipality.name, Municipality.kind, Municipality.population
                    ),
                    noload("*"),
                )
                .order_by(Municipality.key)
                .limit(50)
            )
            .scalars()
            .all()
        )
        return jsonify(items=schema.dump(rows), meta={"total": total, "page": 1, "per_page": 50})

    return app


app = make_monitoring_bench_app() if os.environ.get("ITVSH_BENCH_MONITORING") == "1" else None


# --- data ---------------------------------------------------------------------------------------


def _seed_base(app) -> dict:
    """Municipalities (all members), the catalogue (Core insert from the shipped CSV), seven years
    of support with a commitment and a payment per Gemeinde and year (Core inserts)."""
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.demo import shipped_list
    from itvsh.extensions import db
    from itvsh.funding.models import Allocation, Booking, BudgetCategory, FiscalYear
    from itvsh.projects.models import OzgService
    from itvsh.tenants import services as tenant_services
    from itvsh.tenants.importer import import_municipalities
    from itvsh.tenants.models import LOCAL_KINDS, Municipality

    with app.app_context():
        set_scope(db.session, ALL)
        import_municipalities(db.session, ACTOR, shipped_list(), source="sh_municipalities.csv")
        everyone = db.session.execute(select(Municipality)).scalars().all()
        tenant_services.join_many(db.session, ACTOR, everyone, date(FIRST_YEAR, 1, 1))
        now = datetime.now(UTC)
        text = resources.files("itvsh.data").joinpath("ozg_services.csv").read_text("utf-8")
        services = [
            {
                "ozg_id": row["id"],
                "name": row["name"],
                "topic": row["themenfeld"],
                "life_event": row["lebenslage"],
                "leika_keys": row["leika_keys"],
                "responsibility": "municipal",
                "created_at": now,
            }
            for row in csv.DictReader(text.splitlines())
        ]
        db.session.execute(insert(OzgService), services)
        locals_ = (
            db.session.execute(
                select(Municipality.id)
                .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]))
                .order_by(Municipality.id)
            )
            .scalars()
            .all()
        )
        bookings = 0
        for year in range(FIRST_YEAR, date.today().year + 1):
            year_id = db.session.execute(
                insert(FiscalYear)
                .values(year=year, appropriation_cents=150_000_000, status="open", created_at=now)
                .returning(FiscalYear.id)
            ).scalar_one()
            category_id = db.session.execute(
                insert(BudgetCategory)
                .values(
                    fiscal_year_id=year_id,
                    code="zuweisungen",
                    name="Zuweisungen",
                    planned_cents=110_000_000,
                    created_at=now,
                )
                .returning(BudgetCategory.id)
            ).scalar_one()
            allocations = [
                {
                    "fiscal_year_id": year_id,
                    "current_year_id": year_id,
                    "category_id": category_id,
                    "recipient_kind": "member",
                    "municipality_id": mid,
                    "purpose": f"Bench {year}",
                    "amount_cents": 1_000_00 + mid % 50 * 100_00,
                    "status": "partially_paid",
                    "created_at": now,
                }
                for mid in locals_
            ]
            db.session.execute(insert(Allocation), allocations)
            ids = db.session.execute(
                select(Allocation.id, Allocation.municipality_id, Allocation.amount_cents).where(
                    Allocation.fiscal_year_id == year_id
                )
            ).all()
            rows = []
            for allocation_id, mid, amount in ids:
                common = {
                    "fiscal_year_id": year_id,
                    "allocation_id": allocation_id,
                    "category_id": category_id,
                    "municipality_id": mid,
                    "available_delta_cents": 0,
                    "booked_on": date(year, 3, 1),
                    "booked_by": ACTOR,
                    "created_at": now,
                }
                rows.append(
                    {
                        **common,
                        "kind": "commitment",
                        "amount_cents": amount,
                        "committed_delta_cents": amount,
                        "paid_delta_cents": 0,
                    }
                )
                rows.append(
                    {
                        **common,
                        "kind": "disbursement",
                        "amount_cents": amount // 2,
                        "committed_delta_cents": 0,
                        "paid_delta_cents": amount // 2,
                    }
                )
            db.session.execute(insert(Booking), rows)
            bookings += len(rows)
        db.session.commit()
        db.session.remove()
    return {"municipalities": len(locals_), "services": len(services), "bookings": bookings}


def _status_rows(app, part: str) -> int:
    """Insert the status rows of ``part`` ("10%": every tenth pair, "rest": the others) with a Core
    insert, rebuild the tallies, and store monthly snapshots (real ``take_snapshot`` for this
    month, earlier months scaled from it); returns the rows inserted."""
    from sqlalchemy import Date, case, literal, true

    from itvsh.extensions import db
    from itvsh.projects import ozg
    from itvsh.projects.models import OzgService, OzgSnapshot, OzgStatus
    from itvsh.tenants.models import LOCAL_KINDS, Municipality

    # Computed by the database from the two tables (one INSERT ... SELECT): the load is then the
    # same few seconds on both databases, and the pairs are deterministic.
    m, s = Municipality.id, OzgService.id
    bucket = (m * 7919 + s * 104729) % len(LEVELS)
    level = case(*((bucket < bound, n) for n, bound in enumerate(_LEVEL_BOUNDS)), else_=4)
    since = case(
        *(((m + s) % 5 == n, literal(date(2020 + n, 1 + n * 2, 1), Date)) for n in range(4)),
        else_=literal(date(2024, 6, 1), Date),
    )
    tenth = (m * 31 + s) % 10 == 0
    now = datetime.now(UTC)
    rows = (
        select(
            m,
            s,
            level,
            literal("1.x"),
            case((level >= 3, since), else_=None),
            literal(""),
            literal(False),
            literal(ACTOR),
            literal(now),
        )
        .select_from(Municipality)
        .join(OzgService, true())  # every pair
        .where(Municipality.kind.in_([k.value for k in LOCAL_KINDS]), tenth if part == "10%" else ~tenth)
    )
    columns = ["municipality_id", "service_id", "maturity", "maturity_model", "online_since", "url", "efa"]
    columns += ["changed_by", "changed_at"]
    with app.app_context():
        engine = db.engine
    with engine.begin() as conn:
        before = conn.execute(select(func.count()).select_from(OzgStatus)).scalar_one()
        conn.execute(insert(OzgStatus).from_select(columns, rows))
        inserted = conn.execute(select(func.count()).select_from(OzgStatus)).scalar_one() - before
    _step(f"{inserted:,} status rows inserted")
    with app.app_context():
        from itvsh.core.tenancy import ALL, set_scope

        set_scope(db.session, ALL)
        ozg.recompute_tallies(db.session)
        _step("tallies rebuilt")
        db.session.execute(delete(OzgSnapshot))
        this_month = date.today().replace(day=1)
        ozg.take_snapshot(db.session, ACTOR, this_month)
        current = (
            db.session.execute(select(OzgSnapshot).where(OzgSnapshot.month == this_month)).scalars().all()
        )
        months = []
        month = date(FIRST_YEAR, 1, 1)
        while month < this_month:
            months.append(month)
            month = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        rows = []
        for index, month in enumerate(months):
            scale = (index + 1) / (len(months) + 1)
            for snap in current:
                rows.append(
                    {
                        "month": month,
                        "scope": snap.scope,
                        "scope_id": snap.scope_id,
                        "topic": snap.topic,
                        "possible": snap.possible,
                        **{f"level{n}": int(getattr(snap, f"level{n}") * scale) for n in range(1, 5)},
                        "created_at": now,
                    }
                )
        for start in range(0, len(rows), 10_000):
            db.session.execute(insert(OzgSnapshot), rows[start : start + 10_000])
        from itvsh.core import audit

        # one audit event per load, as the demo writes: it is also what tells the kept overviews
        audit.record(db.session, ACTOR, "import", "ozg_status", after={"rows": inserted})
        db.session.commit()
        db.session.remove()
    return inserted


# --- measurements -------------------------------------------------------------------------------

_DATA = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


def _pages() -> dict[str, str]:
    return {
        "overview": "/monitoring/",
        "overview + search + year": f"/monitoring/?q=Kiel&year={date.today().year}",
        "municipality": f"/monitoring/municipality/{KRUMMWISCH}",
    }


def _counted(app, request) -> int:
    """Data statements (transaction control aside) while ``request()`` runs."""
    from itvsh.extensions import db

    with app.app_context():
        engine = db.engine
    count = 0

    def on_execute(_conn, _cursor, statement, *_args):
        nonlocal count
        if _DATA.match(statement):
            count += 1

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        request()
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return count


def _statements(app, path: str, *, cold: bool = False) -> int:
    """Data statements of one request; ``cold``: the first visit after a change (nothing kept)."""
    from itvsh.projects.monitoring import kept_overviews

    client = app.test_client()
    client.get(path, buffered=True)  # warm
    if cold:
        kept_overviews(app).clear()

    def request():
        response = client.get(path, buffered=True)
        assert response.status_code == 200, (path, response.status_code)

    return _counted(app, request)


def _open_data_statements(app, path: str, headers: dict | None = None, status: int = 200) -> int:
    """Data statements of a download: its first two chunks (the header or metadata, then the first
    batch of rows - every statement has run by then; the rest only fetches)."""
    client = app.test_client()

    def request():
        response = client.get(path, buffered=False, headers=headers or {})
        assert response.status_code == status, (path, response.status_code)
        chunks = iter(response.response)
        for _ in range(2):
            next(chunks, None)
        response.close()

    return _counted(app, request)


def _latency(app, path: str, *, cold: bool = False) -> dict:
    """Request times in-process; ``cold``: each one the first visit after a change."""
    from itvsh.projects.monitoring import kept_overviews

    client = app.test_client()
    for _ in range(3):
        client.get(path)
    times = []
    kept = kept_overviews(app)
    for _ in range(LATENCY_RUNS):
        if cold:
            kept.clear()
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    return {"ms_min": round(min(times) * 1000, 2), "ms_median": round(statistics.median(times) * 1000, 2)}


def _live_group_by(app) -> dict:
    """What the page does not do: share >= 3 per Kreis grouped over the status rows (best of 3)."""
    from sqlalchemy import case

    from itvsh.extensions import db
    from itvsh.projects.models import OzgService, OzgStatus
    from itvsh.tenants.models import Municipality

    kreis = case((Municipality.kind == "kreisfreie_stadt", Municipality.id), else_=Municipality.kreis_id)
    statement = (
        select(kreis, func.sum(case((OzgStatus.maturity >= 3, 1), else_=0)), func.count())
        .join(Municipality, Municipality.id == OzgStatus.municipality_id)
        .join(OzgService, OzgService.id == OzgStatus.service_id)
        .where(OzgService.responsibility == "municipal")
        .group_by(kreis)
    )
    times = []
    with app.app_context():
        for _ in range(3):
            started = time.perf_counter()
            db.session.execute(statement).all()
            times.append(time.perf_counter() - started)
        db.session.remove()
    return {"ms_min": round(min(times) * 1000, 2), "ms_median": round(statistics.median(times) * 1000, 2)}


def _csv_memory(url: str, secret: str) -> dict:
    """Read /monitoring/ozg.csv chunk by chunk, as a client would, in a fresh process: its peak RSS
    before and after (what the read added), the time and the size."""
    env = dict(
        os.environ,
        ITVSH_BENCH_DATABASE_URL=url,
        ITVSH_BENCH_SECRET=secret,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    code = "import json, bench.monitoring as m; print(json.dumps(m._read_csv()))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=600
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def _step(what: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {what}", flush=True)


def _rss_mib() -> float:
    """The process's resident memory now (Linux), in MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20


def _read_csv() -> dict:
    """(In the subprocess.) Resident memory after a first small request, and its highest value
    while the CSV streams (sampled at every chunk)."""
    from bench.wsgi import make_bench_app

    app = make_bench_app()
    client = app.test_client()
    client.get("/monitoring/about", buffered=True)  # imports, templates, a connection
    start = highest = _rss_mib()
    started = time.perf_counter()
    response = client.get("/monitoring/ozg.csv", buffered=False)
    size = lines = 0
    for chunk in response.response:
        size += len(chunk)
        lines += chunk.count(b"\n")
        highest = max(highest, _rss_mib())
    response.close()
    return {
        "rows": lines - 1,
        "mib": round(size / 2**20, 1),
        "seconds": round(time.perf_counter() - started, 2),
        "rss_start_mib": round(start, 1),
        "rss_highest_mib": round(highest, 1),
        "rss_added_mib": round(highest - start, 1),
    }


def _measure(app, label: str, url: str, secret: str) -> dict:
    result = {
        "statements": {name: _statements(app, path) for name, path in _pages().items()},
        "statements_cold": {name: _statements(app, path, cold=True) for name, path in _pages().items()},
        "latency": {name: _latency(app, path) for name, path in _pages().items()},
        "latency_cold": {name: _latency(app, path, cold=True) for name, path in _pages().items()},
    }
    _step("statements and latency")
    result["csv"] = _csv_memory(url, secret)
    _step("CSV read")
    result["statements"]["ozg.csv"] = _open_data_statements(app, "/monitoring/ozg.csv")
    result["statements"]["ozg.json"] = _open_data_statements(app, "/monitoring/ozg.json")
    result["statements"]["ozg.csv 304"] = _statements_304(app)
    print(f"  measured at {label} ({time.strftime('%H:%M:%S')})", flush=True)
    return result


def _statements_304(app) -> int:
    etag = app.test_client().head("/monitoring/ozg.csv").headers["ETag"]
    return _open_data_statements(app, "/monitoring/ozg.csv", {"If-None-Match": etag}, status=304)


def _load(url: str, secret: str) -> dict:
    from bench.__main__ import _wrk
    from bench.tenants import _check, _serve

    env = dict(
        os.environ, ITVSH_BENCH_DATABASE_URL=url, ITVSH_BENCH_SECRET=secret, ITVSH_BENCH_MONITORING="1"
    )
    server, port = _serve("bench.monitoring:app", env)
    try:
        base = f"http://127.0.0.1:{port}"
        targets = {"monitoring": base + "/monitoring/", "json list (C)": base + JSON_LIST}
        _check(targets["monitoring"], None, 'id="land-share"')
        _check(targets["json list (C)"], None, '"total"')
        runs: dict[str, list[dict]] = {name: [] for name in targets}
        for _ in range(2):
            for name, target in targets.items():
                runs[name].append(_wrk(target, None))
    finally:
        server.terminate()
        server.wait(timeout=10)
    load = {
        name: {
            "rps": [r["rps"] for r in measured],
            "rps_min": min(r["rps"] for r in measured),
            "rps_median": statistics.median(r["rps"] for r in measured),
            "p50_ms_median": statistics.median(r["p50_ms"] for r in measured),
            "p99_ms_median": statistics.median(r["p99_ms"] for r in measured),
            "non_2xx": sum(r["non_2xx"] for r in measured),
        }
        for name, measured in runs.items()
    }
    return {
        "load": load,
        "ratio_rps_median": round(load["monitoring"]["rps_median"] / load["json list (C)"]["rps_median"], 3),
        "ratio_rps_min": round(load["monitoring"]["rps_min"] / load["json list (C)"]["rps_min"], 3),
        "target": ">= 0.5x",
    }


def _analyze(app) -> None:
    """PostgreSQL: statistics after a bulk load, as autovacuum would gather them soon after."""
    from sqlalchemy import text

    from itvsh.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))


def bench_database(base_url: str | None, tmp: Path, secret: str) -> dict:
    from bench.tenants import _app, _drop_database, _migrate, _scratch_database
    from itvsh.extensions import db

    url = _scratch_database(base_url, tmp, "monitoring")
    try:
        app = _app(url, secret)
        _migrate(app)
        started = time.perf_counter()
        result: dict = {"data": _seed_base(app)}
        result["data"]["status_rows_10%"] = _status_rows(app, "10%")
        result["data"]["seconds_to_load_10%"] = round(time.perf_counter() - started, 1)
        _analyze(app)
        result["at_10%"] = _measure(app, "10 %", url, secret)
        started = time.perf_counter()
        result["data"]["status_rows_100%"] = result["data"]["status_rows_10%"] + _status_rows(app, "rest")
        result["data"]["seconds_to_load_rest"] = round(time.perf_counter() - started, 1)
        _analyze(app)
        result["at_100%"] = _measure(app, "100 %", url, secret)
        result["live_group_by_at_100%"] = _live_group_by(app)
        _step("live GROUP BY")
        for kind in ("latency", "latency_cold"):
            for stat in ("median", "min"):
                result[f"{kind}_ratio_100_to_10_{stat}"] = {
                    name: round(
                        result["at_100%"][kind][name][f"ms_{stat}"]
                        / result["at_10%"][kind][name][f"ms_{stat}"],
                        2,
                    )
                    for name in _pages()
                }
        result["csv_rss_added_mib"] = {
            "10%": result["at_10%"]["csv"]["rss_added_mib"],
            "100%": result["at_100%"]["csv"]["rss_added_mib"],
        }
        with app.app_context():
            db.engine.dispose()
        if (
            shutil.which("wrk") is None
            or shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None
        ):
            result["load_skipped"] = "wrk or gunicorn missing (apt-get install wrk; pip install gunicorn)"
        else:
            result.update(_load(url, secret))
            _step("load")
        return result
    finally:
        _drop_database(url)


def main() -> int:
    given = os.environ.get("ITVSH_BENCH_DATABASE_URL") or None
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if given and make_url(given).get_backend_name() == "postgresql":
        backends.append(("postgresql", given))
    tmp = Path(tempfile.mkdtemp(prefix="itvsh-bench-monitoring-"))
    secret = secrets.token_urlsafe(32)
    results: dict = {"seconds_per_run": SECONDS, "latency_runs": LATENCY_RUNS}
    try:
        for backend, base in backends:
            print(f"monitoring: {backend} ... ({time.strftime('%H:%M:%S')})", flush=True)
            results[backend] = bench_database(base, tmp, secret)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if given is None:
            os.environ.pop("ITVSH_BENCH_DATABASE_URL", None)
        else:
            os.environ["ITVSH_BENCH_DATABASE_URL"] = given
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "monitoring.json").write_text(json.dumps(results, indent=2))
    _print(results)
    return 0


def _print(results: dict) -> None:
    for backend in ("sqlite", "postgresql"):
        row = results.get(backend)
        if row is None:
            continue
        data = row["data"]
        print(
            f"monitoring on {backend}: {data['municipalities']} Gemeinden x {data['services']} services, "
            f"{data['status_rows_100%']:,} status rows, {data['bookings']:,} bookings"
        )
        print(
            f"  {'page (kept / first visit after a change)':<44} {'SQL 10%':>8} {'SQL 100%':>9} "
            f"{'ms med 10%':>11} {'ms med 100%':>12} {'ratio':>6} "
            f"{'ms min 10%':>11} {'ms min 100%':>12} {'ratio':>6}"
        )
        for kind, label in (("", "kept"), ("_cold", "first visit")):
            for name in _pages():
                print(
                    f"  {name + ' (' + label + ')':<44} {row['at_10%']['statements' + kind][name]:>8} "
                    f"{row['at_100%']['statements' + kind][name]:>9} "
                    f"{row['at_10%']['latency' + kind][name]['ms_median']:>11.2f} "
                    f"{row['at_100%']['latency' + kind][name]['ms_median']:>12.2f} "
                    f"{row['latency' + kind + '_ratio_100_to_10_median'][name]:>5.2f}x "
                    f"{row['at_10%']['latency' + kind][name]['ms_min']:>11.2f} "
                    f"{row['at_100%']['latency' + kind][name]['ms_min']:>12.2f} "
                    f"{row['latency' + kind + '_ratio_100_to_10_min'][name]:>5.2f}x"
                )
        for name in ("ozg.csv", "ozg.json", "ozg.csv 304"):
            print(
                f"  {name:<26} {row['at_10%']['statements'][name]:>8} {row['at_100%']['statements'][name]:>9}"
            )
        live = row["live_group_by_at_100%"]
        print(f"  live GROUP BY per Kreis over the status rows (avoided): {live['ms_median']:.1f} ms median")
        for label in ("at_10%", "at_100%"):
            c = row[label]["csv"]
            print(
                f"  CSV {label[3:]:>5}: {c['rows']:>7,} rows, {c['mib']:6.1f} MiB in {c['seconds']:.1f} s; "
                f"RSS {c['rss_start_mib']:.0f} -> at most {c['rss_highest_mib']:.0f} MiB "
                f"(+{c['rss_added_mib']:.1f} MiB; target: the same at 10 % and 100 %)"
            )
        if "load" in row:
            for name, load in row["load"].items():
                print(
                    f"  wrk {name:<16} {load['rps_median']:>8.1f} req/s med  {load['rps_min']:>8.1f} min  "
                    f"p50 {load['p50_ms_median']:.1f} ms  p99 {load['p99_ms_median']:.1f} ms  "
                    f"non-2xx {load['non_2xx']}"
                )
            print(
                f"  ratio /monitoring/ to the JSON list: {row['ratio_rps_median']:.2f}x median, "
                f"{row['ratio_rps_min']:.2f}x min (target >= 0.5x)"
            )
        else:
            print(f"  load: {row.get('load_skipped')}")


if __name__ == "__main__":
    sys.exit(main())
