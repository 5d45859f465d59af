"""What every ``ha`` command shares: exit codes and finding the config file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ha.config import Config, load_config

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT


def _config_path(args: argparse.Namespace) -> Path:
    return Path(args.config or os.environ.get("HA_CONFIG") or "ha.yaml")


def _load(args: argparse.Namespace) -> Config:
    return load_config(_config_path(args))
