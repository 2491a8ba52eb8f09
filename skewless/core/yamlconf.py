"""YAML -> frozen dataclasses: the one converter every config file goes through.

Unknown keys, wrong types and bad values raise ConfigError naming the file and the dotted key path.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from skewless.core.errors import ConfigError

T = TypeVar("T")
LOADED = {"loaded": True}  # field metadata: filled in by a loader, never from YAML


def build(cls: type[T], data: Any, source: str, path: str = "") -> T:
    """Convert plain YAML data into dataclass `cls`, rejecting unknown keys with their path."""
    return typing.cast(T, _convert(cls, data, source, path))


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise ConfigError(source, path, f"expected a mapping, got {type(value).__name__}")
        hints = get_type_hints(tp)
        fields = {f.name: f for f in dataclasses.fields(tp) if not f.metadata.get("loaded")}
        unknown = sorted(set(value) - set(fields))
        if unknown:
            where = f"{path}.{unknown[0]}" if path else str(unknown[0])
            raise ConfigError(source, where, f"unknown key (allowed: {', '.join(sorted(fields))})")
        kwargs = {}
        for name, f in fields.items():
            sub = f"{path}.{name}" if path else name
            if name in value:
                kwargs[name] = _convert(hints[name], value[name], source, sub)
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise ConfigError(source, sub, "required key is missing")
        return tp(**kwargs)  # type: ignore[operator]  # a dataclass class, checked above
    if origin is Literal:
        if value not in get_args(tp):
            allowed = ", ".join(map(str, get_args(tp)))
            raise ConfigError(source, path, f"{value!r} is not one of: {allowed}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(source, path, f"expected a list, got {type(value).__name__}")
        (item,) = get_args(tp)[:1]
        return tuple(_convert(item, v, source, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(source, path, f"expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(get_args(tp)[1], v, source, f"{path}.{k}") for k, v in value.items()}
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in get_args(tp):
            return None
        inner = [a for a in get_args(tp) if a is not type(None)][0]
        return _convert(inner, value, source, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(source, path, f"expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(source, path, f"expected an integer, got {value!r}")
        if value < 0:
            raise ConfigError(source, path, f"must be >= 0, got {value}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(source, path, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ConfigError(source, path, f"expected a string, got {value!r}")
        return str(value)
    raise TypeError(f"unsupported config type {tp!r} at {path}")  # a bug in this module, not in YAML


def read_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.safe_load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(str(path), "", "file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), "", f"invalid YAML: {exc}") from exc
