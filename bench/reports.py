"""Reports benchmark: the annual funding report (Mittelverwendungsbericht) as XLSX for the demo
year with the most bookings, over all 1,106 municipalities (the demo of ``itvsh demo``), against
the floor of ../shared/design/BENCH.md measured in the same run:

  floor = the same rows (the year's bookings and its allocations, joined to recipient, Kreis and
  category names, each allocation with its committed and paid sums in the year) read with ONE SQL
  query (a UNION ALL of both parts) and written by openpyxl in write-only mode to two sheets.

(a) time: ours (``itvsh.reports.renderers.annual.render``, all six sheets) and the floor, a
    warm-up each, then BENCH_REPORT_RUNS (5) alternating runs each in one process; min, median and
    the ratio of the medians (target: <= 1.5x);
(b) memory: the growth of the peak RSS of a fresh process while it makes the file (peak reset via
    /proc/self/clear_refs after the imports and a first query, read from VmHWM; falls back to
    ru_maxrss), for ours and the floor (target: < 60 MB), with the row counts;
(c) scale: the same year with its allocations and bookings copied four more times (5x the rows,
    in a scratch copy): time (a warm-up, then 3 alternating runs each) and the memory growth again,
    which must stay about the same.

Data: on SQLite a copy of /tmp/demo.db when it is there (BENCH_DEMO_DB), else a scratch database
loaded with the demo loader; on PostgreSQL (when ITVSH_BENCH_DATABASE_URL points at one) a scratch
database created, loaded with the demo loader and dropped. Results: bench/results/reports.json and
a table.
"""

from __future__ import annotations

import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import DateTime, Integer, case, cast, func, literal, null, or_, select, text, union_all
from sqlalchemy.engine import make_url
from sqlalchemy.orm import aliased

from bench.tenants import _app, _drop_database, _migrate, _scratch_database

RESULTS = Path(__file__).parent / "results"
RUNS = max(3, int(os.environ.get("BENCH_REPORT_RUNS", "5")))
DEMO_DB = Path(os.environ.get("BENCH_DEMO_DB", "/tmp/demo.db"))  # noqa: S108  (made by `itvsh demo`)
SCALE = 5
SCALE_RUNS = 3  # alternating runs at 5x the rows (each takes seconds)
TARGET_RATIO = 1.5
TARGET_MB = 60
ALLOCATION_COPIED = (
    "fiscal_year_id", "current_year_id", "category_id", "recipient_kind", "municipality_id", "project_id",
    "purpose", "amount_cents", "status", "decision_date", "file_reference", "proof_of_use_due",
    "proof_of_use_received", "distribution_id", "note", "created_by_id", "created_at", "updated_at",
)  # fmt: skip
BOOKING_COPIED = (
    "fiscal_year_id", "category_id", "municipality_id", "kind", "amount_cents", "committed_delta_cents",
    "paid_delta_cents", "available_delta_cents", "booked_on", "note", "booked_by_id", "booked_by",
    "created_at",
)  # fmt: skip


def _step(what: str) -> None:
    print(f"    {time.strftime('%H:%M:%S')} {what}", flush=True)


# --- data ---------------------------------------------------------------------------------------


def _prepare(base_url: str | None, tmp: Path, secret: str) -> str:
    """A database with the demo: a copy of the ready SQLite demo, or a scratch one loaded here."""
    if base_url is None and DEMO_DB.exists():
        path = tmp / "demo.db"
        shutil.copyfile(DEMO_DB, path)
        url = f"sqlite:///{path}"
        _migrate(_app(url, secret))
        return url
    url = _scratch_database(base_url, tmp, "reports")
    app = _app(url, secret)
    _migrate(app)
    from itvsh.demo import load_demo
    from itvsh.extensions import db

    with app.app_context():
        load_demo(db.session)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return url


