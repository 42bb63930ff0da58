"""``imdscreds doctor``: say exactly what is wrong with an instance's role, and how to fix it.

``run_doctor()`` runs one small check per stable id in ``CHECK_IDS`` (environment, IMDS, the
instance profile and role, STS, IAM) and returns a ``Report``; ``render_text`` and ``render_json``
turn it into output. The checks return data; only the CLI prints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from imdscreds.doctor.findings import CHECK_IDS, JSON_VERSION, Finding, Report, Status
from imdscreds.doctor.render import can_encode_marks, render_json, render_text, use_color

if TYPE_CHECKING:
    from imdscreds.doctor.runner import run_doctor

__all__ = [
    "CHECK_IDS",
    "JSON_VERSION",
    "Finding",
    "Report",
    "Status",
    "can_encode_marks",
    "render_json",
    "render_text",
    "run_doctor",
    "use_color",
]


def __getattr__(name: str) -> Any:
    # The checks (requests, botocore) are imported on first use: `trust explain` renders its
    # findings with doctor.render and runs no check.
    if name == "run_doctor":
        from imdscreds.doctor.runner import run_doctor

        return run_doctor
    raise AttributeError(f"module 'imdscreds.doctor' has no attribute {name!r}")
