"""Reports endpoints of the JSON API (filled in by the API work)."""
