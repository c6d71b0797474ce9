import json
from datetime import date, timedelta

import pytest

from rapport.consent.policy import EU, PURPOSES, SETTINGS, Decision, catalogue, evaluate
from rapport.errors import InputError

TODAY = date(2026, 11, 25)
AI_ACT = "EU AI Act Art. 5(1)(f)"


def _refused(decision: Decision, basis: str) -> None:
    assert not decision.allowed
    assert decision.legal_basis is not None and basis in decision.legal_basis
    assert decision.alternative
    assert decision.reason


def test_the_eu_is_its_27_member_states() -> None:
    assert len(EU) == 27
    assert {"DE", "FR", "HU", "GR", "IE", "HR"} <= EU
    assert not {"GB", "CH", "NO", "US", "EU"} & EU


@pytest.mark.parametrize("purpose", ["self_coaching", "research", "telehealth", "support_quality"])
@pytest.mark.parametrize("where", ["US", "US-CA", "GB", "DE", "EU"])
def test_consented_purposes_are_allowed_outside_work_and_school(purpose: str, where: str) -> None:
    for setting in (None, "consumer", "research", "healthcare"):
        decision = evaluate(purpose, where, setting, today=TODAY)
        assert decision.allowed, (purpose, where, setting, decision.reason)
        assert decision.alternative is None
        assert (decision.legal_basis is not None) == (where in {"DE", "EU"})


def test_only_self_coaching_and_clinical_or_research_uses_report_per_participant() -> None:
    per = {code for code, p in PURPOSES.items() if p.per_participant}
    assert per == {"self_coaching", "research", "telehealth"}


@pytest.mark.parametrize("where", ["DE", "FR", "IE", "EU", "de", " fr ", "eu", "DE-BY"])
@pytest.mark.parametrize("setting", ["workplace", "education", "Workplace"])
@pytest.mark.parametrize("purpose", ["self_coaching", "research", "support_quality"])
def test_eu_workplace_and_education_are_refused(purpose: str, where: str, setting: str) -> None:
    decision = evaluate(purpose, where, setting, today=TODAY)
    _refused(decision, AI_ACT)
    assert "self_coaching" in (decision.alternative or "")
    assert "speaker-turn" in (decision.alternative or "")


def test_the_same_purposes_are_allowed_at_work_outside_the_eu() -> None:
    assert evaluate("self_coaching", "US", "workplace", today=TODAY).allowed
    assert evaluate("support_quality", "GB", "workplace", today=TODAY).allowed


@pytest.mark.parametrize("setting", ["workplace", "education"])
def test_telehealth_keeps_the_medical_exception_in_an_eu_workplace(setting: str) -> None:
    decision = evaluate("telehealth", "DE", setting, today=TODAY)
    assert decision.allowed
    assert decision.legal_basis is not None and "medical exception" in decision.legal_basis
    assert "medical exception" in decision.reason


@pytest.mark.parametrize("setting", [None, "consumer", "workplace"])
def test_employee_monitoring_is_refused_everywhere(setting: str | None) -> None:
    eu = evaluate("employee_monitoring", "NL", setting, today=TODAY)
    _refused(eu, AI_ACT)
    assert "self_coaching" in (eu.alternative or "")
    for where in ("US", "US-NY-NYC", "GB", "CH"):
        other = evaluate("employee_monitoring", where, setting, today=TODAY)
        _refused(other, "rapport product policy")
        assert "not freely given" in other.reason
        assert "self_coaching" in (other.alternative or "")


def test_hiring_interviews_are_refused_in_the_eu_illinois_and_by_default() -> None:
    audit = TODAY - timedelta(days=30)
    eu = evaluate("hiring_interview", "EU", bias_audit=audit, today=TODAY)
    _refused(eu, AI_ACT)
    for where in ("US-IL", "us-il", "US-IL-CHI"):
        il = evaluate("hiring_interview", where, "consumer", bias_audit=audit, today=TODAY)
        _refused(il, "820 ILCS 42")
    for where in ("US", "US-NY", "US-CA", "GB"):
        default = evaluate("hiring_interview", where, bias_audit=audit, today=TODAY)
        _refused(default, "rapport product policy")
    for decision in (eu, il, default):
        assert "Structured interviews" in (decision.alternative or "")
        assert "self_coaching" in (decision.alternative or "")


@pytest.mark.parametrize(
    ("audit", "allowed", "words"),
    [
        (TODAY - timedelta(days=364), True, "less than a year old"),
        (TODAY, True, "less than a year old"),
        (TODAY - timedelta(days=365), False, "more than a year old"),
        (TODAY - timedelta(days=366), False, "more than a year old"),
        (None, False, "no independent bias audit"),
        (TODAY + timedelta(days=1), False, "in the future"),
    ],
)
def test_nyc_allows_hiring_interviews_only_with_a_current_bias_audit(
    audit: date | None, allowed: bool, words: str
) -> None:
    decision = evaluate("hiring_interview", "us-ny-nyc", bias_audit=audit, today=TODAY)
    assert decision.allowed is allowed
    assert decision.legal_basis is not None and "Local Law 144" in decision.legal_basis
    assert words in decision.reason
    assert (decision.alternative is None) is allowed


@pytest.mark.parametrize("setting", [None, "education", "consumer"])
def test_student_attention_is_refused_everywhere(setting: str | None) -> None:
    eu = evaluate("student_attention", "IT", setting, today=TODAY)
    _refused(eu, AI_ACT)
    assert "course feedback" in (eu.alternative or "")
    assert "self_coaching" not in (eu.alternative or "")
    us = evaluate("student_attention", "US", setting, today=TODAY)
    _refused(us, "rapport product policy")
    assert "self_coaching" in (us.alternative or "")


def test_bad_input_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"known purposes: .*self_coaching"):
        evaluate("mood_ring", "DE", today=TODAY)
    with pytest.raises(InputError, match=r"known settings: .*workplace"):
        evaluate("self_coaching", "DE", "office", today=TODAY)
    for bad in ("Germany", "D", "DE_BY", "US-NY-NYCX", "", "1E", "US--NY"):
        with pytest.raises(InputError, match="jurisdiction"):
            evaluate("self_coaching", bad, today=TODAY)


def test_catalogue_lists_every_purpose_as_json() -> None:
    listed = catalogue()
    assert [p["code"] for p in listed] == list(PURPOSES)
    assert {
        "self_coaching",
        "research",
        "telehealth",
        "support_quality",
        "employee_monitoring",
        "hiring_interview",
        "student_attention",
    } == set(PURPOSES)
    assert json.loads(json.dumps(listed)) == listed
    for entry in listed:
        assert {"code", "title", "description", "per_participant", "allowed", "refused_in"} <= set(
            entry
        )
        assert isinstance(entry["per_participant"], bool)
        assert entry["title"] and entry["description"] and entry["allowed"] and entry["refused_in"]


def test_settings_are_the_five_known_ones() -> None:
    assert {"consumer", "workplace", "education", "healthcare", "research"} == SETTINGS
