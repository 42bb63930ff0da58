"""The fixes the doctor prints: what to change in the console, with the AWS CLI, and in Terraform.

Each function fills in what the doctor learnt (instance id, role and profile names) so that the
commands can be pasted as they are; a value it could not learn stays a placeholder in capitals.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from imdscreds.config import IPV4_ENDPOINT, IPV6_ENDPOINT

__all__ = [
    "MINIMAL_TRUST_POLICY",
    "clock_skew",
    "credentials_malformed",
    "credentials_unusable",
    "endpoint_is_configured",
    "hop_limit",
    "imds_disabled",
    "imds_errors",
    "imds_not_answering_as_imds",
    "imds_throttled",
    "imds_unreachable",
    "instance_profile_not_found",
    "invalid_setting",
    "metadata_options",
    "no_attached_policies",
    "no_instance_profile",
    "policies_unreadable",
    "profile_without_role",
    "proxy_env",
    "sts_unreachable",
    "trust_policy",
    "v1_enabled",
]

MINIMAL_TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "ec2.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    },
    indent=2,
)
# How config.py names a setting read from the config file: "profile P in PATH (key)".
_PROFILE_SOURCE = re.compile(r"profile (?P<profile>.+?) in (?P<path>.+) \((?P<key>[a-z0-9_]+)\)")
_METADATA_DIALOG = "EC2 > Instances > the instance > Actions > Instance settings > Modify instance metadata options"
_IAM_ROLE_DIALOG = "EC2 > Instances > the instance > Actions > Security > Modify IAM role"


def _lines(*lines: str) -> str:
    return "\n".join(lines)


def metadata_options(instance_id: str, cli_option: str, terraform: str, console: str) -> str:
    """A fix made in the instance's metadata options (same dialog, command and block each time)."""
    return _lines(
        f"Console: {_METADATA_DIALOG}: {console}.",
        f"AWS CLI: aws ec2 modify-instance-metadata-options --instance-id {instance_id} {cli_option}",
        f"Terraform: in the aws_instance (or aws_launch_template): metadata_options {{ {terraform} }}",
    )


def endpoint_is_configured(source: str) -> bool:
    """Whether the endpoint was set as a URL (not IMDS's own address, by default or by mode)."""
    return source != "default" and not source.startswith("endpoint_mode")


def imds_unreachable(endpoint: str, source: str) -> str:
    """What to look at when nothing answers at ``endpoint`` (``source`` says who chose it)."""
    host = urlsplit(endpoint).hostname or endpoint
    try_it = (
        f"Try it by hand: curl -sv -m 2 -X PUT {endpoint}/latest/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60'"
    )
    if endpoint_is_configured(source):
        return _lines(
            f"The endpoint {endpoint} is configured ({source}): check that it is the one meant, "
            f"and that something serving IMDS listens there; unset it to use {IPV4_ENDPOINT}.",
            try_it,
        )
    lines = [
        "Run the doctor on the EC2 instance itself (off EC2 there is no IMDS).",
        f"On the instance, look for what blocks {host}: "
        + (
            "`sudo ip6tables -S OUTPUT` (a DROP or REJECT for it)"
            if endpoint == IPV6_ENDPOINT
            else "`sudo iptables -S OUTPUT` and `sudo iptables -t nat -S` (a DROP or REDIRECT for it)"
        )
        + ", a container started with `--network none`, or ECS_AWSVPC_BLOCK_IMDS=true in the "
        "ECS agent.",
        try_it,
    ]
    if endpoint == IPV6_ENDPOINT:
        lines.append(
            f"The IPv6 endpoint ({source}) answers only on Nitro instances that have it turned on: "
            + metadata_options(
                "INSTANCE_ID",
                "--http-protocol-ipv6 enabled",
                'http_protocol_ipv6 = "enabled"',
                "IPv6 endpoint: Enable",
            ).replace("\n", "; ")
            + f". Or unset the endpoint mode to use {IPV4_ENDPOINT}."
        )
    return _lines(*lines)


