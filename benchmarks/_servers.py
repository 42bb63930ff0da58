"""A FakeIMDS and a broker in a process of their own, so that the answer-time benchmark's client
threads do not share a GIL with the servers they time. Prints one JSON line (ports, tokens), then
serves until stdin closes.

``--limits`` keeps the broker's request-rate limit (scenario 12); ``--source PATH`` loads the
broker from that ``server.py`` (an earlier version of it) instead of this checkout's."""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import os
import sys
from typing import Any

from imdscreds import IMDSClient, IMDSConfig, RoleCredentialsFetcher
from imdscreds.broker import Broker, TokenFile
from imdscreds.testing import FakeIMDS, block_non_loopback


def _broker_class(source: str | None) -> Any:
    if source is None:
        return Broker
    spec = importlib.util.spec_from_file_location("imdscreds_broker_before", source)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.Broker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--source")
    parser.add_argument("--limits", action="store_true")
    args = parser.parse_args()
    with block_non_loopback(), FakeIMDS() as imds:
        token = TokenFile.create()
        config = IMDSConfig.resolve(endpoint=imds.endpoint, environ={}, config_file=os.devnull)
        client = IMDSClient(config)
        # The request-rate limit (200 a second by default) would turn the run into a count of 429s.
        limits = {} if args.limits else {"rate": 1e9, "burst": 1e9}
        broker = _broker_class(args.source)(
            RoleCredentialsFetcher(client).fetch, token=token.token, **limits
        )
        broker.start()
        try:
            broker.wait_first_fetch(10)
            connection = http.client.HTTPConnection("127.0.0.1", imds.port, timeout=5)
            connection.request(
                "PUT",
                "/latest/api/token",
                headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
            )
            imds_token = connection.getresponse().read().decode()
            connection.close()
            print(
                json.dumps(
                    {
                        "broker_port": broker.port,
                        "broker_token": token.token,
                        "imds_port": imds.port,
                        "imds_token": imds_token,
                    }
                ),
                flush=True,
            )
            sys.stdin.read()
        finally:
            broker.stop()
            token.remove()
            client.close()


if __name__ == "__main__":
    main()
