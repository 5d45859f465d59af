"""TSIG keys from files: a bare base64 secret, or a BIND key file as ``tsig-keygen`` writes it::

    key "ha-key" {
            algorithm hmac-sha256;
            secret "base64...";
    };

The secret is read when the config is loaded (to refuse a bad file early) and again each time it
is used (so a rotated key is picked up). It is held as a ``SecretStr`` and never appears in a
message: errors name the file and the key, not the secret. dnspython's own ``dns.tsig.Key`` shows
its secret in its repr, so one is built only at the moment a message is signed (:meth:`signer`).
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import dns.name
import dns.tsig
from pydantic import SecretStr

Algorithm = Literal[
    "hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1", "hmac-md5"
]
ALGORITHMS: dict[str, dns.name.Name] = {
    "hmac-sha256": dns.tsig.HMAC_SHA256,
    "hmac-sha512": dns.tsig.HMAC_SHA512,
    "hmac-sha384": dns.tsig.HMAC_SHA384,
    "hmac-sha224": dns.tsig.HMAC_SHA224,
    "hmac-sha1": dns.tsig.HMAC_SHA1,
    "hmac-md5": dns.tsig.HMAC_MD5,
}
DEFAULT_ALGORITHM: Algorithm = "hmac-sha256"

_KEY_BLOCK = re.compile(r'key\s+"?([^"\s{]+)"?\s*\{(.*?)\}\s*;', re.DOTALL)
_ALGORITHM = re.compile(r"algorithm\s+\"?([\w.-]+)\"?\s*;")
_SECRET = re.compile(r'secret\s+"([^"]*)"\s*;')


class KeyFileError(ValueError):
    """A key file that cannot be read or understood (the message never holds the secret)."""


@dataclass(frozen=True, slots=True)
class TsigKey:
    name: str
    algorithm: str
    secret: SecretStr

    def signer(self) -> dns.tsig.Key:
        """The dnspython key to sign one message; do not keep it (its repr shows the secret)."""
        return dns.tsig.Key(self.name, self.secret.get_secret_value(), ALGORITHMS[self.algorithm])


def load_key(path: Path, name: str | None, algorithm: str | None) -> TsigKey:
    """The key in ``path``; ``name`` and ``algorithm`` pick or check what a BIND key file says."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not a text file"
        raise KeyFileError(f"cannot read TSIG key file {path}: {reason}") from None
    blocks = _KEY_BLOCK.findall(text)
    if blocks:
        return _from_key_file(path, blocks, name, algorithm)
    if name is None:
        raise KeyFileError(
            f"{path} holds a bare secret, not a BIND key file: give the key's name (tsig.name)"
        )
    return TsigKey(name, algorithm or DEFAULT_ALGORITHM, _secret(path, text.strip()))


def _from_key_file(
    path: Path, blocks: list[tuple[str, str]], name: str | None, algorithm: str | None
) -> TsigKey:
    found = {block_name.rstrip("."): body for block_name, body in blocks}
    if name is None:
        if len(found) != 1:
            raise KeyFileError(
                f"{path} holds keys {', '.join(sorted(found))}: say which one (tsig.name)"
            )
        name = next(iter(found))
    body = found.get(name.rstrip("."))
    if body is None:
        raise KeyFileError(f"{path} has no key {name!r} (it has {', '.join(sorted(found))})")
    match = _ALGORITHM.search(body)
    stated = match.group(1).lower() if match else None
    if stated is not None and stated not in ALGORITHMS:
        raise KeyFileError(f"{path}: key {name!r} uses {stated}, which is not supported")
    if algorithm is not None and stated is not None and algorithm != stated:
        raise KeyFileError(f"{path}: key {name!r} is {stated}, but the config says {algorithm}")
    secret = _SECRET.search(body)
    if secret is None:
        raise KeyFileError(f"{path}: key {name!r} has no secret")
    return TsigKey(name, algorithm or stated or DEFAULT_ALGORITHM, _secret(path, secret.group(1)))


def _secret(path: Path, text: str) -> SecretStr:
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise KeyFileError(f"{path}: the TSIG secret is not base64") from None
    return SecretStr(text)
