"""The one exception services raise when a rule refuses a change: which field, and why."""

from __future__ import annotations


class RuleViolation(Exception):
    """A change was refused; nothing was written. ``field`` names the input at fault (or None)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field

    def as_errors(self) -> dict[str, list[str]]:
        return {self.field or "_schema": [self.message]}
