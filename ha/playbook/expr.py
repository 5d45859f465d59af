"""A small, safe expression evaluator for a playbook's ``when``: no Jinja, no ``eval``.

Python syntax, parsed with ``ast`` and evaluated over a whitelist of nodes: literals, names and
dotted or indexed lookups into the play's variables and registered results, comparisons
(``== != < <= > >= in not in is is not``), ``and``/``or``/``not``. Anything else is an error.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Mapping
from typing import Any

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}


PLACEHOLDER = re.compile(r"\{\{\s*([^}]+?)\s*\}\}")  # {{ expression }} in a task's strings


class ExpressionError(ValueError):
    """The expression is not allowed, or refers to something that does not exist."""


def check_expression(text: str) -> None:
    """Raise ExpressionError if ``text`` is not an allowed expression (nothing is evaluated)."""
    _walk(_parse(text).body, None)


def fill(text: str, names: Mapping[str, Any]) -> str:
    """``text`` with each ``{{ expression }}`` replaced by its value."""
    return PLACEHOLDER.sub(lambda m: str(evaluate(m.group(1), names)), text)


def names_in(text: str) -> set[str]:
    """The variables an allowed expression reads: the first part of each dotted name. Raises
    ExpressionError as check_expression does."""
    tree = _parse(text)
    _walk(tree.body, None)
    return {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}


def evaluate(text: str, names: Mapping[str, Any]) -> Any:
    return _walk(_parse(text).body, names)


def _parse(text: str) -> ast.Expression:
    try:
        return ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"not an expression: {exc.msg}") from None


def _walk(node: ast.AST, names: Mapping[str, Any] | None) -> Any:
    """Evaluate (or, with ``names`` None, only check) one node."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_walk(item, names) for item in node.elts]
    if isinstance(node, ast.Name):
        if names is None:
            return None
        if node.id not in names:
            raise ExpressionError(f"unknown name {node.id!r}")
        return names[node.id]
    if isinstance(node, ast.Attribute | ast.Subscript):
        return _lookup(node, names)
    if isinstance(node, ast.BoolOp):
        values = [_walk(value, names) for value in node.values]
        if names is None:
            return None
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        value = _walk(node.operand, names)
        return None if names is None else not value
    if isinstance(node, ast.Compare):
        left = _walk(node.left, names)
        result = True
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = _walk(right_node, names)
            if names is not None:
                result = result and bool(_COMPARE[type(op)](left, right))
            left = right
        return None if names is None else result
    raise ExpressionError(f"{type(node).__name__.lower()} is not allowed in an expression")


def _lookup(node: ast.Attribute | ast.Subscript, names: Mapping[str, Any] | None) -> Any:
    if isinstance(node, ast.Attribute):
        base, key = _walk(node.value, names), node.attr
    else:
        base, key = _walk(node.value, names), _walk(node.slice, names)
    if names is None:
        return None
    try:
        return base[key]
    except (KeyError, IndexError, TypeError):
        raise ExpressionError(f"{ast.unparse(node)} does not exist") from None