def _busiest_year(app) -> int:
    from itvsh.extensions import db
    from itvsh.funding.models import Booking, FiscalYear

    with app.app_context():
        bookings, fiscal_years = Booking.__table__, FiscalYear.__table__
        row = db.session.execute(
            select(fiscal_years.c.year, func.count(bookings.c.id))
            .join(bookings, bookings.c.fiscal_year_id == fiscal_years.c.id)
            .group_by(fiscal_years.c.year)
            .order_by(func.count(bookings.c.id).desc(), fiscal_years.c.year)
            .limit(1)
        ).one()
        db.session.remove()
    return int(row[0])


def _scale_up(app, year: int, times: int) -> None:
    """Copy the year's allocations and bookings ``times - 1`` more times (new ids; a copied
    reversal names the copy of what it reverses; copied carry-ins name nothing). Inserts only: the
    ledger stays append-only."""
    from itvsh.extensions import db

    with app.app_context():
        engine = db.engine
        with engine.begin() as conn:
            year_id = conn.execute(
                text("SELECT id FROM fiscal_years WHERE year = :y"), {"y": year}
            ).scalar_one()
            top_allocation = conn.execute(text("SELECT max(id) FROM allocations")).scalar_one()
            top_booking = conn.execute(text("SELECT max(id) FROM bookings")).scalar_one()
            kept = ", ".join(ALLOCATION_COPIED)
            copy_allocations = text(
                f"INSERT INTO allocations (id, {kept}) SELECT id + :oa, {kept} FROM allocations"
                " WHERE id <= :top AND (fiscal_year_id = :y OR id IN"
                " (SELECT allocation_id FROM bookings WHERE fiscal_year_id = :y AND id <= :topb))"
            )
            kept = ", ".join(BOOKING_COPIED)
            copy_bookings = text(
                f"INSERT INTO bookings (id, allocation_id, reverses_id, carried_from_id, {kept})"
                f" SELECT id + :ob, allocation_id + :oa, reverses_id + :ob, NULL, {kept}"
                " FROM bookings WHERE fiscal_year_id = :y AND id <= :topb ORDER BY id"
            )
            for k in range(1, times):
                offsets = {"oa": k * top_allocation, "ob": k * top_booking}
                bounds = {"top": top_allocation, "topb": top_booking, "y": year_id}
                conn.execute(copy_allocations, {**offsets, **bounds})
                conn.execute(copy_bookings, {**offsets, **bounds})
            if engine.dialect.name == "postgresql":
                conn.execute(text("ANALYZE"))
        engine.dispose()


# --- the two ways to make the file --------------------------------------------------------------


def _ours(app, year: int, path: Path) -> dict:
    from flask_babel import force_locale

    from itvsh.core.db import read_only_work, utcnow
    from itvsh.core.tenancy import ALL, set_scope
    from itvsh.extensions import db
    from itvsh.reports.kinds import RenderContext
    from itvsh.reports.renderers import annual

    with app.app_context(), app.test_request_context("/"), force_locale("de"), read_only_work():
        set_scope(db.session, ALL)
        ctx = RenderContext(
            session=db.session,
            report_id=None,
            kind="annual_funding",
            format="xlsx",
            parameters={"year": year},
            municipality_id=None,
            locale="de",
            generated_at=utcnow(),
            audit_seq=0,
            audit_hash="0" * 64,
            requested_by="bench",
        )
        started = time.perf_counter()
        with open(path, "wb") as out:
            summary = annual.render(ctx, out)
        elapsed = time.perf_counter() - started
        db.session.remove()
    return {"seconds": elapsed, "bookings": summary["bookings"], "allocations": summary["allocations"]}


