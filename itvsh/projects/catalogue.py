"""Import of the OZG catalogue (OZG-Umsetzungskatalog shape, see itvsh/data/SOURCES.md).

All or nothing: every line is checked first and each bad one reported as ``line N: reason`` (the
header is line 1); only a clean file is written, with Core inserts/updates in the caller's
transaction. Idempotent upsert by OZG-ID: name, Themenfeld, Lebenslage and LeiKa keys follow the
file; who provides a service (``responsibility``, set by staff) is never touched. Services missing
from a newer file are reported, never deleted (statuses and projects refer to them). One audit
event per import carries the counts and the changes; after a write the tallies are rebuilt, as the
number of municipal services per Themenfeld (the denominators) may have changed.
"""

from __future__ import annotations

import csv
import io
from collections import namedtuple
from dataclasses import dataclass, field

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from itvsh.core import audit
from itvsh.core.db import utcnow
from itvsh.projects.models import OzgService, Responsibility

# Further columns (``leika_count``, ``leistungen_total`` of the shipped file) are derived or
# informative and ignored; ``leika_key`` is optional and, where filled, one of the line's keys.
REQUIRED_COLUMNS = ("id", "name", "themenfeld", "lebenslage", "leika_keys")
OPTIONAL_COLUMNS = ("leika_key",)
# The stored fields of a service, in the order of ``Wanted`` (as the table names them).
COLUMNS = ("name", "topic", "life_event", "leika_keys")
LIMITS = {"name": 300, "themenfeld": 100, "lebenslage": 150}
OZG_ID_LENGTH = 5
LEIKA_KEY_LENGTH = 14
MAX_BYTES = 5 * 1024 * 1024

Wanted = namedtuple("Wanted", COLUMNS)  # one service as the file wants it


