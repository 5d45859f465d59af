"""Distributed groups in the config: members, dependency order, shared defaults.

Defaults are merged into each member's raw config before validation (a member's own value wins),
so every member is validated as an ordinary scenario. Waves: members with no dependency left form
one wave; the next wave starts only when the previous one is done.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ha.duration import Duration

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
GROUP_ACTIONS = ("run", "stop", "failover", "switchover", "failback", "recover", "test")
# cancel: the command in progress starts no other member; pause, resume: every member's
# automatic actions off (maintenance) or on again.
GROUP_BUTTONS = (*GROUP_ACTIONS, "cancel", "pause", "resume")
# What a group's rollup can say (ha.groups_status.rollup), also what a playbook may wait_for.
GROUP_STATES = (
    "protected",
    "degraded",
    "switched",
    "stopped",
    "blocked",
    "split",
    *(f"{action} in progress" for action in GROUP_ACTIONS),
)


class GroupDefaults(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    interval: Duration | None = Field(None, gt=0, description="checks' interval")
    timeout: Duration | None = Field(None, gt=0, description="checks' timeout")
    failover: dict[str, Any] = Field(default_factory=dict, description="failover policy keys")
    failback: dict[str, Any] = Field(default_factory=dict, description="failback policy keys")
    hooks: dict[str, Any] = Field(default_factory=dict, description="hooks by moment")
    dns_server: str | None = Field(None, description="server of dns redirections without one")
    assured_recovery: dict[str, Any] | None = Field(
        None, description="Assured Recovery settings (a schedule) for members without their own"
    )

    @field_validator("failover")
    @classmethod
    def _failover_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ha.config import FailoverPolicy

        FailoverPolicy.model_validate(value)
        return value

    @field_validator("failback")
    @classmethod
    def _failback_keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        from ha.config import FailbackPolicy

        FailbackPolicy.model_validate(value)
        return value


class GroupConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    scenarios: list[str] = Field(min_length=1, description="members")
    ordered: bool = Field(False, description="each member depends on the one listed before it")
    after: dict[str, list[str]] = Field(
        default_factory=dict, description="explicit dependencies: member -> members it needs"
    )
    failover: Literal["each", "together"] = Field(
        "each", description="together: when any member dies, every member switches, in waves"
    )
    observe_only: bool = Field(
        False, description="every automatic failover and failback becomes a proposal"
    )
    defaults: GroupDefaults = GroupDefaults()

    def concerns(self, scenario: str | None, data: Mapping[str, Any]) -> bool:
        """Whether a journal entry (by its scenario and data) is this group's: a member's, or
        the group's own (group commands, waves, reports)."""
        return scenario in self.scenarios or data.get("group") == self.name

    def dependencies(self) -> dict[str, set[str]]:
        needs: dict[str, set[str]] = {name: set() for name in self.scenarios}
        if self.ordered:
            for before, name in zip(self.scenarios, self.scenarios[1:], strict=False):
                needs[name].add(before)
        for name, required in self.after.items():
            needs.setdefault(name, set()).update(required)
        return needs

    def waves(self) -> list[list[str]]:
        """Members in dependency waves, each wave in the members' listed order."""
        needs = self.dependencies()
        done: set[str] = set()
        waves: list[list[str]] = []
        while len(done) < len(needs):
            wave = [n for n in self.scenarios if n not in done and needs[n] <= done]
            if not wave:
                raise ValueError(f"dependency cycle: {' -> '.join(find_cycle(needs))}")
            waves.append(wave)
            done.update(wave)
        return waves


def find_cycle(needs: dict[str, set[str]]) -> list[str]:
    """One cycle of the dependency graph, as a path that returns to its start."""
    visiting: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        if name in seen:
            return None
        visiting.append(name)
        for required in sorted(needs.get(name, ())):
            cycle = visit(required)
            if cycle:
                return cycle
        visiting.pop()
        seen.add(name)
        return None

    for start in sorted(needs):
        cycle = visit(start)
        if cycle:
            return cycle
    return []


def apply_group_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Raw config with each group's defaults merged into its members (members' values win)."""
    groups = data.get("groups")
    scenarios = data.get("scenarios")
    if not isinstance(groups, list) or not isinstance(scenarios, list):
        return data
    by_name = {s.get("name"): i for i, s in enumerate(scenarios) if isinstance(s, dict)}
    merged = list(scenarios)
    for group in groups:
        defaults = group.get("defaults") if isinstance(group, dict) else None
        members = group.get("scenarios") if isinstance(group, dict) else None
        if not isinstance(defaults, dict) or not isinstance(members, list):
            continue
        try:
            GroupDefaults.model_validate(defaults)
        except ValidationError:
            continue  # reported once, where it is written (groups[N].defaults), not per member
        for member in members:
            index = by_name.get(member)
            if index is not None:
                merged[index] = _merge(merged[index], defaults)
    return {**data, "scenarios": merged}


def _merge(scenario: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    result = dict(scenario)
    for key in ("failover", "failback", "hooks"):
        if isinstance(defaults.get(key), dict):
            own = result.get(key)
            result[key] = {**defaults[key], **(own if isinstance(own, dict) else {})}
    if defaults.get("assured_recovery") is not None and "assured_recovery" not in result:
        result["assured_recovery"] = defaults["assured_recovery"]
    checks = result.get("checks")
    if isinstance(checks, list):
        timing = {k: defaults[k] for k in ("interval", "timeout") if defaults.get(k) is not None}
        result["checks"] = [{**timing, **c} if isinstance(c, dict) else c for c in checks]
    redirects = result.get("redirect")
    if defaults.get("dns_server") and isinstance(redirects, list):
        result["redirect"] = [
            {**r, "dns": {"server": defaults["dns_server"], **r["dns"]}}
            if isinstance(r, dict) and isinstance(r.get("dns"), dict)
            else r
            for r in redirects
        ]
    return result
