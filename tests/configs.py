"""Configs the unit tests build in code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ha.config import Config, parse_config


def one_scenario(tmp_path: Path, **settings: Any) -> Config:
    """A config of one scenario, s1: production 127.0.0.2, replica 127.0.0.3, with ``settings``
    (checks, failover, split, ...); its state file in ``tmp_path``."""
    scenario = {
        "name": "s1",
        "production": {"address": "127.0.0.2"},
        "replica": {"address": "127.0.0.3"},
        **settings,
    }
    return parse_config({"state": str(tmp_path / "state.db"), "scenarios": [scenario]}, tmp_path)
