"""The http check against a real aiohttp server on loopback (http and https)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from checks.http import HttpCheck
from tests.servers.web import Reply, WebServer, self_signed_tls, serve_web

MakeCheck = Callable[..., HttpCheck]


@pytest.fixture
async def web() -> AsyncIterator[WebServer]:
    async with serve_web() as server:
        yield server


@pytest.fixture
async def make_check() -> AsyncIterator[MakeCheck]:
    """Builds http checks for a server (closed at teardown); settings go into the config."""
    made: list[HttpCheck] = []

    def make(server: WebServer, **settings: Any) -> HttpCheck:
        config = {"kind": "http", "port": server.port, **settings}
        check = HttpCheck(HttpCheck.Config.model_validate(config), server.host)
        made.append(check)
        return check

    yield make
    for check in made:
        await check.close()


async def test_up(web: WebServer, make_check: MakeCheck) -> None:
    result = await make_check(web).probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "200")
    assert result.detail.endswith("ms")
    assert result.latency > 0


async def test_ipv6_target(make_check: MakeCheck) -> None:
    async with serve_web("::1") as server:
        result = await make_check(server).probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "200")


async def test_unexpected_status(web: WebServer, make_check: MakeCheck) -> None:
    web.reply = Reply(status=503, body="maintenance")

    result = await make_check(web).probe()

    assert (result.ok, result.detail) == (False, "status 503 (expected 200)")


async def test_redirect_is_not_followed(web: WebServer, make_check: MakeCheck) -> None:
    web.reply = Reply(status=301)

    result = await make_check(web, expect_status=[200, 204]).probe()

    assert (result.ok, result.detail) == (False, "status 301 (expected 200 or 204)")


async def test_several_expected_statuses(web: WebServer, make_check: MakeCheck) -> None:
    web.reply = Reply(status=503)

    result = await make_check(web, expect_status=[200, 503]).probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "503")


async def test_body_contains(web: WebServer, make_check: MakeCheck) -> None:
    web.reply = Reply(body="status: ready\n")
    check = make_check(web, path="/health?full=1", body_contains="ready")

    result = await check.probe()

    assert (result.ok, result.detail.split(" in ")[0]) == (True, "200")


async def test_body_does_not_contain(web: WebServer, make_check: MakeCheck) -> None:
    web.reply = Reply(body="status: starting\n")

    result = await make_check(web, body_contains="ready").probe()

    assert (result.ok, result.detail) == (False, "body does not contain 'ready'")


async def test_head_and_host_header(web: WebServer, make_check: MakeCheck) -> None:
    check = make_check(web, method="HEAD", host_header="www.example.test")

    result = await check.probe()

    assert (result.ok, web.hosts) == (True, ["www.example.test"])


async def test_probes_repeat_on_one_check(web: WebServer, make_check: MakeCheck) -> None:
    check = make_check(web)

    results = [await check.probe() for _ in range(3)]

    assert [result.ok for result in results] == [True, True, True]
    assert len(web.hosts) == 3


async def test_server_down_is_refused(web: WebServer, make_check: MakeCheck) -> None:
    check = make_check(web)
    assert (await check.probe()).ok

    await web.stop()
    result = await check.probe()

    assert (result.ok, result.detail) == (False, f"port {web.port}: connection refused")


async def test_slow_answer_times_out(web: WebServer, make_check: MakeCheck) -> None:
    web.reply = Reply(delay=5)

    result = await make_check(web, timeout="200ms").probe()

    assert (result.ok, result.detail) == (False, "timed out after 0.2s")
    assert result.latency < 1


async def test_https_self_signed(tmp_path: Path, make_check: MakeCheck) -> None:
    async with serve_web(tls=self_signed_tls(tmp_path)) as server:
        verified = await make_check(server, scheme="https").probe()
        unverified = await make_check(server, scheme="https", verify_tls=False).probe()

    assert (verified.ok, verified.detail) == (
        False,
        "TLS certificate not accepted: self-signed certificate",
    )
    assert (unverified.ok, unverified.detail.split(" in ")[0]) == (True, "200")


async def test_https_to_a_plain_http_server(web: WebServer, make_check: MakeCheck) -> None:
    result = await make_check(web, scheme="https").probe()

    assert result.ok is False
    assert result.detail.startswith("TLS handshake failed: ")  # then OpenSSL's reason


def test_url_and_default_ports() -> None:
    def url(target: str, **settings: Any) -> str:
        config = HttpCheck.Config.model_validate({"kind": "http", **settings})
        return HttpCheck(config, target).url

    assert url("127.0.0.1") == "http://127.0.0.1:80/"
    assert url("::1", scheme="https", path="/health") == "https://[::1]:443/health"
    assert url("127.0.0.1", port=8080) == "http://127.0.0.1:8080/"


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"port": 70000}, [(("port",), "Input should be less than or equal to 65535")]),
        ({"path": "health"}, [(("path",), "Value error, must start with /")]),
        ({"scheme": "ftp"}, [(("scheme",), "Input should be 'http' or 'https'")]),
        (
            {"expect_status": [200, 700]},
            [(("expect_status",), "Value error, HTTP statuses are 100..599, not 700")],
        ),
        (
            {"method": "HEAD", "body_contains": "ok"},
            [((), "Value error, body_contains needs method GET (a HEAD answer has no body)")],
        ),
    ],
)
def test_config_errors(settings: dict[str, Any], expected: list[Any]) -> None:
    with pytest.raises(ValidationError) as caught:
        HttpCheck.Config.model_validate({"kind": "http", **settings})

    assert [(error["loc"], error["msg"]) for error in caught.value.errors()] == expected
