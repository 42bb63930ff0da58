"""Real public Terraform (tests/trust_corpus/, see SOURCES.md) against hand-checked answers.

Each role's expected verdict and true warnings are in tests/trust_corpus/EXPECTED.py, with the
hand check beside each case. A decided verdict that differs from the expected one fails. A role
left unknown must be named in KNOWN_UNDECIDED, so an improvement shrinks the set (drop the name
here) while a regression fails. False warnings and unresolved messages that name no value are
pinned the same way.
"""

from __future__ import annotations

from collections import Counter

import pytest
from trust_corpus_support import CORPUS_DIR, NAMES_A_VALUE, CorpusRun, load_expected, run_corpus

# Roles today's code leaves "unknown" although the hand check decides them (directory:address).
KNOWN_UNDECIDED: frozenset[str] = frozenset(
    {
        # The copy keeps main.tf only: var.iam_role_source_assume_policy_documents is declared
        # (default []) in the module's variables.tf, which is not in the corpus. The message
        # names that variable.
        "terraform-aws-modules__terraform-aws-eks__modules_karpenter:aws_iam_role.controller",
    }
)

# Unknown roles whose `unresolved` message names no var./local./data./module./file value.
UNNAMED_TODAY: frozenset[str] = frozenset()

# Warnings reported that the hand check says are not true: (directory:address, finding id).
FALSE_WARNINGS: frozenset[tuple[str, str]] = frozenset(
    {
        # The copy keeps iam.tf only; the aws_eks_node_group that takes the role (and makes
        # its instance profile) is in the module's main.tf, which is not in the corpus.
        (
            "cloudposse__terraform-aws-eks-node-group__root:aws_iam_role.default",
            "no-instance-profile",
        ),
    }
)
FALSE_WARNINGS_TODAY = len(FALSE_WARNINGS)


@pytest.fixture(scope="module")
def corpus() -> CorpusRun:
    return run_corpus()


def test_the_corpus_is_large_enough_and_every_directory_is_in_the_table() -> None:
    expected = load_expected()
    on_disk = sorted(path.name for path in CORPUS_DIR.iterdir() if path.is_dir())
    assert sorted(expected) == on_disk
    assert len(on_disk) >= 15
    assert sum(len(roles) for roles in expected.values()) >= 25


def test_every_directory_is_listed_in_sources_with_its_license() -> None:
    sources = (CORPUS_DIR / "SOURCES.md").read_text(encoding="utf-8")
    for directory in load_expected():
        line = next((row for row in sources.splitlines() if f"`{directory}`" in row), None)
        assert line is not None, f"{directory} is not in SOURCES.md"
        assert any(name in line for name in ("Apache-2.0", "MIT", "MPL-2.0")), line


def test_no_directory_raises(corpus: CorpusRun) -> None:
    assert corpus.errors == {}


def test_every_role_found_is_expected_and_every_expected_role_is_found(corpus: CorpusRun) -> None:
    found = {result.key for result in corpus.results}
    expected = {
        f"{directory}:{address}"
        for directory, roles in load_expected().items()
        for address in roles
    }
    assert found == expected
    assert all(result.expected is not None for result in corpus.results)


def test_every_decided_verdict_is_the_expected_one(corpus: CorpusRun) -> None:
    wrong = {
        result.key: (result.verdict, result.expected.verdict)
        for result in corpus.results
        if result.verdict != "unknown" and result.verdict != result.expected.verdict
    }
    assert wrong == {}


def test_unknown_roles_are_only_the_known_undecided_ones(corpus: CorpusRun) -> None:
    unknown = {r.key for r in corpus.results if r.verdict == "unknown"}
    expected_unknown = {r.key for r in corpus.results if r.expected.verdict == "unknown"}
    assert unknown - expected_unknown <= KNOWN_UNDECIDED, sorted(unknown - KNOWN_UNDECIDED)
    # Every name in KNOWN_UNDECIDED is a role of the corpus the hand check decides.
    decided = {r.key for r in corpus.results if r.expected.verdict != "unknown"}
    assert decided >= KNOWN_UNDECIDED


def test_every_unknown_role_says_which_value_it_needs(corpus: CorpusRun) -> None:
    unnamed = set()
    for result in corpus.results:
        if result.verdict != "unknown":
            continue
        assert "unresolved" in result.finding_ids, result.key
        assert result.unresolved, result.key
        if NAMES_A_VALUE.search(result.unresolved) is None:
            unnamed.add(result.key)
    assert unnamed <= UNNAMED_TODAY, sorted(unnamed - UNNAMED_TODAY)


def test_false_warnings_do_not_grow(corpus: CorpusRun) -> None:
    false = {(r.key, finding) for r in corpus.results for finding in r.false_warnings}
    assert false <= FALSE_WARNINGS, sorted(false - FALSE_WARNINGS)
    assert len(false) <= FALSE_WARNINGS_TODAY
    assert Counter(finding for _, finding in false)["no-permission-policy"] <= 1


def test_decided_roles_report_the_true_trust_findings(corpus: CorpusRun) -> None:
    # A role EC2 may not assume says why (ec2-not-trusted or its like); an allowed role says none.
    for result in corpus.results:
        if result.verdict == "not-allowed":
            assert set(result.finding_ids) & result.expected.true_warnings, result.key
        if result.verdict == "allowed":
            assert "ec2-not-trusted" not in result.finding_ids, result.key
