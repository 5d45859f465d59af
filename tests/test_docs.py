"""Docs that cannot drift: the README's state diagram is the machine's own."""

import json
from pathlib import Path

import pytest

from ha.config import load_config
from ha.machine import diagram


def test_readme_shows_the_state_diagram_drawn_from_the_machine() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"```mermaid\n{diagram()}\n```" in readme


def test_the_readme_config_examples_are_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```yaml\n")[1:]]
    complete = [b for b in blocks if b.startswith(("state:", "providers:", "dns_servers:"))]
    secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldC0xMjM0NTY3OA=="
    (tmp_path / "tsig.key").write_text(secret + "\n")
    for name in ("WEB01_DB_PASSWORD", "VSPHERE_PASSWORD", "HYPERV_PASSWORD"):
        monkeypatch.setenv(name, "secret")
    configs = []
    for i, example in enumerate(complete):
        (tmp_path / f"{i}.yaml").write_text(example)
        configs.append(load_config(tmp_path / f"{i}.yaml"))
    assert len(configs) == 5
    assert [c.kind for c in configs[0].scenarios[0].checks] == ["tcp", "http", "database", "script"]
    assert sorted(configs[1].providers) == ["cloud", "dc1", "hv1"]
    assert configs[2].scenarios[0].redirect[0].dns is not None
    assert configs[3].scenarios[0].assured_recovery is not None
    assert configs[4].cluster is not None


def test_ha_schema_describes_the_config_from_its_models(capsys: pytest.CaptureFixture[str]) -> None:
    from ha.cli import main

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert {"scenarios", "groups", "providers", "dns_servers", "safety"} <= set(
        schema["properties"]
    )
    failover = schema["$defs"]["FailoverPolicy"]["properties"]
    assert failover["failures"]["description"] == "consecutive failed probes before a check is down"
