"""Commands: ``itvsh worker [--with-scheduler] [--burst]`` (the rq worker inside the app context,
and the one scheduler) and ``itvsh reports make KIND [--year Y] [--ags AGS] --out DIR`` (the same
renderer, synchronously, without a job)."""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_babel import gettext as _

from itvsh.core import audit
from itvsh.core.db import read_only_work, utcnow
from itvsh.core.rules import RuleViolation
from itvsh.core.tenancy import ALL, pop_scope, push_scope, set_scope
from itvsh.extensions import db
from itvsh.reports import jobs as jobs_module
from itvsh.reports import storage
from itvsh.reports.kinds import KINDS, RenderContext, get_kind

log = logging.getLogger(__name__)

CLI_ACTOR = "cli"
SCHEDULER_LOCK = "itvsh:scheduler"
# Held by the scheduler thread while it works on the database, and by the worker while it forks a
# work horse: a horse forked in the middle of the scheduler's transaction inherits that transaction
# (on SQLite, the process's lock bookkeeping says "this process writes", so the horse's first write
# waits out the busy timeout and fails with "database is locked").
FORK_GUARD = threading.Lock()


class SchedulerThread(threading.Thread):
    """Runs the schedule and the sweeper every ``interval`` seconds while it holds the scheduler
    lock in Redis: of any number of ``itvsh worker --with-scheduler``, exactly one schedules; if it
    dies, its lock expires after three intervals and another takes over."""

    def __init__(self, app, jobs, connection, interval: int):
        super().__init__(name="itvsh-scheduler", daemon=True)
        self.app = app
        self.jobs = jobs
        self.interval = max(1, interval)
        self.lock = connection.lock(SCHEDULER_LOCK, timeout=self.interval * 3, thread_local=False)
        self.stopped = threading.Event()
        self.held = False

    def tick(self) -> bool:
        """Take or keep the lock; if held, run the schedule and the sweeper. True if it ran."""
        from redis.exceptions import LockError, RedisError

        try:
            if self.held:
                self.lock.reacquire()
            else:
                self.held = self.lock.acquire(blocking=False)
                if self.held:
                    log.info("this worker runs the schedule")
        except (LockError, RedisError, OSError) as exc:
            log.warning("scheduler lock: %s", exc)
            self.held = False
        if not self.held:
            return False
        try:
            with FORK_GUARD:
                counts = jobs_module.scheduler_tick(self.app, self.jobs)
            if any(counts.values()):
                log.info("schedule and sweep: %s", counts)
        except Exception:
            log.exception("scheduler tick failed")
        return True

    def run(self) -> None:
        while not self.stopped.is_set():
            self.tick()
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        if self.held:
            try:
                self.lock.release()
            except Exception as exc:
                log.info("scheduler lock not released (%s); it expires by itself", exc)


def _app_worker_class():
    from rq import Worker

    class AppWorker(Worker):
        """rq's forking worker; it forks a work horse only while the scheduler thread is outside its
        database work and with an empty connection pool, so the horse inherits no connection and no
        transaction (it opens its own, see ``jobs._own_connections``)."""

        def fork_work_horse(self, job, queue):
            with FORK_GUARD:
                db.engine.dispose()
                super().fork_work_horse(job, queue)

    return AppWorker


@click.command("worker")
@click.option("--with-scheduler", is_flag=True, help="Also run the schedule and the sweeper (one instance).")
@click.option("--burst", is_flag=True, help="Work until the queues are empty, then stop.")
@click.option(
    "--queues", default=",".join(jobs_module.QUEUES), show_default=True, help="Queues to work on, in order."
)
@with_appcontext
def worker_command(with_scheduler: bool, burst: bool, queues: str):
    """Run an rq worker for the report jobs inside the app (needs ITVSH_REDIS_URL)."""
    from redis.exceptions import RedisError
    from rq import Queue

    app = current_app._get_current_object()
    url = app.config.get("ITVSH_REDIS_URL")
    if not url:
        raise click.UsageError(
            "itvsh worker needs ITVSH_REDIS_URL. Without Redis, jobs run inside the web process "
            "(embedded mode, as with `make run`); no worker is needed."
        )
    connection = jobs_module.redis_for_jobs(url, for_worker=True)
    try:
        connection.ping()
    except (RedisError, OSError) as exc:
        click.echo(f"itvsh worker: Redis at {url} is unreachable: {exc}", err=True)
        sys.exit(1)
    jobs = jobs_module.RqJobs(jobs_module.redis_for_jobs(url))
    app.extensions["itvsh_jobs"] = jobs
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # At start, every worker hands over what waited (requests made while Redis was down, dead runs).
    counts = jobs_module.scheduler_tick(app, jobs, schedule=False)
    click.echo(f"itvsh worker: sweep at start: {counts}")
    scheduler = None
    if with_scheduler:
        scheduler = SchedulerThread(app, jobs, connection, app.config["ITVSH_SCHEDULER_SECONDS"])
        if burst:
            if scheduler.tick():
                click.echo("itvsh worker: schedule run once (burst)")
            else:
                click.echo("itvsh worker: another worker holds the scheduler lock")
        else:
            scheduler.start()
    names = [name.strip() for name in queues.split(",") if name.strip()]
    worker = _app_worker_class()(
        [Queue(name, connection=connection) for name in names], connection=connection
    )
    try:
        worker.work(burst=burst, with_scheduler=with_scheduler, logging_level="INFO")
    finally:
        if scheduler is not None:
            scheduler.stop()


