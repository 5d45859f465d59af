"""Turning YAML and pydantic failures into ``path: message`` lines an operator can act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from ha.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (YAML keeps the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is given twice", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError([("", f"{where}: invalid YAML: {problem}")]) from None


def format_validation_error(exc: ValidationError, data: Any) -> list[tuple[str, str]]:
    """Every error as (path, message), in the order its place appears in the file."""
    located = [(_locate(error["loc"], data), _message(error)) for error in exc.errors()]
    located.sort(key=lambda item: item[0][1])
    return [(path, message) for (path, _), message in located]


def _locate(loc: tuple[int | str, ...], data: Any) -> tuple[str, tuple[int, ...]]:
    """``('scenarios', 1, 'tcp', 'port')`` -> ``scenarios[1].port``, and its place in the file.

    Walks the input alongside, so that the tag pydantic puts in front of a discriminated union's
    fields (a check's kind, a provider's type) is left out, and so that errors can be put in the
    order of the file (position of each key in its mapping, of each item in its list).
    """
    parts: list[str] = []
    order: list[int] = []
    node = data
    entered = False  # just stepped into a list item or mapping value: a union tag may follow
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
            order.append(item)
            node = node[item] if isinstance(node, list) and item < len(node) else None
            entered = True
            continue
        if entered and isinstance(node, dict) and item in (node.get("kind"), node.get("type")):
            entered = False
            continue
        parts.append(f".{item}" if parts else item)
        keys = list(node) if isinstance(node, dict) else []
        order.append(keys.index(item) if item in keys else len(keys))
        node = node.get(item) if isinstance(node, dict) else None
        entered = True
    return "".join(parts), tuple(order)


def _message(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return "unknown field"
    tag = str(ctx.get("discriminator", "kind")).strip("'")
    if kind == "union_tag_invalid":
        return f"unknown {tag} {ctx.get('tag')!r}; known: {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"required: {tag}"
    if kind == "literal_error" and error["loc"] and error["loc"][-1] in ("kind", "type"):
        return f"unknown {error['loc'][-1]} {value!r}; known: {ctx.get('expected')}"
    message = error["msg"].removeprefix("Value error, ")
    message = message[:1].lower() + message[1:]
    if (
        isinstance(value, str | int | float)
        and not isinstance(value, bool)
        and kind != "value_error"
    ):
        message += f" (got {value!r})"
    return message