def _floor_query(app, year_id: int):
    """ONE statement: the year's bookings (part 0) and allocations (part 1) with the names."""
    from itvsh.extensions import db
    from itvsh.funding.models import Allocation, Booking, BudgetCategory
    from itvsh.projects.models import Project
    from itvsh.tenants.models import Municipality

    b, a, c = Booking.__table__, Allocation.__table__, BudgetCategory.__table__
    m, p = Municipality.__table__, Project.__table__
    k = aliased(Municipality.__table__)
    kreis_id = case(
        (m.c.kind.in_(["kreis", "kreisfreie_stadt"]), m.c.id), else_=func.coalesce(m.c.kreis_id, m.c.id)
    )
    recipient_key = func.coalesce(m.c.key, cast(p.c.id, m.c.key.type))
    recipient_name = func.coalesce(m.c.name, p.c.name)
    if db.engine.dialect.name == "postgresql":
        booked_at = func.timezone("Europe/Berlin", b.c.created_at)  # naive local time, as Excel wants it
    else:
        booked_at = b.c.created_at  # naive UTC already

    def names(frm):
        return (
            frm.outerjoin(m, m.c.id == a.c.municipality_id)
            .outerjoin(k, k.c.id == kreis_id)
            .outerjoin(p, p.c.id == a.c.project_id)
            .join(c, c.c.id == a.c.category_id)
        )

    text_ = m.c.name.type
    big = b.c.amount_cents.type
    day = b.c.booked_on.type
    bookings = select(
        literal(0).label("part"),
        b.c.id,
        b.c.booked_on.label("day1"),
        cast(null(), day).label("day2"),
        cast(null(), day).label("day3"),
        booked_at.label("moment"),
        b.c.kind.label("word"),
        b.c.allocation_id.label("ref0"),
        a.c.recipient_kind,
        recipient_key.label("rkey"),
        recipient_name.label("rname"),
        k.c.name.label("kreis"),
        c.c.name.label("category"),
        b.c.amount_cents.label("amount"),
        b.c.committed_delta_cents.label("m1"),
        b.c.paid_delta_cents.label("m2"),
        b.c.available_delta_cents.label("m3"),
        b.c.reverses_id.label("ref1"),
        b.c.carried_from_id.label("ref2"),
        a.c.purpose,
        b.c.note.label("text1"),
        b.c.booked_by.label("text2"),
    ).select_from(names(b.join(a, a.c.id == b.c.allocation_id)))
    bookings = bookings.where(b.c.fiscal_year_id == year_id)
    sums = (
        select(
            b.c.allocation_id,
            func.sum(b.c.committed_delta_cents).label("committed"),
            func.sum(b.c.paid_delta_cents).label("paid"),
        )
        .where(b.c.fiscal_year_id == year_id)
        .group_by(b.c.allocation_id)
        .subquery()
    )
    committed = func.coalesce(sums.c.committed, 0)
    paid = func.coalesce(sums.c.paid, 0)
    allocations = (
        select(
            literal(1),
            a.c.id,
            a.c.decision_date,
            a.c.proof_of_use_due,
            a.c.proof_of_use_received,
            cast(null(), DateTime()),
            a.c.status,
            a.c.fiscal_year_id,
            a.c.recipient_kind,
            recipient_key,
            recipient_name,
            k.c.name,
            c.c.name,
            a.c.amount_cents,
            cast(committed, big),
            cast(paid, big),
            cast(committed - paid, big),
            a.c.current_year_id,
            cast(null(), Integer),
            a.c.purpose,
            a.c.file_reference,
            cast(null(), text_),
        )
        .select_from(names(a.outerjoin(sums, sums.c.allocation_id == a.c.id)))
        .where(or_(a.c.fiscal_year_id == year_id, sums.c.allocation_id.is_not(None)))
    )
    both = union_all(bookings, allocations).subquery()
    return select(both).order_by(both.c.part, both.c.id)


