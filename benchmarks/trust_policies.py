"""Scenario 8: the trust engine over 1,000 trust policies, from JSON text to the explained verdict.

No peer takes part: no other tool answers "may EC2 assume this role" offline. The figure is what
`imdscreds trust explain` and the doctor pay per policy.
"""

from __future__ import annotations

import json
import statistics
import time
from typing import Any

from benchmarks.scenarios import AnyPeer, Settings, Table
from imdscreds.trust import evaluate, explain_policy, parse_policy

POLICIES = 1_000
_SERVICES = (
    "ec2.amazonaws.com",
    "lambda.amazonaws.com",
    "ec2.amazon.com",
    "ecs-tasks.amazonaws.com",
)
_ACTIONS = ("sts:AssumeRole", "sts:*", "sts:Assume*", "sts:AssumeRoleWithWebIdentity")
_CONDITIONS: tuple[dict[str, Any] | None, ...] = (
    None,
    {"Bool": {"aws:MultiFactorAuthPresent": "true"}},
    {"StringEquals": {"aws:SourceAccount": "123456789012"}},
    {"StringEquals": {"aws:PrincipalServiceName": "ec2.amazonaws.com"}},
)


def corpus(count: int = POLICIES) -> list[str]:
    """``count`` different trust policies as JSON text: every service, action and condition mixed."""
    texts = []
    for n in range(count):
        statement: dict[str, Any] = {
            "Sid": f"S{n}",
            "Effect": "Allow",
            "Principal": {"Service": _SERVICES[n % 4]},
            "Action": _ACTIONS[(n // 4) % 4],
        }
        condition = _CONDITIONS[(n // 16) % 4]
        if condition:
            statement["Condition"] = condition
        statements = [statement]
        if n % 7 == 0:
            statements.append(
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": f"arn:aws:iam::{n:012d}:root"},
                    "Action": "sts:*",
                }
            )
        texts.append(json.dumps({"Version": "2012-10-17", "Statement": statements}))
    return texts


def _median_ms(work: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def trust_policies(peers: list[AnyPeer], settings: Settings) -> Table:
    texts = corpus()
    parsed = [parse_policy(text) for text in texts]
    repeats = 5 if settings.quick else 15
    explained_ms = _median_ms(lambda: [explain_policy(text) for text in texts], repeats)
    evaluated_ms = _median_ms(lambda: [evaluate(policy) for policy in parsed], repeats)
    verdicts: dict[str, int] = {}
    for text in texts:
        verdict = explain_policy(text).verdict
        verdicts[verdict] = verdicts.get(verdict, 0) + 1
    mix = ", ".join(f"{count} {verdict}" for verdict, count in sorted(verdicts.items()))
    return Table(
        number=8,
        title="Trust policies: 1,000 evaluated",
        setup=f"{POLICIES:,} different trust policies (4 services x 4 actions x 4 conditions, every "
        f"7th with a Deny); median of {repeats} runs, one thread. Verdicts: {mix}.",
        columns=["peer", "step", "policies", "ms in all", "µs per policy"],
        rows=[
            [
                "imdscreds",
                "JSON text to explained verdict",
                f"{POLICIES:,}",
                f"{explained_ms:,.1f}",
                f"{explained_ms * 1e3 / POLICIES:,.1f}",
            ],
            [
                "imdscreds",
                "evaluate a parsed policy",
                f"{POLICIES:,}",
                f"{evaluated_ms:,.1f}",
                f"{evaluated_ms * 1e3 / POLICIES:,.1f}",
            ],
        ],
        data={"imdscreds": {"explain_ms": explained_ms, "evaluate_ms": evaluated_ms}},
        notes=["No peer runs here: the other tools need AWS credentials or a whole-account dump."],
    )
