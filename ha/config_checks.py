"""Config checks that no single field can see: duplicates, and references between sections
(providers, DNS servers, groups, tokens and notification targets)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ha.notify_config import notify_errors
from ha.redirect import Target
from ha.redirect.dns_config import address_problems
from ha.redirect.dns_config import problems as dns_problems

if TYPE_CHECKING:
    from ha.config import Config, ScenarioConfig


def cross_check(config: Config) -> list[tuple[str, str]]:
    """Errors no single field can see: duplicates and references between sections."""
    errors: list[tuple[str, str]] = []
    first: dict[str, int] = {}
    for i, scenario in enumerate(config.scenarios):
        where = f"scenarios[{i}]"
        if scenario.name in first:
            errors.append(
                (
                    f"{where}.name",
                    f"duplicate scenario name {scenario.name!r}"
                    f" (first at scenarios[{first[scenario.name]}])",
                )
            )
        first.setdefault(scenario.name, i)
        if scenario.production.address == scenario.replica.address:
            errors.append((f"{where}.replica.address", "must differ from production.address"))
        errors.extend(_check_name_errors(scenario, where))
        for side in ("production", "replica"):
            machine = getattr(scenario, side).machine
            if machine is not None and machine.provider not in config.providers:
                known = ", ".join(sorted(config.providers)) or "none"
                errors.append(
                    (
                        f"{where}.{side}.machine.provider",
                        f"unknown provider {machine.provider!r} (defined: {known})",
                    )
                )
        if scenario.fence != "off" and scenario.production.machine is None:
            errors.append(
                (f"{where}.fence", "fencing needs production.machine, to power production off")
            )
        errors.extend(_redirect_errors(config, scenario, where))
        errors.extend(_database_pair_errors(config, scenario, where))
        if scenario.assured_recovery is not None and scenario.replica.machine is None:
            errors.append(
                (
                    f"{where}.assured_recovery",
                    "needs replica.machine: a test snapshots the replica and reverts it",
                )
            )
        if scenario.replica.standby and scenario.replica.machine is None:
            errors.append(
                (f"{where}.replica.standby", "a standby replica needs replica.machine to power on")
            )
    errors.extend(_group_errors(config))
    errors.extend(_shared_records(config))
    for i, name in enumerate(config.discovery.providers):
        spec = config.providers.get(name)
        if spec is None or spec.type not in ("vsphere", "hyperv"):
            errors.append(
                (f"discovery.providers[{i}]", f"{name!r} is not a vsphere or hyperv provider")
            )
    errors.extend(_api_and_notify_errors(config))
    return errors


def _database_pair_errors(
    config: Config, scenario: ScenarioConfig, where: str
) -> list[tuple[str, str]]:
    """Database roles move between instances of one provider entry (lag, rebuild by name)."""
    machines = [scenario.production.machine, scenario.replica.machine]
    databases = [
        m
        for m in machines
        if m is not None
        and getattr(config.providers.get(m.provider), "type", "") in ("postgresql", "mariadb")
    ]
    if not databases:
        return []
    if len(databases) != 2 or databases[0].provider != databases[1].provider:
        return [
            (
                f"{where}.replica.machine.provider",
                "a database scenario needs production and replica instances of one provider",
            )
        ]
    return []


def _shared_records(config: Config) -> list[tuple[str, str]]:
    """Two scenarios redirecting the same DNS record would undo each other's failovers."""
    errors: list[tuple[str, str]] = []
    seen: dict[tuple[str, str, str], str] = {}
    for i, scenario in enumerate(config.scenarios):
        for j, entry in enumerate(scenario.redirect):
            if entry.dns is None:
                continue
            key = (entry.dns.server, str(entry.dns.zone), str(entry.dns.name))
            if key in seen:
                errors.append(
                    (f"scenarios[{i}].redirect[{j}].dns.name", f"also redirected by {seen[key]}")
                )
            seen.setdefault(key, scenario.name)
    return errors


def _api_and_notify_errors(config: Config) -> list[tuple[str, str]]:
    """Token names are unique ("local" is the token file's); notification targets name known
    scenarios and groups."""
    names = [t.name for t in config.api.tokens]
    errors = [
        (f"api.tokens[{i}].name", f"duplicate or reserved token name {name!r}")
        for i, name in enumerate(names)
        if name == "local" or name in names[:i]
    ]
    scenarios = {s.name for s in config.scenarios}
    return errors + notify_errors(config.notify, scenarios, {g.name for g in config.groups})


def _redirect_errors(config: Config, scenario: ScenarioConfig, where: str) -> list[tuple[str, str]]:
    """Redirections that act through a provider need one of the right type."""
    errors: list[tuple[str, str]] = []
    aws = sorted(name for name, p in config.providers.items() if p.type == "aws")
    target = Target(scenario.name, scenario.production.address, scenario.replica.address)
    for j, entry in enumerate(scenario.redirect):
        if entry.dns is not None:
            for path, message in dns_problems(entry.dns, target, config.dns_servers):
                errors.append((f"{where}.redirect[{j}].dns.{path}", message))
        if entry.route53 is not None:
            for path, message in address_problems(entry.route53.type, target):
                errors.append((f"{where}.redirect[{j}].route53.{path}", message))
        for kind in ("elastic_ip", "secondary_ip", "eni", "route"):
            spec = getattr(entry, kind)
            if spec is not None and spec.provider not in aws:
                errors.append(
                    (
                        f"{where}.redirect[{j}].{kind}.provider",
                        f"{spec.provider!r} is not an aws provider (aws providers: "
                        f"{', '.join(aws) or 'none'})",
                    )
                )
    return errors


def _group_errors(config: Config) -> list[tuple[str, str]]:
    errors: list[tuple[str, str]] = []
    names = {s.name for s in config.scenarios}
    member_of: dict[str, str] = {}
    for i, group in enumerate(config.groups):
        where = f"groups[{i}]"
        if group.name in [g.name for g in config.groups[:i]]:
            errors.append((f"{where}.name", f"duplicate group name {group.name!r}"))
        for j, member in enumerate(group.scenarios):
            if member not in names:
                errors.append((f"{where}.scenarios[{j}]", f"no scenario named {member!r}"))
            elif member in member_of:
                errors.append(
                    (f"{where}.scenarios[{j}]", f"{member!r} is in group {member_of[member]!r} too")
                )
            member_of.setdefault(member, group.name)
        for member, required in group.after.items():
            for name in [member, *required]:
                if name not in group.scenarios:
                    errors.append((f"{where}.after.{member}", f"{name!r} is not a member"))
        if not errors:
            try:
                group.waves()
            except ValueError as exc:
                errors.append((f"{where}.after", str(exc)))
        server = group.defaults.dns_server
        if server is not None and server not in config.dns_servers:
            known = ", ".join(sorted(config.dns_servers)) or "none"
            errors.append(
                (
                    f"{where}.defaults.dns_server",
                    f"unknown DNS server {server!r} (defined: {known})",
                )
            )
    return errors


def _check_name_errors(scenario: ScenarioConfig, where: str) -> list[tuple[str, str]]:
    """A check's name labels its results (status, events, the detector): two checks of one
    scenario with one name would mix theirs."""
    errors = []
    first: dict[str, int] = {}
    for j, check in enumerate(scenario.checks):
        if check.name is None:
            continue
        if check.name in first:
            errors.append(
                (
                    f"{where}.checks[{j}].name",
                    f"duplicate check name {check.name!r} (first at checks[{first[check.name]}])",
                )
            )
        first.setdefault(check.name, j)
    return errors
