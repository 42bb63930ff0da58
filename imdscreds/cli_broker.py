"""The ``serve`` and ``exec`` commands (the broker's part of the command line; it prints)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any

from imdscreds.cli_args import add_imds_arguments, config_from_args
from imdscreds.errors import ConfigError

__all__ = ["add_commands"]

EXIT_NOT_FOUND = 127


def add_commands(commands: Any) -> None:
    """Add ``serve`` and ``exec`` to the ``imdscreds`` parser's subcommands."""
    serve = commands.add_parser(
        "serve",
        help="serve the instance role to this host's processes (one IMDS fetch per rotation)",
        description="Run a credentials broker on loopback: one refresh engine fetches from IMDS, "
        "and every AWS SDK on the host reads it through AWS_CONTAINER_CREDENTIALS_FULL_URI and "
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE. SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1 or "
        "SIGUSR2 stops it and removes the token file. Under a systemd socket (LISTEN_FDS) it "
        "serves the socket it is given.",
        epilog="Refused, each with a JSON body that says why: a bind other than 127.0.0.1 or ::1 "
        "(at start); no token (401) or a wrong one (403); a Host other than the broker's own "
        "address (403, DNS rebinding); X-Forwarded-For or Forwarded (403); an Origin header "
        "(403: a web page's request); a method other than "
        "GET (405); a request with a body, Content-Length other than 0 or Transfer-Encoding "
        "(413/400); two Host headers or a badly framed head (400); a head over 8 KiB or 64 "
        "fields (431); over 200 requests a second (429). Closed without an answer: a head not "
        "complete 3 s after connecting; the oldest connection still waiting for its head when "
        "4,096 wait; refused requests beyond 200 a second. GET /healthz (JSON) and GET /metrics "
        "(Prometheus) need no token and show no secret.",
    )
    serve.add_argument("--port", type=int, default=0, help="port (default 0: a free one, printed)")
    serve.add_argument(
        "--host",
        choices=("127.0.0.1", "::1"),
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1; no other address is accepted: "
        "the broker hands out the instance role)",
    )
    serve.add_argument(
        "--token-file",
        help="where to write the token (its directory must be 0700, or 0710 with --group); "
        "default: a new private directory",
    )
    serve.add_argument("--group", help="let this group read the token file (mode 0640)")
    serve.add_argument(
        "--print-env",
        action="store_true",
        help="print the two variables clients need as NAME=value lines on stdout (for a shell "
        "or a systemd EnvironmentFile), and the rest on stderr",
    )
    add_imds_arguments(serve)
    serve.set_defaults(run=_serve)

    run = commands.add_parser(
        "exec",
        help="run a command with a private broker for it and its children",
        description="Start a broker, run CMD with the two variables set in its environment only, "
        "forward signals to it, stop the broker when it ends, and exit with its status. "
        "Example: imdscreds exec -- gunicorn app:app -w 32",
    )
    add_imds_arguments(run)
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="[--] CMD ...")
    run.set_defaults(run=_exec)


def _serve(args: argparse.Namespace) -> int:
    from imdscreds.broker.run import STOP_SIGNALS, signals_held

    # Held from here: a stop signal during start-up waits for the handler, and the token file is
    # removed whatever stops the broker.
    with signals_held(STOP_SIGNALS):
        return _serve_held(args)


def _serve_held(args: argparse.Namespace) -> int:
    from imdscreds.broker.run import (
        activation_socket,
        broker_environment,
        running_broker,
        wait_for_stop,
    )

    if not args.verbose:
        logging.getLogger("imdscreds").setLevel(logging.INFO)  # one line per refresh
    config = config_from_args(args)
    listen_socket = activation_socket()
    with running_broker(
        config,
        port=args.port,
        token_file=args.token_file,
        group=args.group,
        host=args.host,
        listen_socket=listen_socket,
    ) as (broker, token):
        listening = f"imdscreds: serving on {broker.url}, token in {token.path}"
        if args.print_env:
            print(listening, file=sys.stderr)
            for name, value in broker_environment(broker, token).items():
                print(f"{name}={value}")
        else:
            print(listening)
        sys.stdout.flush()
        signum = wait_for_stop()
        print(f"imdscreds: signal {signum}: stopping", file=sys.stderr)
    return 0


def _exec(args: argparse.Namespace) -> int:
    from imdscreds.broker.run import (
        FORWARDED_SIGNALS,
        child_environment,
        command_not_found,
        run_child,
        running_broker,
        signals_held,
        wait_for_stop,
    )

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise ConfigError(
            "exec needs a command to run.", hint="imdscreds exec -- gunicorn app:app -w 32"
        )
    why = command_not_found(command)
    if why is not None:
        print(f"imdscreds: error: {why}", file=sys.stderr)
        return EXIT_NOT_FOUND
    config = config_from_args(args)
    # Held from before the broker starts to the child's start: a signal in between either stops
    # exec cleanly (before the child runs) or is forwarded to the child, never kills exec alone.
    with signals_held(FORWARDED_SIGNALS), running_broker(config) as (broker, token):
        # The child starts once the first fetch has ended, so that its first request finds
        # credentials (or the reason there are none) rather than a fetch in flight.
        deadline = time.monotonic() + config.timeout * config.attempts * 3 + 5
        signum = wait_for_stop(
            until=lambda: broker.wait_first_fetch(0) or time.monotonic() > deadline
        )
        if signum is not None:
            print(
                f"imdscreds: signal {signum} before {command[0]} started: stopping", file=sys.stderr
            )
            return 128 + signum
        return run_child(command, child_environment(os.environ, broker, token))
