"""Reading one landing hour of both log formats into classified rows: v1 JSON lines through the line
parser, each distinct v2 writer schema through Spark's Avro source. Session in, DataFrames out.

Every v2 file's header and block headers are walked first (in the JVM, `AvroBlocks`: a seek per
block, nothing decoded): the walk gives the file's writer schema, which groups the files, and its
record count, which the records Spark returned must match (`unread_avro`). A file that is not Avro,
or whose header is cut, is not given to Spark at all: it is unreadable as a whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.accounting import UnreadFile, file_key
from skewless.core.storage import LandingFile, jvm_and_conf, read_landing_text
from skewless.ingest.avro import classify_avro
from skewless.ingest.avroschema import WriterSchema, check_writer_schema
from skewless.ingest.parse import LINE_COLUMNS, ParseRules, classify_lines, parse_lines

# Row ids are monotonically_increasing_id per source frame; each source gets its own high bits so
# ids stay unique in the union (dedup drops rows by id).
_SOURCE_SHIFT = 56


@dataclass(frozen=True)
class AvroFile:
    """A v2 file as its block walk saw it: records counted from block headers, and why the walk
    stopped early (None: it reached the end)."""

    path: str
    size: int
    records: int
    error: str | None
    writer: WriterSchema | None


def walk_avro(spark: SparkSession, files: list[LandingFile]) -> list[AvroFile]:
    jvm, conf = jvm_and_conf(spark)
    out = []
    for f in files:
        if f.size == 0:
            out.append(AvroFile(f.path, 0, 0, None, None))  # nothing written, nothing to lose
            continue
        walk = jvm.io.skewless.ingest.AvroBlocks.walk(f.path, conf)
        meta = {str(k): str(v) for k, v in dict(walk.getMetadata()).items()}
        writer = check_writer_schema(meta) if "avro.schema" in meta else None
        out.append(AvroFile(f.path, f.size, int(walk.getRecords()), walk.getError(), writer))
    return out


def _with_position(df: DataFrame, hour: datetime, source: int) -> DataFrame:
    return df.select(
        "*", F.col("_metadata.file_path").alias(N.SOURCE_FILE),
        F.col("_metadata.file_block_start").alias(N.SPLIT_START),
        (F.monotonically_increasing_id() + F.lit(source << _SOURCE_SHIFT)).alias(N.ROW_ID),
        F.lit(hour).cast("timestamp").alias(N.LANDING_HOUR))


def classified_hour(spark: SparkSession, json_files: list[LandingFile], avro_files: list[AvroFile],
                    hour: datetime, rules: ParseRules) -> DataFrame:
    """The hour's rows as `classify_lines` gives them (unparsed lines not yet explained), both formats."""
    text = read_landing_text(spark, json_files)
    lines = text.select(*text.columns, F.lit(hour).cast("timestamp").alias(N.LANDING_HOUR)).select(*LINE_COLUMNS)
    out = classify_lines(parse_lines(lines, rules.max_record_bytes), rules)
    # One read per distinct writer schema and verdict (the same schema text with another version is another group).
    groups: dict[tuple[str, str | None], tuple[WriterSchema, list[str]]] = {}
    for f in avro_files:
        if f.writer is not None and f.records > 0:
            groups.setdefault((f.writer.text, f.writer.reason), (f.writer, []))[1].append(f.path)
    for i, (writer, paths) in enumerate(groups.values(), start=1):
        records = (spark.read.format("avro").option("avroSchema", writer.text)
                   .option("ignoreCorruptFiles", "true").load(paths))
        out = out.unionByName(classify_avro(_with_position(records, hour, i), rules, writer))
    return out


def unread_avro(files: list[AvroFile], read: dict[str, int]) -> list[UnreadFile]:
    """The v2 files whose records were not all read (`read`: records Spark returned, by `file_key`)."""
    out = []
    for f in files:
        got = read.get(file_key(f.path), 0)
        if f.size == 0 or (f.error is None and f.writer is not None and got == f.records):
            continue
        if f.writer is None:
            detail = f"not readable as Avro ({f.error or 'no schema in its header'})"
        elif f.error is not None:
            detail = f"read {got} records; its blocks hold {f.records}+, then: {f.error}"
        else:
            detail = f"read {got} of {f.records} records (a block could not be decoded)"
        out.append(UnreadFile(f.path, f.records, got, detail))
    return out
