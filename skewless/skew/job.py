"""`skewless skew-test --model PKG [--examples N] [--from NAME@REF | --hours FROM..TO] [--tolerance T]`

Exit 0 when every example's |offline - serving| <= tolerance (and production's logged score agrees
wherever it was served by this package's model version), 1 when not: the deploy is blocked. On a
failure the report names the first stage that diverges and its differing features or vector slots.
Every run leaves a JSON line on stdout, an HTML page, and a row in the Delta table `skew_tests`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.argtypes import checked
from skewless.core.config import Config
from skewless.core.delta import read_table
from skewless.core.errors import UsageError
from skewless.core.paths import join, qualify, table_path
from skewless.core.progress import Progress, summary
from skewless.core.storage import write_text
from skewless.datasets.catalog_job import load
from skewless.serving.logformat import parse_hour
from skewless.serving.package import SPARK_DIR, read_manifest
from skewless.serving.stages import StageFn
from skewless.skew import history
from skewless.skew.evaluate import columns_of, evaluate
from skewless.skew.offline import (
    from_dataset,
    from_feature_logs,
    offline_table,
    sample,
    with_served_scores,
)
from skewless.skew.report import render

DEFAULT_EXAMPLES = 5000


@dataclass(frozen=True)
class SkewOptions:
    package: str
    examples: int = DEFAULT_EXAMPLES
    dataset: str | None = None                       # --from NAME@REF (default: the package's own)
    hours: tuple[datetime, datetime] | None = None   # --hours FROM..TO, end exclusive
    tolerance: float | None = None                   # default: the package's skew_tolerance
    report: str | None = None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model package folder (skewless model fit --out)")
    p.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="logged examples to compare (default 5000)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--from", dest="dataset", help="dataset version NAME@REF (default: the one it was trained on)")
    src.add_argument("--hours", type=checked(parse_hours),
                     help="served hours from feature_logs: 2026-11-25T13 or FROM..TO (inclusive)")
    p.add_argument("--tolerance", type=float, help="max |offline - serving| (default: the package's, 1e-6)")
    p.add_argument("--report", help="HTML report path (default: WAREHOUSE/_reports/skew_tests/RUN_ID.html)")


def parse_hours(text: str) -> tuple[datetime, datetime]:
    first, _, last = text.partition("..")
    try:
        start, end = parse_hour(first), parse_hour(last or first)
    except ValueError as exc:
        raise UsageError(f"--hours {text!r}: {exc}") from exc
    if end < start:
        raise UsageError(f"--hours {text!r}: the last hour is before the first")
    return start, end + timedelta(hours=1)


def options_of(args: argparse.Namespace) -> SkewOptions:
    if not 1 <= args.examples <= 1_000_000:
        raise UsageError(f"--examples {args.examples}: give 1..1000000 (1,000-10,000 is the usual range)")
    if args.tolerance is not None and not 0 < args.tolerance < 1:
        raise UsageError(f"--tolerance {args.tolerance}: must be in (0, 1)")
    return SkewOptions(args.model, args.examples, args.dataset, parse_hours(args.hours) if args.hours else None,
                       args.tolerance, args.report)


def _examples(spark: SparkSession, cfg: Config, opts: SkewOptions,
              manifest: Mapping[str, Any]) -> tuple[DataFrame, str]:
    features = list(manifest["features"])
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS)
    if opts.hours:
        start, end = opts.hours
        rows = from_feature_logs(logs, manifest["model"]["name"], start, end, features)
        return sample(rows, opts.examples), f"feature_logs {start:%Y-%m-%dT%H}..{end - timedelta(hours=1):%Y-%m-%dT%H}"
    ref = opts.dataset or manifest["dataset"]["ref"]
    picked = sample(from_dataset(load(spark, cfg.paths.warehouse, ref), features), opts.examples).cache()
    days = picked.agg(F.min(F.to_date(F.col(N.LOGGED_AT))), F.max(F.to_date(F.col(N.LOGGED_AT)))).first() \
        if N.LOGGED_AT in picked.columns else None
    if days is not None and days[0] is not None:
        picked = with_served_scores(picked, logs, days[0] - timedelta(days=1), days[1] + timedelta(days=1))
    return picked, ref


def collect_examples(spark: SparkSession, cfg: Config, opts: SkewOptions,
                     manifest: Mapping[str, Any]) -> tuple[pa.Table, str]:
    """The sampled examples with every stage's offline output: one Spark job, at most N rows back."""
    model = PipelineModel.load(qualify(str((Path(opts.package) / SPARK_DIR).resolve())))
    examples, source = _examples(spark, cfg, opts, manifest)
    table = offline_table(model, examples, list(manifest["stages"]))
    if table.num_rows == 0:
        raise UsageError(f"no logged examples of model {manifest['model']['name']!r} in {source}")
    return table, source


def run_skew_test(spark: SparkSession, cfg: Config, opts: SkewOptions, *, progress: Progress,
                  overrides: Mapping[str, StageFn] | None = None) -> dict[str, Any]:
    """Compare, localize on failure, write the HTML page and the `skew_tests` row; the report."""
    t0 = time.monotonic()
    manifest = read_manifest(opts.package)
    tol = opts.tolerance or float(manifest["skew_tolerance"])
    table, source = collect_examples(spark, cfg, opts, manifest)
    progress.step(f"{table.num_rows} examples from {source} through the offline pipeline")
    t_spark = time.monotonic()
    offline = columns_of(table)
    plain = evaluate(manifest, offline, tolerance=tol, source=source, package=str(opts.package),
                     examples_requested=opts.examples, overrides=overrides)
    report = {**plain, "timing_s": {"spark": round(t_spark - t0, 3), "compare": round(time.monotonic() - t_spark, 3)}}
    where = report["localization"]
    if where:
        progress.step(f"diverges first at stage {where['stage']} ({where['comparisons']} comparisons): "
                      + ", ".join(d["slot"] for d in where["differing"][:8]))
    report["report_path"] = opts.report or join(cfg.paths.warehouse, "_reports", N.SKEW_TESTS,
                                                f"{report['run_id']}.html")
    write_text(spark, report["report_path"], render(report))
    history.append(spark, table_path(cfg.paths.warehouse, N.SKEW_TESTS), report)
    progress.step(f"{'passed' if report['passed'] else 'FAILED'}: max |diff| {report['max_abs_diff']:.3g} over "
                  f"{report['examples']} examples (tolerance {tol:g}); report {report['report_path']}")
    return report


def run(spark: SparkSession, cfg: Config, args: argparse.Namespace) -> int:
    opts = options_of(args)
    report = run_skew_test(spark, cfg, opts, progress=Progress("skew-test"))
    loc = report["localization"]
    summary({k: report[k] for k in ("job", "passed", "examples", "max_abs_diff", "p99_abs_diff", "mean_abs_diff",
                                    "over_tolerance", "tolerance", "package_hash", "dataset", "source",
                                    "report_path", "served", "timing_s")}
            | {"stage": loc and loc["stage"], "comparisons": loc and loc["comparisons"],
               "differing": loc and [d["slot"] for d in loc["differing"]]})
    return 0 if report["passed"] else 1
