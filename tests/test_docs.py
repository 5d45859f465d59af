"""Docs that cannot drift: the README's state diagram is the machine's own."""

from pathlib import Path

import pytest

from ha.config import load_config
from ha.machine import diagram


def test_readme_shows_the_state_diagram_drawn_from_the_machine() -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert f"```mermaid\n{diagram()}\n```" in readme


def test_the_readme_config_example_is_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "ha.yaml").write_text(example)
    monkeypatch.setenv("WEB01_DB_PASSWORD", "secret")
    config = load_config(tmp_path / "ha.yaml")
    assert [c.kind for c in config.scenarios[0].checks] == ["tcp", "http", "database", "script"]
