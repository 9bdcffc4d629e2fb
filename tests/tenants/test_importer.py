"""The import of the official municipality list (``itvsh.tenants.importer`` and ``itvsh tenants
import``): the shipped Destatis list builds all 1,201 tenants with their hierarchy and populations; a
second run changes nothing; changed names and populations are updated and listed in the one audit
event of the import; a municipality missing from a newer list is reported, not deleted; every
malformed file is refused as a whole, naming every bad line as ``line N: reason`` (N counts the
file's lines, header = 1) and writing nothing; the writes are Core executemany statements; and the
``tenants import|join|leave`` commands."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.demo import shipped_list
from itvsh.extensions import db
from itvsh.tenants import services
from itvsh.tenants.importer import TenantImportError, import_municipalities
from itvsh.tenants.models import Membership, Municipality

SHIPPED = shipped_list()
LINES = SHIPPED.decode("utf-8").split("\n")  # LINES[0] is line 1 (the header); the file ends with "\n"
HEADER = next(csv.reader([LINES[0]]))
ROWS = list(csv.DictReader(io.StringIO(SHIPPED.decode("utf-8"))))
KIEL, KRUMMWISCH, FELDE, OTTENDORF = "01002000", "01058093", "01058050", "01058126"
RD_ECK, ACHTERWEHR = "01058", "010585803"


def _line_of(ags: str) -> int:
    """The file line (header = 1) of a municipality in the shipped list."""
    return next(n for n, text in enumerate(LINES, start=1) if text.startswith(ags + ","))


def _edited(lines: list[str], number: int, **changes) -> None:
    """Change fields of file line ``number`` in place (CSV-quoted as needed)."""
    cells = next(csv.reader([lines[number - 1]]))
    for name, value in changes.items():
        cells[HEADER.index(name)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    lines[number - 1] = out.getvalue()


def _file(lines: list[str]) -> bytes:
    return "\n".join(lines).encode("utf-8")


def _with_changes(changes: dict[str, dict]) -> bytes:
    """The shipped list with fields changed on the lines of the given AGS."""
    lines = list(LINES)
    for ags, fields in changes.items():
        _edited(lines, _line_of(ags), **fields)
    return _file(lines)


def _import(data: bytes = SHIPPED, source: str = "test.csv"):
    return import_municipalities(db.session, "test", data, source=source)


def _count(model=Municipality) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def _import_events() -> list[AuditEvent]:
    return list(
        db.session.execute(
            select(AuditEvent).where(AuditEvent.action == "import").order_by(AuditEvent.seq)
        ).scalars()
    )


def _tenant(key: str) -> Municipality:
    db.session.expire_all()
    return services.get_by_key(db.session, key)


def _errors(data: bytes) -> dict[int, list[str]]:
    """The refused import's messages by line number (all of the form ``line N: reason``)."""
    with pytest.raises(TenantImportError) as caught:
        _import(data)
    by_line: dict[int, list[str]] = defaultdict(list)
    for message in caught.value.errors:
        head, _, reason = message.partition(": ")
        assert head.startswith("line ") and head[5:].isdigit() and reason, message
        by_line[int(head[5:])].append(reason)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return dict(by_line)


class Writes:
    """Every statement that reaches the database while the block runs, and the ORM flushes."""

    def __init__(self):
        self.statements: list[tuple[str, bool, object]] = []
        self.flushed_municipalities = 0

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._on_execute)
        event.listen(db.session, "before_flush", self._on_flush)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._on_execute)
        event.remove(db.session, "before_flush", self._on_flush)

    def _on_execute(self, _conn, _cursor, statement, parameters, _context, executemany):
        self.statements.append((statement, executemany, parameters))

    def _on_flush(self, session, _context, _instances):
        self.flushed_municipalities += sum(
            isinstance(o, Municipality) for o in (*session.new, *session.dirty, *session.deleted)
        )

    def writes(self, table: str = "") -> list[tuple[str, bool, object]]:
        return [
            s
            for s in self.statements
            if s[0].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) and table in s[0]
        ]


# --- the shipped list --------------------------------------------------------------------------


