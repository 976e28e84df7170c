"""Type checks of config values against the schema's annotations, with one message per mistake.

The dataclasses of ``experiment.py`` annotate every field (``int``, ``str | None``, ``list[str]``,
``dict[str, Any]`` ...); ``check_type`` holds a YAML value to that annotation, so a list where a
name belongs or a word where a number belongs is refused at load instead of surfacing later as an
AttributeError. Numbers are also held finite: `.nan` and `.inf` are YAML floats but no valid setting.
"""

from __future__ import annotations

import math
import types
import typing
from typing import Any

from hf_itt.errors import ConfigError

NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}


def check_type(value: Any, hint: Any, where: str, strict: bool = False) -> Any:
    """``value`` converted to ``hint`` where that is lossless (`'3'` -> 3, `xnli` -> `[xnli]`), else ConfigError.

    ``strict``: no conversion at all (values handed on unchanged, e.g. to TrainingArguments, must
    already have the right type: `'1e-5'` is not a learning rate there)."""
    if hint is Any:
        return value
    options = union_members(hint)
    if len(options) > 1:
        if value is None and type(None) in options:
            return None
        kinds = [option for option in options if option is not type(None)]
        if len(kinds) == 1:  # `int | None`: the int's own message
            return check_type(value, kinds[0], where, strict)
        for option in sorted(options, key=lambda option: 0 if native(value, option) else 1):
            if option is type(None):
                continue
            try:
                return check_type(value, option, where, strict)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: expected {describe(hint)}, got {value!r}")
    origin = typing.get_origin(hint)
    if origin is list:
        return check_list(value, typing.get_args(hint)[0] if typing.get_args(hint) else Any, where, strict)
    if origin is dict or hint is dict:
        return check_mapping(value, hint, where, strict)
    return check_scalar(value, hint, where, strict)


def union_members(hint: Any) -> tuple:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def native(value: Any, option: Any) -> bool:
    """Whether ``value`` already is of kind ``option`` (tried first: `a.jsonl` stays a string, not `[a.jsonl]`)."""
    origin = typing.get_origin(option) or option
    return isinstance(origin, type) and isinstance(value, origin)


def check_list(value: Any, item_hint: Any, where: str, strict: bool = False) -> list:
    if isinstance(value, str) and item_hint is str and not strict:  # `tasks: xnli` means one task
        return [value]
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {value!r}")
    return [check_type(item, item_hint, f"{where}[{i}]", strict) for i, item in enumerate(value)]


def check_mapping(value: Any, hint: Any, where: str, strict: bool = False) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping (key: value), got {value!r}")
    args = typing.get_args(hint)
    if not args:
        return value
    key_hint, value_hint = args
    return {
        check_type(key, key_hint, f"{where} key {key!r}", strict): check_type(
            item, value_hint, f"{where}.{key}", strict
        )
        for key, item in value.items()
    }


def check_scalar(value: Any, kind: type, where: str, strict: bool = False) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if kind is str:
        if isinstance(value, str):
            return value
        hint = f" (quote it: '{value}')" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
        raise ConfigError(f"{where}: expected a string, got {value!r}{hint}")
    if kind in (int, float):
        return check_number(value, kind, where, strict)
    if kind is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    return value


def check_number(value: Any, kind: type, where: str, strict: bool = False):
    """An int or a finite float; unless ``strict``, numeric strings are converted (`seed: '3'`)."""
    if isinstance(value, bool) or isinstance(value, (list, dict)) or value is None:
        raise ConfigError(f"{where}: expected {NAMES[kind]}, got {value!r}")
    if strict and isinstance(value, str):
        raise ConfigError(
            f"{where}: expected {NAMES[kind]}, got {value!r}" + ("; write it without quotes" if _numeric(value) else "")
        )
    if strict and kind is int and isinstance(value, float):
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    try:
        number = float(value) if kind is float else _as_int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {NAMES[kind]}, got {value!r}") from None
    if not math.isfinite(number):
        raise ConfigError(f"{where}: expected a finite number, got {value!r}")
    return number


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _as_int(value: Any) -> int:
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(value)
        return int(value)
    return int(value)


def describe(hint: Any) -> str:
    options = [option for option in union_members(hint) if option is not type(None)]
    if len(options) > 1:
        return " or ".join(describe(option) for option in options)
    hint = options[0]
    if typing.get_origin(hint) is list:
        return "a list"
    if typing.get_origin(hint) is dict or hint is dict:
        return "a mapping"
    return NAMES.get(hint, getattr(hint, "__name__", str(hint)))


__all__ = ["check_type", "check_number", "describe"]
