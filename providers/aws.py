"""The AWS EC2 provider: instances powered on and off (fenced) through boto3.

A machine is an instance id (``i-0abc...``) or the value of a Name tag that exactly one instance
(not terminated) carries; two instances with that Name are an error naming both ids.

EC2 states map to power states by whether the instance can still serve: ``pending``, ``running``,
``stopping`` and ``shutting-down`` are ON (not fenced yet), ``stopped`` and ``terminated`` OFF.

Every boto3 call runs in a worker thread; errors are mapped in :mod:`providers.aws_api`.
Snapshots and reverts are in :mod:`providers.aws_volumes`.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field

from ha.duration import Duration, format_duration
from ha.errors import NotSupported, ProviderError
from providers.base import PowerState, Provider, ProviderConfig

if TYPE_CHECKING:
    from providers.aws_api import Ec2Api

_POWER = {
    "pending": PowerState.ON,
    "running": PowerState.ON,
    "stopping": PowerState.ON,
    "shutting-down": PowerState.ON,
    "stopped": PowerState.OFF,
    "terminated": PowerState.OFF,
}
_WRONG_STATE = frozenset({"IncorrectInstanceState"})

log = structlog.get_logger("providers.aws")


class AwsRetries(BaseModel):
    """botocore's retries: throttling, 5xx answers and connection errors, with backoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["standard", "adaptive"] = Field(
        "standard", description="adaptive also rate-limits on the client side when throttled"
    )
    max_attempts: int = Field(5, ge=1, le=20, description="attempts per call, the first included")


class AwsProviderConfig(ProviderConfig):
    """Credentials come from boto3's standard chain (environment, shared files, ``profile``,
    instance role), never from this file."""

    type: Literal["aws"]
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$", description="e.g. eu-west-1")
    endpoint_url: str | None = Field(
        None, pattern=r"^https?://\S+$", description="a private (VPC) endpoint for EC2"
    )
    profile: str | None = Field(None, min_length=1, description="a profile of the shared config")
    retries: AwsRetries = AwsRetries()
    connect_timeout: Duration = Field(5.0, gt=0)
    read_timeout: Duration = Field(30.0, gt=0)
    wait_timeout: Duration = Field(
        600.0, gt=0, description="how long a start or stop waits for its end state"
    )
    poll_interval: Duration = Field(5.0, gt=0, description="between polls while waiting")
    status_checks: bool = Field(
        True, description="after a start, also wait until both EC2 status checks pass"
    )
    threads: int = Field(10, ge=1, le=64, description="worker threads for boto3 calls")


