"""``ha vm`` and ``ha discover``: what a provider sees, straight from the provider.

These talk to the provider directly, not through the daemon: they are for looking, and for
machines the orchestrator does not protect. Powering a machine that a scenario protects is
refused unless forced, because only the daemon's runbooks may move those.
"""

from __future__ import annotations

import argparse
from typing import Any

from ha.config import Config
from ha.errors import NotSupported, RequestError, StateConflict
from providers import Provider, provider_types
from providers.vsphere_discover import ListsMachines, discover


def provider_of(config: Config, name: str) -> Provider:
    spec = config.providers.get(name)
    if spec is None:
        known = ", ".join(sorted(config.providers)) or "none"
        raise RequestError(f"no provider named {name!r} (defined: {known})")
    return provider_types()[spec.type](name, spec)


def protected_by(config: Config, provider: str) -> dict[str, str]:
    """Machine name -> the scenario that protects it, for one provider."""
    return {
        server.machine.name: scenario.name
        for scenario in config.scenarios
        for server in (scenario.production, scenario.replica)
        if server.machine is not None and server.machine.provider == provider
    }


async def vm_command(config: Config, args: argparse.Namespace) -> int:
    if args.action != "list" and not args.machine:
        raise RequestError(f"ha vm {args.provider} {args.action}: give the machine")
    owner = protected_by(config, args.provider).get(args.machine or "")
    if args.action in ("on", "off") and owner and not args.force:
        raise StateConflict(
            f"{args.machine} belongs to scenario {owner}: move it with ha failover, switchover "
            "or failback (or --force)"
        )
    provider = provider_of(config, args.provider)
    try:
        if args.action == "list":
            if not isinstance(provider, ListsMachines):
                raise NotSupported(f"provider {provider.name} ({provider.type}) cannot list VMs")
            for m in await provider.list_machines(args.host):
                print(f"{m.name}\t{m.id}\t{m.power}\t{m.host or '-'}\t{m.address or '-'}")
            return 0
        if args.action == "on":
            await provider.power_on(args.machine)
        elif args.action == "off":
            await provider.power_off(args.machine, hard=args.hard)
        print(f"{args.machine}: {await provider.power_state(args.machine)}")
        return 0
    finally:
        await provider.close()


async def discover_command(
    config: Config, name: str, host: str | None, tags: dict[str, str]
) -> dict[str, Any]:
    """Scenario (and group) YAML for the machines a provider has that no scenario protects."""
    provider = provider_of(config, name)
    try:
        if provider.type == "aws":
            from providers.aws import AwsProvider
            from providers.aws_discover import discover as discover_aws

            assert isinstance(provider, AwsProvider)
            protected = protected_by(config, name)
            drafts = await discover_aws(provider, tags)
            return {
                "scenarios": [
                    d for d in drafts if d["production"]["machine"]["name"] not in protected
                ]
            }
        if not isinstance(provider, ListsMachines):
            raise NotSupported(f"provider {provider.name} ({provider.type}) cannot list VMs")
        return await discover(provider, host, set(protected_by(config, name)))
    finally:
        await provider.close()
