"""The one rule for text that enters from outside (paths, queries, bodies): no control
characters and no lone surrogates (neither is text; PostgreSQL refuses NUL and surrogates, and a
NUL signed into a consent record would be a lie about what the person was shown), and a bound on
length. Free text a person reads (a purpose text, a description) may hold tabs and line breaks."""

from __future__ import annotations

import unicodedata

LINE_BREAKS = frozenset("\t\n\r")


def bad_char(text: str, *, multiline: bool = False) -> str | None:
    """The first character the rule refuses, or None."""
    for c in text:
        if unicodedata.category(c) in ("Cc", "Cs") and not (multiline and c in LINE_BREAKS):
            return c
    return None


def check_text(text: str, *, multiline: bool = False) -> str:
    """`text`, or ValueError naming the refused character (for pydantic validators)."""
    c = bad_char(text, multiline=multiline)
    if c is not None:
        raise ValueError(f"contains {describe(c)}")
    return text


def describe(c: str) -> str:
    kind = "a lone surrogate" if unicodedata.category(c) == "Cs" else "a control character"
    return f"U+{ord(c):04X}, {kind}"
