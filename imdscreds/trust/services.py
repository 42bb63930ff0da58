"""Service principal names: the ones people use, and whether a name is a misspelling of one."""

from __future__ import annotations

from functools import lru_cache

__all__ = ["KNOWN_SERVICES", "similar_service"]

# Service principals people put in trust policies; a name close to the asked one but on this list
# is another service (ecs is one letter from ec2), not a misspelling.
KNOWN_SERVICES = frozenset(
    f"{name}.amazonaws.com"
    for name in [
        "ec2",
        "ecs",
        "ecs-tasks",
        "eks",
        "eks-fargate-pods",
        "lambda",
        "edgelambda",
        "states",
        "events",
        "scheduler",
        "pipes",
        "apigateway",
        "appsync",
        "codebuild",
        "codedeploy",
        "codepipeline",
        "cloudformation",
        "glue",
        "sagemaker",
        "ssm",
        "batch",
        "elasticmapreduce",
        "firehose",
        "s3",
        "sns",
        "sqs",
        "rds",
        "monitoring",
        "logs",
        "backup",
        "spotfleet",
        "autoscaling",
        "elasticbeanstalk",
        "datasync",
        "dms",
        "redshift",
        "transfer",
        "iot",
        "cognito-idp",
        "spot",
        "ec2fleet",
        "vpc-flow-logs",
        "delivery.logs",
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


@lru_cache(maxsize=1024)
def similar_service(name: str, wanted: str) -> bool:
    """Whether ``name`` looks like a misspelling of the service principal ``wanted``."""
    if name == wanted or name in KNOWN_SERVICES or name == f"{wanted}.cn":
        return False
    short = wanted.split(".", 1)[0]
    if name.strip().lower() == wanted or name.lower() == short:
        return True
    return _distance(name.lower(), wanted) <= max(2, len(wanted) // 5)
