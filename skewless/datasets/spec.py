"""Dataset definitions (conf/datasets/<name>.yaml), validated like all config. References: `core.refs`."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal, get_args

from skewless.core.errors import ConfigError, UsageError
from skewless.core.yamlconf import LOADED, build, read_yaml

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
WeightRule = Literal["inverse_sample_rate", "none"]
WEIGHT_RULES: tuple[str, ...] = get_args(WeightRule)
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def schedule_due(schedule: str, day: date) -> bool:
    """Whether the nightly run for `day` creates a version: `daily`, `weekly:<weekday>` (on that
    weekday's night) or `none`. The schedule is validated when the dataset is loaded."""
    if schedule == "daily":
        return True
    if schedule.startswith("weekly:"):
        return WEEKDAYS[day.weekday()] == schedule.split(":", 1)[1]
    return False


@dataclass(frozen=True)
class Window:
    days: int | None = None      # relative: the `days` before the run date (--as-of), end exclusive
    start: str | None = None     # or absolute: [start, end) dates
    end: str | None = None


@dataclass(frozen=True)
class Split:
    key: str = "entity.user_id"  # rows of one key always land in one split (no entity straddles)
    seed: str = "v1"             # change it to reshuffle; same seed, same assignment forever
    train: float = 0.8
    validation: float = 0.1
    test: float = 0.1


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    window: Window
    source: Literal["labeled_examples"] = "labeled_examples"
    models: tuple[str, ...] = ()
    maturity: Literal["closed", "any"] = "closed"   # closed: only rows whose label window has closed
    features: tuple[str, ...] = ()                   # empty: every feature column
    label: str = "label"
    weight: WeightRule = "inverse_sample_rate"
    split: Split = field(default_factory=Split)
    filters: tuple[str, ...] = ()                    # Spark SQL conditions, all must hold
    expectations: str = ""                           # suite name in expectations/ (default: the dataset's)
    schedule: str = "none"                           # nightly: daily | weekly:<weekday> | none
    source_file: str = field(default="", metadata=LOADED)

    @property
    def suite(self) -> str:
        return self.expectations or self.name

    def window_bounds(self, as_of: date) -> tuple[datetime, datetime]:
        """[start, end) in UTC for a run at `as_of`: relative windows end at the run date."""
        if self.window.days is not None:
            end = datetime.combine(as_of, datetime.min.time())
            return end - timedelta(days=self.window.days), end
        assert self.window.start and self.window.end
        return (datetime.fromisoformat(self.window.start), datetime.fromisoformat(self.window.end))


def load_dataset(directory: Path, name: str) -> DatasetConfig:
    """conf/datasets/NAME.yaml, validated."""
    path = directory / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.yaml"))
        raise UsageError(f"no dataset {name!r}: {path} does not exist (defined: {', '.join(known) or 'none'})")
    ds = build(DatasetConfig, read_yaml(path), str(path))
    _validate(ds, str(path), name)
    return dataclasses.replace(ds, source_file=str(path))


def _validate(ds: DatasetConfig, src: str, name: str) -> None:
    if ds.name != name or not _NAME.match(ds.name):
        raise ConfigError(src, "name", f"must be {name!r} (the file's name), lowercase letters, digits and _")
    w = ds.window
    if (w.days is None) == (w.start is None and w.end is None) or (w.start is None) != (w.end is None):
        raise ConfigError(src, "window", "give either days, or start and end")
    if w.days is not None and w.days < 1:
        raise ConfigError(src, "window.days", "must be >= 1")
    if w.start and w.end:
        for key, value in (("start", w.start), ("end", w.end)):
            try:
                date.fromisoformat(value)
            except ValueError as exc:
                raise ConfigError(src, f"window.{key}", f"{value!r} is not a date (YYYY-MM-DD)") from exc
        if w.start >= w.end:
            raise ConfigError(src, "window", "start must be before end")
    if ds.schedule not in ("daily", "none") and ds.schedule.removeprefix("weekly:") not in WEEKDAYS:
        raise ConfigError(src, "schedule", f"must be daily, none or weekly:<weekday> (weekly:monday), "
                                           f"got {ds.schedule!r}")
    s = ds.split
    if abs(s.train + s.validation + s.test - 1.0) > 1e-9 or min(s.train, s.validation, s.test) < 0:
        raise ConfigError(src, "split", "train + validation + test must be 1, none negative")
    if len(set(ds.features)) != len(ds.features):
        raise ConfigError(src, "features", "lists a feature twice")