def test_shipped_list_builds_all_1201_tenants(app):
    result = _import()
    db.session.commit()
    assert (result.created, result.updated, result.unchanged, result.missing) == (1201, 0, 0, [])
    assert result.summary() == "1201 created, 0 updated, 0 unchanged"
    kinds = dict(
        db.session.execute(select(Municipality.kind, func.count()).group_by(Municipality.kind)).all()
    )
    assert kinds == {"gemeinde": 1043, "stadt": 59, "kreisfreie_stadt": 4, "amt": 84, "kreis": 11}
    assert sum(kinds.values()) == _count() == 1201
    population = db.session.execute(select(func.sum(Municipality.population))).scalar_one()
    assert population == 2_903_773
    # Population belongs to Gemeinden and Städte only.
    assert (
        db.session.execute(
            select(func.count()).where(
                Municipality.kind.in_(["amt", "kreis"]), Municipality.population.isnot(None)
            )
        ).scalar_one()
        == 0
    )


def test_one_row_is_imported_with_every_field(app):
    _import()
    town = _tenant(KRUMMWISCH)
    assert town.public_view() == {
        "key": KRUMMWISCH,
        "ars": "010585803093",
        "name": "Krummwisch",
        "kind": "gemeinde",
        "kreis": RD_ECK,
        "amt": ACHTERWEHR,
        "population": 681,
        "population_date": "2019-12-31",
        "area_km2": "13.91",
        "postcode": "24796",
    }
    assert town.area_km2 == Decimal("13.91") and town.population_date == date(2019, 12, 31)
    amt, kreis = town.amt, town.kreis
    assert (amt.name, amt.kind, amt.kreis.key, amt.amt, amt.population) == (
        "Achterwehr",
        "amt",
        RD_ECK,
        None,
        None,
    )
    assert (kreis.name, kreis.kind, kreis.kreis, kreis.amt) == ("Rendsburg-Eckernförde", "kreis", None, None)
    assert town.memberships == [] and not town.is_member  # membership is not part of the list


def test_hierarchy_and_totals_match_the_csv(app):
    _import()
    db.session.expire_all()
    by_key = {m.key: m for m in db.session.execute(select(Municipality)).scalars()}
    kreis_total, amt_total = Counter(), Counter()
    for row in ROWS:
        town = by_key[row["ags"]]
        assert (town.name, town.population) == (row["name"], int(row["population"]))
        assert (town.amt.key if town.amt else "") == row["amt_key"]
        if row["kreisfrei"] == "true":
            assert town.kreis is None
        else:
            assert town.kreis.key == row["kreis_ags"] == row["ags"][:5]
            kreis_total[row["kreis_ags"]] += int(row["population"])
        if row["amt_key"]:
            amt_total[row["amt_key"]] += int(row["population"])
    kreise = {k: m.total_population for k, m in by_key.items() if m.kind == "kreis"}
    aemter = {k: m.total_population for k, m in by_key.items() if m.kind == "amt"}
    assert kreise == dict(kreis_total) and len(kreise) == 11
    assert aemter == dict(amt_total) and len(aemter) == 84
    # The published 31.12.2019 figures (SOURCES.md).
    assert (kreise["01051"], kreise["01056"]) == (133_193, 316_103)
    assert by_key[ACHTERWEHR].total_population == 1052 + 1515 + 2121 + 681 + 1852 + 954 + 1759 + 1553
    # An Amt lies in one Kreis, and a Gemeinde's Amt in the Gemeinde's Kreis.
    assert all(m.kreis.key == k[:5] for k, m in by_key.items() if m.kind == "amt")
    assert all(m.amt.kreis_id == m.kreis_id for m in by_key.values() if m.amt is not None)


def test_a_kreisfreie_stadt_is_one_tenant_not_also_a_kreis(app):
    _import()
    kiel = _tenant(KIEL)
    assert (kiel.kind, kiel.kreis, kiel.amt, kiel.population, kiel.total_population) == (
        "kreisfreie_stadt",
        None,
        None,
        246_794,
        246_794,
    )
    for kreisfrei in ("01001", "01002", "01003", "01004"):
        assert services.get_by_key(db.session, kreisfrei) is None
    assert db.session.execute(select(func.count()).where(Municipality.kreis_id == kiel.id)).scalar_one() == 0


