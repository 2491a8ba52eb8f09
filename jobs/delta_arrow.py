"""Read a Delta table's current files with pyarrow alone: for training hosts without Spark or a JVM.

A minimal log replay (last checkpoint, then JSON commits: `add` and `remove` actions) that refuses
what it cannot honour (deletion vectors) instead of returning wrong rows. Enough for snapshot
versions and `dataset_versions`, which are written by appends and whole-file rewrites.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from jobs.errors import SkewlessError


class DeltaReadError(SkewlessError):
    """The table cannot be read correctly without Spark."""


def _fs(table: str) -> tuple[pafs.FileSystem, str]:
    if "://" in table and not table.startswith("file:"):
        fs, path = pafs.FileSystem.from_uri(table)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), table.removeprefix("file:").rstrip("/")


def active_files(table: str) -> tuple[pafs.FileSystem, list[tuple[str, dict[str, str]]]]:
    """(filesystem, [(data file path, partition values)]) of the table's latest version."""
    fs, root = _fs(table)
    log = f"{root}/_delta_log"
    files: dict[str, dict[str, str]] = {}
    after = -1
    try:
        with fs.open_input_stream(f"{log}/_last_checkpoint") as f:
            after = int(json.loads(f.read())["version"])
        for action in pq.read_table(f"{log}/{after:020d}.checkpoint.parquet", filesystem=fs,
                                    columns=["add"]).column("add").to_pylist():
            if action:
                _add(files, action)
    except FileNotFoundError:
        pass
    commits = sorted(i.path for i in fs.get_file_info(pafs.FileSelector(log))
                     if i.path.endswith(".json") and int(i.base_name.split(".")[0]) > after)
    if not commits and after < 0:
        raise DeltaReadError(f"{table} is not a Delta table (no _delta_log commits)")
    for path in commits:
        with fs.open_input_stream(path) as f:
            for line in f.read().decode().splitlines():
                action = json.loads(line) if line.strip() else {}
                if "add" in action:
                    _add(files, action["add"])
                elif "remove" in action:
                    files.pop(unquote(action["remove"]["path"]), None)
    return fs, [(f"{root}/{p}", pv) for p, pv in sorted(files.items())]


def _add(files: dict[str, dict[str, str]], add: dict[str, object]) -> None:
    if add.get("deletionVector"):
        raise DeltaReadError(f"{add['path']} has a deletion vector; read this table with Spark")
    pv = add.get("partitionValues") or {}
    # JSON commits hold a mapping; a checkpoint read by pyarrow gives a list of (key, value) pairs.
    pairs = pv.items() if isinstance(pv, dict) else pv
    files[unquote(str(add["path"]))] = {str(k): str(v) for k, v in pairs}  # type: ignore[attr-defined]


def record_batches(table: str, *, partition: tuple[str, str] | None = None, columns: list[str] | None = None,
                   batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream the table's rows as Arrow record batches; partition columns come back as string columns."""
    fs, files = active_files(table)
    for path, values in files:
        if partition is not None and values.get(partition[0]) != partition[1]:
            continue
        fragment = pads.dataset(path, format="parquet", filesystem=fs)
        for batch in fragment.to_batches(columns=[c for c in columns or fragment.schema.names
                                                  if c in fragment.schema.names], batch_size=batch_size):
            for key, value in values.items():  # partition values live in the log (some writers copy them)
                if (columns is None or key in columns) and key not in batch.schema.names:
                    batch = batch.append_column(key, pa.array([value] * batch.num_rows, pa.string()))
            yield batch


def read_table(table: str) -> pa.Table:
    batches = list(record_batches(table))
    return pa.Table.from_batches(batches) if batches else pa.table({})