def _floor(app, year: int, path: Path) -> dict:
    from openpyxl import Workbook

    from itvsh.core.db import read_only_work
    from itvsh.extensions import db

    with app.app_context(), read_only_work():
        year_id = db.session.execute(
            text("SELECT id FROM fiscal_years WHERE year = :y"), {"y": year}
        ).scalar_one()
        db.session.remove()
        query = _floor_query(app, year_id)
        started = time.perf_counter()
        workbook = Workbook(write_only=True)
        sheets = (workbook.create_sheet("Bookings"), workbook.create_sheet("Allocations"))
        counts = [0, 0]
        with db.engine.connect() as conn:
            for row in conn.execute(query):
                part = row[0]
                if part == 0:
                    values = (
                        row.id, row.day1, row.moment, row.word, row.ref0, row.recipient_kind, row.rkey,
                        row.rname, row.kreis, row.category, row.amount, row.m1, row.m2, row.m3, row.ref1,
                        row.ref2, row.purpose, row.text1, row.text2,
                    )  # fmt: skip
                else:
                    values = (
                        row.id, row.ref0, row.ref1, row.category, row.recipient_kind, row.rkey, row.rname,
                        row.kreis, row.purpose, row.text1, row.amount, row.word, row.day1, row.m1, row.m2,
                        row.m3, row.day2, row.day3, row.word,
                    )  # fmt: skip
                sheets[part].append(values)
                counts[part] += 1
        workbook.save(path)
        elapsed = time.perf_counter() - started
        db.session.remove()
    return {"seconds": elapsed, "bookings": counts[0], "allocations": counts[1]}


MAKERS = {"ours": _ours, "floor": _floor}


# --- memory, in a fresh process -------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _memory_child(which: str, url: str, secret: str, year: int, path: str) -> dict:
    """(In the subprocess.) Imports, the app and a first query first; then reset the peak and make
    the file; the peak's growth over the resident memory before."""
    import openpyxl  # noqa: F401  (imported before the measurement, like in a warm worker)
    import reportlab  # noqa: F401

    import itvsh.reports.renderers.annual  # noqa: F401

    app = _app(url, secret)
    from itvsh.extensions import db

    with app.app_context():
        db.session.execute(text("SELECT count(*) FROM municipalities")).scalar_one()
        db.session.remove()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # reset the peak (VmHWM) to the current RSS
        method = "VmHWM after clear_refs"
    except OSError:
        method = "ru_maxrss"
    before_rss = _status_kib("VmRSS")
    before_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = MAKERS[which](app, year, Path(path))
    if method == "ru_maxrss":
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_peak
    else:
        grown = _status_kib("VmHWM") - before_rss
    result.update(
        rss_before_mib=round(before_rss / 1024, 1),
        peak_growth_mib=round(grown / 1024, 1),
        method=method,
        file_mib=round(os.path.getsize(path) / 2**20, 2),
    )
    return result


