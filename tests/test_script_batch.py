"""The script provider's {machines} commands: calls made together share one run, each caller
still learns its own machine's state or error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import ValidationError

from ha.errors import ProviderError
from providers import PowerState
from providers.script import ScriptProvider, ScriptProviderConfig

EACH = 'cd "$0" && echo "$*" >> runs && for m; do '


def provider(tmp_path: Path, **commands: object) -> ScriptProvider:
    """A machine is off while NAME.off exists; every run appends its machines to ``runs``."""
    config = ScriptProviderConfig.model_validate(
        {
            "type": "script",
            "status": [
                "sh",
                "-c",
                EACH + 'if test -e "$m.off"; then echo "$m off"; else echo "$m on"; fi; done',
                str(tmp_path),
                "{machines}",
            ],
            "power_on": ["sh", "-c", EACH + 'rm -f "$m.off"; done', str(tmp_path), "{machines}"],
            "power_off": [
                "sh",
                "-c",
                EACH + 'echo "$HA_HARD" > "$m.off"; done',
                str(tmp_path),
                "{machines}",
            ],
            "timeout": "5s",
            **commands,
        }
    )
    return ScriptProvider("lab", config)


def runs(tmp_path: Path) -> list[str]:
    return (tmp_path / "runs").read_text().splitlines()


async def test_calls_made_together_share_one_run(tmp_path: Path) -> None:
    lab = provider(tmp_path)
    names = [f"web{i:02}" for i in range(20)]
    await asyncio.gather(*(lab.power_off(name, hard=True) for name in names))
    states = await asyncio.gather(*(lab.power_state(name) for name in names))

    assert states == [PowerState.OFF] * 20
    assert runs(tmp_path) == [" ".join(names), " ".join(names)]
    assert (tmp_path / "web07.off").read_text() == "1\n"
    await lab.close()


async def test_a_lone_call_runs_at_once_and_later_calls_wait_for_the_next_run(
    tmp_path: Path,
) -> None:
    lab = provider(tmp_path)
    first = asyncio.create_task(lab.power_off("a", hard=True))
    await asyncio.sleep(0.05)  # "a" runs alone; these arrive while it runs
    await asyncio.gather(first, lab.power_off("b", hard=True), lab.power_off("c", hard=True))

    assert runs(tmp_path) == ["a", "b c"]
    await lab.close()


async def test_a_machine_missing_from_the_status_output_is_that_callers_error(
    tmp_path: Path,
) -> None:
    lab = provider(
        tmp_path,
        status=["sh", "-c", 'for m; do [ "$m" = ghost ] || echo "$m on"; done', "sh", "{machines}"],
    )
    real, ghost = await asyncio.gather(
        lab.power_state("web01"), lab.power_state("ghost"), return_exceptions=True
    )

    assert real == PowerState.ON
    assert isinstance(ghost, ProviderError)
    assert str(ghost) == "status ghost: not in the status command's output"
    await lab.close()


async def test_a_failed_run_is_tried_again_per_machine_so_each_caller_gets_its_own_error(
    tmp_path: Path,
) -> None:
    refuse_bad = (
        'cd "$0" && echo "$*" >> runs && '
        'for m; do [ "$m" != bad ] || { echo "cannot start $m" >&2; exit 3; }; done'
    )
    lab = provider(tmp_path, power_on=["sh", "-c", refuse_bad, str(tmp_path), "{machines}"])
    await asyncio.gather(*(lab.power_off(n, hard=True) for n in ("good", "bad")))
    outcomes = await asyncio.gather(
        lab.power_on("good"), lab.power_on("bad"), return_exceptions=True
    )

    assert outcomes[0] is None
    assert isinstance(outcomes[1], ProviderError)
    assert str(outcomes[1]) == "power_on bad: exit 3: cannot start bad"
    assert runs(tmp_path)[-3] == "good bad"
    assert sorted(runs(tmp_path)[-2:]) == ["bad", "good"]  # each alone, side by side
    await lab.close()


def test_machines_must_be_a_whole_argument_of_a_batchable_command() -> None:
    base = {"type": "script", "status": "st {machine}", "power_on": "on {machine}"}
    with pytest.raises(ValidationError, match="power_off: \\{machines\\} must be a whole argument"):
        ScriptProviderConfig.model_validate({**base, "power_off": "off --vms={machines}"})
    with pytest.raises(ValidationError, match="snapshot: \\{machines\\} is for status"):
        ScriptProviderConfig.model_validate(
            {**base, "power_off": "off {machine}", "snapshot": "snap {machines}"}
        )
    with pytest.raises(ValidationError, match="use \\{machine\\} or \\{machines\\}, not both"):
        ScriptProviderConfig.model_validate({**base, "power_off": "off {machine} {machines}"})


async def test_closing_the_provider_releases_every_caller(tmp_path: Path) -> None:
    lab = provider(tmp_path, power_off=["sh", "-c", "sleep 5", "sh", "{machines}"])
    first = asyncio.ensure_future(lab.power_off("a", hard=True))
    await asyncio.sleep(0.05)  # "a" runs; "b" waits for the next run
    second = asyncio.ensure_future(lab.power_off("b", hard=True))
    await asyncio.sleep(0)
    await asyncio.wait_for(lab.close(), 2)
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert [type(outcome).__name__ for outcome in outcomes] == ["CancelledError"] * 2
