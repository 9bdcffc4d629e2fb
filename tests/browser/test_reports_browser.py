"""The reports screens in a real browser: a staff member asks for an OZG export, lands on the
report's page, and watches it go from queued to finished and the download link appear — the page's
script follows the report, the page is never reloaded — and the file downloads as an attachment,
without a CSP violation. Jobs run in the background thread of the in-process runner, against the
live server's committed database."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from itvsh.core.settings import get_flag, set_flag
from itvsh.extensions import db
from itvsh.reports import jobs, service
from tests.browser.helpers import csp_violations, login

pytestmark = pytest.mark.browser

SCHEDULE_KEYS = (service.SCHEDULE_MONTHLY_SNAPSHOT, service.SCHEDULE_ANNUAL_ON_CLOSE)


class HeldJobs(jobs.EmbeddedJobs):
    """The in-process runner, holding what is enqueued until the test lets it run: the page is
    seen waiting first, so what it shows later can only come from its script."""

    def __init__(self, app):
        super().__init__(app)
        self.held: list[tuple[int, str]] = []

    def enqueue(self, report_id, kind):
        job_id = f"embedded-{report_id}-held"
        self.pending.add(job_id)
        self.held.append((report_id, job_id))
        return job_id

    def release(self) -> None:
        while self.held:
            self.queue.put(self.held.pop(0))
        self.start()


def _schedule(app, values: dict | None = None) -> dict:
    """Set the schedule switches (the runner's scheduler must not add snapshots to the shared
    database); returns what they were."""
    with app.app_context():
        before = {key: get_flag(db.session, key, True) for key in SCHEDULE_KEYS}
        for key, on in (values or {}).items():
            set_flag(db.session, "browser-test", key, on)
        db.session.commit()
        db.session.remove()
    return before


@pytest.fixture
def held_jobs(live_server):
    app = live_server.app
    previous_schedule = _schedule(app, dict.fromkeys(SCHEDULE_KEYS, False))
    previous = app.extensions.get("itvsh_jobs")
    runner = HeldJobs(app)
    app.extensions["itvsh_jobs"] = runner
    try:
        yield runner
    finally:
        runner.stop()
        if previous is None:
            app.extensions.pop("itvsh_jobs", None)
        else:
            app.extensions["itvsh_jobs"] = previous
        _schedule(app, previous_schedule)


def test_a_requested_report_is_followed_to_its_download_without_a_reload(
    page, console, live_server, held_jobs
):
    login(page, live_server.make_user("staff"))

    page.goto("/reports/")
    form = page.locator("form[data-kind=ozg_export]")
    form.locator("select[name=format]").select_option("csv")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()

    assert re.fullmatch(rf"{re.escape(live_server.url)}/reports/\d+", page.url)
    state = page.locator("#report-state")
    expect(state).to_have_attribute("data-status", "queued")
    expect(page.locator("#report-download")).to_be_hidden()
    expect(page.locator("#report-refresh")).to_be_visible()  # the refresh link for pages without script
    expect(page.locator("h1")).to_have_count(1)
    page.evaluate("window.itvshSamePage = true")

    held_jobs.release()

    expect(state).to_have_attribute("data-status", "finished", timeout=20_000)
    link = page.locator("#report-download-link")
    expect(link).to_be_visible()
    expect(page.locator("#report-refresh")).to_be_hidden()
    assert page.locator("#report-progress").evaluate("bar => bar.value") == 100
    expect(page.locator("#report-sha256")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    assert page.evaluate("window.itvshSamePage") is True  # updated in place, never reloaded

    download = page.request.get(live_server.url + link.get_attribute("href"))
    assert download.status == 200
    assert download.headers["content-disposition"].startswith("attachment")
    assert "ozg-export.csv" in download.headers["content-disposition"]
    assert csp_violations(console) == []
