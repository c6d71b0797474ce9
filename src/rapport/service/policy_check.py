"""The purpose policy applied at the API: a refusal is a 422 saying why and what is lawful."""

from __future__ import annotations

from datetime import UTC, date, datetime

from rapport.consent import policy
from rapport.service.errors import ApiError


def require_lawful(
    purpose: str, jurisdiction: str, setting: str | None, bias_audit: date | None = None
) -> str:
    """The normalised jurisdiction when the purpose is allowed there; else a 422."""
    code = policy.normalise_jurisdiction(jurisdiction)
    decision = policy.evaluate(
        purpose, code, setting, bias_audit=bias_audit, today=datetime.now(UTC).date()
    )
    if not decision.allowed:
        raise ApiError(
            422,
            "purpose_refused",
            decision.reason,
            legal_basis=decision.legal_basis,
            alternative=decision.alternative,
        )
    return code
