"""Typed overrides of frozen dataclasses (suite tables and command-line values over a config's defaults), with one-line
errors naming the key, the expected kind and the closest known key."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from benchmark.errors import BenchmarkError


def _kind(hint: Any) -> str:
    """How an error message names the values a type hint admits."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "none"}
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_kind(h) for h in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return f"a list of {_kind(typing.get_args(hint)[0]).removeprefix('a ').removeprefix('an ')}s"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def admits(hint: Any, value: Any) -> bool:
    """Whether ``value`` (as read from TOML or the command line) is of the type ``hint`` names: integers are not
    numbers with a fraction, booleans are not integers, a list stands for a tuple."""
    origin = typing.get_origin(hint)
    if hint is Any or dataclasses.is_dataclass(hint):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(admits(h, value) for h in typing.get_args(hint))
    if origin is tuple:
        element = typing.get_args(hint)[0]
        return isinstance(value, list | tuple) and all(admits(element, v) for v in value)
    if origin is not None:
        return isinstance(value, origin)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check_types(cls: type, values: dict[str, Any], where: str) -> None:
    """One line naming the key whose value is not of its field's type (a TOML ``batch_size = 11.5``)."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        if key in hints and not admits(hints[key], value):
            raise BenchmarkError(f"{where}: {key} must be {_kind(hints[key])}, got {value!r}")


def override_dataclass(instance: Any, overrides: dict[str, Any], where: str) -> Any:
    """Return ``instance`` with ``overrides`` applied, recursing into nested dataclass fields.

    Unknown keys raise a :class:`BenchmarkError` naming ``where`` and the closest known key; lists become tuples
    so the result stays hashable; the dataclass' own ``__post_init__`` validates the values.
    """
    names = {f.name for f in dataclasses.fields(instance)}
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(sorted(names))}"
            raise BenchmarkError(f"unknown setting {key!r} in {where}{hint}")
        check_types(type(instance), {key: value}, where)
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current) and isinstance(value, dict):
            value = override_dataclass(current, value, f"{where}.{key}")
        elif isinstance(value, list):
            value = tuple(value)
        elif isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        changes[key] = value
    try:
        return dataclasses.replace(instance, **changes)
    except (TypeError, ValueError) as err:
        raise BenchmarkError(f"invalid setting in {where}: {err}") from None
