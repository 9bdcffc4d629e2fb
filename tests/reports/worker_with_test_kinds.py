"""``python -m tests.reports.worker_with_test_kinds ARGS``: the ``itvsh`` command line (the console
script's entry point, ``itvsh.cli:run``) with the report kinds named in ``ITVSH_TEST_KIND_PATCH``
replaced first — how a worker subprocess gets a test's slow renderer or short time limit — and,
with ``ITVSH_TEST_HOLD_DIR``, a scheduler whose first tick enqueues a job inside a write transaction."""

from __future__ import annotations

from tests.reports.job_support import patch_kinds_from_environment, patch_scheduler_from_environment

if __name__ == "__main__":
    patch_kinds_from_environment()
    patch_scheduler_from_environment()
    from itvsh.cli import run

    run()