def test_import_audits_one_event(app):
    _import(source="sh_municipalities.csv")
    db.session.commit()
    [event] = _import_events()
    assert (event.actor, event.entity, event.entity_id, event.before) == (
        "test",
        "municipalities",
        None,
        None,
    )
    assert event.after == {
        "source": "sh_municipalities.csv",
        "created": 1201,
        "updated": 0,
        "unchanged": 0,
        "missing": [],
        "changes": [],
    }
    assert _count(AuditEvent) == 1  # not one per row


def test_second_run_changes_nothing(app):
    _import()
    db.session.commit()
    with Writes() as writes:
        result = _import()
    db.session.commit()
    assert (result.created, result.updated, result.unchanged, result.missing) == (0, 0, 1201, [])
    assert result.summary() == "0 created, 0 updated, 1201 unchanged"
    assert writes.writes("municipalities") == []
    second = _import_events()[-1]
    assert (second.after["created"], second.after["updated"], second.after["changes"]) == (0, 0, [])


def test_crlf_line_endings_bom_and_column_order_do_not_matter(app):
    _import()
    db.session.commit()
    reordered = list(csv.reader(io.StringIO(SHIPPED.decode("utf-8"))))
    order = list(reversed(range(len(HEADER))))
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([[row[i] for i in order] for row in reordered])
    result = _import(b"\xef\xbb\xbf" + out.getvalue().encode("utf-8"))
    assert (result.created, result.updated, result.unchanged) == (0, 0, 1201)


# --- changes from a newer list -----------------------------------------------------------------


def test_changed_population_and_name_update_and_are_audited_in_one_event(app):
    _import()
    db.session.commit()
    events_before = _count(AuditEvent)
    newer = _with_changes(
        {
            KRUMMWISCH: {"population": "700", "population_date": "2020-12-31"},
            FELDE: {"name": "Felde (Holstein)"},
        }
    )
    with Writes() as writes:
        result = _import(newer)
    db.session.commit()
    assert (result.created, result.updated, result.unchanged, result.missing) == (0, 2, 1199, [])
    assert result.summary() == "0 created, 2 updated, 1199 unchanged"
    assert _count(AuditEvent) == events_before + 1
    event = _import_events()[-1]
    assert event.after["changes"] == [
        {"key": FELDE, "name": ["Felde", "Felde (Holstein)"]},
        {"key": KRUMMWISCH, "population": ["681", "700"]},
    ]
    assert (event.after["updated"], event.after["unchanged"]) == (2, 1199)
    krummwisch, felde = _tenant(KRUMMWISCH), _tenant(FELDE)
    assert (krummwisch.population, krummwisch.population_date) == (700, date(2020, 12, 31))
    assert krummwisch.updated_at is not None
    assert felde.name == "Felde (Holstein)"
    assert _tenant(ACHTERWEHR).total_population == 11_487 - 681 + 700
    # One UPDATE statement for both rows (executemany), no INSERT, no ORM flush of municipalities.
    [(statement, executemany, parameters)] = writes.writes("municipalities")
    assert statement.lstrip().upper().startswith("UPDATE") and executemany and len(parameters) == 2
    assert writes.flushed_municipalities == 0


def test_a_renamed_amt_and_a_move_to_another_amt_are_updated(app):
    _import()
    db.session.commit()
    achterwehr_lines = [n for n, text in enumerate(LINES, start=1) if f",{ACHTERWEHR},Achterwehr," in text]
    assert len(achterwehr_lines) == 8
    lines = list(LINES)
    for number in achterwehr_lines:
        _edited(lines, number, amt="Achterwehr (neu)")
    result = _import(_file(lines))
    db.session.commit()
    assert (result.created, result.updated) == (0, 1)
    assert _import_events()[-1].after["changes"] == [
        {"key": ACHTERWEHR, "name": ["Achterwehr", "Achterwehr (neu)"]}
    ]
    assert _tenant(ACHTERWEHR).name == "Achterwehr (neu)"


