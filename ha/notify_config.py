"""Notification targets in the config: webhooks and e-mail, each for some scenarios or groups.

```yaml
notify:
  rate_limit: {count: 5, window: 10m}     # per target and scenario; then one summary
  targets:
    - name: ops-chat
      webhook: {url: "https://chat.example.test/hooks/ha", secret_env: HA_WEBHOOK_SECRET}
      scenarios: [web01]                  # none given (and no groups): every scenario
      events: [state, action_needed]
    - name: oncall
      email: {host: smtp.example.test, port: 587, starttls: true, user: ha,
              password_env: SMTP_PASSWORD, sender: ha@example.test, to: [oncall@example.test]}
      groups: [sharepoint-farm]
```

Secrets are references (``*_env``, ``*_file``) checked at load and read when sending.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from checks.database import EnvVarName, SecretFilePath
from ha.duration import Duration

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"

Category = Literal["state", "action_needed", "group", "assured_recovery"]
CATEGORIES: tuple[Category, ...] = ("state", "action_needed", "group", "assured_recovery")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _at_most_one(model: BaseModel, *names: str) -> None:
    if sum(getattr(model, name) is not None for name in names) > 1:
        raise ValueError(f"give at most one of {', '.join(names)}")


class WebhookTarget(Model):
    url: str = Field(pattern=r"^https?://", description="gets each notification as a JSON POST")
    secret_env: EnvVarName | None = Field(None, description="variable holding the HMAC secret")
    secret_file: SecretFilePath | None = Field(None, description="file holding the HMAC secret")
    ca_file: SecretFilePath | None = Field(None, description="PEM CA bundle for an https url")
    timeout: Duration = Field(5.0, gt=0, description="deadline of one attempt")
    retries: int = Field(4, ge=0, description="attempts after the first (5xx, 429, no answer)")
    retry_delay: Duration = Field(1.0, gt=0, description="first pause between attempts (doubles)")

    @model_validator(mode="after")
    def _one_secret(self) -> Self:
        if (self.secret_env is None) == (self.secret_file is None):
            raise ValueError("give secret_env or secret_file: the body is signed with it")
        return self


class EmailTarget(Model):
    host: str = Field(min_length=1, description="SMTP server")
    port: int = Field(25, ge=1, le=65535)
    starttls: bool = Field(False, description="upgrade the connection with STARTTLS first")
    ca_file: SecretFilePath | None = Field(None, description="PEM CA bundle for STARTTLS")
    user: str | None = Field(None, description="log in as this user (after STARTTLS)")
    password_env: EnvVarName | None = Field(None, description="variable holding the password")
    password_file: SecretFilePath | None = Field(None, description="file holding the password")
    sender: str = Field(min_length=3, description="the From address")
    to: list[str] = Field(min_length=1, description="recipients")
    timeout: Duration = Field(10.0, gt=0, description="deadline of one attempt")
    retries: int = Field(2, ge=0, description="attempts after the first")
    retry_delay: Duration = Field(2.0, gt=0, description="first pause between attempts (doubles)")

    @model_validator(mode="after")
    def _one_password(self) -> Self:
        _at_most_one(self, "password_env", "password_file")
        return self


class NotifyTarget(Model):
    name: str = Field(pattern=NAME_PATTERN, description="label in logs")
    webhook: WebhookTarget | None = None
    email: EmailTarget | None = None
    scenarios: list[str] = Field(default_factory=list, description="only these scenarios")
    groups: list[str] = Field(default_factory=list, description="only these groups' members")
    events: list[Category] = Field(
        default_factory=lambda: list(CATEGORIES),
        description="state: every transition; action_needed: blocked, split, manual-mode "
        "alerts, budget spent; group: group reports; assured_recovery: test results",
    )

    @model_validator(mode="after")
    def _one_channel(self) -> Self:
        if (self.webhook is None) == (self.email is None):
            raise ValueError("give either webhook or email")
        return self


class RateLimit(Model):
    count: int = Field(5, ge=1, description="notifications per target and scenario in a window")
    window: Duration = Field(600.0, gt=0, description="sliding window; then one summary")


class NotifyConfig(Model):
    targets: list[NotifyTarget] = Field(default_factory=list)
    rate_limit: RateLimit = RateLimit()


def notify_errors(
    notify: NotifyConfig, scenarios: set[str], groups: set[str]
) -> list[tuple[str, str]]:
    """Duplicate target names and unknown scenarios or groups, each with its path."""
    errors: list[tuple[str, str]] = []
    seen: set[str] = set()
    for i, target in enumerate(notify.targets):
        where = f"notify.targets[{i}]"
        if target.name in seen:
            errors.append((f"{where}.name", f"duplicate target name {target.name!r}"))
        seen.add(target.name)
        for j, name in enumerate(target.scenarios):
            if name not in scenarios:
                errors.append((f"{where}.scenarios[{j}]", f"no scenario named {name!r}"))
        for j, name in enumerate(target.groups):
            if name not in groups:
                errors.append((f"{where}.groups[{j}]", f"no group named {name!r}"))
    return errors
