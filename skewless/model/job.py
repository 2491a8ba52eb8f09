"""`skewless model fit NAME@REF --spec conf/models/fraud-pipeline.yaml --out PKG`: fit the offline
pipeline on a published dataset version and write the model package (docs/model-package.md).

The package appears whole or not at all: it is built in a staging folder beside PKG and renamed.
Fitting the same spec on the same version gives the same manifest and content hash.
"""

from __future__ import annotations

import argparse
import shutil
import uuid
from pathlib import Path
from typing import Any

import pyspark
from pyspark.sql import SparkSession

from skewless import __version__
from skewless.core.config import Config
from skewless.core.errors import ConfigError
from skewless.core.paths import qualify
from skewless.core.progress import Progress, summary
from skewless.datasets.catalog_job import load
from skewless.datasets.versions import resolve, versions_table
from skewless.model.fitting import SCORE, fit_pipeline
from skewless.model.spec import PipelineSpec, load_spec
from skewless.serving.package import FORMAT_VERSION, SPARK_DIR, publish, write_manifest


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="model_action", metavar="ACTION", required=True)
    fit = sub.add_parser("fit", help="fit a pipeline spec on a dataset version and write its package")
    fit.add_argument("ref", help="dataset version: NAME@N, NAME@latest or NAME@YYYY-MM-DD")
    fit.add_argument("--spec", required=True, help="pipeline YAML, e.g. conf/models/fraud-pipeline.yaml")
    fit.add_argument("--out", required=True, help="package folder to write (local path)")
    fit.add_argument("--replace", action="store_true", help="replace an existing package at --out")


def manifest_of(spec: PipelineSpec, stages: list[dict[str, Any]], version: dict[str, Any], rows: int) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "model": {"name": spec.name, "version": spec.version},
        "features": dict(spec.features),
        "stages": stages,
        "scorer": {"kind": spec.scorer.kind, "output": SCORE},
        "dataset": {"ref": f"{version['name']}@{version['version']}", "name": version["name"],
                    "version": int(version["version"]), "content_hash": version["content_hash"],
                    "split": spec.split, "rows": rows},
        "skew_tolerance": spec.tolerance,
        "label": spec.label, "weight": spec.weight,
        "spec": Path(spec.source_file).name,
        "fitted_with": {"skewless": __version__, "spark": pyspark.__version__},
    }


def fit(spark: SparkSession, cfg: Config, spec: PipelineSpec, ref: str, out: Path, *, replace: bool,
        progress: Progress) -> dict[str, Any]:
    version = resolve(versions_table(spark, cfg), ref)
    train = load(spark, cfg.paths.warehouse, ref, split=spec.split)
    wanted = [*spec.features, spec.label, *([spec.weight] if spec.weight else [])]
    missing = [c for c in wanted if c not in train.columns]
    if missing:
        raise ConfigError(spec.source_file, "features", f"{missing} not in {ref} (columns: {train.columns})")
    progress.step(f"{spec.name} {spec.version}: fitting {len(spec.stages)} stages + scorer on {ref} {spec.split}")
    model, stages, rows = fit_pipeline(train.select(*wanted), spec)
    progress.step(f"{spec.name} {spec.version}: fitted on {rows} rows")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.staging-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir()
        model.write().save(qualify(str((staging / SPARK_DIR).resolve())))
        manifest = write_manifest(staging, manifest_of(spec, stages, version, rows))
        publish(staging, out, replace=replace)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    progress.step(f"{spec.name} {spec.version}: package {out} ({manifest['content_hash'][:12]})")
    return manifest


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    spec = load_spec(args.spec)
    manifest = fit(spark, cfg, spec, args.ref, Path(args.out), replace=args.replace, progress=Progress("model"))
    summary({"job": "model_fit", "package": args.out, "content_hash": manifest["content_hash"],
             "model": manifest["model"], "dataset": manifest["dataset"]["ref"], "rows": manifest["dataset"]["rows"],
             "stages": [s["name"] for s in manifest["stages"]]})
    return 0