def test_a_move_to_another_amt_is_audited_by_key_after_the_other_changes(app):
    _import()
    db.session.commit()
    flintbek = "010585830"
    newer = _with_changes({KRUMMWISCH: {"amt_key": flintbek, "amt": "Flintbek", "population": "700"}})
    result = _import(newer)
    db.session.commit()
    assert (result.created, result.updated, result.unchanged) == (0, 1, 1200)
    [change] = _import_events()[-1].after["changes"]
    assert list(change.items()) == [
        ("key", KRUMMWISCH),
        ("population", ["681", "700"]),
        ("amt", [ACHTERWEHR, flintbek]),
    ]
    assert _tenant(KRUMMWISCH).amt.key == flintbek


def test_the_same_values_written_differently_change_nothing(app):
    _import()
    db.session.commit()
    same = _with_changes(
        {KRUMMWISCH: {"area_km2": "013.91", "name": " Krummwisch "}, FELDE: {"area_km2": "1388E-2"}}
    )
    result = _import(same)
    assert (result.created, result.updated, result.unchanged) == (0, 0, 1201)


def test_a_new_municipality_is_created(app):
    lines = list(LINES)
    del lines[_line_of(OTTENDORF) - 1]
    _import(_file(lines))
    db.session.commit()
    result = _import()
    db.session.commit()
    assert (result.created, result.updated, result.unchanged) == (1, 0, 1200)
    assert _tenant(OTTENDORF).amt.key == ACHTERWEHR


def test_lines_without_an_ars_are_imported_without_one(app):
    """An empty ARS is no ARS (NULL), so several lines may lack one (the ARS is unique)."""
    _import(_with_changes({OTTENDORF: {"ars": ""}, FELDE: {"ars": ""}}))
    db.session.commit()
    assert _tenant(OTTENDORF).ars is None and _tenant(FELDE).ars is None


def test_municipality_missing_from_a_newer_list_is_reported_not_deleted(app):
    _import()
    set_scope(db.session, ALL)
    ottendorf = _tenant(OTTENDORF)
    services.join(db.session, "test", ottendorf, date(2019, 1, 1))
    db.session.commit()
    lines = list(LINES)
    del lines[_line_of(OTTENDORF) - 1]
    with Writes() as writes:
        result = _import(_file(lines))
    db.session.commit()
    assert (result.created, result.updated, result.unchanged, result.missing) == (0, 0, 1200, [OTTENDORF])
    assert result.summary() == (
        f"0 created, 0 updated, 1200 unchanged; 1 not in the file (kept, please review): {OTTENDORF}"
    )
    assert writes.writes("municipalities") == []
    assert _tenant(OTTENDORF).name == "Ottendorf"
    assert _count() == 1201
    assert _count(Membership) == 1
    assert _import_events()[-1].after["missing"] == [OTTENDORF]


# --- malformed files: refused as a whole, every bad line named -----------------------------------


