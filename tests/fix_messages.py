"""Matching pytest-pglocks' messages by their templates in errors.py.

``pattern(errors.DSN_UNREACHABLE, source="PGLOCKS_DSN")`` turns a message template into an
fnmatch pattern: the given fields are filled in (escaped), the fields not given match anything.
So a test pins the message's wording without repeating it.
"""

from __future__ import annotations

import fnmatch
import re
import string
from collections.abc import Iterator
from typing import Any

_ANY = object()


class Glob(str):
    """A field value that is a pattern itself: ``why=Glob("*refused*")``."""


def escape(text: str) -> str:
    """``text`` as an fnmatch pattern that matches exactly ``text``."""
    return re.sub(r"([*?\[])", r"[\1]", text)


class _PatternFormatter(string.Formatter):
    def parse(self, format_string: str) -> Iterator[tuple[str, str | None, str | None, str | None]]:
        for literal, field, spec, conversion in super().parse(format_string):
            yield escape(literal), field, spec, conversion

    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        return kwargs.get(key, _ANY)

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if value is _ANY or isinstance(value, Glob):
            return value
        return super().convert_field(value, conversion)

    def format_field(self, value: Any, format_spec: str) -> str:
        if value is _ANY:
            return "*"
        if isinstance(value, Glob):
            return str(value)
        return escape(super().format_field(value, format_spec))


def pattern(template: str, **fields: Any) -> str:
    """An fnmatch pattern of a message: given fields filled in, the others matching anything."""
    return _PatternFormatter().format(template, **fields)


def line_pattern(template: str, **fields: Any) -> str:
    """The first line of the message, anywhere in an output line (for ``fnmatch_lines``)."""
    return "*" + pattern(template, **fields).splitlines()[0] + "*"


def assert_message(text: str, template: str, **fields: Any) -> None:
    """Assert that ``text`` is the message ``template`` with ``fields``."""
    __tracebackhide__ = True
    expected = pattern(template, **fields)
    assert fnmatch.fnmatchcase(text, expected), f"message:\n  {text}\ndoes not match:\n  {expected}"
