"""Building what scenarios act on from the config: check instances, providers, redirectors."""

from __future__ import annotations

from collections.abc import Mapping

from checks import Check, check_kinds
from ha.config import Config, ScenarioConfig
from ha.redirect import Redirector, Target
from ha.redirect.aws import (
    ElasticIpRedirector,
    EniRedirector,
    RouteRedirector,
    SecondaryIpRedirector,
)
from ha.redirect.dns import DnsRedirector
from ha.redirect.dns_config import DnsServerConfig
from ha.redirect.route53 import Route53Redirector
from ha.redirect.script import ScriptRedirector
from ha.scenario import ACTIVE_CHECK, SIDES, check_labels
from ha.store import Side
from providers import Provider, provider_types
from providers.aws import AwsProvider


def build_checks(scenario: ScenarioConfig) -> list[tuple[Side, str, Check]]:
    """One check instance per check and side it applies to, aimed at that side's address."""
    kinds = check_kinds()
    built: list[tuple[Side, str, Check]] = []
    for label, spec in zip(check_labels(scenario.checks), scenario.checks, strict=True):
        for side in SIDES:
            if spec.side in ("both", side):
                address = getattr(scenario, side).address
                built.append((side, label, kinds[spec.kind](spec, address)))
    active = scenario.split.active_check
    if active is not None:
        for side in SIDES:
            built.append(
                (side, ACTIVE_CHECK, kinds[active.kind](active, getattr(scenario, side).address))
            )
    return built


def build_providers(config: Config) -> dict[str, Provider]:
    types = provider_types()
    return {name: types[spec.type](name, spec) for name, spec in config.providers.items()}


def build_redirectors(
    scenario: ScenarioConfig,
    providers: Mapping[str, Provider],
    dns_servers: Mapping[str, DnsServerConfig],
) -> list[Redirector]:
    target = Target(scenario.name, scenario.production.address, scenario.replica.address)
    redirectors: list[Redirector] = []
    for entry in scenario.redirect:
        if entry.script is not None:
            redirectors.append(ScriptRedirector(target, entry.script))
        elif entry.dns is not None:
            redirectors.append(DnsRedirector(target, entry.dns, dns_servers))
        elif entry.route53 is not None:
            redirectors.append(Route53Redirector(target, entry.route53))
        elif entry.elastic_ip is not None:
            aws = _aws(providers, entry.elastic_ip.provider)
            redirectors.append(ElasticIpRedirector(target, entry.elastic_ip, aws))
        elif entry.secondary_ip is not None:
            aws = _aws(providers, entry.secondary_ip.provider)
            redirectors.append(SecondaryIpRedirector(target, entry.secondary_ip, aws))
        elif entry.eni is not None:
            redirectors.append(
                EniRedirector(target, entry.eni, _aws(providers, entry.eni.provider))
            )
        elif entry.route is not None:
            aws = _aws(providers, entry.route.provider)
            redirectors.append(RouteRedirector(target, entry.route, aws))
    return redirectors


def _aws(providers: Mapping[str, Provider], name: str) -> AwsProvider:
    provider = providers[name]
    if not isinstance(provider, AwsProvider):  # the config's cross-check refuses this first
        raise TypeError(f"provider {name} is not an aws provider")
    return provider
