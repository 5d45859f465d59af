"""Figures for the one table of ``python -m bench``: each benchmark, given ``--summary FILE``,
appends its headline figures there (one JSON object per line) besides printing its own table."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Figure:
    name: str  # what was measured, with the settings that matter
    value: str  # the figure, with its unit
    target: str = ""  # the target, or empty when it names none
    met: bool | None = None  # None: no target


def add_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--summary", type=Path, help="also append the headline figures to this file (JSON lines)"
    )


def write(path: Path | None, *figures: Figure) -> None:
    if path is None:
        return
    with path.open("a") as out:
        for figure in figures:
            out.write(json.dumps(asdict(figure)) + "\n")


def read(path: Path) -> list[Figure]:
    if not path.exists():
        return []
    return [Figure(**json.loads(line)) for line in path.read_text().splitlines() if line]


def table(figures: list[Figure]) -> str:
    width = max((len(f.name) for f in figures), default=10)
    lines = [f"{'figure':{width}}  {'value':>12}  {'target':>10}  verdict"]
    for f in figures:
        verdict = "" if f.met is None else ("met" if f.met else "MISSED")
        lines.append(f"{f.name:{width}}  {f.value:>12}  {f.target:>10}  {verdict}")
    return "\n".join(lines)
