"""The ``imdscreds`` command; the only module that prints.

Exit codes: 0 success; 1 credentials could not be had (or a check failed); 2 usage or configuration.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from imdscreds import cli_trust
from imdscreds._version import __version__
from imdscreds.cli_args import add_imds_arguments, config_from_args
from imdscreds.errors import ConfigError, IMDSCredsError
from imdscreds.untrusted import printable

# The IMDS client, the engine and the configuration (requests, urllib3, botocore) are imported by
# the commands that use them: `trust explain` is offline and starts without them.
if TYPE_CHECKING:
    from imdscreds.credentials import RoleCredentials
    from imdscreds.doctor import Report
    from imdscreds.testing import RequestRecord

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger("imdscreds.cli")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # Reported by the command's own parser, so the usage shown is the one that was mistyped.
        getattr(args, "usage_parser", parser).error(f"unrecognized arguments: {' '.join(extra)}")
    _setup_logging(args.verbose)
    try:
        code: int = args.run(args)
    except ConfigError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except IMDSCredsError as exc:
        _error(str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `imdscreds ... | head`: the reader left. Silence the flush at exit, as a shell tool does.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="imdscreds",
        description="EC2 instance-role credentials: fetch them, serve them, diagnose them.",
    )
    parser.add_argument("--version", action="version", version=f"imdscreds {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="log to stderr (-vv for debug)"
    )
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    creds = commands.add_parser(
        "credentials",
        help="fetch the instance role's credentials once and print them",
        description="Fetch the instance role's credentials once and print them. On a terminal the "
        "secret key and session token are masked; piped (credential_process, eval) they are not.",
    )
    creds.add_argument(
        "--format",
        choices=("credential-process", "env", "json"),
        default="credential-process",
        help="credential-process: the AWS CLI's credential_process JSON (default); env: shell "
        "export lines; json: everything imdscreds knows",
    )
    creds.add_argument(
        "--reveal",
        action="store_true",
        help="print the secret key and token even on a terminal",
    )
    add_imds_arguments(creds)
    creds.set_defaults(run=_credentials)

    doctor = commands.add_parser(
        "doctor",
        help="diagnose the instance role: say what is wrong and how to fix it",
        description="Check the environment, IMDS, the instance profile and role, STS and IAM, "
        "and say what is wrong and how to fix it. Exit 0 when no check failed (warnings allowed), "
        "1 when a check failed, 2 on a usage error. The IMDS steps end within (attempts + 4) x "
        "timeout in all (7 s by default), whatever IMDS sends; STS and IAM calls come on top, "
        "with a 2 s timeout each.",
    )
    doctor.add_argument(
        "--json", action="store_true", help="print the versioned JSON report instead of text"
    )
    aws_access = doctor.add_mutually_exclusive_group()
    aws_access.add_argument(
        "--offline", action="store_true", help="no AWS API calls (skips the STS and IAM checks)"
    )
    aws_access.add_argument(
        "--iam-profile",
        metavar="NAME",
        help="read the role's policies and trust policy in IAM with this AWS profile's "
        "credentials (an administrator's) instead of the role's own",
    )
    add_imds_arguments(doctor)
    doctor.set_defaults(run=_doctor)

    demo = commands.add_parser(
        "demo",
        help="start a fake IMDS in-process and fetch through it (no EC2 needed)",
        description="Start a fake IMDS in-process and fetch through it; with --scenario, run "
        "`imdscreds doctor` against a fake IMDS that plays that misconfiguration.",
    )
    demo.add_argument(
        "--scenario",
        metavar="NAME",
        help="run the doctor against a fake IMDS playing NAME (`--scenario list` lists them)",
    )
    demo.add_argument("--json", action="store_true", help="with --scenario: the JSON report")
    demo.set_defaults(run=_demo)

    add_fake_imds_command(commands)
    cli_trust.register(commands)
    from imdscreds.cli_broker import add_commands

    add_commands(commands)

    for command in commands.choices.values():
        command.set_defaults(usage_parser=command)
    return parser


def add_fake_imds_command(commands: Any) -> None:
    """``imdscreds fake-imds``: the fake IMDS as a foreground process, printing what clients do."""
    fake = commands.add_parser(
        "fake-imds",
        help="run imdscreds' fake IMDS on loopback, for tests and demos",
        description="Run a fake EC2 instance metadata service on loopback until Ctrl-C,\n"
        "SIGTERM or --duration, for your own SDK, tool or test to talk to: IMDSv2\n"
        "tokens, role discovery, rotating credentials, the common meta-data leaves\n"
        "and listings, and the scenarios below. One line per request goes to stderr\n"
        "(method, path, status, whether a token was sent, never the token), and a\n"
        "count per path when it stops.",
        epilog=_SCENARIO_LIST,
        formatter_class=_FakeIMDSHelpFormatter,
    )
    fake.add_argument(
        "--host",
        choices=("127.0.0.1", "::1"),
        default="127.0.0.1",
        help="loopback address to listen on (default 127.0.0.1)",
    )
    fake.add_argument(
        "--port", type=_port, default=0, help="TCP port (default 0: any free one, printed)"
    )
    fake.add_argument(
        "--scenario",
        default="healthy",
        metavar="NAME",
        help="what the fake IMDS plays (default healthy; `--scenario list` lists them)",
    )
    fake.add_argument(
        "--v1",
        choices=("allowed", "required"),
        default="allowed",
        dest="v1",
        help="allowed: token-less (IMDSv1) GETs work, as on EC2 by default; required: they get "
        "401, as with HttpTokens=required (default allowed)",
    )
    fake.add_argument(
        "--validity",
        type=_seconds,
        default=6 * 3600.0,
        metavar="S",
        help="seconds each credentials set is valid (default 21600, IMDS's 6 h)",
    )
    fake.add_argument(
        "--rotation",
        type=_seconds,
        default=3600.0,
        metavar="S",
        help="seconds between new credentials sets (default 3600)",
    )
    fake.add_argument(
        "--duration",
        type=_seconds,
        metavar="S",
        help="stop after S seconds (default: run until Ctrl-C or SIGTERM)",
    )
    fake.add_argument(
        "--json-log",
        action="store_true",
        help="log each request as one JSON object per line on stderr, for scripts",
    )
    fake.add_argument(
        "--quiet", action="store_true", help="no line per request (the summary still comes)"
    )
    fake.set_defaults(run=_fake_imds)


# Replaced by the scenario table when help is shown, so that other commands do not import the
# fake IMDS just to build their parser.
_SCENARIO_LIST = "<scenarios>"


class _FakeIMDSHelpFormatter(argparse.RawDescriptionHelpFormatter):
    def add_text(self, text: str | None) -> None:
        if text == _SCENARIO_LIST:
            from imdscreds.testing import SCENARIO_DESCRIPTIONS

            text = "\n".join(["scenarios:", *_scenario_table(SCENARIO_DESCRIPTIONS)])
        super().add_text(text)


def _scenario_table(descriptions: dict[str, str]) -> list[str]:
    width = max(len(name) for name in descriptions)
    return [f"  {name:<{width}}  {text}" for name, text in descriptions.items()]


def _port(raw: str) -> int:
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a TCP port: 0..65535 (0 picks a free one)"
        )
    return port


def _seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive number of seconds")
    return value


def mask(secret: str) -> str:
    """Stand-in for a secret in output meant for people: its length, none of its characters."""
    return f"<hidden, {len(secret)} characters>"


def _credentials(args: argparse.Namespace) -> int:
    from imdscreds.credentials import RoleCredentialsFetcher, format_timestamp
    from imdscreds.imds import IMDSClient
    from imdscreds.refresh import RefreshingCredentials

    config = config_from_args(args)
    log.debug(
        "IMDS at %s (%s), %g s per attempt (%s), %d attempts (%s), role %s.",
        config.endpoint,
        config.source_of("endpoint"),
        config.timeout,
        config.source_of("timeout"),
        config.attempts,
        config.source_of("attempts"),
        "discovered" if config.instance_profile_name is None else "configured",
    )
    with IMDSClient(config) as client:
        # Through the engine, for the provider's static stability: credentials that IMDS hands
        # out already expired come with an extended Expiration and one WARNING, as the SDKs do,
        # so a credential_process caller keeps working where it would fail on the expired set.
        fetcher = RoleCredentialsFetcher(client)
        engine = RefreshingCredentials(fetcher.fetch)
        credentials = engine.get()
        expiration = engine.usable_until()
        engine.close()
    log.info(
        "Fetched credentials for the role %s (account %s) from the %s credentials endpoint: "
        "access key %s, valid until %s.",
        credentials.role_name,
        credentials.account_id or "not given",
        fetcher.api,
        credentials.access_key_id,
        format_timestamp(credentials.expiration),
    )
    if expiration is not None and expiration != credentials.expiration:
        credentials = dataclasses.replace(credentials, expiration=expiration)
    hide = sys.stdout.isatty() and not args.reveal
    print(render_credentials(credentials, args.format, hide=hide))
    if hide:
        _note("secret key and session token masked on a terminal; pipe the output or add --reveal")
    return EXIT_OK


def render_credentials(credentials: RoleCredentials, fmt: str, *, hide: bool) -> str:
    """Credentials in one of the ``credentials`` command's formats."""
    from imdscreds.credentials import format_timestamp

    secret = mask(credentials.secret_access_key) if hide else credentials.secret_access_key
    token = mask(credentials.token) if hide else credentials.token
    document = credentials.to_credential_process()
    document.update(SecretAccessKey=secret, SessionToken=token)
    if fmt == "credential-process":
        return json.dumps(document, indent=2)
    if fmt == "env":
        pairs = {
            "AWS_ACCESS_KEY_ID": credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_SESSION_TOKEN": token,
            "AWS_CREDENTIAL_EXPIRATION": document["Expiration"],
        }
        return "\n".join(f"export {name}={shlex.quote(value)}" for name, value in pairs.items())
    document.update(
        RoleName=credentials.role_name,
        AccountId=credentials.account_id,
        LastUpdated=None
        if credentials.last_updated is None
        else format_timestamp(credentials.last_updated),
    )
    return json.dumps(document, indent=2)


