"""Foundation benchmark: SQL statements per page at two data sizes, and throughput of the admin
dashboard, an admin list and an API list against a bare endpoint and `SELECT 1` (wrk against
gunicorn with 2 sync workers, 8 connections), each run twice. Results: bench/results/foundation.json.

Environment: ITVSH_BENCH_DATABASE_URL (default: a temporary SQLite file), BENCH_SECONDS (10).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flask_migrate import upgrade
from sqlalchemy import event

RESULTS = Path(__file__).parent / "results"
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _seed(app, users: int, events: int) -> None:
    from itvsh.auth import services
    from itvsh.core import audit
    from itvsh.demo import ensure_municipality
    from itvsh.extensions import db

    with app.app_context():
        ensure_municipality(db.session, "01002000")
        existing = services.count_users(db.session)
        for i in range(existing, users):
            services.create_user(
                db.session,
                "bench",
                email=f"user{i}@bench.example",
                role="staff",
                password="bench password 123",
            )
        for i in range(events):
            audit.record(db.session, "bench", "ping", "bench", i)
        db.session.commit()


def _statements(app, client, path: str) -> int:
    from itvsh.extensions import db

    count = 0

    def on_execute(*_args):
        nonlocal count
        count += 1

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    return count


def _login_cookie(app, email: str) -> tuple[object, str]:
    from itvsh.auth import services
    from itvsh.extensions import db

    client = app.test_client()
    with app.app_context():
        user = services.find_user(db.session, email)
        session_id = user.get_id()
    with client.session_transaction() as session:
        session["_user_id"] = session_id
        session["_fresh"] = True
    client.get("/admin/")
    cookie = client.get_cookie("itvsh_session")
    return client, f"itvsh_session={cookie.value}"


def _wrk(url: str, cookie: str | None) -> dict:
    cmd = ["wrk", "-t2", "-c8", f"-d{SECONDS}s", "--latency", url]
    if cookie:
        cmd[1:1] = ["-H", f"Cookie: {cookie}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        value, unit = float(m.group(1)), m.group(2)
        return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return {
        "rps": rps,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
    }


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="itvsh-bench-"))
    url = os.environ.get("ITVSH_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.db'}"
    backend = url.split(":", 1)[0].split("+", 1)[0]
    secret = secrets.token_urlsafe(32)
    os.environ.update(ITVSH_BENCH_DATABASE_URL=url, ITVSH_BENCH_SECRET=secret)
    from bench.wsgi import make_bench_app

    app = make_bench_app()
    with app.app_context():
        upgrade()
    results: dict = {"database": backend, "seconds_per_run": SECONDS, "statements": {}, "load": {}}

    # SQL statements per page must not grow with the data (no N+1).
    pages = ["/admin/", "/admin/users/", "/admin/audit_events/", "/api/v1/users", "/api/v1/audit-events"]
    for users, events in ((5, 20), (200, 2000)):
        _seed(app, users, events)
        _seed(app, 1, 0)  # makes sure the admin exists below
        with app.app_context():
            from itvsh.auth import services
            from itvsh.extensions import db

            if services.find_user(db.session, "admin@bench.example") is None:
                services.create_user(
                    db.session,
                    "bench",
                    email="admin@bench.example",
                    role="admin",
                    password="bench password 123",
                )
                db.session.commit()
        client, cookie = _login_cookie(app, "admin@bench.example")
        for page in pages:
            results["statements"].setdefault(page, {})[f"{users} users / {events} events"] = _statements(
                app, client, page
            )

    if shutil.which("wrk") is None or shutil.which("gunicorn", path=str(Path(sys.executable).parent)) is None:
        print("wrk or gunicorn missing: load part skipped (apt-get install wrk; pip install gunicorn)")
    else:
        port = _free_port()
        env = dict(os.environ, ITVSH_BENCH_DATABASE_URL=url, ITVSH_BENCH_SECRET=secret)
        server = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "gunicorn"),
                "-w",
                "2",
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "bench.wsgi:app",
            ],
            env=env,
        )
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            base = f"http://127.0.0.1:{port}"
            targets = [
                ("bare constant JSON (floor)", "/_bench/bare", None),
                ("SELECT 1 (floor)", "/_bench/select1", None),
                ("/healthz", "/healthz", None),
                ("admin dashboard /admin/", "/admin/", cookie),
                ("admin list /admin/users/", "/admin/users/", cookie),
                ("API list /api/v1/users", "/api/v1/users", cookie),
            ]
            for label, path, ck in targets:
                runs = [_wrk(base + path, ck) for _ in range(2)]
                results["load"][label] = {
                    "rps_min": min(r["rps"] for r in runs),
                    "rps_median": statistics.median(r["rps"] for r in runs),
                    "p50_ms_median": statistics.median(r["p50_ms"] for r in runs),
                    "p99_ms_median": statistics.median(r["p99_ms"] for r in runs),
                    "non_2xx": sum(r["non_2xx"] for r in runs),
                }
            floor = results["load"]["bare constant JSON (floor)"]["rps_median"]
            for row in results["load"].values():
                row["share_of_bare"] = round(row["rps_median"] / floor, 4)
        finally:
            server.terminate()
            server.wait(timeout=10)

    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "foundation.json").write_text(json.dumps(results, indent=2))
    print(f"database: {backend}")
    print("SQL statements per request (must not grow with the data):")
    for page, sizes in results["statements"].items():
        print(f"  {page:<24} " + "  ".join(f"{k}: {v}" for k, v in sizes.items()))
    if results["load"]:
        print(f"load: wrk 2 threads, 8 connections, {SECONDS}s x 2 runs, gunicorn 2 sync workers")
        print(f"  {'endpoint':<30} {'req/s med':>10} {'min':>8} {'share':>7} {'p50 ms':>8} {'p99 ms':>8}")
        for label, row in results["load"].items():
            print(
                f"  {label:<30} {row['rps_median']:>10.0f} {row['rps_min']:>8.0f} "
                f"{row['share_of_bare']:>7.1%} {row['p50_ms_median']:>8.1f} {row['p99_ms_median']:>8.1f}"
            )
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


def run_all(names: list[str]) -> int:
    """`python -m bench [foundation] [tenants] [funding] [staffing] [monitoring] [reports]`: the named
    benchmarks, by default all of them."""
    from bench import funding, monitoring, reports, staffing, tenants

    benchmarks = {
        "foundation": main,
        "tenants": tenants.main,
        "funding": funding.main,
        "staffing": staffing.main,
        "monitoring": monitoring.main,
        "reports": reports.main,
    }
    unknown = [n for n in names if n not in benchmarks]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(benchmarks)}")
        return 2
    given = os.environ.get("ITVSH_BENCH_DATABASE_URL")
    code = 0
    for name in names or list(benchmarks):
        # Each benchmark starts from the database URL the caller gave (main() sets its own).
        if given is None:
            os.environ.pop("ITVSH_BENCH_DATABASE_URL", None)
        else:
            os.environ["ITVSH_BENCH_DATABASE_URL"] = given
        code = code or benchmarks[name]()
    return code


if __name__ == "__main__":
    sys.exit(run_all(sys.argv[1:]))
