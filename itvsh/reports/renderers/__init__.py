"""Renderers: one module per report kind (see :mod:`itvsh.reports.kinds` for the contract) and
the helpers they share (:mod:`.common`)."""