MALFORMED = {
    # case: (changes by AGS, a word the reason for Krummwisch's line must contain)
    "bad AGS, letter": ({KRUMMWISCH: {"ags": "0105809x"}}, "AGS"),
    "bad AGS, 7 digits": ({KRUMMWISCH: {"ags": "0105809"}}, "AGS"),
    "bad AGS, 9 digits": ({KRUMMWISCH: {"ags": "010580930"}}, "AGS"),
    "bad AGS, other Land": ({KRUMMWISCH: {"ags": "02058093"}}, "AGS"),
    "bad AGS, empty": ({KRUMMWISCH: {"ags": ""}}, "AGS"),
    "missing name": ({KRUMMWISCH: {"name": ""}}, "name"),
    "blank name": ({KRUMMWISCH: {"name": "   "}}, "name"),
    "non-numeric population": ({KRUMMWISCH: {"population": "68l"}}, "population"),
    "population with separator": ({KRUMMWISCH: {"population": "1.234"}}, "population"),
    "population with decimals": ({KRUMMWISCH: {"population": "681.0"}}, "population"),
    "empty population": ({KRUMMWISCH: {"population": ""}}, "population"),
    "negative population": ({KRUMMWISCH: {"population": "-681"}}, "population"),
    "unknown Kreis": ({KRUMMWISCH: {"kreis_ags": "01099"}}, "Kreis"),
    "Kreis of another AGS": ({KRUMMWISCH: {"kreis_ags": "01057"}}, "Kreis"),
    "empty Kreis": ({KRUMMWISCH: {"kreis_ags": ""}}, "Kreis"),
    "Kreis without a name": ({KRUMMWISCH: {"kreis": ""}}, "Kreis"),
    "bad population date": ({KRUMMWISCH: {"population_date": "31.12.2019"}}, "population_date"),
    "unknown kind": ({KRUMMWISCH: {"gemeindetyp": "Dorf"}}, "gemeindetyp"),
    "bad postcode": ({KRUMMWISCH: {"plz": "2479"}}, "plz"),
    "bad area": ({KRUMMWISCH: {"area_km2": "13,91"}}, "area_km2"),
    "bad Amt key": ({KRUMMWISCH: {"amt_key": "01058580"}}, "Amt"),
    "Amt named differently": ({KRUMMWISCH: {"amt": "Achterwehr-Land"}}, "Amt"),
    "area with three decimals": ({KRUMMWISCH: {"area_km2": "13.910"}}, "area_km2"),
    "area in thousandths": ({KRUMMWISCH: {"area_km2": "13910E-3"}}, "area_km2"),
    "negative area": ({KRUMMWISCH: {"area_km2": "-13.91"}}, "area_km2"),
    "population in other digits": ({KRUMMWISCH: {"population": "\uff16\uff18\uff11"}}, "population"),
    "AGS in other digits": ({KRUMMWISCH: {"ags": "\u0660\u0661\u0660\u0665\u0668\u0660\u0669\u0663"}}, "AGS"),
    "postcode with a superscript": ({KRUMMWISCH: {"plz": "2479²"}}, "plz"),
    "kreisfreie Stadt in an Amt": ({KRUMMWISCH: {"gemeindetyp": "kreisfreie Stadt"}}, "kreisfreie"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_line_refuses_the_whole_file(app, case):
    changes, keyword = MALFORMED[case]
    errors = _errors(_with_changes(changes))
    line = _line_of(KRUMMWISCH)
    assert list(errors) == [line], errors
    assert any(keyword.lower() in reason.lower() for reason in errors[line]), errors
    db.session.commit()
    assert _count() == 0 and _count(AuditEvent) == 0


def test_duplicate_ags_names_the_second_line(app):
    lines = [*LINES[:-1], LINES[_line_of(KIEL) - 1], ""]
    errors = _errors(_file(lines))
    assert errors == {1108: [f"duplicate AGS {KIEL} (first on line {_line_of(KIEL)})"]}


def test_every_bad_line_is_reported_at_once(app):
    lines = list(LINES)
    bad = {
        _line_of("01051001"): {"name": ""},
        _line_of(KRUMMWISCH): {"population": "-1"},
        _line_of(FELDE): {"ags": "0105805"},
        _line_of("01062093"): {"population": "viele"},
        1107: {"kreis_ags": "01099"},  # the last line
    }
    for number, changes in bad.items():
        _edited(lines, number, **changes)
    lines.insert(500, "")  # a blank line counts as a line of the file
    shifted = {n + 1 if n > 500 else n for n in bad}
    lines.insert(len(lines) - 1, LINES[_line_of(KIEL) - 1])  # a duplicate as line 1109
    errors = _errors(_file(lines))
    assert set(errors) == shifted | {1109}
    assert errors[1109] == [f"duplicate AGS {KIEL} (first on line {_line_of(KIEL)})"]
    assert list(errors) == sorted(errors)  # in file order
    db.session.commit()
    assert _count() == 0 and _count(AuditEvent) == 0


def test_wrong_number_of_fields(app):
    lines = list(LINES)
    number = _line_of(KRUMMWISCH)
    lines[number - 1] += ",extra"
    lines[number] = lines[number].rsplit(",", 1)[0]
    errors = _errors(_file(lines))
    assert set(errors) == {number, number + 1}
    assert all("fields" in reasons[0] for reasons in errors.values())


def test_wrong_encoding_names_every_line_that_is_not_utf8(app):
    latin1 = SHIPPED.decode("utf-8").encode("latin-1")
    errors = _errors(latin1)
    non_ascii = {n for n, text in enumerate(LINES, start=1) if not text.isascii()}
    assert len(non_ascii) == 547
    assert set(errors) == non_ascii
    assert all("UTF-8" in reasons[0] for reasons in errors.values())
    db.session.commit()
    assert _count() == 0 and _count(AuditEvent) == 0


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        (",".join("einwohner" if c == "population" else c for c in HEADER), "population"),
        (",".join(c for c in HEADER if c != "plz"), "plz"),
        ("AGS,ARS,Name", "ags"),
        ("gemeindeschluessel;name;einwohner", "ags"),
        ("", "ags"),
    ],
)
def test_wrong_or_missing_header_columns(app, header, missing):
    lines = list(LINES)
    lines[0] = header
    errors = _errors(_file(lines))
    assert list(errors) == [1]
    [reason] = errors[1]
    assert missing in reason