class CatalogueImportError(Exception):
    """The file was refused; ``errors`` lists every bad line as ``line N: reason``."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class CatalogueImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: list[str] = field(default_factory=list)  # OZG-IDs stored but not in the file (kept)
    changes: list[dict] = field(default_factory=list)

    @property
    def written(self) -> bool:
        return bool(self.created or self.updated)

    def summary(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.missing:
            shown = ", ".join(self.missing[:20]) + (", ..." if len(self.missing) > 20 else "")
            text += f"; {len(self.missing)} not in the file (kept, please review): {shown}"
        return text


def _digits(value: str, length: int) -> bool:
    """Exactly ``length`` digits 0-9 (``str.isdigit`` alone also takes e.g. superscripts)."""
    return len(value) == length and value.isdigit() and value.isascii()


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise CatalogueImportError([f"line 1: the file is larger than {MAX_BYTES // (1024 * 1024)} MB"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.append(f"line {number}: not UTF-8 (byte {exc.start + 1}); save the file as UTF-8")
        raise CatalogueImportError(errors) from None


def parse(data: bytes) -> dict[str, Wanted]:
    """Check the whole file; return the wanted services by OZG-ID (in file order), or raise
    CatalogueImportError with every bad line."""
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise CatalogueImportError(["line 1: the file is empty"]) from None
    except csv.Error as exc:
        raise CatalogueImportError([f"line 1: {exc}"]) from None
    header = [name.strip() for name in header]
    lacking = [name for name in REQUIRED_COLUMNS if name not in header]
    if lacking:
        raise CatalogueImportError(
            [
                f"line 1: the header lacks the column(s) {', '.join(lacking)} "
                f"(expected {','.join(REQUIRED_COLUMNS)}, optionally {','.join(OPTIONAL_COLUMNS)})"
            ]
        )
    twice = sorted({name for name in header if name and header.count(name) > 1})
    if twice:
        raise CatalogueImportError([f"line 1: the header has the column(s) {', '.join(twice)} twice"])
    position = {name: header.index(name) for name in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if name in header}
    errors: list[str] = []
    wanted: dict[str, Wanted] = {}
    first_line: dict[str, int] = {}
    try:
        for cells in reader:
            number = reader.line_num
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if len(cells) != len(header):
                errors.append(f"line {number}: {len(cells)} fields, the header has {len(header)}")
                continue
            line = {name: cells[index] for name, index in position.items()}
            service, problems = _read_line(line)
            ozg_id = line["id"]
            if ozg_id in first_line:
                problems.append(f"duplicate OZG-ID {ozg_id} (first on line {first_line[ozg_id]})")
            if problems:
                errors.extend(f"line {number}: {problem}" for problem in problems)
                continue
            first_line[ozg_id] = number
            wanted[ozg_id] = service
    except csv.Error as exc:  # the reader cannot go on after this line
        errors.append(f"line {reader.line_num}: {exc}")
    if not wanted and not errors:
        errors.append("line 1: the file has a header but no services")
    if errors:
        raise CatalogueImportError(errors)
    return wanted


def _read_line(line: dict[str, str]) -> tuple[Wanted | None, list[str]]:
    """The service one line wants, or None and the line's own problems (duplicates are checked in
    ``parse``)."""
    problems = []
    if not _digits(line["id"], OZG_ID_LENGTH):
        problems.append(f"bad OZG-ID {line['id']!r}: {OZG_ID_LENGTH} digits")
    if not line["name"]:
        problems.append("missing name")
    if not line["themenfeld"]:
        problems.append("missing themenfeld")
    for column, limit in LIMITS.items():
        if len(line[column]) > limit:
            problems.append(f"{column} is longer than {limit} characters")
    keys = [key.strip() for key in line["leika_keys"].split(";")] if line["leika_keys"] else []
    for key in keys:
        if not _digits(key, LEIKA_KEY_LENGTH):
            problems.append(f"bad LeiKa key {key!r} in leika_keys: {LEIKA_KEY_LENGTH} digits")
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        problems.append(f"LeiKa key(s) {', '.join(repeated)} more than once in leika_keys")
    single = line.get("leika_key", "")
    if single:
        if not _digits(single, LEIKA_KEY_LENGTH):
            problems.append(f"bad LeiKa key {single!r} in leika_key: {LEIKA_KEY_LENGTH} digits")
        elif keys and single not in keys:
            problems.append(f"leika_key {single} is not among the leika_keys")
        elif not keys:
            keys = [single]
    if problems:
        return None, problems
    return Wanted(line["name"], line["themenfeld"], line["lebenslage"], ";".join(keys)), problems


def import_catalogue(session: Session, actor, data: bytes, *, source: str) -> CatalogueImportResult:
    """Check ``data`` and upsert it (see the module docstring). Raises CatalogueImportError,
    writing nothing."""
    from itvsh.projects.ozg import recompute_tallies  # ozg imports the models this module needs too

    wanted = parse(data)
    session.flush()  # services added through the ORM in this unit of work count as stored
    table = OzgService.__table__
    existing: dict[str, tuple[int, Wanted]] = {
        ozg_id: (id_, Wanted(*stored))
        for id_, ozg_id, *stored in session.execute(
            select(table.c.id, table.c.ozg_id, *[table.c[column] for column in COLUMNS])
        )
    }
    result = CatalogueImportResult()
    now = utcnow()
    new_rows, changed_rows = [], []
    for ozg_id, want in wanted.items():
        old = existing.get(ozg_id)
        if old is None:
            new_rows.append(
                {
                    "ozg_id": ozg_id,
                    **want._asdict(),
                    "responsibility": Responsibility.MUNICIPAL.value,
                    "created_at": now,
                }
            )
            continue
        old_id, stored = old
        if stored == want:
            result.unchanged += 1
            continue
        changed_rows.append({"b_id": old_id, "updated_at": now, **want._asdict()})
        result.changes.append(
            {
                "ozg_id": ozg_id,
                **{
                    column: [before, after]
                    for column, before, after in zip(COLUMNS, stored, want, strict=True)
                    if before != after
                },
            }
        )
    if new_rows:
        session.execute(insert(table), new_rows)
        result.created = len(new_rows)
    if changed_rows:
        # responsibility is not among the values: staff's decision survives a re-import
        session.connection().execute(update(table).where(table.c.id == bindparam("b_id")), changed_rows)
        result.updated = len(changed_rows)
    result.missing = sorted(set(existing) - set(wanted))
    if result.written:
        session.expire_all()  # ORM objects loaded before now must not shadow the new rows
        recompute_tallies(session)
    audit.record(
        session,
        actor,
        "import",
        "ozg_services",
        None,
        after={
            "source": source[:200],
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "missing": result.missing[:600],
            "created_ids": [row["ozg_id"] for row in new_rows][:600],
            "changes": result.changes[:600],
        },
    )
    return result
