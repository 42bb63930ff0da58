"""The instance metadata tree under ``/latest/meta-data/`` that ``FakeIMDS`` serves besides IAM.

Other SDKs and tools read more than credentials: botocore asks ``placement/region`` and
``placement/availability-zone`` to pick a region (``defaults_mode=auto``), agents read
``instance-id`` and ``local-ipv4``, and some walk the listings. The values are plausible and agree
with the instance identity document; a directory lists its entries one per line, subdirectories
with a trailing ``/``, as IMDS does.
"""

from __future__ import annotations

__all__ = [
    "AMI_ID",
    "INSTANCE_TYPE",
    "PRIVATE_IP",
    "Tree",
    "availability_zone",
    "listing",
    "lookup",
    "metadata_tree",
]

AMI_ID = "ami-0abcdef1234567890"
INSTANCE_TYPE = "t3.micro"
PRIVATE_IP = "10.0.0.12"
_MAC = "0e:49:61:0f:c3:11"
_RESERVATION_ID = "r-0fedcba9876543210"

# The short forms of compound directions in zone ids (ap-northeast-1 -> apne1).
_DIRECTIONS = {"northeast": "ne", "northwest": "nw", "southeast": "se", "southwest": "sw"}

Tree = dict[str, "str | Tree"]


def availability_zone(region: str) -> str:
    """The zone the fake instance runs in: the region's first."""
    return f"{region}a"


def _zone_id(region: str) -> str:
    parts = region.split("-")
    if len(parts) != 3:
        return f"{region}-az1"
    area, direction, number = parts
    return f"{area}{_DIRECTIONS.get(direction, direction[:1])}{number}-az1"


def _hostname(region: str) -> str:
    # us-east-1 is the one region whose internal names do not carry the region.
    dashed = "ip-" + PRIVATE_IP.replace(".", "-")
    suffix = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"{dashed}.{suffix}"


def metadata_tree(*, instance_id: str, region: str, with_iam: bool) -> Tree:
    """``/latest/meta-data/`` as nested dicts; ``iam`` is a placeholder the IAM routes answer."""
    hostname = _hostname(region)
    tree: Tree = {
        "ami-id": AMI_ID,
        "ami-launch-index": "0",
        "ami-manifest-path": "(unknown)",
        "hostname": hostname,
        "instance-id": instance_id,
        "instance-life-cycle": "on-demand",
        "instance-type": INSTANCE_TYPE,
        "local-hostname": hostname,
        "local-ipv4": PRIVATE_IP,
        "mac": _MAC,
        "placement": {
            "availability-zone": availability_zone(region),
            "availability-zone-id": _zone_id(region),
            "region": region,
        },
        "profile": "default-hvm",
        "reservation-id": _RESERVATION_ID,
        "security-groups": "default",
    }
    if with_iam:
        tree["iam"] = {"info": "", "security-credentials": {}}
    return dict(sorted(tree.items()))


def listing(directory: Tree) -> str:
    """A directory's entries as IMDS lists them: one per line, subdirectories ending in ``/``."""
    return "\n".join(
        name + "/" if isinstance(value, dict) else name for name, value in directory.items()
    )


def lookup(tree: Tree, relative: str) -> str | Tree | None:
    """The leaf value or directory at ``relative`` (``"placement/region"``), None when absent."""
    node: str | Tree = tree
    for part in (p for p in relative.split("/") if p):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