def test_a_missing_column_is_named(app):
    drop = HEADER.index("population")
    rows = [row for row in csv.reader(io.StringIO(SHIPPED.decode("utf-8")))]
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows([r[:drop] + r[drop + 1 :] for r in rows])
    errors = _errors(out.getvalue().encode("utf-8"))
    assert list(errors) == [1] and "population" in errors[1][0]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "empty"),
        (b"\xef\xbb\xbf", "empty"),
        (LINES[0].encode() + b"\n", "no municipalities"),
        (LINES[0].encode() + b"\n\n\n", "no municipalities"),
    ],
)
def test_an_empty_file_is_refused(app, data, words):
    errors = _errors(data)
    assert list(errors) == [1] and words in errors[1][0]


def test_a_refused_file_changes_nothing_in_an_existing_list(app):
    _import()
    db.session.commit()
    before = _count(AuditEvent)
    lines = list(LINES)
    _edited(lines, _line_of(FELDE), name="Felde (Holstein)")  # a valid change ...
    _edited(lines, _line_of(KRUMMWISCH), population="-1")  # ... and a bad line
    del lines[_line_of(OTTENDORF) - 1]
    lines.insert(-1, "01058999,010585803999,Neudorf,Gemeinde,01058,Rendsburg-Eckernförde,false,"
                 "010585803,Achterwehr,Amt,10,5,5,2019-12-31,1.00,24107")  # fmt: skip
    with Writes() as writes:
        errors = _errors(_file(lines))
    assert list(errors) == [_line_of(KRUMMWISCH)]
    assert writes.writes() == []
    db.session.commit()
    assert _count(AuditEvent) == before
    assert _count() == 1201
    assert _tenant(FELDE).name == "Felde"
    assert services.get_by_key(db.session, "01058999") is None


# --- how it writes -------------------------------------------------------------------------------


def test_import_writes_with_core_executemany_not_the_orm(app):
    with Writes() as writes:
        _import()
        db.session.flush()
    inserts = writes.writes("municipalities")
    # One executemany per level -- Kreise, Ämter, then the Gemeinden that refer to them -- never a
    # statement per row, and no ORM unit of work (which would flush objects and need RETURNING ids).
    assert [(s.split("(")[0].strip(), many, len(p)) for s, many, p in inserts] == [
        ("INSERT INTO municipalities", True, 11),
        ("INSERT INTO municipalities", True, 84),
        ("INSERT INTO municipalities", True, 1106),
    ]
    assert not any("RETURNING" in s.upper() for s, _, _ in inserts)
    assert writes.flushed_municipalities == 0
    assert len(writes.statements) <= 10, [s[:60] for s, _, _ in writes.statements]
    assert _count() == 1201


# --- the command line ----------------------------------------------------------------------------


