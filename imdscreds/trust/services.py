"""Service principal names: the real ones, and the real one a misspelled name most likely meant.

``KNOWN_SERVICES`` lists the service principals that appear in trust policies (a role a service
assumes). A name on the list is a real service even when it is one letter from the one asked
about (``ecs`` and ``ec2``, ``es`` and ``ds``); only a name *not* on the list, and close to one
that is, is taken for a misspelling, and the suggestion is the nearest real service.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["KNOWN_SERVICES", "SUFFIX", "nearest_service"]

SUFFIX = "amazonaws.com"

# Service principals (``NAME.amazonaws.com``) that assume roles, from the IAM and service guides.
KNOWN_SERVICES = frozenset(
    f"{name}.{SUFFIX}"
    for name in [
        "access-analyzer",
        "acm-pca",
        "airflow",
        "airflow-env",
        "amplify",
        "apigateway",
        "app-integrations",
        "appflow",
        "application-autoscaling",
        "application-insights",
        "appmesh",
        "apprunner",
        "appstream",
        "appsync",
        "aps",
        "athena",
        "auditmanager",
        "autoscaling",
        "autoscaling-plans",
        "backup",
        "backup-gateway",
        "batch",
        "bedrock",
        "billingconductor",
        "braket",
        "budgets",
        "build.apprunner",
        "cassandra",
        "chatbot",
        "cleanrooms",
        "cloud9",
        "clouddirectory",
        "cloudformation",
        "cloudfront",
        "cloudhsm",
        "cloudsearch",
        "cloudtrail",
        "codeartifact",
        "codebuild",
        "codecommit",
        "codedeploy",
        "codeguru-profiler",
        "codeguru-reviewer",
        "codepipeline",
        "codestar",
        "codestar-connections",
        "codestar-notifications",
        "cognito-identity",
        "cognito-idp",
        "cognito-sync",
        "comprehend",
        "compute-optimizer",
        "config",
        "connect",
        "controltower",
        "cost-optimization-hub",
        "databrew",
        "dataexchange",
        "datapipeline",
        "datasync",
        "datazone",
        "dax",
        "delivery.logs",
        "deepracer",
        "detective",
        "devicefarm",
        "devops-guru",
        "directconnect",
        "discovery",
        "dlm",
        "dms",
        "docdb-elastic",
        "ds",
        "dynamodb",
        "ec2",
        "ec2fleet",
        "ec2scheduled",
        "ecr",
        "ecs",
        "ecs-tasks",
        "edgelambda",
        "efs",
        "eks",
        "eks-connector",
        "eks-fargate-pods",
        "eks-nodegroup",
        "elasticache",
        "elasticbeanstalk",
        "elasticfilesystem",
        "elasticloadbalancing",
        "elasticmapreduce",
        "elastictranscoder",
        "emr-containers",
        "emr-serverless",
        "es",
        "events",
        "evidently",
        "firehose",
        "fis",
        "fms",
        "forecast",
        "frauddetector",
        "fsx",
        "gamelift",
        "glacier",
        "globalaccelerator",
        "glue",
        "grafana",
        "greengrass",
        "groundstation",
        "guardduty",
        "healthlake",
        "iam",
        "identitystore",
        "imagebuilder",
        "inspector",
        "inspector2",
        "internetmonitor",
        "iot",
        "iotanalytics",
        "iotevents",
        "iotsitewise",
        "iottwinmaker",
        "ivs",
        "kafka",
        "kafkaconnect",
        "kendra",
        "kinesis",
        "kinesisanalytics",
        "kinesisvideo",
        "kms",
        "lakeformation",
        "lambda",
        "lex",
        "lexv2",
        "license-manager",
        "lightsail",
        "logs",
        "lookoutequipment",
        "lookoutmetrics",
        "lookoutvision",
        "m2",
        "macie",
        "managedblockchain",
        "mediaconvert",
        "medialive",
        "mediapackage",
        "mediastore",
        "mediatailor",
        "memorydb",
        "mgn",
        "migrationhub",
        "monitoring",
        "mq",
        "network-firewall",
        "networkmanager",
        "opensearchservice",
        "organizations",
        "osis-pipelines",
        "outposts",
        "personalize",
        "pinpoint",
        "pipes",
        "polly",
        "proton",
        "qldb",
        "quicksight",
        "ram",
        "rds",
        "redshift",
        "redshift-serverless",
        "rekognition",
        "resource-groups",
        "robomaker",
        "rolesanywhere",
        "route53",
        "route53resolver",
        "s3",
        "s3-outposts",
        "sagemaker",
        "scheduler",
        "schemas",
        "secretsmanager",
        "securityhub",
        "securitylake",
        "serverlessrepo",
        "servicecatalog",
        "servicediscovery",
        "ses",
        "shield",
        "signer",
        "sms",
        "sns",
        "sqs",
        "ssm",
        "ssm-incidents",
        "ssm-contacts",
        "sso",
        "states",
        "storagegateway",
        "sts",
        "support",
        "synthetics",
        "textract",
        "timestream",
        "transcribe",
        "transfer",
        "translate",
        "trustedadvisor",
        "vpc-flow-logs",
        "waf",
        "waf-regional",
        "wafv2",
        "workspaces",
        "xray",
        "spot",
        "spotfleet",
    ]
)


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, 1):
        current = [i]
        for j, char_b in enumerate(b, 1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def _split(name: str) -> tuple[str, str]:
    """``("ec2", "amazonaws.com")`` for ``ec2.amazonaws.com``; the suffix is "" for a bare name."""
    for known in (SUFFIX, "amazonaws.com.cn"):
        if name.endswith("." + known):
            return name[: -len(known) - 1], known
    head, _, tail = name.partition(".")
    if tail.startswith("logs."):  # delivery.logs.amazon.com
        extra, _, tail = tail.partition(".")
        head = f"{head}.{extra}"
    return head, tail


@lru_cache(maxsize=1024)
def nearest_service(name: str, wanted: str | None = None) -> str | None:
    """The real service principal ``name`` most likely misspells, or None.

    None when ``name`` is a real service (on ``KNOWN_SERVICES``, or ``wanted``), when it is not
    close to any, or when it has spaces around it (the parser reports those: IAM rejects them).
    ``wanted`` (the principal asked about) wins a tie: ``ec3.amazonaws.com`` is as close to ecs
    and ecr as to ec2, and a reader asking about EC2 meant EC2.
    """
    if name != name.strip() or name == wanted or name in KNOWN_SERVICES:
        return None
    if name.endswith(f".{SUFFIX}.cn") and name[:-3] in KNOWN_SERVICES | {wanted}:
        return None  # the China partition's name of a real service
    known = sorted(KNOWN_SERVICES | ({wanted} if wanted else set()))
    lowered = name.lower()
    head, suffix = _split(lowered)
    if suffix and suffix != SUFFIX and _distance(suffix, SUFFIX) > 3:
        return None  # not an AWS service name at all (a domain of someone else's)
    best: tuple[int, int, str] | None = None
    for candidate in known:
        candidate_head = candidate[: -len(SUFFIX) - 1]
        distance = _distance(head, candidate_head)
        # One edit in a short name (ec2, sqs) already makes another name; two in a longer one.
        if distance > (1 if len(candidate_head) <= 4 else 2):
            continue
        rank = (distance, 0 if candidate == wanted else 1, candidate)
        if best is None or rank < best:
            best = rank
    return None if best is None else best[2]
