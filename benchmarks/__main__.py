"""``python -m benchmarks [--quick]``: run every scenario against every peer, print the tables,
write ``benchmarks/RESULTS.md`` and ``benchmarks/timeline.png`` (``--quick`` writes
``RESULTS.quick.md`` and ``timeline.quick.png``, which git ignores)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import (
    aio,
    attack,
    broker,
    credential_process,
    report,
    scenarios,
    timeline,
    trust_policies,
    trust_terraform,
)
from benchmarks.peers import IN_PROCESS_PEERS, available
from benchmarks.scenarios import AnyPeer, Settings, Table
from benchmarks.sdk_peer import PeerUnavailable, SdkPeer
from imdscreds.testing import block_non_loopback

HERE = Path(__file__).resolve().parent
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")
# Per-call cost differs by three orders of magnitude; batches are scaled to take similar time.
HOT_SCALE = {"ec2-metadata": 0.01}

SCENARIOS: dict[int, Callable[[list[AnyPeer], Settings], Table]] = {
    1: lambda peers, settings: scenarios.hot_path(
        peers, settings, lambda peer: HOT_SCALE.get(peer.name, 1.0)
    ),
    2: scenarios.cold_start,
    3: scenarios.steady_day,
    4: scenarios.late_day,
    5: scenarios.outage,
    6: scenarios.throttling,
    7: scenarios.no_imds,
    8: trust_policies.trust_policies,
    9: lambda peers, settings: aio.table(settings),
    10: broker.answer_time,
    11: broker.per_rotation,
    12: attack.under_attack,
    13: trust_terraform.trust_terraform,
    14: credential_process.credential_process,
}


def _numbers(text: str) -> list[int]:
    chosen = sorted({int(part) for part in text.split(",") if part.strip()})
    unknown = [n for n in chosen if n not in SCENARIOS]
    if unknown:
        raise argparse.ArgumentTypeError(f"no scenario {unknown}; they are 1 to {len(SCENARIOS)}")
    return chosen


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="coarser and shorter: under a minute")
    parser.add_argument(
        "--only", type=_numbers, default=list(SCENARIOS), help="scenarios to run, e.g. 1,3"
    )
    parser.add_argument(
        "--peers", default="", help="comma-separated peer names (default: every one available)"
    )
    parser.add_argument("--output", type=Path, help="the Markdown file to write")
    parser.add_argument("--picture", type=Path, help="the PNG to write")
    return parser


def _clear_proxies() -> None:
    # botocore routes IMDS traffic through a proxy from the environment; nothing here may leave
    # loopback, so no proxy either (the aws-credentials-imds subprocess inherits this env).
    for name in PROXY_VARIABLES:
        os.environ.pop(name, None)
        os.environ.pop(name.lower(), None)


def _peers(wanted: set[str]) -> tuple[list[AnyPeer], list[tuple[str, str]]]:
    peers: list[AnyPeer] = []
    skipped: list[tuple[str, str]] = []
    for peer in IN_PROCESS_PEERS:
        if wanted and peer.name not in wanted:
            continue
        why = available(peer)
        if why is None:
            peers.append(peer)
        else:
            skipped.append((peer.name, why))
    sdk = SdkPeer()
    if not wanted or sdk.name in wanted:
        try:
            sdk.prepare()  # may pip install: before the network guard goes up
        except PeerUnavailable as exc:
            skipped.append((sdk.name, str(exc)))
        else:
            peers.append(sdk)
    return peers, skipped


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.for_mode(args.quick)
    suffix = ".quick" if args.quick else ""
    output = args.output or HERE / f"RESULTS{suffix}.md"
    picture = args.picture or HERE / f"timeline{suffix}.png"
    began = time.perf_counter()
    _clear_proxies()
    # Library WARNINGs are counted (scenario 5), not printed over the tables.
    logging.getLogger().addHandler(scenarios.WARNINGS)
    wanted = {name.strip() for name in args.peers.split(",") if name.strip()}
    peers, skipped = _peers(wanted)
    if not peers:
        print("No peer can run here:", skipped, file=sys.stderr)
        return 1

    tables: list[Table] = []
    with block_non_loopback() as guard:
        try:
            for number in args.only:
                started = time.perf_counter()
                table = SCENARIOS[number](peers, settings)
                tables.append(table)
                print(report.render_table(table))
                print(f"\n({time.perf_counter() - started:.1f} s)\n", flush=True)
        finally:
            for peer in peers:
                if isinstance(peer, SdkPeer):
                    peer.close()
    if guard.blocked:
        print(f"A peer tried to leave loopback: {guard.blocked}", file=sys.stderr)
        return 1

    why_not = timeline.draw(tables, picture)
    if why_not is not None:
        print(f"Note: {why_not}")
    broker_picture = picture.with_name(picture.name.replace("timeline", "broker"))
    if broker_picture == picture:
        broker_picture = picture.with_name(f"broker-{picture.name}")
    broker_why_not = broker.draw(tables, broker_picture)
    if broker_why_not is not None:
        print(f"Note: {broker_why_not}")
    for table in tables:
        if table.number == 11 and broker_why_not is None:
            link = os.path.relpath(broker_picture, output.parent)
            table.notes.append(
                f"![IMDS requests per rotation, with and without the broker]({link})"
            )
    sdk_versions = {p.name: p.version for p in peers if isinstance(p, SdkPeer)}
    notes = [(p.name, p.version, p.note) for p in peers]
    text = report.document(
        tables,
        settings,
        peer_notes=notes,
        skipped=skipped,
        picture=None if why_not else os.path.relpath(picture, output.parent),
        wall=time.perf_counter() - began,
        extra_versions=sdk_versions,
    )
    output.write_text(text, encoding="utf-8")
    print("## Targets (imdscreds)\n")
    print(report.markdown_table(["target", "measured", "verdict"], report.targets(
        {t.number: t for t in tables}
    )))  # fmt: skip
    for name, why in skipped:
        print(f"\nSkipped {name}: {why}")
    print(f"\nWrote {output}" + ("" if why_not else f" and {picture}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
