"""Configuration: one YAML file validated completely, into typed models, before anything starts.

Every error is reported at once with its path (``scenarios[1].checks[0].port: ...``). Relative
paths in the file resolve against the file's directory. Secrets are only ever references
(``*_env``, ``*_file``), checked here and read when used.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from checks import CheckConfig, check_kinds
from checks.database import SecretFilePath
from ha.config_checks import cross_check
from ha.config_errors import format_validation_error, load_yaml
from ha.discovery import DiscoveryConfig
from ha.duration import Duration
from ha.errors import ConfigError
from ha.groups_config import GroupConfig, apply_group_defaults
from ha.hooks import HooksConfig
from ha.notify_config import NotifyConfig
from ha.process import Command
from ha.redirect.aws import (
    ElasticIpRedirectConfig,
    EniRedirectConfig,
    RouteRedirectConfig,
    SecondaryIpRedirectConfig,
)
from ha.redirect.dns_config import DnsRedirectConfig, DnsServerConfig
from ha.redirect.route53 import Route53RedirectConfig
from ha.redirect.script import ScriptRedirectConfig
from ha.store.etcd_target import EtcdTarget
from providers import ProviderConfig, provider_types

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


def _tagged_union(models: list[type[BaseModel]], tag: str) -> Any:
    if len(models) == 1:
        return models[0]
    return Annotated[Union[tuple(models)], Field(discriminator=tag)]  # noqa: UP007


if TYPE_CHECKING:
    CheckSpec = CheckConfig
    ProviderSpec = ProviderConfig
else:
    CheckSpec = _tagged_union([cls.Config for cls in check_kinds().values()], "kind")
    ProviderSpec = _tagged_union([cls.Config for cls in provider_types().values()], "type")


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_path)]
"""A path in the file: relative paths resolve against the config file's directory."""


def _state(value: object, info: ValidationInfo) -> Path | EtcdTarget:
    if isinstance(value, EtcdTarget):
        return value
    if isinstance(value, str) and value.startswith("etcd://"):
        return EtcdTarget.parse(value)
    if not isinstance(value, str | Path) or not str(value):
        raise ValueError("must be a SQLite file path or etcd://host:port,host:port")
    return _resolve_path(Path(value), info)


StateLocation = Annotated[
    Path | EtcdTarget,
    PlainValidator(_state),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]
"""A SQLite file (relative to the config file) or an etcd cluster (``etcd://h:p,h:p/prefix``)."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MachineRef(Model):
    provider: str = Field(description="name of an entry under providers")
    name: str = Field(min_length=1, description="the machine's name at that provider")


class ServerConfig(Model):
    address: str = Field(
        min_length=1, pattern=r"^[^\s/]+$", description="IP address or host name users reach"
    )
    machine: MachineRef | None = Field(None, description="the VM or instance behind the server")
    standby: bool = Field(
        False,
        description="kept powered off until failover (virtual standby): not checked before",
    )


class FailoverPolicy(Model):
    mode: Literal["automatic", "manual", "observe"] = Field(
        "automatic",
        description="manual: alert and wait for `ha failover`; observe: journal a proposal instead",
    )
    failures: int = Field(3, ge=1, description="consecutive failed probes before a check is down")
    dead_after: Duration | None = Field(
        None, gt=0, description="is-alive timeout: a check is down once it has not passed this long"
    )
    require: Literal["all", "any"] = Field(
        "all", description="production is dead when all (or any) of its checks are down"
    )
    hold_down: Duration = Field(
        300.0, description="no automatic failover this long after a failover or failback"
    )
    recovery_block: Duration = Field(
        0.0, description="no second automatic failover of this scenario this long after one"
    )
    grace: Duration = Field(
        0.0, description="wait this long after production is declared dead; recovery cancels"
    )

    def dead(self, down: int, checks: int) -> bool:
        """Whether ``down`` of a side's ``checks`` make it dead, as ``require`` says."""
        return down == checks if self.require == "all" else down > 0


class FailbackPolicy(Model):
    mode: Literal["manual", "automatic"] = Field(
        "manual", description="automatic: fail back once production has been healthy stable_for"
    )
    stable_for: Duration = Field(300.0, gt=0, description="production healthy this long first")


