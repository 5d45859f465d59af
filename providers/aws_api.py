"""One boto3 session and EC2 client per AWS provider: every call in a worker thread, every
botocore error mapped into :mod:`ha.errors` here, at one place.

Credentials come from boto3's standard chain (environment, shared config and credentials files,
the configured profile, SSO, the instance role): they are never in our config, and no message
built here carries them. Throttling, 5xx answers and connection errors are retried by botocore
first (``standard`` or ``adaptive`` mode, ``retries.max_attempts`` attempts in all).

How errors map (``_mapped``)::

    AccessDenied, UnauthorizedOperation           NotSupported  "ec2:StopInstances denied for i-1"
    AuthFailure, InvalidClientTokenId, ...        NotSupported  the credentials are refused
    no credentials, unknown profile               NotSupported
    *.Malformed, InvalidParameter*, bad params    NotSupported  the request can never succeed
    an instance name held by two instances        NotSupported  naming both ids
    anything else: IncorrectInstanceState,        ProviderError (RedirectError for redirectors):
      *.NotFound (EC2 is eventually consistent),    transient, the runbook step retries it
      throttling past botocore's retries,
      connection errors, a waiter's failure state,
      a wait past its deadline

A denied call is NotSupported because the runbook retries ProviderError and never NotSupported:
retrying cannot grant a permission, and the step should fail at once, naming the action.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore import xform_name
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
    ProfileNotFound,
    WaiterError,
)

from ha.duration import format_duration
from ha.errors import ActionError, NotSupported, ProviderError
from ha.workers import Workers

if TYPE_CHECKING:
    from providers.aws import AwsProviderConfig

T = TypeVar("T")
Response = dict[str, Any]

INSTANCE_ID = re.compile(r"i-[0-9a-f]{8}(?:[0-9a-f]{9})?")
LIVE_STATES = ["pending", "running", "stopping", "stopped", "shutting-down"]

_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation"}
_REFUSED = {
    "AuthFailure",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "OptInRequired",
}
_INVALID = {
    "InvalidParameter",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "MissingParameter",
    "UnsupportedOperation",
    "InvalidAction",
}
_NO_CREDENTIALS = (NoCredentialsError, PartialCredentialsError, ProfileNotFound)


class Ec2Api:
    """The EC2 client of one provider, shared with the redirectors that name that provider.

    The boto3 session and client are created on first use, in a worker thread (reading the
    shared config files is blocking I/O); boto3 clients are thread-safe, sessions are not,
    hence the lock. Calls run on this provider's own bounded executor, so a slow AWS endpoint
    cannot starve the event loop's default executor (which also resolves host names).
    """

    def __init__(self, provider: str, config: AwsProviderConfig) -> None:
        self.provider = provider
        self.config = config
        self._lock = threading.Lock()
        self._client: Any = None
        self._workers = Workers(f"aws-{provider}", config.threads)

    def _ec2(self) -> Any:
        with self._lock:
            if self._client is None:
                config = self.config
                session = boto3.session.Session(
                    profile_name=config.profile, region_name=config.region
                )
                self._client = session.client(
                    "ec2",
                    endpoint_url=config.endpoint_url,
                    config=BotoConfig(
                        retries={
                            "mode": config.retries.mode,
                            "total_max_attempts": config.retries.max_attempts,
                        },
                        connect_timeout=config.connect_timeout,
                        read_timeout=config.read_timeout,
                    ),
                )
            return self._client

    async def _run(
        self,
        action: str,
        subject: str,
        work: Callable[[], T],
        transient: type[ActionError],
    ) -> T:
        try:
            return await self._workers.run(work)
        except (BotoCoreError, ClientError) as exc:
            raise _mapped(exc, action, subject, transient) from exc

    async def client(self) -> Any:
        """The boto3 EC2 client (created on first use)."""
        return await self._run("CreateClient", self.provider, self._ec2, ProviderError)

    async def call(
        self,
        action: str,
        subject: str,
        *,
        transient: type[ActionError] = ProviderError,
        **params: Any,
    ) -> Response:
        """Call EC2 ``action`` (``"StopInstances"``); ``subject`` names what it acts on."""

        def work() -> Response:
            response: Response = getattr(self._ec2(), xform_name(action))(**params)
            return response

        return await self._run(action, subject, work, transient)

    async def call_unless(
        self, codes: frozenset[str], action: str, subject: str, **params: Any
    ) -> bool:
        """Like :meth:`call`, but an error whose code is in ``codes`` returns False instead of
        raising (the caller reads the state again and decides); True when the call succeeded."""

        def work() -> bool:
            try:
                getattr(self._ec2(), xform_name(action))(**params)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") in codes:
                    return False
                raise
            return True

        return await self._run(action, subject, work, ProviderError)

    async def pages(
        self,
        action: str,
        subject: str,
        *,
        transient: type[ActionError] = ProviderError,
        **params: Any,
    ) -> list[Response]:
        """Every page of a paginated EC2 ``action``."""

        def work() -> list[Response]:
            return list(self._ec2().get_paginator(xform_name(action)).paginate(**params))

        return await self._run(action, subject, work, transient)

    async def wait(
        self,
        waiter: str,
        subject: str,
        goal: str,
        deadline: float,
        *,
        transient: type[ActionError] = ProviderError,
        **params: Any,
    ) -> None:
        """Wait until the boto3 waiter ``waiter`` (``"instance_running"``) is satisfied, at the
        latest by ``deadline`` (``time.monotonic()``).

        Each poll is one attempt of the waiter in a worker thread (its acceptors decide: done,
        not yet, or failed); the pause between polls is on the event loop, so a cancelled wait
        stops at once and leaves no thread polling behind.
        """

        def poll() -> bool:
            polls = self._ec2().get_waiter(waiter)
            try:
                polls.wait(WaiterConfig={"Delay": 0, "MaxAttempts": 1}, **params)
            except WaiterError as exc:
                if "Error" in exc.last_response:  # the poll itself failed: map that error
                    raise ClientError(exc.last_response, polls.config.operation) from exc
                if str(exc.kwargs.get("reason", "")).startswith("Max attempts exceeded"):
                    return False  # not yet
                raise
            return True

        while not await self._run(f"wait until {goal}", subject, poll, transient):
            if time.monotonic() + self.config.poll_interval > deadline:
                raise transient(
                    f"{subject} is not {goal} within wait_timeout "
                    f"({format_duration(self.config.wait_timeout)})"
                )
            await asyncio.sleep(self.config.poll_interval)

    async def instances(
        self, machine: str, *, transient: type[ActionError] = ProviderError
    ) -> list[Response]:
        """Instances named ``machine``: by id, or by Name tag among those not terminated."""
        if INSTANCE_ID.fullmatch(machine):
            params: dict[str, Any] = {"InstanceIds": [machine]}
        else:
            params = {
                "Filters": [
                    {"Name": "tag:Name", "Values": [machine]},
                    {"Name": "instance-state-name", "Values": LIVE_STATES},
                ]
            }
        pages = await self.pages("DescribeInstances", machine, transient=transient, **params)
        return [i for page in pages for r in page["Reservations"] for i in r["Instances"]]

    async def instance(
        self, machine: str, *, transient: type[ActionError] = ProviderError
    ) -> Response:
        """The one instance ``machine`` names (an id ``i-...`` or a Name tag)."""
        found = await self.instances(machine, transient=transient)
        if not found:
            raise transient(
                f"no EC2 instance {machine!r} in {self.config.region} (by id or Name tag, "
                "not terminated)"
            )
        if len(found) > 1:
            ids = ", ".join(sorted(i["InstanceId"] for i in found))
            raise NotSupported(
                f"Name tag {machine!r} is ambiguous: {ids}; name the machine by its instance id"
            )
        return found[0]

    async def close(self) -> None:
        """Stop the worker threads; calls in flight finish on their own. Idempotent."""
        await self._workers.close()


def _mapped(
    exc: BotoCoreError | ClientError, action: str, subject: str, transient: type[ActionError]
) -> ActionError:
    """The one place where botocore's errors become ours (see the module docstring)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", "Unknown"))
        message = " ".join(str(error.get("Message", "")).split())[:200]
        action = exc.operation_name
        if code in _DENIED:
            return NotSupported(f"ec2:{action} denied for {subject} ({code})")
        if code in _REFUSED:
            return NotSupported(f"ec2:{action} for {subject}: AWS refused the credentials ({code})")
        if code in _INVALID or code.endswith(".Malformed"):
            return NotSupported(f"ec2:{action} for {subject}: {code}: {message}")
        return transient(f"ec2:{action} for {subject}: {code}: {message}")
    if isinstance(exc, WaiterError):  # a failure state: terminated while waiting for running
        return transient(f"{subject}: {action}: {exc.kwargs.get('reason', exc)}")
    where = f"ec2:{action} for {subject}"
    if isinstance(exc, _NO_CREDENTIALS):
        return NotSupported(f"{where}: {exc} (boto3's standard credential chain)")
    if isinstance(exc, ParamValidationError):
        return NotSupported(f"{where}: {exc}")
    return transient(f"{where}: {exc}")
