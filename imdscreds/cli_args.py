"""The arguments ``cli`` and ``cli_broker`` share: the IMDS settings and the config made of them.

Below both (it imports neither), so the two command modules do not import each other.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a config is made: building the parser needs no botocore
    from imdscreds.config import IMDSConfig

__all__ = ["add_imds_arguments", "config_from_args"]


def add_imds_arguments(parser: argparse.ArgumentParser) -> None:
    """The IMDS settings every command that talks to IMDS takes."""
    parser.add_argument(
        "--endpoint", help="IMDS base URL (default: AWS_EC2_METADATA_SERVICE_ENDPOINT, or IMDS)"
    )
    parser.add_argument("--timeout", help="seconds per attempt (default 1)")
    parser.add_argument("--attempts", help="attempts per request (default 3)")
    parser.add_argument("--role-name", help="skip role discovery and use this role")


def config_from_args(args: argparse.Namespace) -> IMDSConfig:
    """Resolve the IMDS configuration, command-line arguments first."""
    from imdscreds.config import IMDSConfig

    return IMDSConfig.resolve(
        endpoint=args.endpoint,
        timeout=args.timeout,
        attempts=args.attempts,
        instance_profile_name=args.role_name,
    )
