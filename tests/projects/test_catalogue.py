"""The import of the OZG catalogue (``itvsh.projects.catalogue``): the shipped file builds the 557
services in their 14 Themenfelder; a second run changes nothing; changed lines are updated (the
responsibility staff set stays) and listed in the one audit event of the import; services missing
from a newer file are reported, not deleted; every malformed file is refused as a whole, naming
every bad line as ``line N: reason`` (header = line 1) and writing nothing; the writes are Core
statements; and the tallies follow the new denominators."""

from __future__ import annotations

import csv
import io
from collections import defaultdict

import pytest
from sqlalchemy import event, func, select

from itvsh.core.audit import AuditEvent
from itvsh.core.tenancy import ALL, set_scope
from itvsh.extensions import db
from itvsh.projects import ozg
from itvsh.projects.catalogue import CatalogueImportError, import_catalogue
from itvsh.projects.models import OzgService, OzgTally
from tests.projects.conftest import ACTOR, shipped_catalogue

SHIPPED = shipped_catalogue()
LINES = SHIPPED.decode("utf-8").split("\n")  # LINES[0] is line 1 (the header); the file ends with "\n"
HEADER = next(csv.reader([LINES[0]]))
THEMENFELDER = {
    "Arbeit & Ruhestand": 30,
    "Bauen & Wohnen": 58,
    "Bildung": 27,
    "Ein- & Auswanderung": 21,
    "Engagement & Hobby": 40,
    "Familie & Kind": 37,
    "Forschung & Förderung": 28,
    "Gesundheit": 62,
    "Mobilität & Reisen": 60,
    "Querschnitt": 18,
    "Recht & Ordnung": 15,
    "Steuern & Zoll": 35,
    "Umwelt": 48,
    "Unternehmensführung & -entwicklung": 78,
}


def _line_of(ozg_id: str) -> int:
    """The file line (header = 1) of a service in the shipped file."""
    return next(n for n, text in enumerate(LINES, start=1) if text.startswith(ozg_id + ","))


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


def _with_changes(changes: dict[str, dict], drop: tuple[str, ...] = ()) -> bytes:
    """The shipped file with fields changed on the lines of the given OZG-IDs, some lines left out."""
    lines = list(LINES)
    for ozg_id, fields in changes.items():
        _edited(lines, _line_of(ozg_id), **fields)
    dropped = {_line_of(ozg_id) for ozg_id in drop}
    return _file([line for n, line in enumerate(lines, start=1) if n not in dropped])


def _import(data: bytes = SHIPPED, source: str = "test.csv"):
    """One unit of work, as the command runs it: import, then commit (the audit event is written)."""
    set_scope(db.session, ALL)
    result = import_catalogue(db.session, ACTOR, data, source=source)
    db.session.commit()
    set_scope(db.session, ALL)
    return result


def _services() -> dict[str, tuple]:
    db.session.expire_all()
    return {
        s.ozg_id: (s.name, s.topic, s.life_event, s.leika_keys, s.responsibility)
        for s in db.session.execute(select(OzgService)).scalars()
    }


def _import_events() -> list[AuditEvent]:
    return list(
        db.session.execute(
            select(AuditEvent)
            .where(AuditEvent.action == "import", AuditEvent.entity == "ozg_services")
            .order_by(AuditEvent.seq)
        ).scalars()
    )


def _errors(data: bytes) -> dict[int, list[str]]:
    """The refused import's messages by line number (all of the form ``line N: reason``)."""
    with pytest.raises(CatalogueImportError) as caught:
        _import(data)
    by_line: dict[int, list[str]] = defaultdict(list)
    for message in caught.value.errors:
        head, _, reason = message.partition(": ")
        assert head.startswith("line ") and head[5:].isdigit() and reason, message
        by_line[int(head[5:])].append(reason)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return dict(by_line)


class Writes:
    """Every statement that reaches the database while the block runs, and the ORM flushes of
    services."""

    def __init__(self):
        self.statements: list[tuple[str, bool]] = []
        self.flushed_services = 0

    def __enter__(self):
        event.listen(db.engine, "before_cursor_execute", self._on_execute)
        event.listen(db.session, "before_flush", self._on_flush)
        return self

    def __exit__(self, *exc):
        event.remove(db.engine, "before_cursor_execute", self._on_execute)
        event.remove(db.session, "before_flush", self._on_flush)

    def _on_execute(self, _conn, _cursor, statement, _parameters, _context, executemany):
        self.statements.append((statement, executemany))

    def _on_flush(self, session, _context, _instances):
        self.flushed_services += sum(
            isinstance(o, OzgService) for o in (*session.new, *session.dirty, *session.deleted)
        )

    def writes(self, table: str) -> list[tuple[str, bool]]:
        return [
            s
            for s in self.statements
            if s[0].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) and table in s[0]
        ]