@click.group("reports", help="Reports: make one now, or look at the requests.")
def reports_cli():
    pass


@reports_cli.command("make")
@click.argument("kind")
@click.option("--year", help="Fiscal year (annual funding report, statement).")
@click.option("--ags", "--tenant", "ags", help="Key (AGS) of the member (statement).")
@click.option("--as-of", "as_of", help="Reference day YYYY-MM-DD (proof-of-use overview).")
@click.option("--format", "fmt", help="xlsx, pdf or csv (default: the kind's first format).")
@click.option("--locale", default="de", type=click.Choice(["de", "en"]), show_default=True)
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for the file."
)
@with_appcontext
def make_command(kind, year, ags, as_of, fmt, locale, out_dir):
    """Render a report synchronously (no job); print the file's path and SHA-256."""
    from flask_babel import force_locale

    session = db.session
    set_scope(session, ALL)
    try:
        report_kind = get_kind(kind)
        if not report_kind.produces_file:
            raise RuleViolation(
                _("%(kind)s makes no file; it runs as a scheduled job.", kind=report_kind.name), "kind"
            )
        fmt = (fmt or report_kind.formats[0]).lower()
        if fmt not in report_kind.formats:
            raise RuleViolation(
                _(
                    "This report comes as %(formats)s, not as %(format)s.",
                    formats=", ".join(report_kind.formats),
                    format=fmt,
                ),
                "format",
            )
        raw = {k: v for k, v in {"year": year, "ags": ags, "as_of": as_of}.items() if v is not None}
        parameters, municipality_id = report_kind.validate(session, raw, ALL)
    except RuleViolation as exc:
        raise click.BadParameter(exc.message, param_hint=_option_of(exc.field)) from None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    municipality_key = parameters.get("ags")
    name = report_kind.file_name(parameters, fmt, municipality_key)
    final = out / name
    part = out / f".{name}.part"
    with force_locale(locale), read_only_work():
        seq, head = jobs_module._audit_head(session)
        ctx = RenderContext(
            session=session,
            report_id=None,
            kind=report_kind.name,
            format=fmt,
            parameters=parameters,
            municipality_id=municipality_id,
            locale=locale,
            generated_at=utcnow(),
            audit_seq=seq,
            audit_hash=head,
            requested_by=CLI_ACTOR,
        )
        scope = push_scope(session, {municipality_id} if municipality_id else ALL)
        try:
            with open(part, "wb") as fh:
                report_kind.render_function()(ctx, fh)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        finally:
            pop_scope(session, scope)
    storage.publish(part, final, drop_stale_parts=False)
    size, sha256 = storage.digest(final)
    session.commit()  # end the read transaction before the audited write
    audit.record(
        session,
        CLI_ACTOR,
        "export",
        "report",
        report_kind.name,
        after={"parameters": parameters, "format": fmt, "file": name, "size": size, "sha256": sha256},
    )
    session.commit()
    click.echo(f"{final}")
    click.echo(f"sha256 {sha256}  size {size} bytes  audit head #{seq} {head}")


def _option_of(field: str | None) -> str:
    """The command-line name of a refused parameter: the KIND argument or an option (--as-of)."""
    if not field or field == "kind":
        return "KIND"
    return "--" + field.replace("_", "-")


@reports_cli.command("sweep")
@with_appcontext
def sweep_command():
    """Hand pending requests to the job service now and recover dead runs (what the scheduler does)."""
    app = current_app._get_current_object()
    counts = jobs_module.scheduler_tick(app, jobs_module.jobs_for(app), schedule=False)
    click.echo(f"{counts}")


@reports_cli.command("kinds")
def kinds_command():
    """List the report kinds and their formats."""
    for kind in KINDS.values():
        click.echo(f"{kind.name:24} {', '.join(kind.formats)}")
