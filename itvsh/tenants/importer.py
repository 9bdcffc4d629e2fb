"""Import of the official municipality list (Destatis shape, see itvsh/data/SOURCES.md).

All or nothing: every line is checked first and each bad one reported as ``line N: reason`` (the
header is line 1); only a clean file is written, with Core inserts/updates in the caller's
transaction. Idempotent upsert by official key; Kreise and Ämter come from the Gemeinden's lines.
Municipalities missing from the file are reported, never deleted (mergers are for staff to
decide). One audit event per import carries the counts and the changed names and populations.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from itvsh.core import audit
from itvsh.core.db import utcnow
from itvsh.tenants.models import LAND_PREFIX, Municipality, MunicipalityKind

REQUIRED_COLUMNS = (
    "ags",
    "ars",
    "name",
    "gemeindetyp",
    "kreis_ags",
    "kreis",
    "kreisfrei",
    "amt_key",
    "amt",
    "population",
    "population_date",
    "area_km2",
    "plz",
)
KINDS = {
    "Gemeinde": MunicipalityKind.GEMEINDE,
    "Stadt": MunicipalityKind.STADT,
    "kreisfreie Stadt": MunicipalityKind.KREISFREIE_STADT,
}
FIELDS = (
    "ars",
    "name",
    "kind",
    "kreis_key",
    "amt_key",
    "population",
    "population_date",
    "area_km2",
    "postcode",
)
MAX_BYTES = 20 * 1024 * 1024
_DIGITS = re.compile(r"^[0-9]+$")


class TenantImportError(Exception):
    """The file was refused; ``errors`` lists every bad line as ``line N: reason``."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    missing: list[str] = field(default_factory=list)
    changes: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        text = f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged"
        if self.missing:
            text += (
                f"; {len(self.missing)} not in the file (kept, please review): {', '.join(self.missing[:20])}"
            )
            if len(self.missing) > 20:
                text += ", …"
        return text


def _digits(value: str, length: int) -> bool:
    return len(value) == length and bool(_DIGITS.match(value)) and value.startswith(LAND_PREFIX)


