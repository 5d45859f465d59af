"""DNS redirection against real BIND9 servers: a primary that takes TSIG-signed updates and a
secondary that follows it by NOTIFY/IXFR (tests/servers/bind.py). What a user sees is asked of
each server directly, like ``dig @server``.

Addresses are documentation ranges (192.0.2.0/24, 198.51.100.0/24): only DNS answers, never
connected to.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import dns.name
import dns.rdatatype
import pytest
from pydantic import ValidationError

from ha.errors import RedirectError
from ha.redirect import Target
from ha.redirect.dns import DnsRedirector, show
from ha.redirect.dns_client import Server
from ha.redirect.dns_config import (
    DnsRedirectConfig,
    DnsServerConfig,
    TsigConfig,
    problems,
)
from ha.redirect.dns_hub import DnsHub
from ha.redirect.dns_update import Change, UpdateBatcher
from tests.servers.bind import (
    HOST,
    KEY_NAME,
    BindLab,
    Named,
)

PRODUCTION = "192.0.2.10"
REPLICA = "192.0.2.20"
FOREIGN = "198.51.100.7"
TIMEOUT = 1.0


def servers(lab: BindLab, key_file: Path | None = None) -> dict[str, DnsServerConfig]:
    tsig = TsigConfig(secret_file=key_file or lab.key_file)
    return {
        "lab": DnsServerConfig(address=HOST, port=lab.primary.port, tsig=tsig, timeout=TIMEOUT),
        "lab2": DnsServerConfig(address=HOST, port=lab.secondary.port, timeout=TIMEOUT),
    }


def entry(
    name: str, zone: str = "example.test", deadline: str = "3s", **extra: object
) -> DnsRedirectConfig:
    return DnsRedirectConfig.model_validate(
        {
            "server": "lab",
            "zone": zone,
            "name": name,
            "ttl": 30,
            "verify": {"servers": ["lab", "lab2"], "deadline": deadline},
            **extra,
        }
    )


def redirector(
    lab: BindLab, hub: DnsHub, name: str, key_file: Path | None = None, **extra: Any
) -> DnsRedirector:
    target = Target(name, PRODUCTION, REPLICA)
    return DnsRedirector(target, entry(name, **extra), servers(lab, key_file), hub=hub)


async def answers(lab: BindLab, server: Named, name: str, zone: str = "example.test") -> set[str]:
    values, _ = await lab.ask(server, f"{name}.{zone}", "A")
    return values


async def until_secondary_has(lab: BindLab, name: str, zone: str, value: str) -> None:
    give_up = time.monotonic() + 5
    while await answers(lab, lab.secondary, name, zone) != {value}:
        assert time.monotonic() < give_up, f"the secondary never got {name}.{zone} = {value}"
        await asyncio.sleep(0.02)


@pytest.fixture
def hub() -> DnsHub:
    return DnsHub()


async def test_redirect_then_failback_is_answered_by_every_server(
    bind: BindLab, hub: DnsHub
) -> None:
    await bind.write("example.test", "web01", "A", PRODUCTION, ttl=300)
    web01 = redirector(bind, hub, "web01")

    await web01.point_to(REPLICA)

    assert await bind.ask(bind.primary, "web01.example.test", "A") == ({REPLICA}, 30)
    assert await bind.ask(bind.secondary, "web01.example.test", "A") == ({REPLICA}, 30)
    assert await web01.current() == REPLICA
    assert web01.describe(REPLICA) == (
        "web01.example.test A -> 192.0.2.20 in zone example.test at lab"
        " (ttl 30s: clients may hold the old answer up to 300s)"
    )

    await web01.point_to(PRODUCTION)
    await web01.point_to(PRODUCTION)  # idempotent: read, found there, nothing sent

    assert hub.messages == 2
    assert await answers(bind, bind.primary, "web01") == {PRODUCTION}
    assert await answers(bind, bind.secondary, "web01") == {PRODUCTION}
    assert await web01.current() == PRODUCTION


async def test_a_record_changed_behind_our_back_is_reported_unless_forced(
    bind: BindLab, hub: DnsHub
) -> None:
    await bind.write("example.test", "web03", "A", FOREIGN)

    with pytest.raises(RedirectError) as caught:
        await redirector(bind, hub, "web03").point_to(REPLICA)

    assert str(caught.value) == (
        f"web03.example.test A in zone example.test at lab (127.0.0.1:{bind.primary.port})"
        " holds 198.51.100.7, not 192.0.2.10 (production) or 192.0.2.20 (replica):"
        " it was changed behind our back; left as it is (set force: true to overwrite it)"
    )
    assert await answers(bind, bind.primary, "web03") == {FOREIGN}
    assert hub.messages == 0

    await redirector(bind, hub, "web03", force=True).point_to(REPLICA)

    assert await answers(bind, bind.secondary, "web03") == {REPLICA}


async def test_a_record_changed_after_it_was_read_is_refused_by_the_server(
    bind: BindLab, hub: DnsHub
) -> None:
    await bind.write("example.test", "web13", "A", PRODUCTION)
    web13 = redirector(bind, hub, "web13")
    assert await web13.prepare() is None  # reads it: production
    await bind.write("example.test", "web13", "A", FOREIGN)

    with pytest.raises(
        RedirectError, match=r"holds 198\.51\.100\.7, not 192\.0\.2\.10 .* behind our back"
    ):
        await web13.point_to(REPLICA)

    assert hub.messages == 1  # sent on what prepare() read; its prerequisite failed: no change
    assert await answers(bind, bind.primary, "web13") == {FOREIGN}


async def test_a_missing_record_is_reported(bind: BindLab, hub: DnsHub) -> None:
    with pytest.raises(RedirectError, match=r"web-missing\.example\.test A .* does not exist"):
        await redirector(bind, hub, "web-missing").point_to(REPLICA)


@pytest.mark.parametrize(
    ("key_name", "reason"),
    [
        (KEY_NAME, "BADSIG: the server rejects our TSIG signature (wrong secret for the key?)"),
        (
            "stranger",
            "BADKEY: the server does not know our TSIG key (wrong key name or algorithm?)",
        ),
    ],
)
async def test_a_wrong_key_is_reported(
    bind: BindLab, hub: DnsHub, tmp_path: Path, key_name: str, reason: str
) -> None:
    name = f"key-{key_name}"
    await bind.write("example.test", name, "A", PRODUCTION)
    wrong = bind.key_file_for(key_name, tmp_path / "wrong.conf")

    with pytest.raises(RedirectError) as caught:
        await redirector(bind, hub, name, key_file=wrong).point_to(REPLICA)

    assert str(caught.value) == (
        f"cannot update {name}.example.test A in zone example.test at lab"
        f" (127.0.0.1:{bind.primary.port}): {reason}"
    )
    assert bind.secret not in str(caught.value)
    assert await answers(bind, bind.primary, name) == {PRODUCTION}


async def test_zone_that_does_not_allow_updates_is_reported_as_refused(
    bind: BindLab, hub: DnsHub
) -> None:
    with pytest.raises(RedirectError) as caught:
        await redirector(bind, hub, "www", zone="locked.test").point_to(REPLICA)

    assert str(caught.value) == (
        "cannot update www.locked.test A in zone locked.test at lab"
        f" (127.0.0.1:{bind.primary.port}): REFUSED: the server does not allow this update in"
        " the zone (allow-update or update-policy does not grant it to our key)"
    )


async def test_zone_the_server_does_not_serve_is_reported(bind: BindLab, hub: DnsHub) -> None:
    with pytest.raises(RedirectError) as caught:
        await redirector(bind, hub, "web", zone="nowhere.test").point_to(REPLICA)

    assert str(caught.value) == (
        "cannot read web.nowhere.test A in zone nowhere.test at lab"
        f" (127.0.0.1:{bind.primary.port}): REFUSED: the server does not answer for the zone"
        " (not loaded there, or not authoritative?)"
    )


async def test_stopped_server_fails_within_its_timeout_then_resumes(
    bind: BindLab, hub: DnsHub
) -> None:
    await bind.write("example.test", "web07", "A", PRODUCTION)
    web07 = redirector(bind, hub, "web07")

    with bind.primary.stopped():
        started = time.monotonic()
        with pytest.raises(RedirectError) as caught:
            await web07.point_to(REPLICA)
        elapsed = time.monotonic() - started

    assert elapsed < TIMEOUT + 0.5
    assert str(caught.value) == (
        "cannot read web07.example.test A in zone example.test at lab"
        f" (127.0.0.1:{bind.primary.port}): connection refused (server down?)"
    )
    await web07.point_to(REPLICA)
    assert await answers(bind, bind.secondary, "web07") == {REPLICA}


async def test_frozen_secondary_blocks_verification_past_the_deadline(
    bind: BindLab, hub: DnsHub
) -> None:
    await bind.write("example.test", "web08", "A", PRODUCTION)
    await until_secondary_has(bind, "web08", "example.test", PRODUCTION)
    assert bind.secondary.process is not None
    pid = bind.secondary.process.pid

    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RedirectError) as caught:
            await redirector(bind, hub, "web08", deadline="1s").point_to(REPLICA)
        elapsed = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)

    assert elapsed < 1.0 + TIMEOUT
    assert str(caught.value) == (
        "web08.example.test A was set to 192.0.2.20, but after 1s"
        f" lab2 (127.0.0.1:{bind.secondary.port}) does not answer: no answer within 1s"
        " (server down or unreachable?)"
    )
    assert await answers(bind, bind.primary, "web08") == {REPLICA}


async def test_verification_waits_for_a_secondary_that_lags(bind: BindLab, hub: DnsHub) -> None:
    await bind.write("lag.test", "web09", "A", PRODUCTION)
    await bind.notify("lag.test")
    await until_secondary_has(bind, "web09", "lag.test", PRODUCTION)

    with pytest.raises(RedirectError) as caught:
        await redirector(bind, hub, "web09", zone="lag.test", deadline="500ms").point_to(REPLICA)

    assert str(caught.value) == (
        "web09.lag.test A was set to 192.0.2.20, but after 500ms"
        f" lab2 (127.0.0.1:{bind.secondary.port}) still answers 192.0.2.10"
    )
    assert await answers(bind, bind.secondary, "web09", "lag.test") == {PRODUCTION}

    retry = asyncio.create_task(
        redirector(bind, hub, "web09", zone="lag.test", deadline="5s").point_to(REPLICA)
    )
    await asyncio.sleep(0.3)
    assert not retry.done()
    await bind.notify("lag.test")
    await asyncio.wait_for(retry, 5)

    assert await answers(bind, bind.secondary, "web09", "lag.test") == {REPLICA}


async def test_concurrent_redirects_in_one_zone_share_one_update_message(
    bind: BindLab, hub: DnsHub
) -> None:
    names = [f"batch{i:02}" for i in range(20)]
    for name in names:
        await bind.write("example.test", name, "A", PRODUCTION)
    group = [redirector(bind, hub, name) for name in names]
    await asyncio.gather(*(r.prepare() for r in group))  # as the daemon does while they run

    await asyncio.gather(*(r.point_to(REPLICA) for r in group))

    assert hub.messages == 1
    for name in names:
        assert await answers(bind, bind.secondary, name) == {REPLICA}


async def test_concurrent_redirects_not_read_before_still_share_messages(
    bind: BindLab, hub: DnsHub
) -> None:
    names = [f"cold{i:02}" for i in range(20)]
    for name in names:
        await bind.write("example.test", name, "A", PRODUCTION)

    await asyncio.gather(*(redirector(bind, hub, name).point_to(REPLICA) for name in names))

    assert hub.messages < len(names)
    for name in names:
        assert await answers(bind, bind.secondary, name) == {REPLICA}


async def test_a_stale_prerequisite_fails_alone_in_its_batch(bind: BindLab) -> None:
    for name in ("cas1", "cas2", "cas3"):
        await bind.write("example.test", name, "A", PRODUCTION)
    primary = Server("lab", HOST, bind.primary.port, TIMEOUT)
    batcher = UpdateBatcher(primary, servers(bind)["lab"].tsig, dns.name.from_text("example.test"))
    zone = dns.name.from_text("example.test")

    def change(name: str, expect: str) -> Change:
        fqdn = dns.name.from_text(name, zone)
        return Change(fqdn, dns.rdatatype.A, 30, REPLICA, frozenset({expect}))

    applied = await asyncio.gather(
        batcher.apply(change("cas1", PRODUCTION)),
        batcher.apply(change("cas2", FOREIGN)),
        batcher.apply(change("cas3", PRODUCTION)),
    )

    assert list(applied) == [True, False, True]
    assert [await answers(bind, bind.primary, name) for name in ("cas1", "cas2", "cas3")] == [
        {REPLICA},
        {PRODUCTION},
        {REPLICA},
    ]
    # One message with all three fails on cas2's prerequisite (NXRRSET names none): halves are
    # sent again, [cas1] then [cas2, cas3] (fails), then [cas2] (fails alone) and [cas3].
    assert batcher.messages == 5


async def test_prelower_ttl_lowers_the_ttl_of_productions_record(
    bind: BindLab, hub: DnsHub
) -> None:
    await bind.write("example.test", "web10", "A", PRODUCTION, ttl=3600)
    web10 = redirector(bind, hub, "web10", prelower_ttl="20s")

    line = await web10.prepare()

    assert line == (
        "web10.example.test A -> 192.0.2.10 in zone example.test at lab: TTL lowered from"
        " 3600s to 20s (after 3600s, clients follow a failover within 20s)"
    )
    assert await bind.ask(bind.primary, "web10.example.test", "A") == ({PRODUCTION}, 20)
    assert await web10.prepare() is None
    assert web10.describe(REPLICA).endswith("clients may hold the old answer up to 20s)")


async def test_verification_defaults_to_the_zones_ns_set(bind: BindLab, hub: DnsHub) -> None:
    await bind.write("example.test", "web11", "A", PRODUCTION)
    config = DnsRedirectConfig.model_validate(
        {
            "server": "lab",
            "zone": "example.test",
            "name": "web11",
            "verify": {"port": bind.primary.port},
        }
    )
    web11 = DnsRedirector(Target("web11", PRODUCTION, REPLICA), config, servers(bind), hub=hub)

    await web11.point_to(REPLICA)

    assert await web11.show() == [
        f"web11.example.test A at ns1.example.test (127.0.0.1:{bind.primary.port}):"
        " 192.0.2.20 (ttl 60s)"
    ]


async def test_show_prints_what_each_server_answers(bind: BindLab) -> None:
    await bind.write("example.test", "web12", "A", PRODUCTION, ttl=120)
    await until_secondary_has(bind, "web12", "example.test", PRODUCTION)

    lines = await show(Target("web12", PRODUCTION, REPLICA), entry("web12"), servers(bind))

    assert lines == [
        f"web12.example.test A at lab (127.0.0.1:{bind.primary.port}): 192.0.2.10 (ttl 120s)",
        f"web12.example.test A at lab2 (127.0.0.1:{bind.secondary.port}): 192.0.2.10 (ttl 120s)",
    ]


async def test_cname_and_aaaa_records(bind: BindLab, hub: DnsHub) -> None:
    await bind.write("example.test", "app", "CNAME", "prod.example.test.")
    app = DnsRedirector(
        Target("app", "prod.example.test", "standby.example.test"),
        entry("app", type="CNAME"),
        servers(bind),
        hub=hub,
    )
    await bind.write("example.test", "v6", "AAAA", "2001:db8::10")
    v6 = DnsRedirector(
        Target("v6", "2001:db8::10", "2001:DB8::20"), entry("v6"), servers(bind), hub=hub
    )

    await asyncio.gather(app.point_to("standby.example.test"), v6.point_to("2001:DB8::20"))

    assert await bind.ask(bind.secondary, "app.example.test", "CNAME") == (
        {"standby.example.test."},
        30,
    )
    assert await bind.ask(bind.secondary, "v6.example.test", "AAAA") == ({"2001:db8::20"}, 30)
    assert await app.current() == "standby.example.test"
    assert await v6.current() == "2001:DB8::20"


def test_key_files_bare_secrets_and_their_errors(bind: BindLab, tmp_path: Path) -> None:
    from_key_file = TsigConfig(secret_file=bind.key_file).key()
    bare = TsigConfig(name=KEY_NAME, secret_file=bind.secret_file).key()
    assert (from_key_file.name, from_key_file.algorithm) == (KEY_NAME, "hmac-sha256")
    assert from_key_file.secret == bare.secret
    relative = TsigConfig.model_validate(
        {"secret_file": bind.key_file.name}, context={"base_dir": bind.key_file.parent}
    )
    assert relative.secret_file == bind.key_file
    assert bind.secret not in repr(relative.key()) + repr(relative)

    with pytest.raises(ValidationError, match="holds a bare secret, not a BIND key file"):
        TsigConfig(secret_file=bind.secret_file)
    with pytest.raises(ValidationError, match="is hmac-sha256, but the config says hmac-sha512"):
        TsigConfig(secret_file=bind.key_file, algorithm="hmac-sha512")
    garbage = tmp_path / "garbage.key"
    garbage.write_text("not base64 at all!\n")
    with pytest.raises(ValidationError, match="the TSIG secret is not base64") as caught:
        TsigConfig(name="k", secret_file=garbage)
    assert "not base64 at all" not in str(caught.value)


def test_config_problems_name_each_field(bind: BindLab) -> None:
    config = DnsRedirectConfig.model_validate(
        {
            "server": "nope",
            "zone": "example.test",
            "name": "web",
            "verify": {"servers": ["lab2", "gone"]},
        }
    )

    assert problems(config, Target("web", PRODUCTION, "2001:db8::1"), servers(bind)) == [
        ("server", "unknown DNS server 'nope' (defined: lab, lab2)"),
        ("verify.servers[1]", "unknown DNS server 'gone' (defined: lab, lab2)"),
        ("type", "A needs an IPv4 address, but replica is 2001:db8::1"),
    ]
    with pytest.raises(ValidationError, match=r"name 'web\.other\.test\.' is not inside zone"):
        DnsRedirectConfig(server="lab", zone="example.test", name="web.other.test.")