def _fence_mode(value: object) -> object:
    if value is True:
        return "required"
    if value is False:
        return "off"
    return value


FenceMode = Annotated[Literal["off", "required", "best_effort"], BeforeValidator(_fence_mode)]


class RunbookPolicy(Model):
    step_timeout: Duration = Field(60.0, gt=0, description="deadline of one attempt of a step")
    retries: int = Field(3, ge=0, description="attempts after the first one")
    retry_delay: Duration = Field(
        1.0, description="first pause between attempts (doubles, up to 30s)"
    )
    healthy_timeout: Duration = Field(
        120.0, gt=0, description="how long the new active server has to pass its checks"
    )


class RedirectConfig(Model):
    script: ScriptRedirectConfig | None = None
    dns: DnsRedirectConfig | None = None
    route53: Route53RedirectConfig | None = None
    elastic_ip: ElasticIpRedirectConfig | None = None
    secondary_ip: SecondaryIpRedirectConfig | None = None
    eni: EniRedirectConfig | None = None
    route: RouteRedirectConfig | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> RedirectConfig:
        given = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(
                "give exactly one redirection type: " + ", ".join(type(self).model_fields)
            )
        return self


class SplitPolicy(Model):
    active_check: CheckSpec | None = Field(
        None,
        description="passes only where the server acts as active (e.g. a database answering as "
        "primary); passing on both sides puts the scenario in split",
    )
    redirect_interval: Duration | None = Field(
        30.0,
        gt=0,
        description="how often to read redirections back; users sent to the standby is a split",
    )


def _cron(value: str | None) -> str | None:
    if value is not None:
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (minute hour day month weekday)")
    return value


class AssuredRecoveryConfig(Model):
    schedule: Annotated[str | None, AfterValidator(_cron)] = Field(
        None, description="cron, e.g. '0 3 * * 0'; none: only `ha test`"
    )
    window: Duration = Field(
        3600.0, gt=0, description="a scheduled test may start this long after its time, else missed"
    )
    checks: list[CheckSpec] = Field(
        default_factory=list, description="more checks of the replica, besides its usual ones"
    )
    start: Command | None = Field(None, description="starts the application on the replica")
    timeout: Duration = Field(600.0, gt=0, description="every AR check must pass within this")
    on_production_failure: Literal["revert", "keep"] = Field(
        "revert", description="a failover during a test: revert the replica first, or keep it up"
    )
    keep_snapshots: int = Field(
        0, ge=0, description="after a pass, keep the pre-test snapshot as known-good, the last N"
    )


class RecoveryTestsConfig(Model):
    max_concurrent: int = Field(1, ge=1, description="Assured Recovery tests running at once")


class ScenarioConfig(Model):
    name: str = Field(pattern=NAME_PATTERN)
    production: ServerConfig
    replica: ServerConfig
    checks: list[CheckSpec] = Field(min_length=1)
    failover: FailoverPolicy = FailoverPolicy()
    failback: FailbackPolicy = FailbackPolicy()
    fence: FenceMode = Field(
        "off",
        description="power production off before activating the replica: required (true), "
        "best_effort (go on when production cannot be reached) or off (false)",
    )
    redirect: list[RedirectConfig] = Field(default_factory=list)
    runbook: RunbookPolicy = RunbookPolicy()
    hooks: HooksConfig = HooksConfig()
    split: SplitPolicy = SplitPolicy()
    assured_recovery: AssuredRecoveryConfig | None = None
    start: Literal["running", "stopped"] = Field(
        "running", description="state on the daemon's first start"
    )


class ApiToken(Model):
    name: str = Field(pattern=NAME_PATTERN, description="journaled with every command it sends")
    role: Literal["viewer", "operator"] = Field(description="viewer reads; operator also acts")
    sha256: str = Field(
        pattern=r"^[0-9a-f]{64}$", description="hex SHA-256 of the token (`ha token` prints it)"
    )


class ApiTls(Model):
    cert_file: SecretFilePath = Field(description="PEM certificate (chain) the API presents")
    key_file: SecretFilePath = Field(description="PEM private key of the certificate")
    ca_file: SecretFilePath | None = Field(
        None, description="what the CLI trusts for the API; default cert_file (self-signed)"
    )