def _decode(data: bytes) -> str:
    if len(data) > MAX_BYTES:
        raise TenantImportError([f"line 1: the file is larger than {MAX_BYTES // (1024 * 1024)} MB"])
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        errors = []
        for number, raw in enumerate(data.split(b"\n"), start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                errors.append(f"line {number}: not UTF-8 (byte {exc.start + 1}); save the file as UTF-8")
        raise TenantImportError(errors) from None


def parse(data: bytes) -> dict[str, dict]:
    """Check the whole file; return the wanted rows by key, or raise TenantImportError with every bad line."""
    text = _decode(data)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise TenantImportError(["line 1: the file is empty"]) from None
    except csv.Error as exc:
        raise TenantImportError([f"line 1: {exc}"]) from None
    header = [h.strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise TenantImportError(
            [
                f"line 1: the header lacks the column(s) {', '.join(missing)} "
                f"(expected {','.join(REQUIRED_COLUMNS)})"
            ]
        )
    index = {name: header.index(name) for name in REQUIRED_COLUMNS}
    errors: list[str] = []
    wanted: dict[str, dict] = {}
    first_line: dict[str, int] = {}
    parent_names: dict[str, tuple[str, int]] = {}
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(f"line {reader.line_num}: {exc}")
            break
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            errors.append(f"line {line}: {len(cells)} fields, the header has {len(header)}")
            continue
        row = {name: cells[i].strip() for name, i in index.items()}
        problems = _check_row(row)
        ags = row["ags"]
        if ags in first_line:
            problems.append(f"duplicate AGS {ags} (first on line {first_line[ags]})")
        for key, name, what in (
            (row["kreis_ags"], row["kreis"], "Kreis"),
            (row["amt_key"], row["amt"], "Amt"),
        ):
            if key and not problems:
                known = parent_names.setdefault(key, (name, line))
                if known[0] != name:
                    problems.append(
                        f"{what} {key} is named {name!r} here but {known[0]!r} on line {known[1]}"
                    )
        if problems:
            errors.extend(f"line {line}: {p}" for p in problems)
            continue
        first_line[ags] = line
        kind = KINDS[row["gemeindetyp"]]
        kreisfrei = kind is MunicipalityKind.KREISFREIE_STADT
        wanted[ags] = {
            "key": ags,
            "ars": row["ars"],
            "name": row["name"],
            "kind": kind.value,
            "kreis_key": None if kreisfrei else row["kreis_ags"],
            "amt_key": row["amt_key"] or None,
            "population": int(row["population"]),
            "population_date": date.fromisoformat(row["population_date"]),
            "area_km2": Decimal(row["area_km2"]) if row["area_km2"] else None,
            "postcode": row["plz"] or None,
        }
        if not kreisfrei:
            wanted.setdefault(
                row["kreis_ags"], _parent_row(row["kreis_ags"], row["kreis"], MunicipalityKind.KREIS)
            )
        if row["amt_key"]:
            amt = _parent_row(row["amt_key"], row["amt"], MunicipalityKind.AMT)
            amt["kreis_key"] = row["kreis_ags"]
            wanted.setdefault(row["amt_key"], amt)
    if not wanted and not errors:
        errors.append("line 1: the file has a header but no municipalities")
    if errors:
        raise TenantImportError(errors)
    return wanted


def _parent_row(key: str, name: str, kind: MunicipalityKind) -> dict:
    return {
        "key": key,
        "ars": None,
        "name": name,
        "kind": kind.value,
        "kreis_key": None,
        "amt_key": None,
        "population": None,
        "population_date": None,
        "area_km2": None,
        "postcode": None,
    }


def _check_row(row: dict) -> list[str]:
    problems = []
    ags, kreis = row["ags"], row["kreis_ags"]
    if not _digits(ags, 8):
        problems.append(f"bad AGS {ags!r}: 8 digits beginning with {LAND_PREFIX}")
    if not row["name"]:
        problems.append("missing name")
    if row["gemeindetyp"] not in KINDS:
        problems.append(f"unknown gemeindetyp {row['gemeindetyp']!r} (expected {', '.join(KINDS)})")
    if not _digits(kreis, 5) or (_digits(ags, 8) and ags[:5] != kreis) or not row["kreis"]:
        problems.append(
            f"unknown Kreis {kreis!r} {row['kreis']!r}: a named 5-digit key, the AGS's first five digits"
        )
    if row["ars"] and (not _digits(row["ars"], 12) or row["ars"][:5] != ags[:5] or row["ars"][9:] != ags[5:]):
        problems.append(f"bad ARS {row['ars']!r}: 12 digits, the AGS with the Verband key inside")
    if row["amt_key"]:
        if not _digits(row["amt_key"], 9) or row["amt_key"][:5] != kreis:
            problems.append(f"bad Amt key {row['amt_key']!r}: 9 digits beginning with the Kreis key")
        if not row["amt"]:
            problems.append("the Amt has no name")
    if row["gemeindetyp"] == "kreisfreie Stadt" and row["amt_key"]:
        problems.append("a kreisfreie Stadt belongs to no Amt")
    population = row["population"]
    if not _DIGITS.match(population or ""):
        problems.append(f"population {population!r} is not a whole number ≥ 0")
    try:
        date.fromisoformat(row["population_date"])
    except ValueError:
        problems.append(f"population_date {row['population_date']!r} is not a date (YYYY-MM-DD)")
    if row["area_km2"]:
        try:
            area = Decimal(row["area_km2"])
            if not area.is_finite() or area < 0 or area.as_tuple().exponent < -2 or area >= 10_000_000:
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"area_km2 {row['area_km2']!r} is not an area (e.g. 53.02)")
    if row["plz"] and not (len(row["plz"]) == 5 and _DIGITS.match(row["plz"])):
        problems.append(f"plz {row['plz']!r} is not a postcode (5 digits)")
    return problems


def import_municipalities(session: Session, actor, data: bytes, source: str = "") -> ImportResult:
    """Check ``data`` and upsert it (see the module docstring). Raises TenantImportError, writing nothing."""
    wanted = parse(data)
    table = Municipality.__table__
    existing = {
        row.key: row
        for row in session.execute(
            select(
                table.c.id,
                table.c.key,
                *[
                    table.c[f]
                    for f in (
                        "ars",
                        "name",
                        "kind",
                        "kreis_id",
                        "amt_id",
                        "population",
                        "population_date",
                        "area_km2",
                        "postcode",
                    )
                ],
            )
        )
    }
    result = ImportResult()
    key_of_id = {row.id: key for key, row in existing.items()}
    ids = {key: row.id for key, row in existing.items()}
    now = utcnow()
    # Parents first: Kreise, then Ämter, then Gemeinden (their foreign keys need the ids).
    order = (["kreis"], ["amt"], ["gemeinde", "stadt", "kreisfreie_stadt"])
    for kinds in order:
        new_rows, changed_rows = [], []
        for key, want in wanted.items():
            if want["kind"] not in kinds:
                continue
            values = {
                "ars": want["ars"],
                "name": want["name"],
                "kind": want["kind"],
                "kreis_id": ids.get(want["kreis_key"]) if want["kreis_key"] else None,
                "amt_id": ids.get(want["amt_key"]) if want["amt_key"] else None,
                "population": want["population"],
                "population_date": want["population_date"],
                "area_km2": want["area_km2"],
                "postcode": want["postcode"],
            }
            old = existing.get(key)
            if old is None:
                new_rows.append({"key": key, "created_at": now, **values})
                continue
            diff = {f: (getattr(old, f), v) for f, v in values.items() if _differs(getattr(old, f), v)}
            if not diff:
                result.unchanged += 1
                continue
            changed_rows.append({"b_id": old.id, "updated_at": now, **values})
            audit_diff = {
                f: [str(a) if a is not None else None, str(b) if b is not None else None]
                for f, (a, b) in diff.items()
                if f in ("name", "population", "kind", "kreis_id", "amt_id")
            }
            for f in ("kreis_id", "amt_id"):
                if f in audit_diff:
                    a, b = diff[f]
                    audit_diff[f.removesuffix("_id")] = [key_of_id.get(a), key_of_id.get(b)]
                    del audit_diff[f]
            if audit_diff:
                result.changes.append({"key": key, **audit_diff})
        if new_rows:
            session.execute(insert(table), new_rows)
            for row in session.execute(
                select(table.c.id, table.c.key).where(table.c.key.in_([r["key"] for r in new_rows]))
            ):
                ids[row.key] = row.id
                key_of_id[row.id] = row.key
            result.created += len(new_rows)
        if changed_rows:
            stmt = update(table).where(table.c.id == bindparam("b_id"))
            session.connection().execute(stmt, changed_rows)
            result.updated += len(changed_rows)
    result.missing = sorted(set(existing) - set(wanted))
    session.expire_all()  # ORM objects loaded before now must not shadow the new rows
    audit.record(
        session,
        actor,
        "import",
        "municipalities",
        None,
        after={
            "source": source[:200],
            "created": result.created,
            "updated": result.updated,
            "unchanged": result.unchanged,
            "missing": result.missing[:500],
            "changes": result.changes[:2000],
        },
    )
    return result


def _differs(old, new) -> bool:
    if old is None or new is None:
        return old is not new
    if isinstance(new, Decimal):
        return Decimal(old) != new
    return old != new