# --- the shipped file ------------------------------------------------------------------------------


def test_shipped_file_builds_557_services_in_14_themenfelder(app):
    result = _import()
    assert (result.created, result.updated, result.unchanged, result.missing) == (557, 0, 0, [])
    assert result.summary() == "557 created, 0 updated, 0 unchanged"
    topics = dict(db.session.execute(select(OzgService.topic, func.count()).group_by(OzgService.topic)).all())
    assert topics == THEMENFELDER
    stored = _services()
    assert len(stored) == 557
    assert stored["10169"][:2] == ("Führerschein", "Mobilität & Reisen")
    assert stored["10000"] == (
        "Elterngeld",
        "Familie & Kind",
        "Geburt",
        "99041006000000;99041006013000;99041006017000;99041006151000",
        "municipal",
    )
    assert stored["10002"][3] == "99134042000000"  # one key, given in both columns
    assert stored["10013"][3] == ""  # no LeiKa key at all
    assert {row[4] for row in stored.values()} == {"municipal"}
    assert all(row[2] for row in stored.values())  # every service has its Lebenslage


def test_a_second_run_changes_nothing_and_writes_no_service(app):
    _import()
    with Writes() as seen:
        result = _import()
    assert (result.created, result.updated, result.unchanged, result.missing) == (0, 0, 557, [])
    assert seen.writes("ozg_services") == []
    assert seen.writes("ozg_tallies") == []  # nothing changed: no rebuild either


def test_the_writes_are_core_executemany_statements(app):
    with Writes() as seen:
        _import()
    inserts = seen.writes("ozg_services")
    assert len(inserts) <= 2 and all(s[0].lstrip().upper().startswith("INSERT") for s in inserts)
    assert seen.flushed_services == 0  # no ORM unit of work for the services
    changed = _with_changes({"10000": {"name": "Elterngeld neu"}, "10003": {"lebenslage": "Anders"}})
    with Writes() as seen:
        _import(changed)
    updates = seen.writes("ozg_services")
    assert len(updates) == 1 and updates[0][1]  # one UPDATE, executemany
    assert seen.flushed_services == 0


def test_changed_lines_are_updated_and_audited(app):
    _import()
    changed = _with_changes(
        {
            "10000": {"name": "Elterngeld (neu)"},
            "10003": {"themenfeld": "Querschnitt", "lebenslage": "Querschnitt Bürger"},
            "10002": {"leika_key": "", "leika_keys": "99134042000000;99134043000000", "leika_count": "2"},
        }
    )
    result = _import(changed, source="ozg_2020.csv")
    assert (result.created, result.updated, result.unchanged, result.missing) == (0, 3, 554, [])
    stored = _services()
    assert stored["10000"][0] == "Elterngeld (neu)"
    assert stored["10003"][1:3] == ("Querschnitt", "Querschnitt Bürger")
    assert stored["10002"][3] == "99134042000000;99134043000000"
    first, second = _import_events()
    assert first.actor == ACTOR and first.after["created"] == 557
    assert second.after["source"] == "ozg_2020.csv"
    assert (second.after["created"], second.after["updated"], second.after["unchanged"]) == (0, 3, 554)
    changes = {change["ozg_id"]: change for change in second.after["changes"]}
    assert changes["10000"] == {"ozg_id": "10000", "name": ["Elterngeld", "Elterngeld (neu)"]}
    assert changes["10003"]["topic"] == ["Familie & Kind", "Querschnitt"]
    assert changes["10003"]["life_event"] == ["Geburt", "Querschnitt Bürger"]
    assert changes["10002"]["leika_keys"] == ["99134042000000", "99134042000000;99134043000000"]


def test_new_services_are_created_and_missing_ones_reported_not_deleted(app):
    older = _with_changes({}, drop=("10100", "10200"))
    result = _import(older)
    assert (result.created, result.missing) == (555, [])
    result = _import(_with_changes({}, drop=("10001", "10300")))  # brings 10100 and 10200, lacks two
    assert (result.created, result.updated, result.unchanged) == (2, 0, 553)
    assert result.missing == ["10001", "10300"]
    assert "2 not in the file (kept, please review): 10001, 10300" in result.summary()
    assert len(_services()) == 557  # nothing deleted
    assert _import_events()[-1].after["missing"] == ["10001", "10300"]
    assert _import_events()[-1].after["created_ids"] == ["10100", "10200"]


