"""Open-records laws as data: deadline tables (KORA business days, CPRA calendar days with roll-forward),
extensions, exemption lookup, and validation of the law files and of [agency] holidays."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from archiver.config import settings_from_dict
from archiver.errors import ConfigError
from archiver.laws import LawError, load_law, parse_law

D = date.fromisoformat


@pytest.mark.parametrize("received, due, why", [
    ("2026-11-20", "2026-11-25", "Fri: Mon, Tue, Wed (the issue's example)"),
    ("2026-11-24", "2026-11-30", "Thanksgiving Thu 11-26 skipped, weekend skipped"),
    ("2026-11-25", "2026-12-01", "receipt on the eve of Thanksgiving"),
    ("2026-11-26", "2026-12-01", "received on Thanksgiving itself"),
    ("2026-12-21", "2026-12-28", "Kansas Christmas Eve 12-24 and Christmas 12-25 skipped"),
    ("2026-12-29", "2027-01-04", "New Year's Day skipped, across the year"),
    ("2026-11-07", "2026-11-12", "Saturday receipt; Veterans Day Wed 11-11 skipped"),
    ("2026-11-08", "2026-11-12", "Sunday receipt"),
    ("2026-10-09", "2026-10-15", "federal Columbus Day Mon 10-12 skipped (not a Kansas holiday)"),
    ("2026-06-16", "2026-06-22", "Juneteenth Fri 06-19 skipped"),
])
def test_kora_deadline_table(received: str, due: str, why: str) -> None:
    assert load_law("kora").due_date(D(received)) == D(due), why


def test_kora_agency_holiday_is_not_a_business_day() -> None:
    kora = load_law("kora")
    assert kora.due_date(D("2026-11-20"), [D("2026-11-24")]) == D("2026-11-27")
    assert kora.due_date(D("2026-11-20"), [D("2026-12-24")]) == D("2026-11-25")  # unrelated day: no effect


@pytest.mark.parametrize("received, due, why", [
    ("2026-11-20", "2026-11-30", "10 calendar days (the issue's example)"),
    ("2026-11-16", "2026-11-30", "day 10 is Thanksgiving; then the day after, then the weekend"),
    ("2026-12-15", "2026-12-28", "day 10 is Christmas (Fri): rolls to Monday"),
    ("2026-12-22", "2027-01-04", "day 10 is New Year's Day (Fri): rolls to Monday"),
    ("2026-11-21", "2026-12-01", "day 10 is a Tuesday: no roll"),
    ("2026-11-24", "2026-12-04", "calendar days count straight through Thanksgiving"),
    ("2026-10-24", "2026-11-03", "day 10 is Tuesday 11-03"),
    ("2026-10-25", "2026-11-04", "plain"),
    ("2026-10-31", "2026-11-10", "plain"),
    ("2026-11-01", "2026-11-12", "day 10 is Veterans Day (Wed): rolls to Thursday"),
    ("2026-11-04", "2026-11-16", "day 10 is Saturday: rolls to Monday"),
])
def test_cpra_deadline_table(received: str, due: str, why: str) -> None:
    assert load_law("cpra").due_date(D(received)) == D(due), why


def test_cpra_extension() -> None:
    cpra = load_law("cpra")
    assert cpra.extended_due_date(D("2026-11-20"), 14) == D("2026-12-14")  # 14 days added
    assert cpra.extended_due_date(D("2026-11-20"), 7) == D("2026-12-07")
    assert cpra.extended_due_date(D("2026-12-01"), 14) == D("2026-12-28")  # lands on Christmas: rolls
    with pytest.raises(LawError, match="1 to 14 days"):
        cpra.extended_due_date(D("2026-11-20"), 15)
    assert cpra.extension_max_days == 14 and len(cpra.extension_reasons) == 4
    assert cpra.extension_citation == "Cal. Gov. Code 7922.535(b)"


def test_kora_has_no_extension() -> None:
    with pytest.raises(LawError, match="no extension"):
        load_law("kora").extended_due_date(D("2026-11-20"), 5)


def test_every_rule_names_its_citation() -> None:
    for lid in ("kora", "cpra"):
        law = load_law(lid)
        assert law.citation and law.deadline_citation and law.calendar.citation and law.roll_citation
        assert law.extension_citation and all(e.exemption.citation and e.exemption.short_name for e in law.exemptions)
    assert load_law("kora").deadline_citation == "K.S.A. 45-218(d)"
    assert load_law("cpra").deadline_citation.startswith("Cal. Gov. Code 7922.535")


def test_exemption_lists_match_the_issue() -> None:
    kora = [e.citation for e in load_law("kora").exemption_list()]
    assert kora == [f"K.S.A. 45-221(a)({n})" for n in (1, 2, 3, 4, 5, 6, 10, 14, 20, 26, 30)]
    cpra = [e.citation for e in load_law("cpra").exemption_list()]
    assert cpra == [f"Cal. Gov. Code {n}" for n in ("7922.000", "7923.600", "7923.615", "7923.625", "7923.750",
                                                    "7927.500", "7927.700", "7927.705")] + ["Cal. Pen. Code 832.7"]
    names = {e.citation: e.short_name for e in load_law("kora").exemption_list()}
    assert names["K.S.A. 45-221(a)(10)"] == "Criminal investigation records"
    assert names["K.S.A. 45-221(a)(30)"] == "Clearly unwarranted invasion of personal privacy"


def test_exemption_lookup_exact_and_short_forms() -> None:
    kora, cpra = load_law("kora"), load_law("cpra")
    for cite in ("K.S.A. 45-221(a)(30)", "(a)(30)", "45-221(a)(30)", "  k.s.a.  45-221(a)(30) "):
        assert kora.find_exemption(cite).citation == "K.S.A. 45-221(a)(30)"
    assert cpra.find_exemption("7927.700").citation == "Cal. Gov. Code 7927.700"
    assert cpra.find_exemption("832.7").citation == "Cal. Pen. Code 832.7"
    with pytest.raises(LawError) as err:
        kora.find_exemption("7927.700")  # a CPRA citation on a KORA request
    assert "K.S.A. 45-221(a)(30)" in str(err.value) and "(a)(10)" in str(err.value)
    with pytest.raises(LawError):
        kora.find_exemption("(a)(3")
    with pytest.raises(LawError, match="unknown law"):
        load_law("foia")


def _kora_doc() -> dict:
    from importlib import resources

    return yaml.safe_load(resources.files("archiver.retention_schedules").joinpath("laws", "kora.yaml").read_text())


@pytest.mark.parametrize("mutate, key", [
    (lambda d: d["deadline"].update(rule="fortnights"), "deadline.rule"),
    (lambda d: d["deadline"].update(days="three"), "deadline.days"),
    (lambda d: d["deadline"].pop("citation"), "deadline.citation"),
    (lambda d: d["exemptions"][2].pop("short_name"), "exemptions[2].short_name"),
    (lambda d: d["exemptions"].append({"citation": "(a)(30)", "short_name": "dup"}), "exemptions[11].citation"),
    (lambda d: d["business_days"]["calendars"].append({"country": "XX"}), "business_days.calendars[2]"),
    (lambda d: d.update(pii_exemption="K.S.A. 45-221(a)(99)"), "pii_exemption"),
    (lambda d: d["extension"].update(allowed=True), "extension.max_days"),
])
def test_law_file_validation_names_file_and_key(mutate, key: str) -> None:  # type: ignore[no-untyped-def]
    doc = _kora_doc()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        parse_law(doc, "laws/kora.yaml")
    assert "laws/kora.yaml" in str(err.value) and key in str(err.value)


def test_agency_holidays_config(tmp_path: Path) -> None:
    def settings(**agency: object):  # type: ignore[no-untyped-def]
        return settings_from_dict({"agency": agency}, tmp_path / "archiver.toml")

    assert settings(holidays=["2026-12-24", D("2026-12-31")]).agency.holidays == ("2026-12-24", "2026-12-31")
    for bad in (["2026-02-30"], ["Dec 24"], "2026-12-24", [20261224]):
        with pytest.raises(ConfigError, match="agency.holidays"):
            settings(holidays=bad)
    assert settings(templates_dir="tpl").agency.templates_dir == "tpl"