def imds_not_answering_as_imds(endpoint: str) -> str:
    """Something answers at ``endpoint``, but not as IMDS does (statuses IMDS never sends)."""
    return _lines(
        f"Find what answers at {endpoint}: a metadata proxy (kube2iam, kiam, a sidecar), a local "
        "agent, or an iptables REDIRECT (`sudo iptables -t nat -S`); or an "
        "AWS_EC2_METADATA_SERVICE_ENDPOINT / ec2_metadata_service_endpoint that names the wrong "
        "address.",
        f"Try it by hand: curl -sv -m 2 -X PUT {endpoint}/latest/api/token "
        "-H 'X-aws-ec2-metadata-token-ttl-seconds: 60'",
        "Nothing to change in the console or Terraform for IMDS itself.",
    )


def imds_throttled() -> str:
    return _lines(
        "Find the process that calls IMDS in a loop (one credentials provider per process, such "
        "as imdscreds.install(), fetches once per rotation) and run the doctor again in a minute.",
        "Nothing to change in the console or Terraform.",
    )


def imds_errors() -> str:
    return _lines(
        "Run the doctor again in a minute; if it persists, stop and start the instance, which "
        "moves it to other hardware.",
        "Console: Instance state > Stop, then Start. AWS CLI: aws ec2 stop-instances / "
        "start-instances. Nothing to change in Terraform.",
    )


def imds_disabled(instance_id: str) -> str:
    return metadata_options(
        instance_id,
        "--http-endpoint enabled",
        'http_endpoint = "enabled"',
        "Instance metadata service: Enable",
    )


def hop_limit(instance_id: str) -> str:
    return _lines(
        metadata_options(
            instance_id,
            "--http-put-response-hop-limit 2",
            "http_put_response_hop_limit = 2",
            "Metadata response hop limit: 2",
        ),
        "(A container on a bridge network is one hop further from IMDS than the instance; 2 lets "
        "the token's answer reach it. Or run the container with --network host.)",
    )


def v1_enabled(instance_id: str) -> str:
    return _lines(
        metadata_options(
            instance_id,
            "--http-tokens required",
            'http_tokens = "required"',
            "IMDSv2: Required",
        ),
        "First check that nothing on the instance still uses IMDSv1: the instance's CloudWatch "
        "metric MetadataNoToken should stay at 0. For new instances: aws ec2 "
        "modify-instance-metadata-defaults --http-tokens required (per account and region).",
    )


def proxy_env(variables: list[str]) -> str:
    return _lines(
        "Exclude the metadata addresses from the proxy, wherever "
        f"{' and '.join(variables)} is set (the shell profile, /etc/environment, the systemd unit's "
        "Environment=, the container's environment):",
        "  export NO_PROXY=169.254.169.254,fd00:ec2::254,$NO_PROXY  (and no_proxy, for tools that "
        "read only the lower-case name)",
        "Terraform: in the instance's user_data or the ECS/Kubernetes task's environment; there is "
        "no console setting, as this is the process's environment.",
    )


def no_instance_profile(instance_id: str, role_name: str) -> str:
    return _lines(
        f"Console: {_IAM_ROLE_DIALOG}: choose a role (a role created for EC2 in the IAM "
        "console comes with an instance profile of the same name).",
        f"AWS CLI: aws iam create-instance-profile --instance-profile-name {role_name} && "
        f"aws iam add-role-to-instance-profile --instance-profile-name {role_name} "
        f"--role-name {role_name} && aws ec2 associate-iam-instance-profile --instance-id "
        f"{instance_id} --iam-instance-profile Name={role_name}",
        'Terraform: resource "aws_iam_instance_profile" "app" { role = aws_iam_role.app.name }, '
        "and in the aws_instance: iam_instance_profile = aws_iam_instance_profile.app.name",
    )


