"""Where drift's two sides come from: the current slice of `feature_logs`, and the reference (a dataset
version, or served hours) with its cuts and histograms, read from `drift_references` when cached or
computed once (two passes) and stored.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import read_table
from skewless.core.errors import UsageError
from skewless.core.frames import served_between
from skewless.core.paths import table_path
from skewless.core.progress import Progress
from skewless.datasets.catalog_job import load as load_dataset
from skewless.datasets.spec import WEIGHT_RULES
from skewless.datasets.transforms import WEIGHT, row_weight
from skewless.datasets.versions import resolve, versions_table
from skewless.drift import store
from skewless.drift.evaluate import Cell, Side, per_feature, sides
from skewless.drift.features import SEP, STATUS_FEATURE, STATUS_KEY, FeatureSet
from skewless.drift.profile import cell_counts, distinct_cuts, features_frame, quantile_cuts, with_statuses
from skewless.drift.settings import Monitoring
from skewless.serving.logformat import parse_date, parse_hour
from skewless.serving.package import read_manifest


@dataclass(frozen=True)
class Slice:
    start: datetime
    end: datetime  # exclusive
    label: str


@dataclass(frozen=True)
class Reference:
    label: str                 # fraud_daily@3 (every split), fraud_daily@3:train, or feature_logs FROM..TO
    dataset: str | None = None
    split: str | None = None
    content_hash: str = ""
    hours: Slice | None = None
    weight: str = "none"       # the dataset's rule: inverse_sample_rate | none (hours: none)

    @property
    def weighted(self) -> bool:
        return self.weight != "none"


def parse_slice(text: str, option: str = "--current") -> Slice:
    """An hour, a day, or FROM..TO hours (inclusive) as a half-open [start, end) interval."""
    try:
        if ".." in text:
            first, last = text.split("..", 1)
            start, end = parse_hour(first), parse_hour(last) + timedelta(hours=1)
        elif "T" in text:
            start = parse_hour(text)
            end = start + timedelta(hours=1)
        else:
            start = parse_date(text)
            end = start + timedelta(days=1)
    except ValueError as exc:
        raise UsageError(f"{option} {text!r}: {exc}") from exc
    if end <= start:
        raise UsageError(f"{option} {text!r}: the last hour is before the first")
    return Slice(start, end, text)


def choose_reference(spark: SparkSession, cfg: Config, mon: Monitoring, args: argparse.Namespace) -> Reference:
    split = mon.defaults.reference_split
    if args.reference_hours:
        hours: Slice = args.reference_hours
        return Reference(f"feature_logs {hours.label}", hours=hours)
    package = args.package or mon.model(args.model).package
    text = args.reference
    if not text and package:
        manifest = read_manifest(package)
        # The version it was trained on; its split only if configured (a split keyed by entity is a
        # biased sample of traffic when a few entities dominate: docs/drift.md).
        text = manifest["dataset"]["ref"]
    text = text or mon.model(args.model).reference
    if not text:
        raise UsageError(f"no reference for {args.model!r}: pass --reference, --reference-hours or --package, "
                         f"or set models.{args.model}.reference in {mon.source}")
    version = resolve(versions_table(spark, cfg), text)
    name = f"{version['name']}@{version['version']}"
    # The rule the version was made with (its definition as loaded), not today's YAML.
    rule = json.loads(version.get("definition") or "{}").get("weight", "none")
    if rule not in WEIGHT_RULES:
        raise UsageError(f"reference {name}: weight rule {rule!r} is not one of {list(WEIGHT_RULES)}")
    return Reference(name + (f":{split}" if split else ""), dataset=name, split=split,
                     content_hash=str(version["content_hash"]), weight=rule)


def current_weight(ref: Reference) -> Column | None:
    """The current slice's row weight under the reference's rule: a dataset weighted by
    1 / sample_rate is compared with served rows weighted the same way (sample rates that differ by
    key or over time would otherwise read as drift)."""
    return row_weight(ref.weight) if ref.weighted else None


def served_rows(spark: SparkSession, cfg: Config, model: str, s: Slice) -> DataFrame:
    return served_between(read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS), model, s.start, s.end)


def reference_rows(spark: SparkSession, cfg: Config, model: str, ref: Reference) -> DataFrame:
    if ref.hours is not None:
        return served_rows(spark, cfg, model, ref.hours)
    assert ref.dataset is not None
    rows = load_dataset(spark, cfg.paths.warehouse, ref.dataset, split=ref.split)
    days = rows.agg(F.min(F.to_date(N.LOGGED_AT)), F.max(F.to_date(N.LOGGED_AT))).first()
    if days is None or days[0] is None:
        raise UsageError(f"reference {ref.label} (split {ref.split}) has no rows")
    return with_statuses(rows, read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS), days[0], days[1])


def ref_key(model: str, ref: Reference, fs: FeatureSet, mon: Monitoring) -> str:
    d = mon.defaults
    text = "|".join(map(str, (model, ref.label, ref.split, ref.content_hash, ref.weight, fs.numeric,
                              fs.categorical, d.ks_grid, d.bins, d.quantile_accuracy, d.quantile_sample)))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def profile_reference(spark: SparkSession, cfg: Config, mon: Monitoring, model: str, ref: Reference,
                      fs: FeatureSet, types: dict[str, str], refresh: bool, progress: Progress) -> list[dict[str, Any]]:
    """The reference's rows of `drift_references`: read when cached, else two passes and one append."""
    path = table_path(cfg.paths.warehouse, N.DRIFT_REFERENCES)
    key = ref_key(model, ref, fs, mon)
    if not refresh and (hit := store.cached_reference(spark, path, key)):
        progress.step(f"reference {ref.label}: cached histograms ({len(hit)} features)")
        return hit
    d = mon.defaults
    frame = features_frame(reference_rows(spark, cfg, model, ref), fs,
                           weight=F.col(WEIGHT) if ref.weighted else None)
    q = quantile_cuts(frame, fs, d.ks_grid, d.quantile_accuracy, d.quantile_sample).first()
    assert q is not None
    cuts = [distinct_cuts(q[f"_n{i}"]) for i in range(len(fs.numeric))]
    step = d.ks_grid // d.bins
    psi_cuts = [distinct_cuts((q[f"_n{i}"] or [])[step - 1::step]) for i in range(len(fs.numeric))]
    progress.step(f"reference {ref.label}: {q['_rows']} rows, quantile cuts of {len(fs.numeric)} numeric features")
    cells: list[Cell] = [(r["f"], r["k"], r["s"], r["n"], r["w"])
                         for r in cell_counts(frame, fs, cuts, weighted=ref.weighted).collect()]
    now = datetime.now(UTC).replace(tzinfo=None)
    rows = [{"ref_key": key, "model": model, "reference": ref.label, "created_at": now, "feature": name,
             "feature_index": i, "feature_type": types[name],
             "cuts": cuts[i] if i < len(cuts) else [], "psi_cuts": psi_cuts[i] if i < len(cuts) else [],
             "cells": [{"k": k, "s": s, "n": n, "w": w} for f, k, s, n, w in per_feature(cells, fs) if f == i]}
            for i, name in enumerate(fs.names)]
    store.save_reference(spark, path, rows, cfg.privacy_policy)
    progress.step(f"reference {ref.label}: histograms of {len(rows)} features cached in {N.DRIFT_REFERENCES}")
    return rows


def reference_sides(rows: list[dict[str, Any]],
                    fs: FeatureSet) -> tuple[list[list[float]], list[list[float]], dict[str, Side]]:
    cuts = [list(r["cuts"]) for r in rows[:len(fs.numeric)]]
    psi_cuts = [list(r["psi_cuts"]) for r in rows[:len(fs.numeric)]]
    cells: list[Cell] = [
        (STATUS_FEATURE, c["k"], f"{r['feature']}{SEP}{c['s']}", c["n"], c["w"]) if c["k"] == STATUS_KEY
        else (r["feature_index"], c["k"], c["s"], c["n"], c["w"]) for r in rows for c in r["cells"]]
    return cuts, psi_cuts, sides(cells, fs, cuts)
