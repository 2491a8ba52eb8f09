"""`skewless datasets list|show|export`, and the Spark API trainers load dataset versions with.

    from skewless.datasets.catalog_job import load
    df = load(spark, "data/warehouse", "fraud_daily@latest", split="train")

Without Spark, `skewless.serving.arrow.arrow_batches` reads the same versions as Arrow.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core.config import Config, Paths
from skewless.core.delta import read_delta
from skewless.core.errors import InvariantError
from skewless.core.paths import qualify
from skewless.core.refs import choose_version
from skewless.datasets.transforms import SPLIT, SPLITS, content_hash, content_sums
from skewless.datasets.versions import resolve, versions_table
from skewless.serving.arrow import version_records

FORMATS = ("parquet", "csv", "json")


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="datasets_action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every version (or one dataset's), newest first")
    ls.add_argument("name", nargs="?")
    show = sub.add_parser("show", help="one version's record: NAME@N, NAME@latest or NAME@YYYY-MM-DD")
    show.add_argument("ref")
    ex = sub.add_parser("export", help="write one split of a published version as files, hash verified")
    ex.add_argument("ref")
    ex.add_argument("--split", choices=SPLITS, required=True)
    ex.add_argument("--format", choices=FORMATS, default="parquet")
    ex.add_argument("--out", required=True, help="output folder (replaced)")


def load(spark: SparkSession, warehouse: str, ref: str, *, split: str | None = None,
         verify: bool = False) -> DataFrame:
    """A published version as a Spark DataFrame; `verify` recomputes its content hash first."""
    row = resolve(versions_table(spark, _wh(warehouse)), ref)
    df = read_delta(spark, row["location"])
    if verify:
        verify_hash(df, row)
    return df.where(F.col(SPLIT) == split) if split else df


def verify_hash(df: DataFrame, row: dict[str, Any]) -> None:
    sums = content_sums(df).first()
    assert sums is not None
    digest = content_hash(int(sums["rows"]), sums["h1"], sums["h2"], df.schema)
    if digest != row["content_hash"]:
        raise InvariantError(f"{row['name']}@{row['version']}: content hash {digest[:12]} != recorded "
                             f"{row['content_hash'][:12]}: the stored rows changed (a `forget`?)")


def _wh(warehouse: str) -> Config:
    return Config(paths=Paths(warehouse=warehouse))


def _record(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["failed_expectations"] = [json.loads(x) for x in out.get("failed_expectations") or []]
    for key in ("schema_json", "definition"):
        out[key] = json.loads(out[key]) if out.get(key) else None
    return out


def run(cfg: Config, args: argparse.Namespace) -> int:
    """`list` and `show` read the version records through Arrow (no JVM: instant on a laptop);
    `export` verifies the content hash, which takes Spark."""
    records = version_records(cfg.paths.warehouse)
    if args.datasets_action == "list":
        mine = [r for r in records if not args.name or r["name"] == args.name]
        for r in sorted(mine, key=lambda r: (str(r["name"]), -int(r["version"]))):  # type: ignore[call-overload]
            print(f"{r['name']}@{r['version']}\t{r['status']}\t{r['created_at']:%Y-%m-%d %H:%M}\trows={r['rows']}\t"
                  f"window={r['window_start']:%Y-%m-%d}..{r['window_end']:%Y-%m-%d}\thash={str(r['content_hash'])[:12]}")
        return 0
    row = dict(choose_version(records, args.ref, published_only=args.datasets_action == "export"))
    if args.datasets_action == "show":
        print(json.dumps(_record(row), default=str, indent=2))
        return 0
    from skewless.core.session import build_session

    spark = build_session(cfg.spark, verbose=args.verbose)
    df = read_delta(spark, row["location"])
    verify_hash(df, row)
    out = qualify(args.out)
    df.where(F.col(SPLIT) == args.split).drop(SPLIT).write.mode("overwrite").format(args.format).option(
        "header", "true").save(out)
    print(json.dumps({"job": "export", "ref": f"{row['name']}@{row['version']}", "split": args.split,
                      "rows": int(row["rows_per_split"].get(args.split, 0)), "format": args.format, "out": out}))
    return 0
