"""Scenario 13: `trust explain` over a generated directory of 100 Terraform modules.

The modules are copies of the real public modules in tests/trust_corpus (registry modules, Cloud
Posse, HashiCorp's clusters), taken in turn;
the figure is the wall time from .tf text to every role's explained verdict, and how many roles
stay unknown.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from benchmarks.scenarios import AnyPeer, Settings, Table
from imdscreds.trust import explain_role, read_terraform

MODULES = 100
_CASES = Path(__file__).resolve().parent.parent / "tests" / "trust_corpus"


def trust_terraform(peers: list[AnyPeer], settings: Settings) -> Table:
    sources = sorted(path for path in _CASES.iterdir() if any(path.glob("*.tf")))
    with tempfile.TemporaryDirectory(prefix="imdscreds-tf-") as root:
        modules = []
        for n in range(MODULES):
            target = Path(root) / f"m{n:03d}"
            shutil.copytree(sources[n % len(sources)], target)
            modules.append(str(target))
        started = time.perf_counter()
        verdicts = Counter(
            explain_role(role).explanation.verdict
            for module in modules
            for role in read_terraform([module])
        )
        wall_ms = (time.perf_counter() - started) * 1e3
    roles, unknown = sum(verdicts.values()), verdicts["unknown"]
    mix = ", ".join(f"{verdicts[verdict]} {verdict}" for verdict in sorted(verdicts))
    return Table(
        number=13,
        title="Trust explain over 100 Terraform modules",
        setup=f"{MODULES} module directories copied in turn from the {len(sources)} of "
        f"tests/trust_corpus; one run, one thread, python-hcl2 parsing included. Verdicts: {mix}.",
        columns=["peer", "modules", "roles", "unknown", "wall ms", "ms per module"],
        rows=[
            [
                "imdscreds",
                str(MODULES),
                str(roles),
                f"{unknown} ({100 * unknown / max(roles, 1):.0f}%)",
                f"{wall_ms:,.0f}",
                f"{wall_ms / MODULES:,.1f}",
            ]
        ],
        data={"imdscreds": {"wall_ms": wall_ms, "roles": roles, "unknown": unknown}},
        notes=["No peer runs here: the other tools need AWS credentials or a plan."],
    )
