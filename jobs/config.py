"""Configuration: YAML in conf/, loaded once into frozen dataclasses.

Unknown keys, wrong types and bad values raise ConfigError naming the file and the dotted key path,
before any job reads or writes data.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin, get_type_hints

import yaml

from jobs.errors import ConfigError

if typing.TYPE_CHECKING:
    from jobs.policy import PrivacyPolicy

FeatureType = Literal["numeric", "categorical", "boolean"]
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

T = TypeVar("T")
LOADED = {"loaded": True}  # field metadata: filled in by a loader, never from YAML


@dataclass(frozen=True)
class Paths:
    landing: str = "data/landing"
    warehouse: str = "data/warehouse"


@dataclass(frozen=True)
class SparkSettings:
    master: str = "local[*]"
    app_name: str = "skewless"
    shuffle_partitions: int = 8
    driver_memory: str = "4g"
    conf: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class OptimizePolicy:
    enabled: bool = True
    min_files: int = 16


@dataclass(frozen=True)
class Compaction:
    late_tolerance_hours: int = 72
    future_tolerance_minutes: int = 15
    dedup_lookback_hours: int = 24
    optimize: OptimizePolicy = field(default_factory=OptimizePolicy)


@dataclass(frozen=True)
class Feature:
    name: str
    type: FeatureType


@dataclass(frozen=True)
class LabelPolicy:
    """How delayed labels become training labels for one model."""

    window_days: int = 30                                  # labels observed later than this are ignored
    unlabeled: Literal["negative", "drop"] = "drop"        # a row whose window closed with no label
    conflict: Literal["latest", "earliest", "max"] = "latest"  # several labels: corrections win by default


@dataclass(frozen=True)
class ModelConfig:
    name: str
    features: tuple[Feature, ...] = ()
    labels: LabelPolicy = field(default_factory=LabelPolicy)


@dataclass(frozen=True)
class Warehouse:
    """Everything a job needs; `source` is the file it came from."""

    profile: Literal["dev", "test", "prod"] = "dev"
    paths: Paths = field(default_factory=Paths)
    spark: SparkSettings = field(default_factory=SparkSettings)
    compaction: Compaction = field(default_factory=Compaction)
    models_dir: str = "models"
    privacy: str = "privacy.yaml"     # the privacy policy, relative to this file
    datasets_dir: str = "datasets"    # dataset definitions, relative to this file
    expectations_dir: str = "../expectations"  # Great Expectations suites, relative to this file
    models: tuple[ModelConfig, ...] = ()
    policy: Any = field(default=None, metadata=LOADED)  # the PrivacyPolicy (jobs.policy)
    source: str = field(default="<defaults>", metadata=LOADED)

    def model(self, name: str) -> ModelConfig | None:
        return next((m for m in self.models if m.name == name), None)

    def declared_features(self) -> dict[str, FeatureType]:
        """Union of every model's declared features (validated to agree on types)."""
        return {f.name: f.type for m in self.models for f in m.features}

    @property
    def privacy_policy(self) -> PrivacyPolicy:
        if self.policy is None:
            raise ConfigError(self.source, self.privacy, "no privacy policy loaded")
        return typing.cast("PrivacyPolicy", self.policy)

    def with_paths(self, landing: str | None = None, warehouse: str | None = None) -> Warehouse:
        paths = dataclasses.replace(
            self.paths,
            landing=landing if landing is not None else self.paths.landing,
            warehouse=warehouse if warehouse is not None else self.paths.warehouse,
        )
        return dataclasses.replace(self, paths=paths)


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


def load_models(directory: Path) -> tuple[ModelConfig, ...]:
    if not directory.is_dir():
        return ()
    models = []
    for file in sorted(directory.glob("*.yaml")):
        model = build(ModelConfig, read_yaml(file), str(file))
        _validate_model(model, str(file))
        models.append(model)
    _validate_models(models)
    return tuple(models)


def _validate_model(model: ModelConfig, source: str) -> None:
    if model.labels.window_days < 1:
        raise ConfigError(source, "labels.window_days", "must be >= 1")
    seen: set[str] = set()
    for i, feat in enumerate(model.features):
        if not _NAME_RE.match(feat.name):
            raise ConfigError(source, f"features[{i}].name", f"{feat.name!r} is not a valid column name")
        if feat.name in seen:
            raise ConfigError(source, f"features[{i}].name", f"duplicate feature {feat.name!r}")
        seen.add(feat.name)


def _validate_models(models: list[ModelConfig]) -> None:
    names: dict[str, str] = {}
    types_seen: dict[str, tuple[str, str]] = {}
    for m in models:
        if m.name in names:
            raise ConfigError(m.name, "name", f"model {m.name!r} is declared twice")
        names[m.name] = m.name
        for f in m.features:
            prev = types_seen.setdefault(f.name, (f.type, m.name))
            if prev[0] != f.type:
                raise ConfigError(
                    f"model {m.name}", f"features.{f.name}.type",
                    f"{f.type} conflicts with {prev[0]} in model {prev[1]} (one table column per feature)",
                )


def load(path: str | Path) -> Warehouse:
    """Load conf/warehouse.yaml and the model files it points to."""
    file = Path(path)
    wh = build(Warehouse, read_yaml(file), str(file))
    if wh.models:
        raise ConfigError(str(file), "models", "declare models in files under models_dir, not inline")
    if wh.spark.shuffle_partitions < 1:
        raise ConfigError(str(file), "spark.shuffle_partitions", "must be >= 1")
    models = load_models((file.parent / wh.models_dir).resolve())
    from jobs.policy import load_policy  # the policy module builds on this one

    declared = {f.name: f.type for m in models for f in m.features}
    policy = load_policy((file.parent / wh.privacy).resolve(), declared)
    return dataclasses.replace(wh, models=models, policy=policy, source=str(file))