def test_responsibility_set_by_staff_is_kept_on_reimport(app):
    _import()
    service = db.session.execute(select(OzgService).where(OzgService.ozg_id == "10169")).scalar_one()
    ozg.set_responsibility(db.session, ACTOR, service, "land")
    result = _import(_with_changes({"10169": {"name": "Fahrerlaubnis"}}))
    assert result.updated == 1
    name, topic, _life_event, _keys, responsibility = _services()["10169"]
    assert (name, topic, responsibility) == ("Fahrerlaubnis", "Mobilität & Reisen", "land")
    assert _import(SHIPPED).updated == 1  # back to the shipped name, still the Land's
    assert _services()["10169"][4] == "land"


def test_one_audit_event_per_import_and_none_for_a_refused_file(app):
    _import()
    _import()
    with pytest.raises(CatalogueImportError):
        _import(_with_changes({"10000": {"id": "1000"}}))
    events = _import_events()
    assert len(events) == 2
    assert events[1].after == {
        "source": "test.csv",
        "created": 0,
        "updated": 0,
        "unchanged": 557,
        "missing": [],
        "created_ids": [],
        "changes": [],
    }


def test_the_tallies_follow_the_new_denominators(members, catalogue):
    """The small catalogue has four municipal services and one of the Land. The shipped file updates
    three of them (10000, 10003, 10169 get their Lebenslage), creates the other 554 and lacks 10170 and
    10999, which stay (10170 still counts: 558 municipal services)."""
    ozg.recompute_tallies(db.session)
    ozg.set_status(db.session, ACTOR, members["01002000"], catalogue["10000"], maturity=3)

    def land() -> tuple[int, int]:
        db.session.expire_all()
        tally = db.session.execute(
            select(OzgTally).where(OzgTally.scope == "land", OzgTally.topic == "")
        ).scalar_one()
        return tally.possible, tally.level3

    assert land() == (1106 * 4, 1)
    result = _import()
    assert (result.created, result.updated, result.unchanged) == (554, 3, 0)
    assert result.missing == ["10170", "10999"]
    assert land() == (1106 * 558, 1)
    topics = {
        t.topic: t.possible
        for t in db.session.execute(
            select(OzgTally).where(OzgTally.scope == "land", OzgTally.topic != "")
        ).scalars()
    }
    expected = {topic: 1106 * n for topic, n in THEMENFELDER.items()}
    expected["Mobilität & Reisen"] += 1106  # 10170 of the fixture
    assert topics == expected


# --- malformed files: every bad line named, nothing written -----------------------------------------


def _refused_with(data: bytes) -> dict[int, list[str]]:
    """The file is refused and nothing was written (after an earlier clean import)."""
    before = _services()
    events = len(_import_events())
    errors = _errors(data)
    assert _services() == before
    assert len(_import_events()) == events
    return errors


def test_each_kind_of_bad_line_is_named_and_nothing_is_written(app):
    _import()
    lines = list(LINES)
    bad = {
        "10001": {"id": "1001"},  # too short
        "10002": {"id": "1000a"},
        "10004": {"id": "\u0661\u0660\u0660\u0660\u0664"},  # Arabic-Indic digits: isdigit(), not 0-9
        "10005": {"id": "10000"},  # duplicate of line 2
        "10006": {"name": ""},
        "10007": {"themenfeld": " "},
        "10008": {"leika_keys": "9904100600000"},  # 13 digits
        "10009": {"leika_keys": "99041006000000;9904100600000X"},
        "10010": {"leika_key": "12", "leika_keys": ""},
        "10011": {"leika_key": "99000000000000"},  # not among its keys
        "10015": {"name": "x" * 301},
        "10014": {"leika_keys": "99041006000000;99041006000000"},
    }
    for ozg_id, fields in bad.items():
        _edited(lines, _line_of(ozg_id), **fields)
    lines.insert(len(lines) - 1, "10600,Kurz,Familie & Kind")  # too few fields, the last line
    errors = _refused_with(_file(lines))
    line = {ozg_id: _line_of(ozg_id) for ozg_id in bad}
    assert errors == {
        line["10001"]: ["bad OZG-ID '1001': 5 digits"],
        line["10002"]: ["bad OZG-ID '1000a': 5 digits"],
        line["10004"]: ["bad OZG-ID '\u0661\u0660\u0660\u0660\u0664': 5 digits"],
        line["10005"]: [f"duplicate OZG-ID 10000 (first on line {_line_of('10000')})"],
        line["10006"]: ["missing name"],
        line["10007"]: ["missing themenfeld"],
        line["10008"]: ["bad LeiKa key '9904100600000' in leika_keys: 14 digits"],
        line["10009"]: ["bad LeiKa key '9904100600000X' in leika_keys: 14 digits"],
        line["10010"]: ["bad LeiKa key '12' in leika_key: 14 digits"],
        line["10011"]: ["leika_key 99000000000000 is not among the leika_keys"],
        line["10015"]: ["name is longer than 300 characters"],
        line["10014"]: ["LeiKa key(s) 99041006000000 more than once in leika_keys"],
        559: ["3 fields, the header has 8"],
    }


