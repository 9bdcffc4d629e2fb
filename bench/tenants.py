"""Tenants benchmark, measured against floors in the same run (../shared/design/BENCH.md):

(a) importing the shipped 1,106-row municipality list into an empty database (``itvsh.tenants.
    importer``: parse, check every line, build Kreise and Ämter, Core executemany, one audit event,
    commit) against the floor "csv.DictReader + one bare Core executemany of the same rows";
    a warm-up each, then >= 3 alternating runs each, min and median (target: <= 2x);
(b) the admin list of municipalities (/admin/municipalities/, logged in as staff, German UI) against
    a vanilla Flask-Admin ModelView over the same table with the same columns and page size, no
    login, in a separate bare Flask app (its own Admin, same database); both served by gunicorn
    with 2 sync workers, wrk -t2 -c8 --latency, two runs each, alternating (target: >= 0.9x); and
    the SQL statements per page of both.

Always on SQLite (a temporary file); also on PostgreSQL when ITVSH_BENCH_DATABASE_URL points at one
(the benchmark creates and drops its own scratch databases on that server). Results:
bench/results/tenants.json and a table. Environment: BENCH_SECONDS (10), BENCH_IMPORT_RUNS (5).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import create_engine, delete, event, insert, text
from sqlalchemy.engine import make_url

from bench.__main__ import _free_port, _login_cookie, _wrk  # the foundation's gunicorn/wrk helpers

RESULTS = Path(__file__).parent / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
IMPORT_RUNS = max(3, int(os.environ.get("BENCH_IMPORT_RUNS", "5")))
ADMIN_PATH = "/admin/municipalities/"
STAFF_EMAIL = "staff@itvsh.example"  # a demo login (itvsh demo)


# --- scratch databases ----------------------------------------------------------------------------


def _scratch_database(base_url: str | None, tmp: Path, label: str) -> str:
    """A new, empty database: a SQLite file in ``tmp``, or a new database on the PostgreSQL server."""
    if base_url is None:
        return f"sqlite:///{tmp / f'{label}.db'}"
    base = make_url(base_url)
    name = f"itvsh_bench_{label}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


def _drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        return
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
    admin.dispose()


def _app(url: str, secret: str):
    os.environ.update(ITVSH_BENCH_DATABASE_URL=url, ITVSH_BENCH_SECRET=secret)
    from bench.wsgi import make_bench_app

    return make_bench_app()


def _migrate(app) -> None:
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()


# --- (a) the import -------------------------------------------------------------------------------


def _empty_municipalities(app) -> None:
    """Back to an empty table (children before parents); PostgreSQL also reclaims the dead rows."""
    from itvsh.extensions import db
    from itvsh.tenants.models import LOCAL_KINDS, Municipality

    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            table = Municipality.__table__
            conn.execute(delete(table).where(table.c.kind.in_([k.value for k in LOCAL_KINDS])))
            conn.execute(delete(table).where(table.c.kind == "amt"))
            conn.execute(delete(table))
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM municipalities"))


def _ours(app, data: bytes) -> float:
    from itvsh.extensions import db
    from itvsh.tenants.importer import import_municipalities

    with app.app_context():
        started = time.perf_counter()
        result = import_municipalities(db.session, "bench", data, source="sh_municipalities.csv")
        db.session.commit()
        elapsed = time.perf_counter() - started
        assert result.created == 1201, result.summary()
        db.session.remove()
    return elapsed


_KINDS = {"Gemeinde": "gemeinde", "Stadt": "stadt", "kreisfreie Stadt": "kreisfreie_stadt"}


def _floor(app, data: bytes) -> float:
    """Parse the same CSV with csv.DictReader and insert its rows with one bare Core executemany."""
    from itvsh.extensions import db
    from itvsh.tenants.models import Municipality

    table = Municipality.__table__
    with app.app_context():
        engine = db.engine
        started = time.perf_counter()
        now = datetime.now(UTC)
        rows = [
            {
                "key": row["ags"],
                "ars": row["ars"],
                "name": row["name"],
                "kind": _KINDS[row["gemeindetyp"]],
                "population": int(row["population"]),
                "population_date": date.fromisoformat(row["population_date"]),
                "area_km2": Decimal(row["area_km2"]) if row["area_km2"] else None,
                "postcode": row["plz"] or None,
                "created_at": now,
            }
            for row in csv.DictReader(io.StringIO(data.decode("utf-8")))
        ]
        with engine.begin() as conn:
            conn.execute(insert(table), rows)
        elapsed = time.perf_counter() - started
    assert len(rows) == 1106
    return elapsed


def bench_import(base_url: str | None, tmp: Path, secret: str) -> dict:
    from itvsh.demo import shipped_list

    data = shipped_list()
    url = _scratch_database(base_url, tmp, "import")
    try:
        app = _app(url, secret)
        _migrate(app)
        times: dict[str, list[float]] = {"ours": [], "floor": []}
        for run in range(IMPORT_RUNS + 1):  # run 0 warms both up and is not counted
            for name, measure in (("ours", _ours), ("floor", _floor)):
                _empty_municipalities(app)
                elapsed = measure(app, data)
                if run:
                    times[name].append(elapsed)
        with app.app_context():
            from itvsh.extensions import db

            db.engine.dispose()
    finally:
        _drop_database(url)
    ours, floor = times["ours"], times["floor"]
    return {
        "rows_in_file": 1106,
        "tenants_created": 1201,
        "runs": IMPORT_RUNS,
        "ours_ms": [round(t * 1000, 2) for t in ours],
        "floor_ms": [round(t * 1000, 2) for t in floor],
        "ours_ms_min": round(min(ours) * 1000, 2),
        "ours_ms_median": round(statistics.median(ours) * 1000, 2),
        "floor_ms_min": round(min(floor) * 1000, 2),
        "floor_ms_median": round(statistics.median(floor) * 1000, 2),
        "ratio_median": round(statistics.median(ours) / statistics.median(floor), 2),
        "ratio_min": round(min(ours) / min(floor), 2),
        "target": "<= 2x",
    }


# --- (b) the admin list against a vanilla Flask-Admin ModelView -----------------------------------


def make_vanilla_app(url: str):
    """A bare Flask app with its own Flask-Admin and a plain ModelView over the municipalities, with
    the columns and page size of our list view -- no login, no roles, no CSRF, no i18n."""
    from flask import Flask
    from flask_admin import Admin
    from flask_admin.contrib.sqla import ModelView
    from flask_admin.theme import Bootstrap4Theme
    from flask_babel import Babel

    from itvsh.extensions import db
    from itvsh.tenants.admin import MunicipalityView
    from itvsh.tenants.models import Municipality

    app = Flask("vanilla")
    app.config.update(SQLALCHEMY_DATABASE_URI=url, SECRET_KEY=secrets.token_hex(16))
    db.init_app(app)
    Babel(app)  # Flask-Admin needs it once flask-babel is installed (English, its default)

    class VanillaMunicipalityView(ModelView):
        column_list = MunicipalityView.column_list
        page_size = MunicipalityView.page_size
        column_default_sort = MunicipalityView.column_default_sort  # the same page of rows

    admin = Admin(app, name="vanilla", theme=Bootstrap4Theme())
    admin.add_view(VanillaMunicipalityView(Municipality, db, endpoint="municipalities"))
    return app


def _vanilla_from_environment():
    url = os.environ.get("ITVSH_BENCH_VANILLA_DATABASE_URL")
    return make_vanilla_app(url) if url else None


vanilla_app = _vanilla_from_environment()  # gunicorn bench.tenants:vanilla_app


_TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")


def _statements(app, client, path: str) -> tuple[int, str]:
    """SQL statements of one request (transaction control such as SQLite's BEGIN IMMEDIATE not
    counted), and the page."""
    from itvsh.extensions import db

    with app.app_context():
        engine = db.engine
    count = 0

    def on_execute(_conn, _cursor, statement, *_args):
        nonlocal count
        if not statement.lstrip().upper().startswith(_TRANSACTION_CONTROL):
            count += 1

    client.get(path)  # warm
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        response = client.get(path)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert response.status_code == 200, (path, response.status_code)
    return count, response.get_data(as_text=True)


def _serve(target: str, env: dict) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "gunicorn"),
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            target,
        ],
        env=env,
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, port
        except OSError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"gunicorn {target} did not start")


def _check(url: str, cookie: str | None, must_contain: str) -> None:
    """Requests as wrk will send them must answer 200 with the list (wrk counts 3xx as success)."""
    assert url.startswith("http://127.0.0.1:"), url
    request = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})  # noqa: S310

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    for _ in range(6):  # also warms both workers up (templates, catalogues) before wrk measures
        with opener.open(request, timeout=120) as response:
            body = response.read().decode("utf-8")
            assert response.status == 200, (url, response.status)
        assert must_contain in body, (url, must_contain)


def bench_admin(base_url: str | None, tmp: Path, secret: str) -> dict:
    from itvsh.demo import load_demo
    from itvsh.extensions import db

    url = _scratch_database(base_url, tmp, "admin")
    servers: list[subprocess.Popen] = []
    try:
        app = _app(url, secret)
        _migrate(app)
        with app.app_context():
            load_demo(db.session)  # 1,201 tenants, memberships, contacts, the demo logins
            db.session.commit()
        client, cookie = _login_cookie(app, STAFF_EMAIL)
        ours_statements, ours_html = _statements(app, client, ADMIN_PATH)
        assert '<html lang="de"' in ours_html, "the staff user's page is not German"
        vanilla = make_vanilla_app(url)
        vanilla_statements, _html = _statements(vanilla, vanilla.test_client(), ADMIN_PATH)
        with app.app_context():
            db.engine.dispose()
        with vanilla.app_context():
            db.engine.dispose()
        result: dict = {
            "path": ADMIN_PATH,
            "page_size": _page_size(),
            "statements_per_page": {"ours": ours_statements, "vanilla": vanilla_statements},
            "load": {},
        }
        if (
            shutil.which("wrk") is None
            or shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None
        ):
            result["load_skipped"] = "wrk or gunicorn missing (apt-get install wrk; pip install gunicorn)"
            return result
        env = dict(
            os.environ,
            ITVSH_BENCH_DATABASE_URL=url,
            ITVSH_BENCH_SECRET=secret,
            ITVSH_BENCH_VANILLA_DATABASE_URL=url,
        )
        ours_server, ours_port = _serve("bench.wsgi:app", env)
        servers.append(ours_server)
        vanilla_server, vanilla_port = _serve("bench.tenants:vanilla_app", env)
        servers.append(vanilla_server)
        targets = {
            "ours": (f"http://127.0.0.1:{ours_port}{ADMIN_PATH}", cookie),
            "vanilla": (f"http://127.0.0.1:{vanilla_port}{ADMIN_PATH}", None),
        }
        _check(*targets["ours"], "01001000")
        _check(*targets["vanilla"], "01001000")
        runs: dict[str, list[dict]] = {"ours": [], "vanilla": []}
        for _ in range(2):
            for name, (target, ck) in targets.items():
                runs[name].append(_wrk(target, ck))
        for name, measured in runs.items():
            result["load"][name] = {
                "rps": [r["rps"] for r in measured],
                "rps_min": min(r["rps"] for r in measured),
                "rps_median": statistics.median(r["rps"] for r in measured),
                "p50_ms_median": statistics.median(r["p50_ms"] for r in measured),
                "p99_ms_median": statistics.median(r["p99_ms"] for r in measured),
                "non_2xx": sum(r["non_2xx"] for r in measured),
            }
        result["ratio_rps_median"] = round(
            result["load"]["ours"]["rps_median"] / result["load"]["vanilla"]["rps_median"], 3
        )
        result["ratio_rps_min"] = round(
            result["load"]["ours"]["rps_min"] / result["load"]["vanilla"]["rps_min"], 3
        )
        result["target"] = ">= 0.9x"
        return result
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)
        _drop_database(url)


def _page_size() -> int:
    from itvsh.tenants.admin import MunicipalityView

    return MunicipalityView.page_size


# --- main -----------------------------------------------------------------------------------------


def main() -> int:
    given = os.environ.get("ITVSH_BENCH_DATABASE_URL") or None
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if given and make_url(given).get_backend_name() == "postgresql":
        backends.append(("postgresql", given))
    tmp = Path(tempfile.mkdtemp(prefix="itvsh-bench-tenants-"))
    secret = secrets.token_urlsafe(32)
    results: dict = {"seconds_per_run": SECONDS, "import": {}, "admin_list": {}}
    try:
        for backend, base in backends:
            results["import"][backend] = bench_import(base, tmp, secret)
            results["admin_list"][backend] = bench_admin(base, tmp, secret)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if given is None:
            os.environ.pop("ITVSH_BENCH_DATABASE_URL", None)
        else:
            os.environ["ITVSH_BENCH_DATABASE_URL"] = given
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tenants.json").write_text(json.dumps(results, indent=2))
    _print(results)
    return 0


def _print(results: dict) -> None:
    print(
        "tenants: import of the shipped list (1,106 rows -> 1,201 tenants) "
        "vs csv.DictReader + bare executemany"
    )
    print(
        f"  {'database':<11} {'ours min':>9} {'median':>8} {'floor min':>10} {'median':>8} "
        f"{'ratio med':>10} {'min':>6}"
    )
    for backend, row in results["import"].items():
        print(
            f"  {backend:<11} {row['ours_ms_min']:>7.1f}ms {row['ours_ms_median']:>6.1f}ms "
            f"{row['floor_ms_min']:>8.1f}ms {row['floor_ms_median']:>6.1f}ms "
            f"{row['ratio_median']:>9.2f}x {row['ratio_min']:>5.2f}x   (target <= 2x)"
        )
    print(
        f"tenants: admin list {ADMIN_PATH} (staff, German) vs vanilla Flask-Admin ModelView, "
        f"wrk 2 threads/8 connections, {SECONDS}s x 2 runs, gunicorn 2 sync workers"
    )
    print(
        f"  {'database':<11} {'view':<8} {'req/s med':>10} {'min':>8} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'SQL/page':>9}"
    )
    for backend, row in results["admin_list"].items():
        for name in ("ours", "vanilla"):
            load = row["load"].get(name)
            statements = row["statements_per_page"][name]
            if load is None:
                print(f"  {backend:<11} {name:<8} {'-':>10} {'-':>8} {'-':>8} {'-':>8} {statements:>9}")
                continue
            print(
                f"  {backend:<11} {name:<8} {load['rps_median']:>10.1f} {load['rps_min']:>8.1f} "
                f"{load['p50_ms_median']:>8.1f} {load['p99_ms_median']:>8.1f} {statements:>9}"
            )
        if "ratio_rps_median" in row:
            print(
                f"  {backend:<11} ratio ours/vanilla: {row['ratio_rps_median']:.2f}x median, "
                f"{row['ratio_rps_min']:.2f}x min   (target >= 0.9x)"
            )


if __name__ == "__main__":
    sys.exit(main())