def instance_profile_not_found(instance_id: str, profile_name: str) -> str:
    return _lines(
        f"Console: {_IAM_ROLE_DIALOG}: choose the role again (this replaces the stale association).",
        "AWS CLI: aws ec2 describe-iam-instance-profile-associations --filters "
        f"Name=instance-id,Values={instance_id} (note the AssociationId), then aws ec2 "
        "replace-iam-instance-profile-association --association-id ASSOCIATION_ID "
        f"--iam-instance-profile Name={profile_name}",
        "Terraform: the aws_instance's iam_instance_profile must name a live "
        "aws_iam_instance_profile; after the profile was replaced, `terraform apply` the instance "
        "too. A profile deleted and created again under the same name is a new profile: the "
        "instance keeps pointing at the old one until it is associated again.",
    )


def profile_without_role(profile_name: str, role_name: str) -> str:
    return _lines(
        f"Console: {_IAM_ROLE_DIALOG}: choose a role (the profile attached now has none).",
        f"AWS CLI: aws iam get-instance-profile --instance-profile-name {profile_name} (Roles is "
        f"empty), then aws iam add-role-to-instance-profile --instance-profile-name {profile_name} "
        f"--role-name {role_name}",
        'Terraform: resource "aws_iam_instance_profile" needs role = aws_iam_role.app.name',
    )


def trust_policy(role_name: str) -> str:
    policy = MINIMAL_TRUST_POLICY.replace("\n", "\n    ")
    return _lines(
        "The minimal trust policy for an instance role:",
        f"    {policy}",
        f"Console: IAM > Roles > {role_name} > Trust relationships > Edit trust policy: paste it.",
        f"AWS CLI: aws iam update-assume-role-policy --role-name {role_name} "
        "--policy-document file://trust.json  (trust.json holding the policy above)",
        "Terraform: the role's assume_role_policy:",
        '    resource "aws_iam_role" "app" {',
        "      assume_role_policy = jsonencode({",
        '        Version   = "2012-10-17"',
        "        Statement = [{",
        '          Effect    = "Allow"',
        '          Action    = "sts:AssumeRole"',
        '          Principal = { Service = "ec2.amazonaws.com" }',
        "        }]",
        "      })",
        "    }",
        "IMDS asks for the role's credentials again only at its next refresh, so the fix shows "
        "after a few minutes, not at once; run `imdscreds doctor` again then.",
    )


def credentials_malformed(endpoint: str) -> str:
    """IMDS answered the credentials path with a document it would never send."""
    return _lines(
        f"IMDS always sends a JSON document with Code, AccessKeyId, SecretAccessKey, Token and "
        f"Expiration: something else answers at {endpoint} (a metadata proxy such as kube2iam or "
        "kiam, a sidecar, or an iptables REDIRECT: `sudo iptables -t nat -S`), or "
        "AWS_EC2_METADATA_SERVICE_ENDPOINT / ec2_metadata_service_endpoint names the wrong address.",
        f"Look at what it sends: TOKEN=$(curl -s -X PUT {endpoint}/latest/api/token -H "
        "'X-aws-ec2-metadata-token-ttl-seconds: 60') && curl -s -H \"X-aws-ec2-metadata-token: "
        f'$TOKEN" {endpoint}/latest/meta-data/iam/security-credentials/  (then that path plus the '
        "role name; the output holds a secret: do not paste it anywhere)",
        "Nothing to change in the console or Terraform for IMDS itself; fix or remove what answers "
        "in its place.",
    )


