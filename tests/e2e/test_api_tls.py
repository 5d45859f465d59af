"""The API over HTTPS by config, the CLI verifying it with the configured CA, and tokens made with
`ha token` and used through HA_TOKEN."""

from __future__ import annotations

import hashlib
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.api_site import ApiFleet


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (an IP subjectAltName, as the CLI verifies)."""
    cert, key = directory / "api-cert.pem", directory / "api-key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-nodes", "-days", "1", "-subj", "/CN=ha-api"),
            *("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_https_by_config_and_the_cli_verifies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fleet = ApiFleet(tmp_path, 1)
    cert, key = certificate(tmp_path)
    fleet.extra = {"api": {"tls": {"cert_file": str(cert), "key_file": str(key)}}}
    fleet.tls = ssl.create_default_context(cafile=cert)
    try:
        fleet.write_config()
        fleet.start_daemon()
        assert fleet.base.startswith("https://")
        assert fleet.call("GET", "/v1/status").status == 200
        fleet.tls = None  # plain HTTP to the HTTPS port gets no answer
        with pytest.raises(OSError, match=r"Remote end closed|Connection reset"):
            fleet.call("GET", "/v1/status", timeout=3)

        status = fleet.ha("status")
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("SCENARIO")

        made = subprocess.run(
            [sys.executable, "-m", "ha", "token", "bob", "--role", "viewer"],
            capture_output=True,
            text=True,
            check=True,
        )
        token, entry = made.stdout.splitlines()
        digest = hashlib.sha256(token.encode()).hexdigest()
        assert entry.endswith(f"{{name: bob, role: viewer, sha256: {digest}}}")

        monkeypatch.setenv("HA_TOKEN", fleet.viewer)
        assert fleet.ha("status").returncode == 0
        refused = fleet.ha("stop", "s1")
        assert refused.returncode == 1
        assert "refused (403): the token 'grafana' is a viewer token" in refused.stderr
    finally:
        fleet.stop()
