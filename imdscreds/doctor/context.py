"""What the checks share: the injected dependencies, and facts gathered once, when first needed.

Each fact (the resolved settings, the IMDS probe, the identity document, the role's credentials,
STS's answer, the role's policies ...) is fetched by the first check that asks for it and kept for
the rest, so the checks run in the contract's order while each network step happens at most once.
A step that takes longer than ``slow_after`` seconds tells the progress callback what it waits on.
Once IMDS or an AWS service has failed to answer, later steps against it are not tried again: a
black hole costs one timeout, not one per check.

All IMDS steps share one budget, ``imds_budget(config)`` seconds from the first of them: the
probe and then the library's own fetch always fit in it whole (so the verdict is the library's);
the identity document and iam/info get what is left, and a step that finds nothing left is not
tried, with that reason. Each request ends within its timeout (``transport.send``), so the doctor
ends on time whatever the server sends, however slowly.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Generic, TypeVar

import botocore.exceptions  # type: ignore[import-untyped,unused-ignore]

from imdscreds.clock import Clock
from imdscreds.config import IMDSConfig
from imdscreds.credentials import RoleCredentials, RoleCredentialsFetcher, parse_document
from imdscreds.doctor import aws
from imdscreds.doctor.findings import Finding
from imdscreds.doctor.imds_probe import ProbeResult, probe_imds
from imdscreds.errors import (
    ConfigError,
    IMDSError,
    IMDSNotFoundError,
    IMDSUnreachableError,
)
from imdscreds.imds import IMDSClient

__all__ = ["Context", "Fact", "ImdsRead", "NotAsked", "OutOfTime", "imds_budget"]

T = TypeVar("T")

IDENTITY_PATH = "/latest/dynamic/instance-identity/document"
INFO_PATH = "/latest/meta-data/iam/info"
DEFAULT_REGION = "us-east-1"


@dataclass(frozen=True)
class Fact(Generic[T]):
    """A value, or the error that stopped the doctor from learning it."""

    value: T | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class ImdsRead:
    """A JSON document read from IMDS (None for a 404), with IMDS's clock and ours."""

    document: Mapping[str, Any] | None
    date: datetime | None
    local_time: datetime


class NotAsked(IMDSError):
    """A step not tried: the settings are invalid, or an earlier step against IMDS got no answer."""


class OutOfTime(IMDSError):
    """A step not tried, or cut short, because the doctor's time for IMDS ran out."""


def imds_budget(config: IMDSConfig) -> float:
    """Seconds the doctor spends on IMDS at most: ``(attempts + 4) * timeout``.

    One timeout for the probe (its two requests go out at once), then the library's own fetch
    deadline, ``config.total_timeout`` (``(attempts + 2) * timeout``), which so always fits whole,
    and one more for the identity document and iam/info, which get what is left.
    """
    return config.total_timeout + 2 * config.timeout