class ApiConfig(Model):
    listen: str = Field("127.0.0.1", description="address the local API listens on")
    port: int = Field(8470, ge=1, le=65535)
    token_file: ConfigPath = Field(
        Path("ha-token"),
        description="bearer token, generated (mode 0600) on first start",
        validate_default=True,
    )
    tls: ApiTls | None = Field(None, description="serve HTTPS with this certificate")
    tokens: list[ApiToken] = Field(
        default_factory=list, description="more tokens; the token_file one is operator 'local'"
    )


class BudgetConfig(Model):
    failovers: int = Field(ge=1, description="automatic failovers allowed in the window")
    window: Duration = Field(gt=0, description="sliding window, e.g. 10m")


class SafetyConfig(Model):
    observe_only: bool = Field(
        False,
        description="every automatic failover and failback becomes a proposal, for every scenario",
    )
    budget: BudgetConfig | None = Field(
        None, description="fleet-wide: once spent, automatic failover turns observe-only"
    )


class LogConfig(Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = Field(
        "auto", description="auto: console on a terminal, JSON otherwise"
    )


class ClusterConfig(Model):
    """Several orchestrators on one etcd cluster (``state: etcd://...``): one leads, all observe."""

    name: str = Field(
        default_factory=socket.gethostname,
        pattern=NAME_PATTERN,
        description="this orchestrator's name among the others (default: the host name)",
    )
    lease_ttl: Duration = Field(
        5.0,
        description="leader lease: a dead leader is replaced this long after its last keep-alive",
    )
    quorum: int | None = Field(
        None, ge=1, description="observers that must see production dead (default: a majority)"
    )
    view_max_age: Duration = Field(
        5.0, gt=0, description="an observer's view of a scenario older than this does not count"
    )

    @field_validator("lease_ttl")
    @classmethod
    def _whole_seconds(cls, value: float) -> float:
        if value < 2 or value != int(value):
            raise ValueError("must be whole seconds, at least 2s (etcd leases count in seconds)")
        return value


class Config(Model):
    state: StateLocation = Field(
        Path("ha-state.db"),
        description="SQLite file of state and journal, or etcd://host:port,host:port",
        validate_default=True,
    )
    cluster: ClusterConfig | None = Field(
        None, description="this orchestrator among several (needs state: etcd://...)"
    )
    api: ApiConfig = Field(default_factory=ApiConfig)
    log: LogConfig = LogConfig()
    safety: SafetyConfig = SafetyConfig()
    notify: NotifyConfig = NotifyConfig()
    recovery_tests: RecoveryTestsConfig = RecoveryTestsConfig()
    discovery: DiscoveryConfig = DiscoveryConfig()
    providers: dict[str, ProviderSpec] = Field(default_factory=dict)
    dns_servers: dict[str, DnsServerConfig] = Field(
        default_factory=dict, description="servers that take RFC 2136 updates, by name"
    )
    scenarios: list[ScenarioConfig] = Field(default_factory=list)
    groups: list[GroupConfig] = Field(default_factory=list)

    def group_of(self, scenario: str) -> GroupConfig | None:
        return next((g for g in self.groups if scenario in g.scenarios), None)

    def group(self, name: str) -> GroupConfig | None:
        return next((g for g in self.groups if g.name == name), None)

    @model_validator(mode="before")
    @classmethod
    def _api_paths_resolve_too(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api" not in data:
            return {**data, "api": {}}
        return data


def parse_config(data: Any, base_dir: Path) -> Config:
    """Validate already-loaded data; raise ConfigError with every error and its path."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([("", "the file must hold a mapping (key: value) at the top")])
    try:
        config = Config.model_validate(apply_group_defaults(data), context={"base_dir": base_dir})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, data)) from None
    errors = cross_check(config)
    if config.cluster is not None and not isinstance(config.state, EtcdTarget):
        errors.append(("cluster", "needs state: etcd://host:port,... (a shared store)"))
    if errors:
        raise ConfigError(errors)
    return config


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file; raise ConfigError naming every problem."""
    path = Path(path)
    data = load_yaml(path)
    return parse_config(data, path.resolve().parent)
