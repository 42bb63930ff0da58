"""The report as text for people, or as the versioned JSON document for scripts.

Rendering only builds strings; the CLI decides where they go. Text marks each check with ✓ ! ✗ -
(or PASS WARN FAIL SKIP where the output's encoding cannot carry those), puts the detail and the fix
under every failure and warning, and ends with a one-line verdict. Colour is the caller's choice:
``use_color`` says yes only for a terminal, and never with ``NO_COLOR`` set.
"""

from __future__ import annotations

import codecs
import json
import textwrap
from collections.abc import Mapping
from typing import Protocol, TextIO

from imdscreds.doctor.findings import Report
from imdscreds.untrusted import printable

__all__ = [
    "can_encode_marks",
    "finding_lines",
    "render_json",
    "render_text",
    "use_color",
]


class FindingLike(Protocol):
    """What rendering needs of a finding: the doctor's and the trust findings both have it."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def summary(self) -> str: ...
    @property
    def detail(self) -> str | None: ...
    @property
    def fix(self) -> str | None: ...


_MARKS = {"pass": "✓", "warn": "!", "fail": "✗", "skip": "-"}
_ASCII_MARKS = {"pass": "PASS", "warn": "WARN", "fail": "FAIL", "skip": "SKIP"}
_COLORS = {"pass": "32", "warn": "33", "fail": "31", "skip": "2"}
_ID_WIDTH = max(len(check_id) for check_id in ("instance-profile-not-found",)) + 2
_INDENT = "      "


def use_color(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """Colour only on a terminal, never with NO_COLOR (any non-empty value) or TERM=dumb."""
    if environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def can_encode_marks(stream: TextIO) -> bool:
    """Whether the stream's encoding can carry ✓ and ✗."""
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        codecs.lookup(encoding)
        "".join(_MARKS.values()).encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return False
    return True


def _clean(text: str) -> str:
    """Text from IMDS or AWS, with control characters shown escaped (no terminal tricks)."""
    return printable(text, keep_newlines=True)


def _block(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for line in _clean(text).splitlines():
        if line.startswith(" ") or not line:
            lines.append(_INDENT + line)  # preformatted (a policy document): keep as is
        else:
            lines.extend(
                textwrap.wrap(
                    line,
                    width=width,
                    initial_indent=_INDENT,
                    subsequent_indent=_INDENT + "  ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
    return lines


def _paint(text: str, status: str, color: bool) -> str:
    return f"\x1b[{_COLORS[status]}m{text}\x1b[0m" if color else text


def finding_lines(
    finding: FindingLike, *, color: bool = False, unicode: bool = True, width: int = 100
) -> list[str]:
    """One finding's lines: mark, id, summary; the detail and fix under a failure or warning."""
    mark = (_MARKS if unicode else _ASCII_MARKS)[finding.status]
    head = (
        f"{_paint(mark, finding.status, color)} {finding.id:<{_ID_WIDTH}}{_clean(finding.summary)}"
    )
    lines = [head]
    if finding.status in ("fail", "warn"):
        if finding.detail:
            lines.extend(_block(finding.detail, width))
        if finding.fix:
            # Fixes are not wrapped: each line is a command or a setting to copy as it is.
            lines.append(_INDENT + "Fix:")
            lines.extend(_INDENT + line for line in _clean(finding.fix).splitlines())
    return lines


def verdict(report: Report) -> str:
    """One line: what the run found, and where to start."""
    took = f"{report.duration_s:.2f} s"
    skipped = sum(1 for finding in report.findings if finding.status == "skip")
    skipped_note = f", {skipped} skipped" if skipped else ""
    if report.failed:
        first = report.failed[0]
        count = len(report.failed)
        return (
            f"Verdict: {count} check{'s' if count > 1 else ''} failed; start with {first.id}: "
            f"{_clean(first.summary)} ({took}{skipped_note})"
        )
    if report.warnings:
        names = ", ".join(finding.id for finding in report.warnings)
        count = len(report.warnings)
        return (
            f"Verdict: nothing failed, {count} warning{'s' if count > 1 else ''} ({names}) "
            f"({took}{skipped_note})"
        )
    return f"Verdict: the instance role works, no problems found ({took}{skipped_note})"


def render_text(
    report: Report, *, color: bool = False, unicode: bool = True, width: int = 100
) -> str:
    """The report for people: a header, one line per check, fixes under failures, the verdict."""
    endpoint = report.instance.get("imds_endpoint")
    source = report.instance.get("imds_endpoint_source")
    head = (
        f"imdscreds doctor: IMDS at {endpoint} ({source})"
        if endpoint
        else "imdscreds doctor: the IMDS settings are invalid (see endpoint-config)"
    )
    lines = [head, ""]
    for finding in report.findings:
        lines.extend(finding_lines(finding, color=color, unicode=unicode, width=width))
    status = "fail" if report.failed else "warn" if report.warnings else "pass"
    lines.extend(["", _paint(verdict(report), status, color)])
    text = "\n".join(lines)
    return text if unicode else text.encode("ascii", "replace").decode("ascii")


def render_json(report: Report) -> str:
    """The ``--json`` document (schema version 1, described in the README)."""
    text = json.dumps(report.to_json(), indent=2, ensure_ascii=False)
    # JSON escapes only C0 controls: DEL, C1 (U+009B is CSI) and the like would reach a terminal
    # raw. As JSON escapes they stay the same text for a parser.
    return printable(text, keep_newlines=True, escape=lambda char: json.dumps(char)[1:-1])
