"""Configuration: YAML in conf/, loaded once into frozen dataclasses.

Unknown keys, wrong types and bad values raise ConfigError naming the file and the dotted key path,
before any job reads or writes data.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from skewless.core.errors import ConfigError
from skewless.core.names import FeatureType
from skewless.core.policy import PrivacyPolicy, load_policy
from skewless.core.yamlconf import LOADED, build, read_yaml

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DEFAULT_CONFIG = "conf/warehouse.yaml"
CONFIG_ENV = "SKEWLESS_CONFIG"

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
    dedup_broadcast_max_ids: int = 2_000_000  # above: the table's ids are shuffled, not probed by a broadcast
    max_record_bytes: int = 1 << 20      # a longer line is quarantined as record_too_large
    max_new_features_per_run: int = 20   # undeclared features one run may add; past it: feature_limit
    max_features: int = 500              # columns of the features struct, in all
    optimize: OptimizePolicy = field(default_factory=OptimizePolicy)


@dataclass(frozen=True)
class Nightly:
    """`skewless nightly`: how far back late uploads are looked for, and the warehouse lease."""

    late_lookback_days: int = 7    # earlier landing hours listed for files newer than their last compaction
    lease_minutes: int = 30        # a run's lease on the warehouse, renewed at every unit of work
    wait_minutes: float = 0        # a second run waits this long for the lease, then exits naming the holder


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
class Config:
    """Everything a job needs; `source` is the file it came from."""

    profile: Literal["dev", "test", "demo", "prod"] = "dev"
    paths: Paths = field(default_factory=Paths)
    spark: SparkSettings = field(default_factory=SparkSettings)
    compaction: Compaction = field(default_factory=Compaction)
    nightly: Nightly = field(default_factory=Nightly)
    models_dir: str = "models"
    privacy: str = "privacy.yaml"     # the privacy policy, relative to this file
    datasets_dir: str = "datasets"    # dataset definitions, relative to this file
    expectations_dir: str = "../expectations"  # Great Expectations suites, relative to this file
    models: tuple[ModelConfig, ...] = ()
    policy: PrivacyPolicy | None = field(default=None, metadata=LOADED)
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
        return self.policy

    def with_paths(self, landing: str | None = None, warehouse: str | None = None) -> Config:
        paths = dataclasses.replace(
            self.paths,
            landing=landing if landing is not None else self.paths.landing,
            warehouse=warehouse if warehouse is not None else self.paths.warehouse,
        )
        return dataclasses.replace(self, paths=paths)


def load_models(directory: Path) -> tuple[ModelConfig, ...]:
    if not directory.is_dir():
        return ()
    models = []
    for file in sorted(directory.glob("*.yaml")):
        if file.name.endswith("-pipeline.yaml"):  # a model's offline pipeline (skewless.model.spec), not its features
            continue
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


def load(path: str | Path) -> Config:
    """Load conf/warehouse.yaml and the model files it points to."""
    file = Path(path)
    cfg = build(Config, read_yaml(file), str(file))
    if cfg.models:
        raise ConfigError(str(file), "models", "declare models in files under models_dir, not inline")
    if cfg.spark.shuffle_partitions < 1:
        raise ConfigError(str(file), "spark.shuffle_partitions", "must be >= 1")
    _validate_nightly(cfg.nightly, str(file))
    models = load_models((file.parent / cfg.models_dir).resolve())
    declared = {f.name: f.type for m in models for f in m.features}
    policy = load_policy((file.parent / cfg.privacy).resolve(), declared)
    return dataclasses.replace(cfg, models=models, policy=policy, source=str(file))


def _validate_nightly(n: Nightly, source: str) -> None:
    if n.late_lookback_days < 0:
        raise ConfigError(source, "nightly.late_lookback_days", f"must be >= 0, got {n.late_lookback_days}")
    if n.lease_minutes < 1:
        raise ConfigError(source, "nightly.lease_minutes", f"must be >= 1, got {n.lease_minutes}")
    if n.wait_minutes < 0:
        raise ConfigError(source, "nightly.wait_minutes", f"must be >= 0, got {n.wait_minutes}")


def config_path(given: str | None) -> Path:
    """The warehouse YAML to load: `--config`, else $SKEWLESS_CONFIG, else ./conf/warehouse.yaml.

    There is deliberately no copy inside the package to fall back on: the privacy policy (roles,
    keys, retention) must be the one the operator chose, never one that came with the code."""
    path = Path(given or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if not path.is_file():
        how = "--config" if given else f"${CONFIG_ENV}" if os.environ.get(CONFIG_ENV) else "the default"
        raise ConfigError(str(path), "", f"config file not found (from {how}); pass --config PATH "
                                         f"or set {CONFIG_ENV} (cwd: {Path.cwd()})")
    return path
