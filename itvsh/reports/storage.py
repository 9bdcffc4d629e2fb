"""Where report files live: ``ITVSH_REPORTS_DIR/<report id>/<file name>``.

A job writes to a temporary file of its own claim (``.part-<token>``) and moves it into place with
one atomic rename only while it still holds the claim, so a job run twice (worker killed, retry)
leaves exactly one file, and a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from flask import current_app

CHUNK = 1 << 20


def reports_root() -> Path:
    return Path(current_app.config["ITVSH_REPORTS_DIR"])


def report_dir(report_id: int) -> Path:
    path = reports_root() / str(int(report_id))
    path.mkdir(parents=True, exist_ok=True)
    return path


def part_path(report_id: int, token: str) -> Path:
    return report_dir(report_id) / f".part-{token}"


def final_path(report_id: int, file_name: str) -> Path:
    if not file_name or "/" in file_name or "\\" in file_name or file_name.startswith("."):
        raise ValueError(f"unsafe report file name {file_name!r}")
    return report_dir(report_id) / file_name


def digest(path: Path) -> tuple[int, str]:
    """Size in bytes and SHA-256 (hex) of a file, read in chunks."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            sha.update(chunk)
            size += len(chunk)
    return size, sha.hexdigest()


def publish(part: Path, final: Path, *, drop_stale_parts: bool = True) -> None:
    """Move a finished part into place (atomic on one file system) and drop parts of dead runs."""
    with open(part, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(part, final)
    for stale in final.parent.glob(".part-*") if drop_stale_parts else ():
        stale.unlink(missing_ok=True)


def discard(part: Path) -> None:
    part.unlink(missing_ok=True)


def stored_file(report) -> Path | None:
    """A finished report's file, if it is on disk as the job left it (same size); None otherwise.
    Looks only: makes no folder."""
    name = report.file_name or ""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    path = reports_root() / str(int(report.id)) / name
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return path if report.file_size is None or size == report.file_size else None


class StoredFile:
    """A report file as a response body, read in chunks: opened when the first chunk is read and
    closed after the last one, or when the server closes the response (an aborted download) —
    so no file stays open after a download, whether or not the client closes the response."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def __iter__(self):
        with open(self.path, "rb") as self._file:
            while chunk := self._file.read(CHUNK):
                yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
