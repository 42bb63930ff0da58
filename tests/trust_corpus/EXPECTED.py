"""The hand-checked answer for every aws_iam_role in tests/trust_corpus/, on the default question.

The question: may EC2 (``ec2.amazonaws.com``) call ``sts:AssumeRole`` on the role, in the
commercial partition (``aws``, dns_suffix ``amazonaws.com``), with every input variable at the
module's default. Conventions, applied to every case alike:

* A role under ``count``/``for_each`` is judged as if created: whether Terraform creates it is a
  question of inputs, not of its trust policy. ``data.aws_service_principal`` names resolve as in
  the commercial partition (``ec2`` -> ``ec2.amazonaws.com``).
* A permission attachment (``aws_iam_role_policy_attachment``, ``aws_iam_role_policy``, ...) or an
  instance profile *exists* when a resource in the directory names the role, through any index
  (``[0]``, ``[*]``, ``join("", x.*.name)``, ``one(x[*].name)``), whatever its count: so
  ``no-permission-policy`` / ``no-instance-profile`` is true only when no such resource exists.
  A permission attached by a child module the directory calls with the role's id counts as
  existing (the module grants it); an EKS managed node group's role needs no profile of its own
  (EKS creates one), so ``no-instance-profile`` is not true there.
* ``verdict`` is what IAM decides: "allowed", "not-allowed", or "unknown" only where the answer
  turns on a value with no default (``needs`` names it). ``true_warnings`` lists every finding id
  that would be correct to report for the role; any other id reported is a false warning.
* ``ec2_role``: the trust policy names the EC2 service (``ec2.amazonaws.com``,
  ``ec2.${dns_suffix}``, or the ``ec2`` service principal data source). ``registry``: the
  directory is a module published on the Terraform Registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Case:
    verdict: str  # "allowed" | "not-allowed" | "unknown"
    ec2_role: bool
    registry: bool
    true_warnings: frozenset[str] = field(default_factory=frozenset)
    needs: str | None = None  # for "unknown": the value with no default it turns on


NOT_EC2 = frozenset({"ec2-not-trusted"})

# directory -> {role address: Case}
EXPECTED: dict[str, dict[str, Case]] = {
    "terraform-aws-modules__terraform-aws-iam__modules_iam-assumable-role": {
        # custom_role_trust_policy defaults to "", which coalesce() skips; role_requires_mfa
        # defaults to true, so assume_role_with_mfa (count 1) is the document and try() takes it.
        # Its one statement: actions ["sts:AssumeRole", "sts:TagSession"], principals AWS =
        # trusted_role_arns (default []) and Service = trusted_role_services (default []),
        # allow_self_assume_role false so no self statement. No principal names EC2: not allowed.
        # Attachments custom/admin/poweruser/readonly and the profile name aws_iam_role.this[0].
        "aws_iam_role.this": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
    },
    "terraform-aws-modules__terraform-aws-iam__modules_iam-role": {
        # source/override_trust_policy_documents default [] (nothing merged); enable_oidc,
        # enable_github_oidc, enable_bitbucket_oidc, enable_saml default false and
        # trust_policy_permissions defaults to null -> {}: every dynamic statement is empty, so
        # the document has no statement and no principal at all; EC2 is not let in (IAM would
        # refuse to store a trust policy with no statement). Permissions: attachment for_each
        # var.policies and the inline aws_iam_role_policy name aws_iam_role.this[0].
        "aws_iam_role.this": Case(
            "not-allowed",
            ec2_role=False,
            registry=True,
            true_warnings=NOT_EC2 | {"not-a-policy", "statement-invalid"},
        ),
    },
    "terraform-aws-modules__terraform-aws-ec2-instance__root": {
        # One statement: Allow sts:AssumeRole to Service ec2.${dns_suffix} = ec2.amazonaws.com.
        # Attachment for_each var.iam_role_policies and the profile name aws_iam_role.this[0].
        "aws_iam_role.this": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-autoscaling__root": {
        # Same shape as ec2-instance: ec2.${dns_suffix}; attachment and profile on this[0].
        "aws_iam_role.this": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-eks__modules_karpenter": {
        # PodIdentity statement: Service pods.eks.amazonaws.com only; the merged source/override
        # documents default to [] in the module (variables.tf not copied; see SOURCES.md), so
        # nothing else is merged. EC2 is not named. aws_iam_role_policy.controller and two
        # attachments name controller[0].
        "aws_iam_role.controller": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        # identifiers = [local.ec2_sp_name] = try(data.aws_service_principal.ec2[0].name, ""),
        # which is "ec2.amazonaws.com" in the aws partition: allowed. Attachments node and
        # node_additional name node[0]; aws_iam_instance_profile.this names node[0] in the
        # true branch of its conditional.
        "aws_iam_role.node": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-eks__modules_eks-managed-node-group": {
        # ec2.${dns_suffix}; attachment for_each on this[0]. No profile in the module: the EKS
        # managed node group makes its own, so no-instance-profile is not true.
        "aws_iam_role.this": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-eks__modules_self-managed-node-group": {
        # Literal ec2.amazonaws.com; attachments this/additional and the profile on this[0].
        "aws_iam_role.this": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-batch__root": {
        # ec2.${dns_suffix}; the instance attachment always holds
        # AmazonEC2ContainerServiceforEC2Role; profile instance names instance[0].
        "aws_iam_role.instance": Case("allowed", ec2_role=True, registry=True),
        # batch.${dns_suffix} and spotfleet.${dns_suffix}: EC2 is not named.
        "aws_iam_role.service": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        "aws_iam_role.spot_fleet": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
    },
    "terraform-aws-modules__terraform-aws-emr__root": {
        # Principals elasticmapreduce + application-autoscaling service principals (from
        # data.aws_service_principal.this[...]); aws:SourceAccount / aws:SourceArn conditions do
        # not matter once the principal fails. Attachment autoscaling names autoscaling[0].
        "aws_iam_role.autoscaling": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        # elasticmapreduce only; attachments service and service_pass_role.
        "aws_iam_role.service": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        # local.ec2_sp_name -> ec2.amazonaws.com: allowed; attachment and profile this on
        # instance_profile[0].
        "aws_iam_role.instance_profile": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-ecs__modules_cluster": {
        # ecs-tasks.amazonaws.com and ecs.amazonaws.com: not EC2; each has attachments.
        "aws_iam_role.task_exec": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        "aws_iam_role.infrastructure": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        # Literal ec2.amazonaws.com, actions AssumeRole + TagSession; node_additional and node
        # attachments, profile this on node[0].
        "aws_iam_role.node": Case("allowed", ec2_role=True, registry=True),
    },
    "terraform-aws-modules__terraform-aws-lambda__root": {
        # trusted_entities_services = distinct(compact(concat(slice([lambda, edgelambda], 0,
        # lambda_at_edge ? 2 : 1), [for s in trusted_entities ...]))): lambda_at_edge defaults
        # to false and trusted_entities to [], so ["lambda.amazonaws.com"]; no extra principal
        # and assume_role_policy_statements defaults to {}. Not EC2. Attachment logs (count on
        # attach_cloudwatch_logs_policy, default true) names lambda[0].
        "aws_iam_role.lambda": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
    },
    "hashicorp__terraform-aws-consul__modules_consul-cluster": {
        # Literal ec2.amazonaws.com; profile instance_profile. Permissions: module
        # "iam_policies" (../consul-iam-policies) gets iam_role_id = aws_iam_role.instance_role.id
        # and attaches the auto-join policy, so the role is not without permissions.
        "aws_iam_role.instance_role": Case("allowed", ec2_role=True, registry=True),
    },
    "hashicorp__terraform-aws-nomad__modules_nomad-cluster": {
        # Literal ec2.amazonaws.com; profile instance_profile; the module attaches no policy
        # (callers add one): no-permission-policy is true.
        "aws_iam_role.instance_role": Case(
            "allowed",
            ec2_role=True,
            registry=True,
            true_warnings=frozenset({"no-permission-policy"}),
        ),
    },
    "hashicorp__terraform-aws-vault__modules_vault-cluster": {
        # Literal ec2.amazonaws.com; profile instance_profile; aws_iam_role_policy.vault_s3
        # (count on enable_s3_backend) names instance_role.id.
        "aws_iam_role.instance_role": Case("allowed", ec2_role=True, registry=True),
    },
    "cloudposse__terraform-aws-ec2-instance__root": {
        # Literal ec2.amazonaws.com via one(data...default[*].json); profile default names
        # one(aws_iam_role.default[*].name). The module attaches no policy: true warning.
        "aws_iam_role.default": Case(
            "allowed",
            ec2_role=True,
            registry=True,
            true_warnings=frozenset({"no-permission-policy"}),
        ),
    },
    "cloudposse__terraform-aws-eks-node-group__root": {
        # Literal ec2.amazonaws.com via join("", ...assume_role.*.json); four attachments on
        # join("", aws_iam_role.default.*.name). EKS managed node group: no profile needed.
        "aws_iam_role.default": Case("allowed", ec2_role=True, registry=True),
    },
    "hashicorp__terraform-provider-aws__examples_eks-getting-started": {
        # Heredoc, Service eks.amazonaws.com: not EC2; two attachments.
        "aws_iam_role.demo-cluster": Case(
            "not-allowed", ec2_role=False, registry=False, true_warnings=NOT_EC2
        ),
        # Heredoc, Service ec2.amazonaws.com; three attachments; used by aws_eks_node_group
        # (managed), so no profile of its own is needed.
        "aws_iam_role.demo-node": Case("allowed", ec2_role=True, registry=False),
    },
    "hashicorp__terraform-provider-aws__examples_ecs-alb": {
        # Heredoc with "Version": "2008-10-17" (true: version-old), Service ecs.amazonaws.com.
        "aws_iam_role.ecs_service": Case(
            "not-allowed",
            ec2_role=False,
            registry=False,
            true_warnings=NOT_EC2 | {"version-old"},
        ),
        # Heredoc, ec2.amazonaws.com; aws_iam_role_policy.instance (role = name) and profile app.
        "aws_iam_role.app_instance": Case("allowed", ec2_role=True, registry=False),
    },
    "terraform-aws-modules__terraform-aws-eks__modules_fargate-profile": {
        # Service eks-fargate-pods.amazonaws.com with an aws:SourceArn condition: EC2 is not
        # named, so the condition never matters. Attachments this/additional on this[0].
        "aws_iam_role.this": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
    },
    "cloudposse__terraform-aws-ec2-bastion-server__root": {
        # Literal ec2.amazonaws.com; aws_iam_role_policy.main (role = default[0].id) and the
        # profile default on default[0].
        "aws_iam_role.default": Case("allowed", ec2_role=True, registry=True),
    },
    "cloudposse__terraform-aws-elastic-beanstalk-environment__root": {
        # Service elasticbeanstalk.amazonaws.com only; attachments service / enhanced_health.
        "aws_iam_role.service": Case(
            "not-allowed", ec2_role=False, registry=True, true_warnings=NOT_EC2
        ),
        # Two statements, Service ec2.amazonaws.com and ssm.amazonaws.com, each AssumeRole: the
        # first lets EC2 in. Six attachments, aws_iam_role_policy.default and profile ec2.
        "aws_iam_role.ec2": Case("allowed", ec2_role=True, registry=True),
    },
    "hashicorp__terraform-provider-aws__examples_lambda": {
        # Service lambda.amazonaws.com: not EC2. Nothing attaches a policy to the role in the
        # example (the function only uses its ARN): no-permission-policy is true.
        "aws_iam_role.iam_for_lambda": Case(
            "not-allowed",
            ec2_role=False,
            registry=False,
            true_warnings=NOT_EC2 | {"no-permission-policy"},
        ),
    },
    "cloudposse__terraform-aws-eks-workers__root": {
        # Self-managed EKS workers: literal ec2.amazonaws.com via join("", ...assume_role[*].json);
        # four attachments and the profile on join("", aws_iam_role.default[*].name).
        "aws_iam_role.default": Case("allowed", ec2_role=True, registry=True),
    },
}
