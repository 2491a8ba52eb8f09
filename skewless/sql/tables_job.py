"""`skewless tables list|describe TABLE`: what each table holds, and every column's access tag.

Tables are read from their Delta logs through delta-rs (no JVM: answers in a second where a Spark
session takes fifteen); only `describe labeled_examples`, a view computed by Spark, starts a session.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql.types import StructType

from skewless.core import names as N
from skewless.core.access import POLICY_PROPERTY, read_tags
from skewless.core.config import Config
from skewless.core.errors import UsageError
from skewless.core.paths import qualify, table_path
from skewless.serving.arrow import open_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=("list", "describe"), help="list the tables, or describe one")
    p.add_argument("table", nargs="?", help=f"table to describe ({', '.join(N.QUERYABLE)})")
    p.add_argument("--format", choices=("table", "json"), default="table")


def _present(cfg: Config, name: str) -> bool:
    return bool(DeltaTable.is_deltatable(qualify(table_path(cfg.paths.warehouse, name))))


def describe(cfg: Config, name: str) -> dict[str, object]:
    """A table's location, partitioning, size, privacy policy, properties and columns at its latest
    version, from its Delta log. TableNotFoundError before its first commit."""
    path = table_path(cfg.paths.warehouse, name)
    table = open_table(path)
    meta = table.metadata()
    # Delta stores the schema as Spark's own JSON, column metadata (the access tags) included.
    schema = StructType.fromJson(json.loads(table.schema().to_json()))
    files = pa.table(table.get_add_actions(flatten=False))
    props = dict(meta.configuration or {})
    return {"table": name, "location": path, "partitions": list(meta.partition_columns), "files": files.num_rows,
            "bytes": int(pc.sum(files["size_bytes"]).as_py() or 0),
            "privacy_policy": props.get(POLICY_PROPERTY, ""), "properties": props,
            "columns": _columns(cfg, name, schema)}


def _columns(cfg: Config, name: str, schema: StructType) -> list[dict[str, str]]:
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    for f in schema.fields:
        if isinstance(f.dataType, StructType):
            types.update({f"{f.name}.{c.name}": c.dataType.simpleString() for c in f.dataType.fields})
    out = []
    for col, tag in read_tags(schema).items():
        fp = cfg.privacy_policy.lookup(col) if name in (N.FEATURE_LOGS, N.LABELED_EXAMPLES) else None
        out.append({"column": col, "type": types[col], "access": tag or "untagged (read as restricted)",
                    "action": fp.action if fp else ""})
    return out


def describe_view(spark: SparkSession, cfg: Config, name: str) -> dict[str, object]:
    """A view computed at read time: its columns and tags, and the table versions it reads now."""
    from skewless.labels import view as examples_view

    pinned = examples_view.pin(spark, cfg)
    schema = examples_view.labeled_examples(spark, cfg, pinned).schema
    return {"table": name, "location": f"view: {N.FEATURE_LOGS}@{pinned.feature_logs} with the label events of "
                                        f"{N.LABELS}@{pinned.labels}, labels as of {pinned.state.as_of}",
            "partitions": [N.EVENT_DATE], "files": 0, "bytes": 0, "privacy_policy": "", "properties": {},
            "columns": _columns(cfg, name, schema)}


def run(cfg: Config, args: argparse.Namespace) -> int:
    if args.action == "list":
        for name in N.TABLES:
            path = table_path(cfg.paths.warehouse, name)
            print(f"{name}\t{'present' if _present(cfg, name) else 'not written yet'}\t{path}")
        for name in N.VIEWS:
            there = "present" if all(_present(cfg, t) for t in N.LABELED_EXAMPLES_SOURCES) else "not written yet"
            print(f"{name}\t{there}\tview of {' and '.join(N.LABELED_EXAMPLES_SOURCES)}")
        return 0
    if not args.table:
        raise UsageError("tables describe: name a table")
    if args.table not in N.QUERYABLE:
        raise UsageError(f"unknown table {args.table!r} (tables: {', '.join(N.QUERYABLE)})")
    if args.table in N.VIEWS:
        from skewless.core.session import build_session

        info = describe_view(build_session(cfg.spark, verbose=args.verbose), cfg, args.table)
    else:
        info = describe(cfg, args.table)
    if args.format == "json":
        print(json.dumps(info, default=str))
        return 0
    print(f"{info['table']}  at {info['location']}\npartitioned by {info['partitions']}, {info['files']} files, "
          f"{info['bytes']} bytes; privacy policy {info['privacy_policy'] or '-'}\n")
    cols = info["columns"]
    assert isinstance(cols, list)
    width = max(len(c["column"]) for c in cols) + 2
    print(f"{'column':<{width}}{'access':<12}{'action':<12}type")
    for c in cols:
        print(f"{c['column']:<{width}}{c['access']:<12}{c['action']:<12}{c['type']}")
    return 0