class Context:
    """The doctor's inputs, the findings so far, and the facts the checks share."""

    def __init__(
        self,
        *,
        environ: Mapping[str, str],
        config_file: str | os.PathLike[str] | None,
        imds_config: IMDSConfig | None,
        imds_arguments: Mapping[str, Any],
        offline: bool,
        iam_profile: str | None,
        clock: Clock,
        session_factory: aws.SessionFactory,
        progress: Callable[[str], None],
        slow_after: float,
    ) -> None:
        self.environ = environ
        self.config_file = config_file
        self._given_config = imds_config
        self._imds_arguments = dict(imds_arguments)
        self.offline = offline
        self.iam_profile = iam_profile
        self.clock = clock
        self.session_factory = session_factory
        self._progress = progress
        self._slow_after = slow_after
        self._imds_started: float | None = None  # the IMDS budget counts from the first step
        self.findings: dict[str, Finding] = {}
        self._imds_down: str | None = None
        self._aws_down: dict[str, str] = {}
        self._client: IMDSClient | None = None
        self._fetcher: RoleCredentialsFetcher | None = None
        self._aws_clients: dict[tuple[str, bool], Any] = {}

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        for client in self._aws_clients.values():
            client.close()

    # -- earlier findings ------------------------------------------------------------------------

    def failed(self, *check_ids: str) -> Finding | None:
        """The first of ``check_ids`` that failed so far, if any."""
        for check_id in check_ids:
            finding = self.findings.get(check_id)
            if finding is not None and finding.status == "fail":
                return finding
        return None

    # -- progress ---------------------------------------------------------------------------------

    @contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Around one network step: after ``slow_after`` seconds, say what the doctor waits on."""
        timer = threading.Timer(self._slow_after, self._progress, (f"waiting for {what} ...",))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    # -- settings ---------------------------------------------------------------------------------

    @cached_property
    def settings(self) -> Fact[IMDSConfig]:
        """The IMDS settings the SDKs and imdscreds resolve here (a ConfigError is a finding)."""
        if self._given_config is not None:
            return Fact(self._given_config)
        try:
            return Fact(
                IMDSConfig.resolve(
                    **self._imds_arguments, environ=self.environ, config_file=self.config_file
                )
            )
        except ConfigError as exc:
            if exc.source == "argument":
                raise  # the doctor's own command line is wrong: a usage error, not a diagnosis
            return Fact(error=exc)

    @property
    def config_file_path(self) -> str:
        """The AWS config file the SDKs read here (it may not exist)."""
        if self.config_file is not None:
            return os.fspath(self.config_file)
        return self.environ.get("AWS_CONFIG_FILE") or "~/.aws/config"

    @property
    def config(self) -> IMDSConfig | None:
        return self.settings.value

    @cached_property
    def fetch_config(self) -> IMDSConfig | None:
        """The settings the doctor reads IMDS with: the library's own, so that its verdict is theirs.

        Only ``disabled`` is set aside: the doctor looks at IMDS even when the SDKs are told not to
        (``sdk-disabled`` reports that), to show what they would find.
        """
        config = self.config
        if config is None:
            return None
        return dataclasses.replace(config, disabled=False)

    # -- IMDS -------------------------------------------------------------------------------------

    @cached_property
    def imds_deadline(self) -> float:
        """When the doctor's time for IMDS runs out, on the clock's ``monotonic()``."""
        assert self.fetch_config is not None
        if self._imds_started is None:
            self._imds_started = self.clock.monotonic()
        return self._imds_started + imds_budget(self.fetch_config)

    def imds_time_left(self) -> float:
        return self.imds_deadline - self.clock.monotonic()

    def _out_of_time(self, what: str) -> OutOfTime:
        assert self.fetch_config is not None
        config = self.fetch_config
        return OutOfTime(
            f"The doctor's time for IMDS ({imds_budget(config):g} s: (attempts {config.attempts} "
            f"+ 4) x timeout {config.timeout:g} s) ran out before {what}."
        )

    @cached_property
    def probe(self) -> ProbeResult | None:
        config = self.fetch_config
        if config is None:
            return None
        # The first step: it always has its whole timeout, and this only keeps it within budget.
        config = dataclasses.replace(config, timeout=min(config.timeout, self.imds_time_left()))
        with self.step(f"IMDS at {config.endpoint} (token PUT and a token-less GET)"):
            result = probe_imds(config, self.clock)
        if not result.answered:
            self._imds_down = "IMDS did not answer the doctor's first requests"
        return result

    @property
    def imds_down(self) -> str | None:
        """Why IMDS is not asked again, once it stopped answering."""
        return self._imds_down

    def _imds_client(self) -> IMDSClient:
        if self._client is None:
            assert self.fetch_config is not None
            self._client = IMDSClient(self.fetch_config, clock=self.clock)
        return self._client

    @property
    def fetcher(self) -> RoleCredentialsFetcher:
        if self._fetcher is None:
            self._fetcher = RoleCredentialsFetcher(self._imds_client())
        return self._fetcher

    def _imds(self, what: str, action: Callable[[], T], *, needs: float = 0.0) -> Fact[T]:
        """One IMDS step, if IMDS still answers and ``needs`` seconds (or any) are left for it."""
        if self._imds_down is not None:
            return Fact(error=NotAsked(f"Not asked: {self._imds_down}."))
        assert self.fetch_config is not None
        if self.imds_time_left() < max(needs, 1e-3):
            return Fact(error=self._out_of_time(f"{what} could be asked for"))
        with self.step(f"IMDS at {self.fetch_config.endpoint} ({what})"):
            try:
                return Fact(action())
            except IMDSUnreachableError as exc:
                if not needs and self.imds_time_left() <= 0:
                    # Cut short by the doctor's deadline, not by IMDS: say so. (A step that
                    # needs its whole time, the fetch, keeps the library's own error.)
                    return Fact(error=self._out_of_time(f"IMDS answered ({what})"))
                self._imds_down = f"IMDS stopped answering ({what})"
                return Fact(error=exc)
            except IMDSError as exc:
                return Fact(error=exc)

    def _read_json(self, path: str) -> ImdsRead:
        before = self.clock.now()
        try:
            response = self._imds_client().get(path, deadline=self.imds_deadline)
        except IMDSNotFoundError:
            return ImdsRead(None, None, before)
        local = before + (self.clock.now() - before) / 2
        document = parse_document(response.text, f"IMDS's {path}")
        return ImdsRead(document, response.date, local)

    @cached_property
    def identity(self) -> Fact[ImdsRead]:
        return self._imds("the instance identity document", lambda: self._read_json(IDENTITY_PATH))

    def peek(self, name: str) -> Any:
        """A fact if some check already gathered it, else None (this never fetches)."""
        return self.__dict__.get(name)

    def known(self, key: str) -> str | None:
        """A field of the identity document if it was already read (this never fetches it)."""
        fact = self.__dict__.get("identity")
        document = fact.value.document if fact is not None and fact.value is not None else None
        value = document.get(key) if document else None
        return value if isinstance(value, str) and value else None

    @cached_property
    def iam_info(self) -> Fact[ImdsRead]:
        return self._imds("iam/info", lambda: self._read_json(INFO_PATH))

    @cached_property
    def role_credentials(self) -> Fact[RoleCredentials]:
        """The role's credentials, fetched as the library fetches them (``RoleCredentialsFetcher``
        over an ``IMDSClient`` with the same settings): the doctor's verdict on IMDS rests on it."""
        config = self.fetch_config
        if config is None:
            return Fact(error=NotAsked("Not asked: the IMDS settings are invalid."))
        # The fetch runs to its own deadline, never cut short by the doctor's: a fetch cut short
        # could fail where the library's succeeds. The budget leaves room for it by construction.
        return self._imds("the role's credentials", self.fetcher.fetch, needs=config.total_timeout)

    @property
    def role_name(self) -> str | None:
        return None if self._fetcher is None else self._fetcher.role_name

    @property
    def region(self) -> str:
        """Where to send STS calls: the SDKs' region setting, else the instance's own region."""
        for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
            if self.environ.get(name):
                return self.environ[name]
        document = self.identity.value.document if self.identity.value is not None else None
        region = document.get("region") if document else None
        return region if isinstance(region, str) and region else DEFAULT_REGION

    # -- AWS --------------------------------------------------------------------------------------

    def aws_call(
        self, service: str, operation: str, *, with_profile: bool, **params: Any
    ) -> aws.AwsResult:
        """One STS or IAM call with the role's credentials, or with ``--iam-profile``'s."""
        if service in self._aws_down:
            return aws.AwsResult(operation, code=aws.UNREACHABLE, message=self._aws_down[service])
        with self.step(f"{service.upper()} ({operation})"):
            try:
                client = self._aws_client(service, with_profile=with_profile)
            except (botocore.exceptions.BotoCoreError, ValueError) as exc:
                # A bad AWS_ENDPOINT_URL_* or profile setting: the call cannot even be made.
                return aws.AwsResult(operation, code=type(exc).__name__, message=str(exc))
            result = aws.call(client, operation, self.clock.now, **params)
        if result.unreachable:
            self._aws_down[service] = (
                f"not tried: {service.upper()} did not answer ({result.message})"
            )
        return result

    def _aws_client(self, service: str, *, with_profile: bool) -> Any:
        # One client per service and identity: building a botocore session and client costs far
        # more than the call itself, and IAM is asked up to three times.
        key = (service, with_profile)
        client = self._aws_clients.get(key)
        if client is None:
            client = self._aws_clients[key] = aws.new_client(
                self.session_factory,
                service,
                region=self.region,
                credentials=None if with_profile else self.role_credentials.value,
                profile=self.iam_profile if with_profile else None,
            )
        return client

    @property
    def can_call_aws(self) -> bool:
        return not self.offline and self.role_credentials.value is not None

    @cached_property
    def caller_identity(self) -> aws.AwsResult | None:
        if not self.can_call_aws:
            return None
        return self.aws_call("sts", "get_caller_identity", with_profile=False)

    @property
    def iam_reader(self) -> str | None:
        """Whose credentials read the role in IAM, in words; None when there are none to use."""
        if self.offline or self.role_name is None:
            return None
        if self.iam_profile is not None:
            return f"profile {self.iam_profile}'s credentials"
        return "the role's own credentials" if self.role_credentials.value is not None else None

    def _iam(self, operation: str) -> aws.AwsResult | None:
        if self.iam_reader is None:
            return None
        return self.aws_call(
            "iam", operation, with_profile=self.iam_profile is not None, RoleName=self.role_name
        )

    @cached_property
    def attached_policies(self) -> aws.AwsResult | None:
        return self._iam("list_attached_role_policies")

    @cached_property
    def inline_policies(self) -> aws.AwsResult | None:
        return self._iam("list_role_policies")

    @cached_property
    def role_document(self) -> aws.AwsResult | None:
        return self._iam("get_role")
