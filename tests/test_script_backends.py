"""The script provider and the script redirector, with real commands."""

from __future__ import annotations

from pathlib import Path

import pytest

from ha.errors import NotSupported, ProviderError, RedirectError
from ha.redirect import Target
from ha.redirect.script import ScriptRedirectConfig, ScriptRedirector
from providers import PowerState
from providers.script import ScriptProvider, ScriptProviderConfig


def provider(tmp_path: Path, **commands: object) -> ScriptProvider:
    state = tmp_path / "{machine}.state"
    config = ScriptProviderConfig.model_validate(
        {
            "type": "script",
            "status": ["sh", "-c", f"cat {state} 2>/dev/null || echo off"],
            "power_on": ["sh", "-c", f"echo on > {state}"],
            "power_off": ["sh", "-c", f'echo "$HA_HARD" > {tmp_path}/hard; echo off > {state}'],
            "timeout": "5s",
            **commands,
        }
    )
    return ScriptProvider("lab", config)


async def test_power_on_and_off_through_commands(tmp_path: Path) -> None:
    lab = provider(tmp_path)
    assert await lab.power_state("web01") == PowerState.OFF
    await lab.power_on("web01")
    assert await lab.power_state("web01") == PowerState.ON
    assert (tmp_path / "web01.state").read_text() == "on\n"
    await lab.power_off("web01", hard=True)
    assert await lab.power_state("web01") == PowerState.OFF
    assert (tmp_path / "hard").read_text() == "1\n"


async def test_a_status_that_is_not_on_or_off_is_an_error(tmp_path: Path) -> None:
    lab = provider(tmp_path, status="echo maybe")
    with pytest.raises(ProviderError, match="status web01: expected on or off, got 'maybe'"):
        await lab.power_state("web01")


async def test_a_failing_command_reports_its_exit_and_last_line(tmp_path: Path) -> None:
    lab = provider(tmp_path, power_on=["sh", "-c", "echo no such VM >&2; exit 4"])
    with pytest.raises(ProviderError, match="power_on web01: exit 4: no such VM"):
        await lab.power_on("web01")


async def test_snapshots_need_their_commands(tmp_path: Path) -> None:
    with pytest.raises(NotSupported, match="no snapshot command"):
        await provider(tmp_path).snapshot("web01", "ar-test")


async def test_the_redirector_sets_and_reads_back(tmp_path: Path) -> None:
    target = tmp_path / "dns"
    redirect = ScriptRedirector(
        Target("web01", "127.0.0.2", "127.0.0.3"),
        ScriptRedirectConfig(
            set=["sh", "-c", f'echo "$HA_SCENARIO {{address}}" > {target}'],
            get=["sh", "-c", f"cut -d' ' -f2 {target}"],
        ),
    )
    await redirect.point_to("127.0.0.3")
    assert target.read_text() == "web01 127.0.0.3\n"
    assert await redirect.current() == "127.0.0.3"


async def test_the_redirector_without_get_cannot_tell_and_reports_failures() -> None:
    redirect = ScriptRedirector(
        Target("web01", "127.0.0.2", "127.0.0.3"), ScriptRedirectConfig(set="false")
    )
    assert await redirect.current() is None
    with pytest.raises(RedirectError, match="redirect set: exit 1"):
        await redirect.point_to("127.0.0.3")
