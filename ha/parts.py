"""Building what scenarios act on from the config: check instances, providers, redirectors."""

from __future__ import annotations

from checks import Check, check_kinds
from ha.config import Config, ScenarioConfig
from ha.redirect import Redirector, Target
from ha.redirect.script import ScriptRedirector
from ha.scenario import ACTIVE_CHECK, SIDES, check_labels
from ha.store import Side
from providers import Provider, provider_types


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


def build_redirectors(scenario: ScenarioConfig) -> list[Redirector]:
    target = Target(scenario.name, scenario.production.address, scenario.replica.address)
    redirectors: list[Redirector] = []
    for entry in scenario.redirect:
        if entry.script is not None:
            redirectors.append(ScriptRedirector(target, entry.script))
    return redirectors
