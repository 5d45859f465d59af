"""Check kinds are found by name through the ha.checks entry points."""

from __future__ import annotations

from typing import get_args

from checks import Check, check_kinds


def test_the_five_kinds_are_registered() -> None:
    assert list(check_kinds()) == ["database", "http", "ping", "script", "tcp"]


def test_each_kind_names_itself_and_its_config() -> None:
    for name, cls in check_kinds().items():
        kind_field = cls.Config.model_fields["kind"]

        assert issubclass(cls, Check)
        assert (cls.kind, get_args(kind_field.annotation)) == (name, (name,))
