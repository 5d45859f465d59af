"""Delivering one notification: a signed webhook POST or an e-mail, retried with backoff.

A webhook gets the JSON body with ``X-HA-Signature: sha256=<hex HMAC-SHA256 of the body>`` made
with the target's shared secret; the receiver recomputes it over the raw body and compares in
constant time. Connection errors, timeouts, 408, 429 and 5xx answers are retried (the pause
doubles each time); any other answer is final. Secrets are read when sending and never logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import ssl
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from typing import Any

from checks.database import read_secret
from ha.errors import HAError
from ha.notify_config import EmailTarget, WebhookTarget

SIGNATURE_HEADER = "X-HA-Signature"
MAX_PAUSE = 60.0


class DeliveryError(HAError):
    """A notification could not be delivered (after its retries)."""


class _Retry(Exception):
    """This attempt failed in a way another attempt may not."""


def signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


async def _with_retries(retries: int, delay: float, attempt: Callable[[], Awaitable[str]]) -> str:
    for number in range(retries + 1):
        try:
            return await attempt()
        except _Retry as exc:
            if number == retries:
                raise DeliveryError(f"{exc} (after {retries + 1} attempts)") from None
            await asyncio.sleep(min(delay * 2**number, MAX_PAUSE))
    raise AssertionError("unreachable")


async def send_webhook(target: WebhookTarget, payload: dict[str, Any]) -> str:
    """POST ``payload``; return what the receiver answered. Raises DeliveryError."""
    import aiohttp  # loaded when a notification is sent, not when a config is validated

    body = json.dumps(payload, sort_keys=True, default=str).encode()
    secret = read_secret(target.secret_env, target.secret_file)
    assert secret is not None  # the config requires one
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "ha-orchestrator",
        SIGNATURE_HEADER: signature(secret.get_secret_value().encode(), body),
    }
    context = ssl.create_default_context(cafile=target.ca_file) if target.ca_file else None

    async def attempt() -> str:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=target.timeout)) as s,
                s.post(target.url, data=body, headers=headers, ssl=context or True) as answer,
            ):
                status = answer.status
        except TimeoutError:
            raise _Retry(f"no answer within {target.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            raise _Retry(str(exc) or type(exc).__name__) from None
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status >= 300:
            raise DeliveryError(f"HTTP {status}")
        return f"HTTP {status}"

    return await _with_retries(target.retries, target.retry_delay, attempt)


async def send_email(target: EmailTarget, subject: str, text: str) -> str:
    """Send one plain-text message to every recipient. Raises DeliveryError."""
    import aiosmtplib

    message = EmailMessage()
    message["From"] = target.sender
    message["To"] = ", ".join(target.to)
    message["Subject"] = subject
    message.set_content(text)
    secret = read_secret(target.password_env, target.password_file)

    async def attempt() -> str:
        try:
            await aiosmtplib.send(
                message,
                hostname=target.host,
                port=target.port,
                start_tls=target.starttls,
                cert_bundle=str(target.ca_file) if target.ca_file else None,
                username=target.user,
                password=secret.get_secret_value() if secret is not None else None,
                timeout=target.timeout,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code < 500:
                raise _Retry(f"SMTP {exc.code} {exc.message}") from None
            raise DeliveryError(f"SMTP {exc.code} {exc.message}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise _Retry(str(exc) or type(exc).__name__) from None
        return f"sent to {len(target.to)} recipients"

    return await _with_retries(target.retries, target.retry_delay, attempt)
