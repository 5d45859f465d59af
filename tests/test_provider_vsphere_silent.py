"""The vSphere provider against a vCenter that accepts connections and answers nothing (hung, or
a half-dead load balancer in front of it): a real listener on loopback that never reads, so the
kernel completes each TCP handshake and the TLS handshake waits for an answer that never comes.
The vCenter simulator cannot be made to hang like that.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from ha.errors import ProviderError
from providers.vsphere import VsphereConfig, VsphereProvider


async def test_a_silent_vcenter_fails_the_call_within_call_timeout_and_close_returns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pyVmomi asks the server's API versions without a deadline: the login's thread waited for
    good, holding the session's lock, so every later call of the provider and the daemon's
    shutdown (closing the provider) waited behind it."""
    monkeypatch.setenv("HA_TEST_VSPHERE_PASSWORD", "not-used")
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        config = {
            "type": "vsphere",
            "host": "127.0.0.1",
            "port": port,
            "user": "ha",
            "password_env": "HA_TEST_VSPHERE_PASSWORD",
            "insecure": True,
            "call_timeout": "500ms",
        }
        lab = VsphereProvider("dc1", VsphereConfig.model_validate(config))
        try:
            started = time.monotonic()
            for _ in range(2):  # the second call is not held behind the first one's thread
                with pytest.raises(ProviderError) as caught:
                    async with asyncio.timeout(10):
                        await lab.power_state("web01")
                assert str(caught.value) == (
                    f"power state of web01: 127.0.0.1:{port} did not answer within 500ms"
                )
            assert time.monotonic() - started < 5
        finally:
            async with asyncio.timeout(5):
                await lab.close()
