"""Projects and OZG: shared IT projects, the OZG catalogue, per-municipality status, monitoring."""
