"""The one exception tree of ha-orchestrator.

::

    HAError
    ├── ConfigError        the configuration is invalid; carries every (path, message)
    │   └── PlaybookError      a playbook is invalid, or names what the daemon does not have
    ├── RequestError       an operator request cannot be carried out
    │   ├── UnknownScenario    no scenario of that name (API: 404)
    │   └── StateConflict      the request makes no sense in the current state (API: 409)
    ├── StoreError         the store could not read or write durably
    ├── StartError         the daemon cannot start: its state or its API address is taken
    ├── ActionError        something acting on the outside world failed
    │   ├── CommandFailed      a user-defined command exited non-zero or timed out
    │   ├── ProviderError      a provider could not read or change a machine
    │   │   └── NotSupported       the provider cannot do this at all
    │   └── RedirectError      a redirector could not repoint or read back
    └── StepFailed         a runbook step failed past its retries (the scenario is blocked)

Backends map their SDK's errors into this tree at exactly one place (``raise ... from exc``);
the daemon loop catches by kind.
"""

from __future__ import annotations


class HAError(Exception):
    """Base of every error ha-orchestrator raises on purpose."""


class ConfigError(HAError):
    """The configuration is invalid. ``errors`` holds every (path, message), in file order."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        self.errors = errors
        super().__init__(
            "\n".join(f"{path}: {message}" if path else message for path, message in errors)
        )


class PlaybookError(ConfigError):
    """A playbook is invalid, or names what the daemon does not have (each with its line)."""


class RequestError(HAError):
    """An operator request cannot be carried out."""


class UnknownScenario(RequestError):
    """No scenario (or group) of that name."""


class StateConflict(RequestError):
    """The request makes no sense in the scenario's current state."""


class StoreError(HAError):
    """The store could not read or write durably."""


class StartError(HAError):
    """The daemon cannot start: another daemon holds its state, or its API address is taken."""


class ActionError(HAError):
    """Acting on the outside world failed."""


class CommandFailed(ActionError):
    """A user-defined command exited non-zero, could not start, or timed out."""


class ProviderError(ActionError):
    """A provider could not read or change the state of a machine."""


class NotSupported(ProviderError):
    """The provider cannot do this at all (not a transient failure)."""


class RedirectError(ActionError):
    """A redirector could not repoint users, or could not read back where they are sent."""


class StepFailed(HAError):
    """A runbook step failed past its retries and deadline."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        self.reason = reason
        super().__init__(f"step {step} failed: {reason}")
