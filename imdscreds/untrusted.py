"""Values from outside (IMDS, AWS, the environment, config files): shown safely, checked before use.

A metadata endpoint can be a proxy, a local agent or an attacker's listener, and a config value can
hold anything a shell can set. So every such value that reaches a message is made printable (no
escape sequence reaches a terminal) and bounded (a 100 KB value does not become a 100 KB error);
every one sent back in a header is visible ASCII; every instant is one a real clock could show.

This module imports nothing of imdscreds: the exception tree itself builds on it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timezone

__all__ = [
    "EARLIEST",
    "LATEST",
    "QUOTE_LIMIT",
    "is_header_safe",
    "is_plausible_instant",
    "printable",
    "quote",
]

QUOTE_LIMIT = 100
"""The most characters of one outside value a message quotes."""

# Visible ASCII, no space: what base64 tokens and keys are made of, and what any HTTP stack sends
# as a header value unchanged (CR/LF would split the header, non-ASCII is encoded differently by
# each stack, surrounding spaces are stripped).
_HEADER_SAFE = re.compile(r"[!-~]+")

# IMDS stamps the present. An instant outside these years is no timestamp a real clock shows, and
# near datetime's own ends (years 1 and 9999) any addition or time zone shift overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9999, 1, 1, tzinfo=timezone.utc)


def _python_escape(char: str) -> str:
    return repr(char)[1:-1]


def printable(
    text: str,
    *,
    limit: int | None = None,
    keep_newlines: bool = False,
    escape: Callable[[str], str] = _python_escape,
) -> str:
    """``text`` with every character a terminal could act on shown escaped (``\\x1b``).

    With ``limit``, at most that many characters of ``text`` are kept, and the total length is
    said. ``keep_newlines`` keeps line breaks, for multi-line reports. ``escape`` writes one
    character (Python's escapes by default; a JSON document needs JSON's).
    """
    suffix = ""
    if limit is not None and len(text) > limit:
        suffix = f"... ({len(text)} characters)"
        text = text[:limit]
    if not text.isprintable():
        text = "".join(
            char if char.isprintable() or (keep_newlines and char == "\n") else escape(char)
            for char in text
        )
    return text + suffix


def quote(value: object, *, limit: int = QUOTE_LIMIT) -> str:
    """An outside value as a message quotes it: ``'like this'``, printable and bounded.

    A JSON object or array is named by its type only: its content says nothing a reader needs,
    and may be large or hold a secret.
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    if value is None or isinstance(value, (bool, int, float)):
        try:
            text = repr(value)
        except ValueError:  # an int beyond Python's digit limit for str()
            return "<an int of too many digits>"
        return printable(text, limit=limit)
    return f"<{type(value).__name__}>"


def is_header_safe(value: str) -> bool:
    """Whether ``value`` can go out as an HTTP header value as it is: visible ASCII, no space."""
    return _HEADER_SAFE.fullmatch(value) is not None


def is_plausible_instant(instant: datetime) -> bool:
    """Whether an aware datetime lies in the years a real clock can show (1970 to 9998)."""
    return EARLIEST <= instant < LATEST
