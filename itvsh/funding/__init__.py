"""Funding: the Land's yearly appropriation, its categories, allocations (Zuwendungen), distribution
keys and the append-only ledger of bookings. Models in ``models.py``, the rules in ``ledger.py`` and
``distribution.py``; admin, API and portal views only call those services."""
