"""The API's bearer token: made on the daemon's first start, in a file only its owner reads."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from ha.errors import HAError


class TokenError(HAError):
    """The token file cannot be created or read."""


def ensure_token(path: Path) -> str:
    """Return the token in ``path``, creating it (mode 0600) if there is none."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_token(path)
    except OSError as exc:
        raise TokenError(f"cannot create the API token file {path}: {exc.strerror}") from exc
    token = secrets.token_urlsafe(32)
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


class TokenCheck:
    """Compares presented tokens in constant time; keeps only a digest of the token in memory."""

    def __init__(self, token: str) -> None:
        self._digest = hashlib.sha256(token.encode()).digest()

    def __call__(self, presented: str) -> bool:
        return hmac.compare_digest(hashlib.sha256(presented.encode()).digest(), self._digest)
