"""The purpose catalogue and the lawful-purpose decision: what rapport may be used for, and where.

Every session states a purpose, a jurisdiction (ISO 3166 code, optionally with a subdivision:
"DE", "US-IL", "US-NY-NYC"; "EU" means any member state) and, where known, a setting. The rules
are a product decision informed by law, not legal advice: the EU AI Act Art. 5(1)(f) prohibits
emotion recognition in workplaces and education except for medical or safety reasons.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Any, Literal, get_args

from rapport.errors import InputError

# fmt: off
EU = frozenset({
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
    "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
})
# fmt: on
Setting = Literal["consumer", "workplace", "education", "healthcare", "research"]
SETTINGS: frozenset[str] = frozenset(get_args(Setting))
PROHIBITED_IN_EU = frozenset({"workplace", "education"})
_JURISDICTION = re.compile(r"[A-Z]{2}(?:-[A-Z0-9]{1,3}){0,2}")

AI_ACT = "EU AI Act Art. 5(1)(f)"
AI_ACT_MEDICAL = "EU AI Act Art. 5(1)(f) (medical exception); GDPR Art. 9(2)(a)"
GDPR_CONSENT = "GDPR Art. 6(1)(a) (consent)"
GDPR_HEALTH = "GDPR Art. 9(2)(a) (explicit consent to processing health data)"
IL_AIVIA = "Illinois Artificial Intelligence Video Interview Act, 820 ILCS 42"
NYC_LL144 = "NYC Local Law 144 of 2021 (NYC Admin. Code § 20-870 et seq.)"
PRODUCT_POLICY = "rapport product policy"
AUDIT_MAX_AGE_DAYS = 365

NO_EMOTION_AT_WORK = (
    "self_coaching outside a workplace or education setting, or non-emotion analytics such as "
    "speaker-turn balance only."
)


@dataclass(frozen=True, slots=True)
class Purpose:
    code: str
    title: str
    description: str
    per_participant: bool
    """Whether per-participant reporting may be enabled; otherwise room aggregates only."""
    allowed: str
    refused_in: str
    alternative: str
    """Offered whenever this purpose is refused."""
    inherent_setting: str | None = None
    """The setting this purpose always runs in, whatever the caller states."""
    medical: bool = False
    """The AI Act's medical exception applies, even in a workplace or education setting."""
    refusal: str | None = None
    """Outside the EU: why rapport declines it (None: allowed with consent)."""
    eu_alternative: str | None = None
    """Replaces `alternative` for refusals in the EU."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str
    legal_basis: str | None
    alternative: str | None


_ALL = (
    Purpose(
        "self_coaching",
        "Self-coaching",
        "Feedback on your own delivery, shown only to you, the consenting person.",
        per_participant=True,
        allowed="everywhere, with the person's consent",
        refused_in="EU in a workplace or education setting",
        alternative=NO_EMOTION_AT_WORK,
    ),
    Purpose(
        "research",
        "Consented research",
        "Studies whose participants gave informed consent to emotion and engagement analysis.",
        per_participant=True,
        allowed="everywhere, with each participant's informed consent",
        refused_in="EU in a workplace or education setting",
        alternative=NO_EMOTION_AT_WORK,
    ),
    Purpose(
        "telehealth",
        "Telehealth",
        "Clinical consultations, with the patient's consent.",
        per_participant=True,
        allowed="everywhere, with the patient's consent (medical exception in the EU)",
        refused_in="nowhere",
        alternative=NO_EMOTION_AT_WORK,
        medical=True,
    ),
    Purpose(
        "support_quality",
        "Support call quality",
        "Customer-support call quality with both sides' consent; room aggregates only.",
        per_participant=False,
        allowed="everywhere, with both sides' consent, as room aggregates",
        refused_in="EU in a workplace or education setting",
        alternative=NO_EMOTION_AT_WORK,
    ),
    Purpose(
        "employee_monitoring",
        "Employee monitoring",
        "An employer watching employees' emotions or engagement.",
        per_participant=False,
        allowed="nowhere",
        refused_in="everywhere",
        alternative="self_coaching, chosen by the employee, with feedback for their own eyes only.",
        eu_alternative=(
            "self_coaching, chosen by the employee for their own eyes, outside a workplace "
            "setting; in meetings, speaker-turn balance only."
        ),
        inherent_setting="workplace",
        refusal=(
            "Consent given to an employer is not freely given, so rapport does not offer "
            "employee monitoring."
        ),
    ),
    Purpose(
        "hiring_interview",
        "Hiring interview analysis",
        "Emotion or engagement inference about job candidates during interviews.",
        per_participant=False,
        allowed="only in New York City (US-NY-NYC) with an independent bias audit under a year old",
        refused_in="everywhere else, including the EU and Illinois",
        alternative=(
            "Structured interviews without emotion inference; candidates may use self_coaching "
            "for their own practice."
        ),
        inherent_setting="workplace",
        refusal=(
            "rapport does not infer candidates' emotions in hiring interviews here; it is offered "
            "only in New York City with a current bias audit."
        ),
    ),
    Purpose(
        "student_attention",
        "Student attention tracking",
        "Tracking students' attention or emotions in class.",
        per_participant=False,
        allowed="nowhere",
        refused_in="everywhere",
        alternative=(
            "Teachers may use self_coaching on their own delivery, or collect anonymous course "
            "feedback."
        ),
        eu_alternative="Anonymous course feedback, or speaker-turn balance only.",
        inherent_setting="education",
        refusal="Attention tracking of students is not something rapport does.",
    ),
)
PURPOSES: Mapping[str, Purpose] = MappingProxyType({p.code: p for p in _ALL})


def normalise_jurisdiction(jurisdiction: str) -> str:
    """Upper-cased ISO 3166 code with up to two subdivisions ("us-ny-nyc" -> "US-NY-NYC")."""
    code = jurisdiction.strip().upper() if isinstance(jurisdiction, str) else ""
    if not _JURISDICTION.fullmatch(code):
        raise InputError(
            f"jurisdiction {jurisdiction!r} is not an ISO 3166 code like DE, US-IL or US-NY-NYC"
        )
    return code


def _within(jurisdiction: str, region: str) -> bool:
    return jurisdiction == region or jurisdiction.startswith(region + "-")


def evaluate(
    purpose: str,
    jurisdiction: str,
    setting: str | None = None,
    *,
    bias_audit: date | None = None,
    today: date,
) -> Decision:
    """Whether `purpose` is lawful here. InputError on an unknown purpose or setting, or a
    malformed jurisdiction. `bias_audit` matters only for hiring_interview in US-NY-NYC."""
    p = PURPOSES.get(purpose.strip().lower() if isinstance(purpose, str) else "")
    if p is None:
        raise InputError(f"unknown purpose {purpose!r}; known purposes: {', '.join(PURPOSES)}")
    where = normalise_jurisdiction(jurisdiction)
    stated = setting.strip().lower() if isinstance(setting, str) else setting
    if stated is not None and stated not in SETTINGS:
        known = ", ".join(sorted(SETTINGS))
        raise InputError(f"unknown setting {setting!r}; known settings: {known}")
    effective = p.inherent_setting or stated
    in_eu = where == "EU" or where[:2] in EU or where.startswith("EU-")

    if in_eu and effective in PROHIBITED_IN_EU and not p.medical:
        return Decision(
            False,
            f"Emotion recognition in a {effective} setting is prohibited in the EU, so {p.code} "
            f"cannot run in {where}.",
            AI_ACT,
            p.eu_alternative or p.alternative,
        )
    if p.code == "hiring_interview" and (local := _hiring(p, where, bias_audit, today)):
        return local
    if p.refusal is not None:
        return Decision(False, p.refusal, PRODUCT_POLICY, p.alternative)
    if p.medical and in_eu and effective in PROHIBITED_IN_EU:
        return Decision(
            True,
            f"{p.title} is allowed in {where} under the AI Act's medical exception. "
            f"{p.description}",
            AI_ACT_MEDICAL,
            None,
        )
    basis = (GDPR_HEALTH if p.medical else GDPR_CONSENT) if in_eu else None
    return Decision(True, f"{p.title} is allowed in {where}. {p.description}", basis, None)


def _hiring(p: Purpose, where: str, bias_audit: date | None, today: date) -> Decision | None:
    """The local rules for hiring interviews; None where the default refusal applies."""
    if _within(where, "US-IL"):
        return Decision(
            False,
            "Illinois regulates AI analysis of video interviews, and rapport does not offer "
            "hiring interview analysis there.",
            IL_AIVIA,
            p.alternative,
        )
    if where != "US-NY-NYC":
        return None
    if bias_audit is None:
        problem = "no independent bias audit was given"
    elif bias_audit > today:
        problem = f"the bias audit date {bias_audit.isoformat()} is in the future"
    elif (today - bias_audit).days >= AUDIT_MAX_AGE_DAYS:
        problem = f"the bias audit of {bias_audit.isoformat()} is more than a year old"
    else:
        return Decision(
            True,
            f"Allowed in New York City: the independent bias audit of {bias_audit.isoformat()} "
            "is less than a year old.",
            NYC_LL144,
            None,
        )
    return Decision(
        False,
        f"Automated employment decision tools in New York City need an independent bias audit "
        f"within the past year; {problem}.",
        NYC_LL144,
        p.alternative,
    )


def catalogue() -> list[dict[str, Any]]:
    """Every purpose as JSON-ready data (for GET /v1/purposes)."""
    return [
        {
            "code": p.code,
            "title": p.title,
            "description": p.description,
            "per_participant": p.per_participant,
            "allowed": p.allowed,
            "refused_in": p.refused_in,
        }
        for p in PURPOSES.values()
    ]
