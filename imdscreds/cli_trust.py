"""``imdscreds trust explain``: part of the command line (it prints), kept beside ``cli.py``.

Exit codes: 0 when the principal may assume every role read and nothing failed; 1 otherwise; 2 for
a usage error or input that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imdscreds.trust import Request, TerraformRole, TrustFinding
    from imdscreds.trust.tfvars import Variables

# The trust engine is imported when the command runs, not when the parser is built: every other
# command (``imdscreds credentials`` as a credential_process above all) would pay for it.

__all__ = ["register"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
JSON_VERSION = 1


def register(commands: Any) -> None:
    """Add ``trust`` (with ``explain``) to the ``imdscreds`` subcommands."""
    trust = commands.add_parser(
        "trust",
        help="explain a role's trust policy offline: may EC2 assume it, and why",
        description="Explain trust (assume-role) policies offline, from JSON or Terraform.",
    )
    actions = trust.add_subparsers(title="actions", required=True, metavar="ACTION")
    explain = actions.add_parser(
        "explain",
        help="say whether a principal may assume the role, and what to fix",
        description="Say, for each trust policy (a JSON file, - for stdin) or aws_iam_role (in "
        ".tf files or directories, or a `terraform show -json` plan or state), whether the "
        "principal may call the action, which statement decides it, and what to fix. Exit 0 "
        "when it may and nothing failed, 1 otherwise, 2 for usage errors or unreadable input.",
    )
    explain.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a .json (a policy, or a plan or state from terraform show -json), a .tf, a "
        "directory, -",
    )
    explain.add_argument(
        "--principal",
        help="who asks (default ec2.amazonaws.com; ec2.amazonaws.com.cn with --partition aws-cn)",
    )
    explain.add_argument(
        "--partition",
        default="aws",
        metavar="NAME",
        help="the AWS partition data.aws_partition answers for in Terraform (default aws; "
        "aws-cn, aws-us-gov, aws-iso, aws-iso-b, aws-iso-e, aws-iso-f)",
    )
    explain.add_argument(
        "--action",
        help="default sts:AssumeRole; sts:AssumeRoleWithWebIdentity for an OIDC provider ARN or "
        "a web identity provider's name, sts:AssumeRoleWithSAML for a SAML provider ARN",
    )
    explain.add_argument(
        "-var",
        "--var",
        action=_InOrder,
        metavar="NAME=VALUE",
        help="set a Terraform variable, as terraform plan -var does (repeatable)",
    )
    explain.add_argument(
        "-var-file",
        "--var-file",
        action=_InOrder,
        metavar="FILE",
        help="read Terraform variables from a .tfvars or .tfvars.json file (repeatable); "
        "terraform.tfvars and *.auto.tfvars beside a module directory are read by themselves",
    )
    explain.add_argument("--json", action="store_true", help="print a JSON document instead")
    explain.set_defaults(run=run_explain)


class _InOrder(argparse.Action):
    """``-var`` and ``-var-file`` kept in one list, in command-line order (later wins)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        kind = "var-file" if self.dest == "var_file" else "var"
        given = list(getattr(namespace, "command_line", None) or [])
        given.append((kind, str(values)))
        namespace.command_line = given


@dataclass(frozen=True)
class _Result:
    source: str
    role: str | None
    verdict: str
    summary: str
    facts: tuple[str, ...]
    findings: tuple[TrustFinding, ...]
    statements: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.verdict == "allowed" and not any(f.status == "fail" for f in self.findings)


