"""conf/monitoring.yaml -> frozen settings: bins, smoothing, thresholds, per-feature overrides, webhook.

Unknown keys fail with their path (the one YAML converter); values that would make a metric
meaningless (a warn above its alert, a KS grid that is not a multiple of the PSI bins, a webhook that
is not http(s)) fail before the job reads a row.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from skewless.core.errors import ConfigError
from skewless.core.yamlconf import build, read_yaml

Metric = Literal["psi", "ks", "js", "share", "unseen"]
Status = Literal["ok", "warn", "alert", "insufficient_data"]
SEVERITY: dict[str, int] = {"alert": 3, "warn": 2, "insufficient_data": 1, "ok": 0}


@dataclass(frozen=True)
class Band:
    warn: float
    alert: float

    def status(self, value: float) -> Status:
        """Strictly above a threshold: PSI 0.1 exactly is still ok ("warn above 0.1")."""
        return "alert" if value > self.alert else "warn" if value > self.warn else "ok"


@dataclass(frozen=True)
class Thresholds:
    psi: Band = field(default_factory=lambda: Band(0.1, 0.2))
    ks: Band = field(default_factory=lambda: Band(0.1, 0.2))
    js: Band = field(default_factory=lambda: Band(0.1, 0.2))
    share: Band = field(default_factory=lambda: Band(0.02, 0.05))
    unseen: Band = field(default_factory=lambda: Band(0.01, 0.05))

    def of(self, metric: str) -> Band:
        band: Band = getattr(self, metric)
        return band


@dataclass(frozen=True)
class Override:
    """A feature's own bands; a metric left out keeps the default's."""

    psi: Band | None = None
    ks: Band | None = None
    js: Band | None = None
    share: Band | None = None
    unseen: Band | None = None


@dataclass(frozen=True)
class Defaults:
    bins: int = 10
    ks_grid: int = 100
    quantile_accuracy: int = 10_000
    quantile_sample: int = 200_000   # reference rows the cuts are computed from; 0: every row
    epsilon: float = 1e-4
    rare_share: float = 0.005
    max_categories: int = 50
    min_rows: int = 500
    reference_split: str | None = None   # None: the whole dataset version (see docs/drift.md)
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True)
class Webhook:
    url: str | None = None
    timeout_s: float = 5.0
    retries: int = 3


@dataclass(frozen=True)
class NightlyDrift:
    """What `skewless nightly` checks for this model: the day, and each of its hours if `hourly`."""

    daily: bool = True
    hourly: bool = False


@dataclass(frozen=True)
class ModelMonitoring:
    reference: str | None = None       # NAME@REF, the default reference
    package: str | None = None         # the deployed package: its training dataset is the default reference
    exclude: tuple[str, ...] = ()
    features: dict[str, Override] = field(default_factory=dict)
    nightly: NightlyDrift = field(default_factory=lambda: NightlyDrift())


@dataclass(frozen=True)
class Monitoring:
    defaults: Defaults = field(default_factory=Defaults)
    webhook: Webhook = field(default_factory=Webhook)
    models: dict[str, ModelMonitoring] = field(default_factory=dict)
    source: str = "<defaults>"

    def model(self, name: str) -> ModelMonitoring:
        return self.models.get(name, ModelMonitoring())

    def thresholds(self, model: str, feature: str) -> Thresholds:
        """The default bands with every matching override applied, in file order (later wins)."""
        out = self.defaults.thresholds
        for pattern, over in self.model(model).features.items():
            if fnmatch.fnmatchcase(feature, pattern):
                out = replace(out, **{m: b for m, b in vars(over).items() if b is not None})
        return out


def load_monitoring(path: str | Path) -> Monitoring:
    file = Path(path)
    mon = build(Monitoring, read_yaml(file) if file.is_file() else {}, str(file))
    _validate(mon, str(file))
    return replace(mon, source=str(file))


def _validate(mon: Monitoring, source: str) -> None:
    d = mon.defaults
    if d.bins < 2:
        raise ConfigError(source, "defaults.bins", f"must be >= 2, got {d.bins}")
    if d.ks_grid < d.bins or d.ks_grid % d.bins:
        raise ConfigError(source, "defaults.ks_grid", f"must be a multiple of bins ({d.bins}), got {d.ks_grid}")
    if d.ks_grid > 10_000:
        raise ConfigError(source, "defaults.ks_grid", f"at most 10000, got {d.ks_grid}")
    if d.quantile_accuracy < d.ks_grid:
        raise ConfigError(source, "defaults.quantile_accuracy", f"must be >= ks_grid ({d.ks_grid})")
    if d.quantile_sample and d.quantile_sample < 100 * d.ks_grid:
        raise ConfigError(source, "defaults.quantile_sample",
                          f"must be 0 (every row) or >= 100 * ks_grid ({100 * d.ks_grid}), got {d.quantile_sample}")
    if not 0 < d.epsilon < 0.01:
        raise ConfigError(source, "defaults.epsilon", f"must be in (0, 0.01), got {d.epsilon}")
    if not 0 <= d.rare_share < 0.5:
        raise ConfigError(source, "defaults.rare_share", f"must be in [0, 0.5), got {d.rare_share}")
    if d.max_categories < 1:
        raise ConfigError(source, "defaults.max_categories", "must be >= 1")
    _bands(d.thresholds, source, "defaults.thresholds")
    for name, m in mon.models.items():
        for pattern, over in m.features.items():
            _bands(over, source, f"models.{name}.features.{pattern}")
    url = mon.webhook.url
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(source, "webhook.url", f"must be an http(s) URL, got {url!r}")
    if mon.webhook.timeout_s <= 0:
        raise ConfigError(source, "webhook.timeout_s", "must be > 0")


def _bands(obj: Thresholds | Override, source: str, path: str) -> None:
    for metric, band in vars(obj).items():
        if band is not None and band.warn > band.alert:
            raise ConfigError(source, f"{path}.{metric}", f"warn {band.warn} is above alert {band.alert}")