def invalid_setting(setting: str | None, source: str | None, config_file: str) -> str:
    """Where to correct an invalid IMDS setting: the file, the profile's key, or the variable."""
    where = _PROFILE_SOURCE.fullmatch(source or "")
    if setting == "AWS_CONFIG_FILE":  # the file itself cannot be parsed
        return _lines(
            f"Fix the file {config_file}: an INI file of [default] and [profile NAME] sections, "
            "each line `key = value` (look for a line outside any section, or bytes that are not "
            "text); or point AWS_CONFIG_FILE at a valid file.",
            "`aws configure list` shows whether the AWS CLI can read it. Nothing to change in the "
            "console or Terraform.",
        )
    if where is not None:
        return _lines(
            f"Edit {where['path']}: fix or remove `{where['key']}` in the "
            f"{where['profile']} profile's section (the detail above says what is valid).",
            "Nothing to change in the console or Terraform.",
        )
    name = setting or "the variable named above"
    return _lines(
        f"Fix or unset {name} where it is set (the shell profile, /etc/environment, the systemd "
        "unit's Environment=, the container's environment; the detail above says what is valid).",
        "Nothing to change in the console; in Terraform, the user_data or task definition that "
        "sets it.",
    )


def credentials_unusable(endpoint: str) -> str:
    return _lines(
        "If the clock is right (see clock-skew), IMDS could not renew the role's session: wait "
        "five minutes and run `imdscreds doctor` again.",
        f"If it persists: Console: {_IAM_ROLE_DIALOG}: choose the same role again; AWS CLI: aws ec2 "
        "replace-iam-instance-profile-association (see describe-iam-instance-profile-associations).",
        f"A document IMDS would not send means something else answers at {endpoint} (a metadata "
        "proxy such as kube2iam, or an iptables REDIRECT): check AWS_EC2_METADATA_SERVICE_ENDPOINT "
        "and `sudo iptables -t nat -S`.",
    )


def clock_skew() -> str:
    return _lines(
        "Sync the clock with the Amazon Time Sync Service: in /etc/chrony.conf, "
        "`server 169.254.169.123 prefer iburst minpoll 4 maxpoll 4` (or fd00:ec2::123), then "
        "`sudo systemctl restart chronyd` and `chronyc tracking`.",
        "Nothing to change in the console or Terraform unless the AMI lacks chrony: then install "
        "it in the instance's user_data.",
    )


def sts_unreachable(region: str) -> str:
    service = f"com.amazonaws.{region}.sts"
    return _lines(
        "An instance in a private subnet needs a NAT gateway or an STS interface endpoint, and "
        "its security group must allow HTTPS (443) out.",
        f"Console: VPC > Endpoints > Create endpoint: service {service}, private DNS on.",
        f"AWS CLI: aws ec2 create-vpc-endpoint --vpc-endpoint-type Interface --service-name {service} "
        "--vpc-id VPC_ID --subnet-ids SUBNET_ID --security-group-ids SG_ID --private-dns-enabled",
        f'Terraform: resource "aws_vpc_endpoint" "sts" {{ service_name = "{service}", '
        'vpc_endpoint_type = "Interface", private_dns_enabled = true, ... }',
    )


def no_attached_policies(role_name: str) -> str:
    return _lines(
        f"Console: IAM > Roles > {role_name} > Permissions > Add permissions > Attach policies.",
        f"AWS CLI: aws iam attach-role-policy --role-name {role_name} --policy-arn POLICY_ARN  "
        f"(or aws iam put-role-policy --role-name {role_name} --policy-name NAME "
        "--policy-document file://policy.json)",
        'Terraform: resource "aws_iam_role_policy_attachment" "app" { role = '
        "aws_iam_role.app.name, policy_arn = aws_iam_policy.app.arn } (or an aws_iam_role_policy)",
    )


def policies_unreadable(role_name: str, account: str) -> str:
    arn = f"arn:aws:iam::{account}:role/{role_name}"
    return _lines(
        "An administrator can look: aws iam list-attached-role-policies --role-name "
        f"{role_name} && aws iam list-role-policies --role-name {role_name}",
        "or run `imdscreds doctor --iam-profile ADMIN_PROFILE` to have the doctor read them.",
        "To let the role read its own policies (so the doctor can tell for itself): allow "
        "iam:GetRole, iam:ListAttachedRolePolicies and iam:ListRolePolicies on "
        f"{arn} (console: IAM > Roles > {role_name} > Add permissions > Create inline policy; "
        "Terraform: an aws_iam_role_policy).",
    )