def _read_text(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    return Path(path).read_text(encoding="utf-8")


def _is_terraform(path: str) -> bool:
    return path != "-" and (Path(path).is_dir() or path.endswith(".tf"))


def _plan(text: str) -> dict[str, Any] | None:
    """The document of ``terraform show -json`` (plan or state) in ``text``, else None."""
    from imdscreds.trust.tfplan import is_plan

    if "format_version" not in text:
        return None
    try:
        document = json.loads(text.lstrip("\ufeff"))
    except ValueError:
        return None
    return document if isinstance(document, dict) and is_plan(document) else None


def _role_results(roles: Sequence[TerraformRole], request: Request) -> list[_Result]:
    from imdscreds.trust import explain_role

    results: list[_Result] = []
    for role in roles:
        explained = explain_role(role, request)
        results.append(
            _Result(
                role.block.where,
                role.block.address,
                explained.explanation.verdict,
                explained.explanation.summary,
                (f"Trust policy: from {role.origin}.", *explained.facts),
                explained.findings,
                explained.explanation.to_json()["statements"],
            )
        )
    return results


def _results(
    paths: Sequence[str],
    request: Request,
    variables: Variables | None = None,
    partition: str = "aws",
) -> list[_Result]:
    from imdscreds.trust import NOTE, TerraformError, explain_policy, read_terraform
    from imdscreds.trust.tfplan import read_plan

    results: list[_Result] = []
    for path in paths:
        if _is_terraform(path):
            continue
        text = _read_text(path)
        plan = _plan(text)
        if plan is not None:
            source = "stdin" if path == "-" else path
            roles = read_plan(plan, source)
            if not roles:
                raise TerraformError(f"{source}: no aws_iam_role resource in this plan or state")
            results.extend(_role_results(roles, request))
            continue
        explanation = explain_policy(text, request)
        document = explanation.to_json()
        results.append(
            _Result(
                "stdin" if path == "-" else path,
                None,
                explanation.verdict,
                explanation.summary,
                (NOTE,) if explanation.allowed else (),
                explanation.findings,
                document["statements"],
            )
        )
    terraform = [path for path in paths if _is_terraform(path)]
    if terraform:
        roles = read_terraform(
            terraform,
            None if variables is None else variables.command_line,
            partition=partition,
        )
        if not roles:
            raise TerraformError(f"{', '.join(terraform)}: no aws_iam_role resource found")
        results.extend(_role_results(roles, request))
    return results


def _text(
    results: list[_Result],
    request: Request,
    *,
    color: bool,
    unicode: bool,
    variable_files: Sequence[str] = (),
) -> str:
    from imdscreds.doctor.render import finding_lines
    from imdscreds.untrusted import printable

    lines = [f"imdscreds trust: may {request.principal} call {request.action}?"]
    if variable_files:
        lines.append(printable(f"Variable files read: {', '.join(variable_files)}."))
    for result in results:
        lines.append("")
        # Names, Sids and paths come from the files read: escaped before they reach a terminal.
        head = f"{result.role} ({result.source})" if result.role else result.source
        lines.append(printable(head, keep_newlines=True))
        for sentence in (result.summary, *result.facts):
            wrapped = textwrap.wrap(
                printable(sentence, keep_newlines=True),
                98,
                initial_indent="  ",
                subsequent_indent="  ",
            )
            lines.extend(wrapped)
        if result.findings:
            lines.append("")
        for finding in result.findings:
            lines.extend(finding_lines(finding, color=color, unicode=unicode))
    allowed = sum(1 for result in results if result.verdict == "allowed")
    failed = sum(1 for r in results for f in r.findings if f.status == "fail")
    warned = sum(1 for r in results for f in r.findings if f.status == "warn")
    noun = "role" if any(r.role for r in results) else "policy"
    if len(results) != 1:
        noun = "roles" if noun == "role" else "policies"
    lines.append("")
    lines.append(
        f"Verdict: {request.principal} may assume {allowed} of {len(results)} {noun}; "
        f"{failed} failed, {warned} warning{'' if warned == 1 else 's'}."
    )
    text = "\n".join(lines)
    return text if unicode else text.encode("ascii", "replace").decode("ascii")


def _json(results: list[_Result], request: Request) -> str:
    return json.dumps(
        {
            "version": JSON_VERSION,
            "principal": request.principal,
            "action": request.action,
            "ok": all(result.ok for result in results),
            "results": [
                {
                    "source": result.source,
                    "role": result.role,
                    "verdict": result.verdict,
                    "summary": result.summary,
                    "facts": list(result.facts),
                    "statements": result.statements,
                    "findings": [finding.to_json() for finding in result.findings],
                }
                for result in results
            ],
        },
        indent=2,
        ensure_ascii=False,
    )


def run_explain(args: argparse.Namespace) -> int:
    """The ``trust explain`` command."""
    from imdscreds.doctor.render import can_encode_marks, use_color
    from imdscreds.trust import Request, TerraformError
    from imdscreds.trust.evaluate import default_action

    partition = getattr(args, "partition", "aws")
    principal = args.principal or (
        "ec2.amazonaws.com.cn" if partition == "aws-cn" else "ec2.amazonaws.com"
    )
    request = Request(principal=principal, action=args.action or default_action(principal))
    command_line = getattr(args, "command_line", None) or []
    terraform = [path for path in args.paths if _is_terraform(path)]
    try:
        variables = None
        if terraform or command_line:
            from imdscreds.trust.tfvars import CommandLine, read_variables

            if command_line and not terraform:
                raise TerraformError(
                    "-var and -var-file apply to .tf files or module directories, and none "
                    "was given",
                    hint="Give the module: imdscreds trust explain DIR -var name=value",
                )
            variables = read_variables(
                terraform, [CommandLine(kind, value) for kind, value in command_line]
            )
        results = _results(args.paths, request, variables, partition)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"imdscreds: error: cannot read {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (TerraformError, ImportError) as exc:
        print(f"imdscreds: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(_json(results, request))
    else:
        color = use_color(sys.stdout, os.environ)
        unicode = can_encode_marks(sys.stdout)
        files = variables.files if variables is not None else ()
        print(_text(results, request, color=color, unicode=unicode, variable_files=files))
    return EXIT_OK if all(result.ok for result in results) else EXIT_FAILED
