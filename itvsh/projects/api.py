"""Projects and OZG endpoints of the JSON API (on the API blueprint)."""

from itvsh.projects import models  # noqa: F401