def _doctor(args: argparse.Namespace) -> int:
    from imdscreds.doctor import run_doctor

    with _doctor_logging(args.verbose):
        report = run_doctor(
            endpoint=args.endpoint,
            timeout=args.timeout,
            attempts=args.attempts,
            role_name=args.role_name,
            offline=args.offline,
            iam_profile=args.iam_profile,
            progress=_note,
        )
    _print_report(report, as_json=args.json)
    return EXIT_OK if report.ok else EXIT_FAILED


@contextlib.contextmanager
def _doctor_logging(verbosity: int) -> Iterator[None]:
    """The doctor reports what the client would log (the hop-limit fallback): say it once."""
    logger = logging.getLogger("imdscreds")
    level = logger.level
    if not verbosity:
        logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _print_report(report: Report, *, as_json: bool) -> None:
    from imdscreds.doctor import can_encode_marks, render_json, render_text, use_color

    if as_json:
        print(render_json(report))
        return
    color = use_color(sys.stdout, os.environ)
    print(render_text(report, color=color, unicode=can_encode_marks(sys.stdout)))


def _demo_scenario(args: argparse.Namespace) -> int:
    from imdscreds.doctor import run_doctor
    from imdscreds.testing import SCENARIO_DESCRIPTIONS, FakeIMDS

    name = args.scenario
    if name not in SCENARIO_DESCRIPTIONS:
        return _list_scenarios(name)
    with FakeIMDS(scenario=name) as imds:
        if not args.json:
            _say(sys.stdout, f"A fake IMDS plays {name!r} at {imds.endpoint}:")
            _say(sys.stdout, f"  {SCENARIO_DESCRIPTIONS[name]}.")
            _say(sys.stdout, "The AWS checks are skipped (--offline): there is no AWS here.\n")
        with _doctor_logging(args.verbose):
            # A clean environment and no config files, so the demo shows the scenario alone.
            report = run_doctor(
                environ={"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull},
                endpoint=imds.endpoint,
                offline=True,
                progress=_note,
            )
    _print_report(report, as_json=args.json)
    return EXIT_OK if report.ok else EXIT_FAILED


def _list_scenarios(asked: str) -> int:
    """``--scenario list`` (exit 0), or an unknown scenario (exit 2): the scenarios, one a line."""
    from imdscreds.testing import SCENARIO_DESCRIPTIONS

    out = sys.stdout if asked == "list" else sys.stderr
    if asked != "list":
        _error(f"unknown scenario {printable(asked)!r}; the scenarios are:")
    for line in _scenario_table(SCENARIO_DESCRIPTIONS):
        _say(out, line)
    return EXIT_OK if asked == "list" else EXIT_USAGE


def _demo(args: argparse.Namespace) -> int:
    from imdscreds.config import IMDSConfig
    from imdscreds.credentials import RoleCredentialsFetcher
    from imdscreds.imds import IMDSClient
    from imdscreds.testing import FakeIMDS

    if args.scenario is not None:
        return _demo_scenario(args)
    if args.json:
        args.usage_parser.error(
            "--json needs --scenario NAME: only the doctor's report has a JSON form"
        )
    out = sys.stdout
    with FakeIMDS() as imds:
        _say(out, f"Started a fake IMDS at {imds.endpoint} (role {imds.role_name!r}).")
        config = IMDSConfig.resolve(endpoint=imds.endpoint, environ={})
        with IMDSClient(config) as client:
            fetcher = RoleCredentialsFetcher(client)
            credentials = fetcher.fetch()
            _say(out, f"Cold fetch: {imds.count()} requests to IMDS:")
            for _, method, path, status in imds.log:
                _say(out, f"  {method} {path} -> {status}")
            imds.reset_counts()
            fetcher.fetch()
            _say(out, f"Second fetch: {imds.count()} request (token and role name cached).")
        _say(out, "Credentials (secrets masked):")
        _say(out, render_credentials(credentials, "json", hide=True))
    _say(out, "Run `imdscreds credentials` on an EC2 instance for the real thing, and")
    _say(out, "`imdscreds demo --scenario list` to see the doctor diagnose a broken instance role.")
    return EXIT_OK


def _fake_imds(args: argparse.Namespace) -> int:
    from imdscreds.testing import SCENARIO_DESCRIPTIONS, FakeIMDS, FakeIMDSBindError

    if args.scenario not in SCENARIO_DESCRIPTIONS:
        return _list_scenarios(args.scenario)
    request_log = _RequestLog(sys.stderr, as_json=args.json_log, quiet=args.quiet)
    imds = FakeIMDS(
        host=args.host,
        port=args.port,
        scenario=args.scenario,
        validity=args.validity,
        rotation=args.rotation,
        v1_allowed=args.v1 == "allowed",
        on_request=request_log,
    )
    try:
        imds.start()
    except FakeIMDSBindError as exc:
        _error(str(exc))
        return EXIT_FAILED
    try:
        with _stop_on_sigterm(imds):
            _say(sys.stdout, f"fake IMDS ({args.scenario}) listening on {imds.endpoint}")
            _say(sys.stdout, f"export AWS_EC2_METADATA_SERVICE_ENDPOINT={imds.endpoint}")
            sys.stdout.flush()
            imds.wait(args.duration)
    finally:
        imds.stop()
        request_log.summary(imds.requests)
    return EXIT_OK


@contextlib.contextmanager
def _stop_on_sigterm(imds: Any) -> Iterator[None]:
    """SIGTERM (a supervisor, ``kill``) stops the fake as Ctrl-C does, so the summary is printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: imds.stop())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _RequestLog:
    """The fake's requests on stderr as they come, and a count per path at the end."""

    def __init__(self, out: TextIO, *, as_json: bool, quiet: bool) -> None:
        self._out = out
        self._as_json = as_json
        self._quiet = quiet
        self._lock = threading.Lock()

    def __call__(self, record: RequestRecord) -> None:
        if self._quiet:
            return
        if self._as_json:
            from imdscreds.credentials import format_timestamp

            line = json.dumps(
                {
                    "time": format_timestamp(record.time),
                    "method": record.method,
                    "path": record.path,
                    "status": record.status,
                    "action": record.action,
                    "token": record.token_sent,
                }
            )
        else:
            answer = {"drop": "dropped, no answer", "hold": "held, no answer"}.get(
                record.action, str(record.status)
            )
            token = "token" if record.token_sent else "no token"
            line = f"fake-imds: {record.method} {printable(record.path)} -> {answer} ({token})"
        with self._lock:
            print(line, file=self._out, flush=True)

    def summary(self, requests: Any) -> None:
        """``requests`` is ``FakeIMDS.requests``: a count per ``(method, path)``."""
        total = sum(requests.values())
        if self._as_json:
            counts = [
                {"method": method, "path": path, "count": count}
                for (method, path), count in sorted(requests.items(), key=lambda item: item[0][1])
            ]
            print(json.dumps({"summary": counts, "total": total}), file=self._out, flush=True)
            return
        print(
            f"fake-imds: stopped after {total} request{'' if total == 1 else 's'}",
            file=self._out,
        )
        if requests:
            width = len(str(max(requests.values())))
            for (method, path), count in sorted(requests.items(), key=lambda item: item[0][1]):
                print(f"  {count:>{width}}  {method} {printable(path)}", file=self._out)
        self._out.flush()


def _say(out: TextIO, line: str) -> None:
    print(line, file=out)


def _note(line: str) -> None:
    print(f"imdscreds: {line}", file=sys.stderr)


def _error(message: str) -> None:
    print(f"imdscreds: error: {message}", file=sys.stderr)


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time of the record."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr)
        except Exception:  # noqa: BLE001 - logging must never break the command
            self.handleError(record)


def _setup_logging(verbosity: int) -> None:
    # Only imdscreds' own logger: WARNINGs (the hop-limit fallback, serving stale credentials)
    # reach the user by default; -v adds INFO, -vv DEBUG. One handler however often main() runs.
    logger = logging.getLogger("imdscreds")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("imdscreds: %(levelname)s: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(
        logging.DEBUG if verbosity > 1 else logging.INFO if verbosity else logging.WARNING
    )
