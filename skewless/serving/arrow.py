"""Dataset versions and Delta tables as Arrow, with no Spark and no JVM (training hosts, notebooks).

    from skewless.serving.arrow import arrow_batches
    for batch in arrow_batches("data/warehouse", "fraud_daily@3", split="train"):
        ...

delta-rs (`deltalake`) replays the Delta log: checkpoints, deletion vectors and column mapping are
handled, so a version `forget` rewrote reads the same rows here as in Spark. A reference resolves by
the same rule as in Spark (`core.refs.choose_version`). Row order is not defined, as in Spark.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from deltalake import DeltaTable

from skewless.core import names as N
from skewless.core.errors import TableNotFoundError
from skewless.core.paths import qualify, table_path
from skewless.core.refs import choose_version

SPLIT = "split"  # the partition column of every snapshot version
_VIEWS = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}


def _plain(t: pa.DataType) -> pa.DataType:
    """The reader's view types as the plain Arrow types every consumer (and Spark's writer) uses."""
    if t in _VIEWS:
        return _VIEWS[t]
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _plain(f.type), f.nullable) for f in t])
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return pa.list_(_plain(t.value_type))
    if pa.types.is_map(t):
        return pa.map_(_plain(t.key_type), _plain(t.item_type))
    return t


def open_table(path: str, version: int | None = None) -> DeltaTable:
    """The Delta table at `path` (at `version`, default latest). TableNotFoundError before its first commit."""
    uri = qualify(path)
    if not DeltaTable.is_deltatable(uri):
        raise TableNotFoundError(uri.rstrip("/").rsplit("/", 1)[-1], uri)
    return DeltaTable(uri, version=version)


def scan_batches(path: str, *, columns: list[str] | None = None, predicate: str | None = None,
         version: int | None = None, batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream a Delta table's rows (at `version`, default latest) as record batches of at most
    `batch_size` rows; `predicate` is a SQL filter evaluated per row (e.g. "split = 'train'")."""
    reader = pa.RecordBatchReader.from_stream(open_table(path, version).scan(columns=columns, predicate=predicate))
    schema = pa.schema([pa.field(f.name, _plain(f.type), f.nullable) for f in reader.schema])
    for batch in reader:
        batch = batch.cast(schema) if batch.schema != schema else batch
        for offset in range(0, batch.num_rows, batch_size):
            yield batch.slice(offset, batch_size)


def read_arrow(path: str, *, columns: list[str] | None = None, predicate: str | None = None,
               version: int | None = None) -> pa.Table:
    """A whole Delta table (or the rows matching `predicate`) as one Arrow table."""
    reader = pa.RecordBatchReader.from_stream(open_table(path, version).scan(columns=columns, predicate=predicate))
    table = reader.read_all()
    return table.cast(pa.schema([pa.field(f.name, _plain(f.type), f.nullable) for f in table.schema]))


def version_records(warehouse: str) -> list[dict[str, object]]:
    """Every `dataset_versions` row (one per version: small), maps as dicts as Spark gives them."""
    path = table_path(warehouse, N.DATASET_VERSIONS)
    if not DeltaTable.is_deltatable(qualify(path)):
        return []
    # Arrow gives a map column as (key, value) pairs: return it as Spark's reader does, a dict.
    return [{k: dict(v) if isinstance(v, list) and all(isinstance(x, tuple) for x in v) and v else v
             for k, v in r.items()} for r in read_arrow(path).to_pylist()]


def resolve_version(warehouse: str, ref: str, *, published_only: bool = True) -> dict[str, object]:
    """The `dataset_versions` record a reference names (NAME@N, @latest, @DATE), published by default."""
    return dict(choose_version(version_records(warehouse), ref, published_only=published_only))


def arrow_batches(warehouse: str, ref: str, *, split: str | None = None, columns: list[str] | None = None,
                  batch_size: int = 65_536) -> Iterator[pa.RecordBatch]:
    """Stream a published dataset version as Arrow record batches (pyarrow and delta-rs only)."""
    record = resolve_version(warehouse, ref)
    predicate = None if split is None else f"{SPLIT} = '{split.replace(chr(39), chr(39) * 2)}'"
    yield from scan_batches(str(record["location"]), columns=columns, predicate=predicate, batch_size=batch_size)
