"""Reports and background jobs: the ``Report`` request record, the report kinds and their
renderers (CSV/XLSX/PDF), the job runner (rq, or in-process without Redis), the sweeper and the
schedule, the ``/reports/`` screens and the ``itvsh worker`` / ``itvsh reports`` commands."""
