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
from collections import namedtuple
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from operator import itemgetter

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
KIND_VALUES = {gemeindetyp: kind.value for gemeindetyp, kind in KINDS.items()}
# The stored fields of a wanted municipality, in the order of ``Wanted``; the parents by key.
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
# The same fields as the table has them (the parents by id), in the same order.
COLUMNS = (
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
AUDITED = ("name", "population", "kind", "kreis_id", "amt_id")
MAX_BYTES = 20 * 1024 * 1024
CENT = Decimal("0.01")

Line = namedtuple("Line", REQUIRED_COLUMNS)  # the required cells of one line, stripped
Wanted = namedtuple("Wanted", FIELDS)  # one municipality as the file wants it


class TenantImportError(Exception):
    """The file was refused; ``errors`` lists every bad line as ``line N: reason``."""

    def __init__(self, errors: list[str]):
        super().__init__("\n".join(errors))
        self.errors = errors


@dataclass
class ParsedList:
    """The wanted municipalities by key, one dict per level in the order they are written: parents
    first, as the Gemeinden's foreign keys need their ids. Each dict is in file order."""

    kreise: dict[str, Wanted] = field(default_factory=dict)
    aemter: dict[str, Wanted] = field(default_factory=dict)
    gemeinden: dict[str, Wanted] = field(default_factory=dict)

    def levels(self) -> tuple[dict[str, Wanted], ...]:
        return (self.kreise, self.aemter, self.gemeinden)

    def keys(self) -> set[str]:
        return {*self.kreise, *self.aemter, *self.gemeinden}


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


def _is_number(value: str) -> bool:
    """Only the digits 0-9, at least one (``str.isdigit`` alone also takes e.g. superscripts)."""
    return value.isdigit() and value.isascii()


def _digits(value: str, length: int) -> bool:
    """An official key: ``length`` digits 0-9 beginning with the Land's prefix."""
    return len(value) == length and value.isdigit() and value.isascii() and value.startswith(LAND_PREFIX)


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


def parse(data: bytes) -> ParsedList:
    """Check the whole file; return what it wants, or raise TenantImportError with every bad line."""
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
    required_cells = itemgetter(*[header.index(name) for name in REQUIRED_COLUMNS])
    errors: list[str] = []
    wanted = ParsedList()
    first_line: dict[str, int] = {}
    parent_names: dict[str, tuple[str, int]] = {}
    try:
        for cells in reader:
            number = reader.line_num
            cells = [cell.strip() for cell in cells]
            if not any(cells):
                continue
            if len(cells) != len(header):
                errors.append(f"line {number}: {len(cells)} fields, the header has {len(header)}")
                continue
            line = Line._make(required_cells(cells))
            municipality, problems = _read_line(line)
            ags = line.ags
            if ags in first_line:
                problems.append(f"duplicate AGS {ags} (first on line {first_line[ags]})")
            if not problems and line.kreis_ags:
                _check_parent_name(problems, parent_names, "Kreis", line.kreis_ags, line.kreis, number)
            if not problems and line.amt_key:
                _check_parent_name(problems, parent_names, "Amt", line.amt_key, line.amt, number)
            if problems:
                errors.extend(f"line {number}: {p}" for p in problems)
                continue
            first_line[ags] = number
            _add_municipality(wanted, line, municipality)
    except csv.Error as exc:  # the reader cannot go on after this line
        errors.append(f"line {reader.line_num}: {exc}")
    if not wanted.gemeinden and not errors:
        errors.append("line 1: the file has a header but no municipalities")
    if errors:
        raise TenantImportError(errors)
    return wanted


def _read_line(line: Line) -> tuple[Wanted | None, list[str]]:
    """The Gemeinde one line wants, or None and the line's problems on its own (the file-wide
    checks are in ``parse``)."""
    problems = []
    (ags, ars, name, gemeindetyp, kreis_key, kreis, _kreisfrei, amt_key, amt, population,
     population_date, area_km2, plz) = line  # fmt: skip
    ags_ok = _digits(ags, 8)
    if not ags_ok:
        problems.append(f"bad AGS {ags!r}: 8 digits beginning with {LAND_PREFIX}")
    if not name:
        problems.append("missing name")
    if gemeindetyp not in KINDS:
        problems.append(f"unknown gemeindetyp {gemeindetyp!r} (expected {', '.join(KINDS)})")
    # A valid AGS begins with its Kreis's key; without one, the key must at least look like one.
    kreis_key_ok = kreis_key == ags[:5] if ags_ok else _digits(kreis_key, 5)
    if not kreis_key_ok or not kreis:
        problems.append(
            f"unknown Kreis {kreis_key!r} {kreis!r}: a named 5-digit key, the AGS's first five digits"
        )
    if ars and (not _digits(ars, 12) or ars[:5] != ags[:5] or ars[9:] != ags[5:]):
        problems.append(f"bad ARS {ars!r}: 12 digits, the AGS with the Verband key inside")
    if amt_key:
        if not _digits(amt_key, 9) or amt_key[:5] != kreis_key:
            problems.append(f"bad Amt key {amt_key!r}: 9 digits beginning with the Kreis key")
        if not amt:
            problems.append("the Amt has no name")
        if gemeindetyp == "kreisfreie Stadt":
            problems.append("a kreisfreie Stadt belongs to no Amt")
    if not _is_number(population):
        problems.append(f"population {population!r} is not a whole number ≥ 0")
    try:
        day = date.fromisoformat(population_date)
    except ValueError:
        problems.append(f"population_date {population_date!r} is not a date (YYYY-MM-DD)")
    area = None
    if area_km2:
        try:
            area = Decimal(area_km2)
            if not area.is_finite() or area < 0 or _more_than_cents(area) or area >= 10_000_000:
                raise InvalidOperation
        except InvalidOperation:
            problems.append(f"area_km2 {area_km2!r} is not an area (e.g. 53.02)")
    if plz and not (len(plz) == 5 and _is_number(plz)):
        problems.append(f"plz {plz!r} is not a postcode (5 digits)")
    if problems:
        return None, problems
    kind = KIND_VALUES[gemeindetyp]
    kreisfrei = kind == MunicipalityKind.KREISFREIE_STADT
    municipality = Wanted(  # positional (in the order of FIELDS): it is faster
        ars or None,  # no ARS is NULL, not "" (which the unique index would allow only once)
        name,
        kind,
        None if kreisfrei else kreis_key,
        amt_key or None,
        int(population),
        day,
        area,
        plz or None,
    )
    return municipality, problems


def _more_than_cents(area: Decimal) -> bool:
    """More than two decimal places as written ("53.020", "5302E-3"). The usual exactly two are told
    apart without ``as_tuple()``, which costs more than all the other checks of a line."""
    return not area.same_quantum(CENT) and area.as_tuple().exponent < -2


def _check_parent_name(
    problems: list[str], parent_names: dict, what: str, key: str, name: str, number: int
) -> None:
    """A Kreis or Amt must have one name throughout the file (the first line names it)."""
    known = parent_names.get(key)
    if known is None:
        parent_names[key] = (name, number)
    elif known[0] != name:
        problems.append(f"{what} {key} is named {name!r} here but {known[0]!r} on line {known[1]}")


def _add_municipality(wanted: ParsedList, line: Line, municipality: Wanted) -> None:
    """A checked line's Gemeinde, and its Kreis and Amt unless an earlier line brought them."""
    wanted.gemeinden[line.ags] = municipality
    kreis_key, amt_key = municipality.kreis_key, municipality.amt_key  # no Kreis if kreisfrei
    if kreis_key and kreis_key not in wanted.kreise:
        wanted.kreise[kreis_key] = _parent(line.kreis, MunicipalityKind.KREIS, kreis_key=None)
    if amt_key and amt_key not in wanted.aemter:
        wanted.aemter[amt_key] = _parent(line.amt, MunicipalityKind.AMT, kreis_key=kreis_key)


def _parent(name: str, kind: MunicipalityKind, kreis_key: str | None) -> Wanted:
    return Wanted(
        ars=None,
        name=name,
        kind=kind.value,
        kreis_key=kreis_key,
        amt_key=None,
        population=None,
        population_date=None,
        area_km2=None,
        postcode=None,
    )


def import_municipalities(session: Session, actor, data: bytes, source: str = "") -> ImportResult:
    """Check ``data`` and upsert it (see the module docstring). Raises TenantImportError, writing nothing."""
    wanted = parse(data)
    table = Municipality.__table__
    # key -> (id, the stored fields in the order of COLUMNS)
    existing: dict[str, tuple[int, tuple]] = {
        key: (id_, tuple(stored))
        for id_, key, *stored in session.execute(
            select(table.c.id, table.c.key, *[table.c[column] for column in COLUMNS])
        )
    }
    result = ImportResult()
    ids = {key: id_ for key, (id_, _stored) in existing.items()}
    key_of_id = {id_: key for key, id_ in ids.items()}
    now = utcnow()
    for level in wanted.levels():
        new_rows, changed_rows = [], []
        for key, want in level.items():
            kreis_id, amt_id = ids.get(want.kreis_key), ids.get(want.amt_key)
            old = existing.get(key)
            if old is None:
                new_rows.append(
                    {
                        "key": key,
                        "ars": want.ars,
                        "name": want.name,
                        "kind": want.kind,
                        "kreis_id": kreis_id,
                        "amt_id": amt_id,
                        "population": want.population,
                        "population_date": want.population_date,
                        "area_km2": want.area_km2,
                        "postcode": want.postcode,
                        "created_at": now,
                    }
                )
                continue
            old_id, stored = old
            values = (  # in the order of COLUMNS
                want.ars,
                want.name,
                want.kind,
                kreis_id,
                amt_id,
                want.population,
                want.population_date,
                want.area_km2,
                want.postcode,
            )
            if stored == values:
                result.unchanged += 1
                continue
            changed_rows.append({"b_id": old_id, "updated_at": now, **_by_column(values)})
            audit_diff = _audited_changes(stored, values, key_of_id)
            if audit_diff:
                result.changes.append({"key": key, **audit_diff})
        if new_rows:
            session.execute(insert(table), new_rows)
            result.created += len(new_rows)
            if level is not wanted.gemeinden:  # a Gemeinde is nobody's parent: its new id is not needed
                for id_, key in session.execute(
                    select(table.c.id, table.c.key).where(table.c.key.in_([r["key"] for r in new_rows]))
                ):
                    ids[key] = id_
                    key_of_id[id_] = key
        if changed_rows:
            stmt = update(table).where(table.c.id == bindparam("b_id"))
            session.connection().execute(stmt, changed_rows)
            result.updated += len(changed_rows)
    result.missing = sorted(set(existing) - wanted.keys())
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


def _by_column(values: tuple) -> dict:
    """Values in the order of COLUMNS as the bind parameters of a write."""
    return dict(zip(COLUMNS, values, strict=True))


def _audited_changes(stored: tuple, values: tuple, key_of_id: dict[int, str]) -> dict:
    """The audited fields that change, as ``[old, new]`` text, then the Kreis and Amt by key."""
    changes = {}
    parents = {}
    for column, old, new in zip(COLUMNS, stored, values, strict=True):
        if column not in AUDITED or old == new:
            continue
        if column in ("kreis_id", "amt_id"):
            parents[column.removesuffix("_id")] = [key_of_id.get(old), key_of_id.get(new)]
        else:
            changes[column] = [str(old) if old is not None else None, str(new) if new is not None else None]
    return {**changes, **parents}