def _memory(which: str, url: str, secret: str, year: int, tmp: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    path = tmp / f"memory-{which}.xlsx"
    code = (
        "import json, sys, bench.reports as r; "
        f"print(json.dumps(r._memory_child({which!r}, {url!r}, {secret!r}, {year}, {str(path)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=1800
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- one database -----------------------------------------------------------------------------------


def _timings(app, year: int, tmp: Path, runs: int) -> dict:
    times: dict[str, list[float]] = {"ours": [], "floor": []}
    rows: dict[str, dict] = {}
    for run in range(runs + 1):  # run 0 warms both up and is not counted
        for which, make in MAKERS.items():
            result = make(app, year, tmp / f"{which}.xlsx")
            rows[which] = {"bookings": result["bookings"], "allocations": result["allocations"]}
            if run:
                times[which].append(result["seconds"])
    assert rows["ours"] == rows["floor"], rows  # the same rows, or the comparison means nothing
    ours, floor = times["ours"], times["floor"]
    return {
        "rows": rows["ours"],
        "runs": runs,
        "ours_s": [round(t, 3) for t in ours],
        "floor_s": [round(t, 3) for t in floor],
        "ours_s_min": round(min(ours), 3),
        "ours_s_median": round(statistics.median(ours), 3),
        "floor_s_min": round(min(floor), 3),
        "floor_s_median": round(statistics.median(floor), 3),
        "ratio_median": round(statistics.median(ours) / statistics.median(floor), 2),
        "ratio_min": round(min(ours) / min(floor), 2),
    }


def bench_database(base_url: str | None, tmp: Path, secret: str) -> dict:
    url = _prepare(base_url, tmp, secret)
    try:
        app = _app(url, secret)
        year = _busiest_year(app)
        result: dict = {"year": year}
        _step(f"data ready, year {year}")
        result["time"] = _timings(app, year, tmp, RUNS)
        _step("time")
        result["memory"] = {which: _memory(which, url, secret, year, tmp) for which in MAKERS}
        _step("memory")
        _scale_up(app, year, SCALE)
        result[f"time_x{SCALE}"] = _timings(app, year, tmp, SCALE_RUNS)
        result[f"memory_x{SCALE}"] = {which: _memory(which, url, secret, year, tmp) for which in MAKERS}
        _step(f"{SCALE}x the rows")
        with app.app_context():
            from itvsh.extensions import db

            db.engine.dispose()
        return result
    finally:
        _drop_database(url)


def main() -> int:
    given = os.environ.get("ITVSH_BENCH_DATABASE_URL") or None
    backends: list[tuple[str, str | None]] = [("sqlite", None)]
    if given and make_url(given).get_backend_name() == "postgresql":
        backends.append(("postgresql", given))
    tmp = Path(tempfile.mkdtemp(prefix="itvsh-bench-reports-"))
    secret = secrets.token_urlsafe(32)
    results: dict = {
        "report": "annual_funding xlsx",
        "targets": {"ratio_to_floor": TARGET_RATIO, "peak_rss_growth_mb": TARGET_MB},
    }
    try:
        for backend, base in backends:
            print(f"reports: {backend} ... ({time.strftime('%H:%M:%S')})", flush=True)
            results[backend] = bench_database(base, tmp, secret)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if given is None:
            os.environ.pop("ITVSH_BENCH_DATABASE_URL", None)
        else:
            os.environ["ITVSH_BENCH_DATABASE_URL"] = given
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "reports.json").write_text(json.dumps(results, indent=2))
    _print(results)
    return 0


def _print(results: dict) -> None:
    for backend in ("sqlite", "postgresql"):
        row = results.get(backend)
        if row is None:
            continue
        print(f"annual funding report (XLSX) on {backend}, year {row['year']}:")
        print(
            f"  {'rows (bookings + allocations)':<34} {'ours s med':>10} {'min':>7} {'floor s med':>12} "
            f"{'min':>7} {'ratio med':>10} {'min':>6}"
        )
        for label, key in (("demo year", "time"), (f"{SCALE}x the rows", f"time_x{SCALE}")):
            t = row[key]
            rows = f"{label}: {t['rows']['bookings']:,} + {t['rows']['allocations']:,}"
            print(
                f"  {rows:<34} {t['ours_s_median']:>10.3f} {t['ours_s_min']:>7.3f} "
                f"{t['floor_s_median']:>12.3f} {t['floor_s_min']:>7.3f} "
                f"{t['ratio_median']:>9.2f}x {t['ratio_min']:>5.2f}x"
            )
        print(f"  target: ratio <= {TARGET_RATIO}x (median)")
        for label, key in (("demo year", "memory"), (f"{SCALE}x the rows", f"memory_x{SCALE}")):
            ours, floor = row[key]["ours"], row[key]["floor"]
            print(
                f"  peak RSS growth, {label:<12}: ours +{ours['peak_growth_mib']:.1f} MiB "
                f"({ours['file_mib']} MiB file), floor +{floor['peak_growth_mib']:.1f} MiB "
                f"(from {ours['rss_before_mib']:.0f} / {floor['rss_before_mib']:.0f} MiB; {ours['method']}); "
                f"target < {TARGET_MB} MB"
            )


if __name__ == "__main__":
    sys.exit(main())
