"""API bearer tokens: who presents one, and what they may do.

Two roles: ``viewer`` reads (status, journal, metrics, reports) and ``operator`` also pushes the
buttons (every POST). The daemon keeps only SHA-256 digests: configured tokens are given as
digests (``api.tokens``), and the local token file that the daemon creates on its first start
(mode 0600, for the CLI on the same machine) is read once and hashed. Comparisons are constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ha.errors import HAError

Role = Literal["viewer", "operator"]
LOCAL = "local"  # the name of the token in ``api.token_file``


class TokenError(HAError):
    """The token file cannot be created or read."""


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """The hex SHA-256 of a token: what the configuration holds instead of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def ensure_token(path: Path) -> str:
    """Return the token in ``path``, creating it (mode 0600) if there is none."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    except OSError as exc:
        raise TokenError(f"cannot create the API token file {path}: {exc.strerror}") from exc
    token = new_token()
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def read_token(path: Path) -> str:
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        raise TokenError(
            f"no API token at {path}: the daemon creates it on its first start"
        ) from None
    except OSError as exc:
        raise TokenError(f"cannot read the API token file {path}: {exc.strerror}") from exc
    if not token:
        raise TokenError(f"the API token file {path} is empty")
    return token


@dataclass(frozen=True, slots=True)
class Principal:
    """Who presented a token: the token's name and role."""

    name: str
    role: Role

    def may(self, role: Role) -> bool:
        return self.role == "operator" or role == "viewer"


class Tokens:
    """Known tokens by digest; ``identify`` tells who presented a token, or None."""

    def __init__(self, digests: list[tuple[str, Role, str]]) -> None:
        self._known = [(bytes.fromhex(d), Principal(name, role)) for name, role, d in digests]

    def identify(self, presented: str) -> Principal | None:
        digest = hashlib.sha256(presented.encode()).digest()
        found = None
        for known, principal in self._known:  # every entry compared: no early exit on a match
            if hmac.compare_digest(digest, known):
                found = principal
        return found