def test_one_line_with_several_problems_names_them_all(app):
    lines = list(LINES)
    _edited(lines, 2, id="x", name="", themenfeld="", leika_keys="1;2")
    assert _errors(_file(lines)) == {
        2: [
            "bad OZG-ID 'x': 5 digits",
            "missing name",
            "missing themenfeld",
            "bad LeiKa key '1' in leika_keys: 14 digits",
            "bad LeiKa key '2' in leika_keys: 14 digits",
        ]
    }


def test_every_bad_line_is_listed_in_file_order(app):
    lines = list(LINES)
    for ozg_id in ("10300", "10100", "10200"):
        _edited(lines, _line_of(ozg_id), name="")
    with pytest.raises(CatalogueImportError) as caught:
        _import(_file(lines))
    assert caught.value.errors == [
        f"line {_line_of(ozg_id)}: missing name" for ozg_id in ("10100", "10200", "10300")
    ]
    assert _services() == {}


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (
            "ozg_id,name,themenfeld,lebenslage,leika_key,leika_keys,leika_count,leistungen_total",
            "line 1: the header lacks the column(s) id (expected id,name,themenfeld,lebenslage,leika_keys, "
            "optionally leika_key)",
        ),
        (
            "id;name;themenfeld;lebenslage;leika_key;leika_keys;leika_count;leistungen_total",
            "line 1: the header lacks the column(s) id, name, themenfeld, lebenslage, leika_keys "
            "(expected id,name,themenfeld,lebenslage,leika_keys, optionally leika_key)",
        ),
        (
            "id,name,themenfeld,lebenslage,name,leika_keys,leika_count,leistungen_total",
            "line 1: the header has the column(s) name twice",
        ),
    ],
    ids=["renamed column", "semicolons", "column twice"],
)
def test_a_wrong_header_is_refused(app, header, message):
    _import()
    before = _services()
    with pytest.raises(CatalogueImportError) as caught:
        _import(_file([header, *LINES[1:]]))
    assert caught.value.errors == [message]
    assert _services() == before
    assert len(_import_events()) == 1


def test_a_file_not_in_utf8_is_refused_naming_the_lines(app):
    windows = SHIPPED.decode("utf-8").encode("cp1252")
    errors = _refused_with(windows)
    umlaut_lines = [n for n, text in enumerate(LINES, start=1) if any(ord(c) > 127 for c in text)]
    assert sorted(errors) == umlaut_lines
    assert all(reason[0].startswith("not UTF-8 (byte ") for reason in errors.values())
    assert errors[_line_of("10001")] == ["not UTF-8 (byte 11); save the file as UTF-8"]  # "Erkl|ä|rung"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "line 1: the file is empty"),
        (LINES[0].encode() + b"\n", "line 1: the file has a header but no services"),
        (LINES[0].encode() + b"\n\n  ,, ,,,,,\n", "line 1: the file has a header but no services"),
    ],
    ids=["empty", "header only", "blank lines only"],
)
def test_an_empty_file_is_refused(app, data, message):
    with pytest.raises(CatalogueImportError) as caught:
        _import(data)
    assert caught.value.errors == [message]
    assert _services() == {}


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(app):
    result = _import(b"\xef\xbb\xbf" + SHIPPED.replace(b"\n", b"\r\n"))
    assert result.created == 557


def test_the_optional_columns_may_be_left_out(app):
    data = _file(
        [
            "name,id,themenfeld,lebenslage,leika_keys",  # another order, no leika_key
            "Hundesteuer,10520,Steuern & Zoll,Steuern,99090001000000",
            '"Wohngeld, Lastenzuschuss",10300,Bauen & Wohnen,,',
        ]
    )
    result = _import(data)
    assert result.created == 2
    stored = _services()
    assert stored["10520"] == ("Hundesteuer", "Steuern & Zoll", "Steuern", "99090001000000", "municipal")
    assert stored["10300"] == ("Wohngeld, Lastenzuschuss", "Bauen & Wohnen", "", "", "municipal")


def test_a_single_leika_key_without_the_list_is_taken(app):
    data = _file([LINES[0], "10520,Hundesteuer,Steuern & Zoll,Steuern,99090001000000,,1,1"])
    _import(data)
    assert _services()["10520"][3] == "99090001000000"


def test_the_full_catalogue_fixture_holds_the_shipped_services(members, full_catalogue):
    assert len(full_catalogue) == 557 and full_catalogue["10169"].name == "Führerschein"
    # the members came first, so the import's rebuild of the tallies counted them
    land = db.session.execute(
        select(OzgTally).where(OzgTally.scope == "land", OzgTally.topic == "")
    ).scalar_one()
    assert land.possible == 1106 * 557