def test_cli_import_prints_the_summary(runner, tmp_path):
    path = tmp_path / "gemeinden.csv"
    path.write_bytes(SHIPPED)
    result = runner.invoke(args=["tenants", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output == f"{path}: 1201 created, 0 updated, 0 unchanged\n"
    assert _count() == 1201
    [event] = _import_events()
    assert (event.actor, event.after["source"]) == ("cli", "gemeinden.csv")
    again = runner.invoke(args=["tenants", "import", str(path)])
    assert again.exit_code == 0 and again.output == f"{path}: 0 created, 0 updated, 1201 unchanged\n"


def test_cli_import_reports_missing_municipalities(runner, tmp_path):
    _import()
    db.session.commit()
    lines = list(LINES)
    del lines[_line_of(OTTENDORF) - 1]
    path = tmp_path / "newer.csv"
    path.write_bytes(_file(lines))
    result = runner.invoke(args=["tenants", "import", str(path)])
    assert result.exit_code == 0, result.output
    assert f"1 not in the file (kept, please review): {OTTENDORF}" in result.output


def test_cli_import_refuses_a_bad_file_and_prints_every_bad_line(runner, tmp_path):
    lines = list(LINES)
    _edited(lines, _line_of(KRUMMWISCH), population="-1")
    _edited(lines, _line_of(FELDE), name="")
    path = tmp_path / "bad.csv"
    path.write_bytes(_file(lines))
    result = runner.invoke(args=["tenants", "import", str(path)])
    assert result.exit_code == 1
    printed = result.stderr.splitlines()
    assert [line for line in printed if line.startswith("line ")] == [
        f"line {_line_of(FELDE)}: missing name",
        f"line {_line_of(KRUMMWISCH)}: population '-1' is not a whole number ≥ 0",
    ]
    assert f"{path}: 2 bad line(s); nothing was imported" in result.stderr
    assert result.stdout == ""
    assert _count() == 0 and _count(AuditEvent) == 0


def test_cli_import_of_a_missing_file(runner, tmp_path):
    result = runner.invoke(args=["tenants", "import", str(tmp_path / "nope.csv")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_cli_join_and_leave(runner):
    set_scope(db.session, ALL)
    services.create_municipality(db.session, "test", key=RD_ECK, kind="kreis", name="Rendsburg-Eckernförde")
    services.create_municipality(
        db.session, "test", key=KRUMMWISCH, kind="gemeinde", name="Krummwisch", kreis=RD_ECK, population=681
    )
    db.session.commit()
    joined = runner.invoke(args=["tenants", "join", KRUMMWISCH, "--on", "2019-01-01"])
    assert (joined.exit_code, joined.output) == (0, f"{KRUMMWISCH} joined\n")
    again = runner.invoke(args=["tenants", "join", KRUMMWISCH, "--on", "2020-01-01"])
    assert again.exit_code == 1 and "2019-01-01" in again.output
    left = runner.invoke(args=["tenants", "leave", KRUMMWISCH, "--on", "2021-01-01"])
    assert (left.exit_code, left.output) == (0, f"{KRUMMWISCH} left\n")
    twice = runner.invoke(args=["tenants", "leave", KRUMMWISCH, "--on", "2022-01-01"])
    assert twice.exit_code == 1 and "Krummwisch" in twice.output
    early = runner.invoke(args=["tenants", "join", KRUMMWISCH, "--on", "2020-06-01"])
    assert early.exit_code == 1 and "2021-01-01" in early.output
    rejoined = runner.invoke(args=["tenants", "join", KRUMMWISCH])  # today
    assert rejoined.exit_code == 0, rejoined.output
    db.session.expire_all()
    periods = db.session.execute(
        select(Membership.joined_on, Membership.left_on).order_by(Membership.id)
    ).all()
    assert periods == [(date(2019, 1, 1), date(2021, 1, 1)), (date.today(), None)]
    events = db.session.execute(
        select(AuditEvent.action, AuditEvent.actor)
        .where(AuditEvent.entity_id == KRUMMWISCH)
        .order_by(AuditEvent.seq)
    ).all()
    assert events == [("create", "test"), ("join", "cli"), ("leave", "cli"), ("join", "cli")]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["tenants", "join", "01099999"], 1, "no municipality has the key 01099999"),
        (["tenants", "leave", "not-a-key"], 1, "no municipality has the key not-a-key"),
        (["tenants", "join", KRUMMWISCH, "--on", "01.01.2019"], 2, "--on"),
    ],
)
def test_cli_membership_refusals(runner, args, code, words):
    result = runner.invoke(args=args)
    assert result.exit_code == code
    assert words in result.output
    assert _count(Membership) == 0