class AwsProvider(Provider):
    """EC2 instances of one region (and account), through one boto3 client."""

    type = "aws"
    Config = AwsProviderConfig
    config: AwsProviderConfig

    def __init__(self, name: str, config: AwsProviderConfig) -> None:
        super().__init__(name, config)
        from providers.aws_api import Ec2Api  # boto3 loads only when a provider is built

        self.api: Ec2Api = Ec2Api(name, config)

    async def power_state(self, machine: str) -> PowerState:
        instance = await self.api.instance(machine)
        return _POWER.get(instance["State"]["Name"], PowerState.UNKNOWN)

    async def power_on(self, machine: str) -> None:
        """StartInstances, then wait until running and (``status_checks``) both status checks
        pass. A stopping instance is first waited for; a terminated one cannot start."""
        deadline = time.monotonic() + self.config.wait_timeout
        instance = await self.api.instance(machine)
        iid = instance["InstanceId"]
        state = instance["State"]["Name"]
        while state != "running":
            self._check_deadline(machine, state, "running", deadline)
            if state in ("terminated", "shutting-down"):
                raise NotSupported(f"{_label(machine, iid)} is {state}: it cannot be started")
            if state == "pending":
                await self._wait(iid, "instance_running", "running", deadline)
            elif state == "stopping":
                await self._wait(iid, "instance_stopped", "stopped", deadline)
            elif not await self.api.call_unless(
                _WRONG_STATE, "StartInstances", iid, InstanceIds=[iid]
            ):
                await asyncio.sleep(self.config.poll_interval)  # changed under us: look again
            state = await self._state(iid)
        if self.config.status_checks:
            await self._wait_status_checks(machine, iid, deadline)

    async def power_off(self, machine: str, *, hard: bool) -> None:
        """StopInstances, ``Force=True`` when ``hard`` (fencing: no chance to flush caches), then
        wait until stopped. A stopping instance is forced again when ``hard``."""
        deadline = time.monotonic() + self.config.wait_timeout
        instance = await self.api.instance(machine)
        iid = instance["InstanceId"]
        state = instance["State"]["Name"]
        while state not in ("stopped", "terminated"):
            self._check_deadline(machine, state, "stopped", deadline)
            if state == "shutting-down":
                await self._wait(iid, "instance_terminated", "terminated", deadline)
            elif state == "pending":
                await self._wait(iid, "instance_running", "running", deadline)
            elif state == "running" or hard:
                if await self.api.call_unless(
                    _WRONG_STATE, "StopInstances", iid, InstanceIds=[iid], Force=hard
                ):
                    await self._wait(iid, "instance_stopped", "stopped", deadline)
                else:
                    await asyncio.sleep(self.config.poll_interval)  # changed under us: look again
            else:  # stopping: a graceful stop is under way
                await self._wait(iid, "instance_stopped", "stopped", deadline)
            state = await self._state(iid)

    async def snapshot(self, machine: str, name: str) -> str:
        """CreateSnapshots of the root and data volumes at once (crash-consistent), tagged
        with ``name``; returns the snapshot set's id (``ha-...``) for :meth:`revert`."""
        from providers.aws_volumes import snapshot_volumes

        return await snapshot_volumes(self.api, await self.api.instance(machine), name)

    async def delete_snapshot(self, machine: str, snapshot: str) -> None:
        """Delete every snapshot of the set."""
        from providers.aws_volumes import snapshot_set

        iid = (await self.api.instance(machine))["InstanceId"]
        deadline = time.monotonic() + self.config.wait_timeout
        for item in await snapshot_set(self.api, iid, snapshot, deadline):
            await self.api.call("DeleteSnapshot", item["SnapshotId"], SnapshotId=item["SnapshotId"])

    async def revert(self, machine: str, snapshot: str) -> None:
        """Replace every volume of the snapshot set with a new one made from its snapshot.

        Not CreateReplaceRootVolumeTask: that replaces the root volume only, and moto (our
        stand-in for AWS in tests) does not implement it. Instead: stop the instance, create
        each volume from its snapshot, swap it in at the same device, delete the replaced
        volume, and start the instance again if it was on when this call began. Idempotent:
        an interrupted revert, run again, reuses the volumes it created and finishes the swap
        (leaving the instance stopped if the interrupted run had stopped it).
        """
        instance = await self.api.instance(machine)
        iid = instance["InstanceId"]
        was_on = _POWER.get(instance["State"]["Name"]) == PowerState.ON
        deadline = time.monotonic() + self.config.wait_timeout
        from providers.aws_volumes import revert_volumes, snapshot_set

        snapshots = await snapshot_set(self.api, iid, snapshot, deadline)
        await self.power_off(iid, hard=False)
        await revert_volumes(self.api, await self.api.instance(iid), snapshots, deadline)
        if was_on:
            await self.power_on(iid)

    def describe(self, action: str, machine: str) -> str:
        return f"{action} EC2 instance {machine} via {self.name} (aws {self.config.region})"

    async def close(self) -> None:
        await self.api.close()

    async def _wait_status_checks(self, machine: str, iid: str, deadline: float) -> None:
        """Both status checks pass, or (an endpoint without DescribeInstanceStatus, or a role
        denied it) running is enough: said in a warning, as the failover must go on."""
        try:
            await self._wait(
                iid, "instance_status_ok", "passing its instance status check", deadline
            )
            await self._wait(iid, "system_status_ok", "passing its system status check", deadline)
        except NotSupported as exc:
            log.warning(
                "status checks skipped", provider=self.name, machine=machine, reason=str(exc)
            )

    async def _state(self, iid: str) -> str:
        state: str = (await self.api.instance(iid))["State"]["Name"]
        return state

    async def _wait(self, iid: str, waiter: str, goal: str, deadline: float) -> None:
        await self.api.wait(waiter, iid, goal, deadline, InstanceIds=[iid])

    def _check_deadline(self, machine: str, state: str, goal: str, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise ProviderError(
                f"{machine} is still {state}, not {goal}, after "
                f"{format_duration(self.config.wait_timeout)}"
            )


def _label(machine: str, iid: str) -> str:
    return machine if machine == iid else f"{machine} ({iid})"
