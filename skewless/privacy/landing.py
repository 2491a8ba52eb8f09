"""`forget --rewrite-landing`: the subject's lines leave the landing files too, so replaying a landing
folder (the documented recovery, `compact --hour`) cannot even read them.

A line is the subject's when it holds the raw value as a JSON string or names one of the subject's
request ids (label lines do); a format-v2 (Avro) record when any string in it equals the raw value or
its request id is the subject's. Only files holding such a record are rewritten: the kept records, in
order, go to `_forget-tmp-<name>/` (hidden from every job), then replace the original. v2 files are
found by a distributed scan (one Spark read per writer schema) and copied in the JVM by
`AvroRewrite`, which keeps the writer schema, the file's metadata and its codec. A run killed between
the two steps is finished by the next `forget --rewrite-landing`, which first moves any leftover
rewritten copy into place.
"""

from __future__ import annotations

import json

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.paths import AVRO_SUFFIX, LANDING_SUFFIXES, join
from skewless.core.progress import Progress
from skewless.core.storage import (
    LandingFile,
    hadoop_fs,
    jvm_and_conf,
    list_files,
    list_subfolders,
    read_landing_text,
)

_TMP = "_forget-tmp-"
_RID = "_rid"


def landing_files(spark: SparkSession, landing: str) -> list[LandingFile]:
    """Every landing file: predictions/date=*/hour=*/ and labels/date=*/."""
    out: list[LandingFile] = []
    preds = join(landing, N.PREDICTIONS_DIR)
    for day in list_subfolders(spark, preds, "date="):
        for hour in list_subfolders(spark, f"{preds}/{day}", "hour="):
            out += list_files(spark, f"{preds}/{day}/{hour}", LANDING_SUFFIXES)
    labels = join(landing, N.LABELS_DIR)
    for day in list_subfolders(spark, labels, "date="):
        out += list_files(spark, f"{labels}/{day}", LANDING_SUFFIXES)
    return out


def _subject_line(value: Column, needle: str) -> Column:
    return (F.instr(value, F.lit(needle)) > 0) | F.col(_RID).isNotNull()


def _with_ids(lines: DataFrame, value: str, ids: DataFrame) -> DataFrame:
    rid = F.get_json_object(F.col(value), "$.request_id")
    return lines.join(F.broadcast(ids.select(F.col(N.REQUEST_ID).alias(_RID))), on=rid == F.col(_RID), how="left")


def avro_files(spark: SparkSession, landing: str) -> list[LandingFile]:
    """Every format-v2 prediction file (predictions/date=*/hour=*/*.avro)."""
    preds = join(landing, N.PREDICTIONS_DIR)
    return [f for day in list_subfolders(spark, preds, "date=")
            for hour in list_subfolders(spark, f"{preds}/{day}", "hour=")
            for f in list_files(spark, f"{preds}/{day}/{hour}", (AVRO_SUFFIX,))]


def rewrite(spark: SparkSession, landing: str, needle: str, request_ids: DataFrame, progress: Progress) -> int:
    """Rewrite the landing files holding the subject's lines or records (`needle`: the raw value as a
    JSON string); the number of lines and records removed."""
    _finish_interrupted(spark, landing)
    removed = _rewrite_avro(spark, avro_files(spark, landing), json.loads(needle), request_ids, progress)
    files = landing_files(spark, landing)
    lines = _with_ids(read_landing_text(spark, files), N.RAW_VALUE, request_ids)
    hits = {r[N.SOURCE_FILE]: int(r["n"]) for r in lines.where(_subject_line(F.col(N.RAW_VALUE), needle))
            .groupBy(N.SOURCE_FILE).agg(F.count(F.lit(1)).alias("n")).collect()}  # a few files: small
    for path in sorted(hits):
        _rewrite_file(spark, path, needle, request_ids)
        progress.step(f"landing: {hits[path]} lines of the subject removed from {path.rsplit('/', 1)[-1]}")
    return removed + sum(hits.values())


def _avro_candidates(spark: SparkSession, files: list[LandingFile], raw: str, request_ids: DataFrame) -> list[str]:
    """The v2 files that may hold the subject's records: a record naming one of its request ids, or
    whose JSON rendering holds the raw value. A pre-filter that never misses: a value JSON would
    escape makes every file a candidate, and `AvroRewrite` decides record by record."""
    groups = _by_writer_schema(spark, files)
    if not raw.isprintable() or '"' in raw or "\\" in raw or "/" in raw or not raw.isascii():
        return sorted(p for group in groups.values() for p in group)
    ids = F.broadcast(request_ids.select(F.col(N.REQUEST_ID).alias(_RID)))
    out: set[str] = set()
    for text, group in groups.items():
        records = spark.read.format("avro").option("avroSchema", text).option("ignoreCorruptFiles", "true").load(group)
        rows = records.select(F.col("_metadata.file_path").alias(N.SOURCE_FILE), N.REQUEST_ID,
                              F.to_json(F.struct(*[F.col(c) for c in records.columns])).alias("_json"))
        hits = (rows.join(ids, rows[N.REQUEST_ID] == ids[_RID], how="left")
                .where(F.col(_RID).isNotNull() | (F.instr("_json", json.dumps(raw)) > 0))
                .select(N.SOURCE_FILE).distinct())
        out |= {r[0] for r in hits.collect()}  # file names: a few
    return sorted(out)


def _by_writer_schema(spark: SparkSession, files: list[LandingFile]) -> dict[str, list[str]]:
    """Paths by writer schema, each group read with its own. A file without a readable header is not
    rewritten: nothing in it can load (compaction reports it unreadable, whole; docs/security.md)."""
    jvm, conf = jvm_and_conf(spark)
    groups: dict[str, list[str]] = {}
    for f in files:
        if f.size == 0:
            continue
        walk = jvm.io.skewless.ingest.AvroBlocks.walk(f.path, conf)  # the header and block headers only
        schema = dict(walk.getMetadata()).get("avro.schema")
        if schema is not None and int(walk.getRecords()) > 0:
            groups.setdefault(str(schema), []).append(f.path)
    return groups


def _rewrite_avro(spark: SparkSession, files: list[LandingFile], raw: str, request_ids: DataFrame,
                  progress: Progress) -> int:
    candidates = _avro_candidates(spark, files, raw, request_ids)
    if not candidates:
        return 0
    ids = [r[0] for r in request_ids.collect()]  # one subject's request ids
    jvm, conf = jvm_and_conf(spark)
    removed = 0
    for path in candidates:
        folder, name = path.rsplit("/", 1)
        tmp = f"{folder}/{_TMP}{name}"
        n = int(jvm.io.skewless.privacy.AvroRewrite.rewrite(path, f"{tmp}/part-00000.avro", conf, ids, raw))
        if n:
            _move_into_place(spark, tmp, path)
            progress.step(f"landing: {n} records of the subject removed from {name}")
        removed += n
    return removed


def _rewrite_file(spark: SparkSession, path: str, needle: str, request_ids: DataFrame) -> None:
    folder, name = path.rsplit("/", 1)
    tmp = f"{folder}/{_TMP}{name}"
    # ignoreCorruptFiles: a cut upload keeps its readable lines, as compaction reads it.
    lines = _with_ids(spark.read.option("ignoreCorruptFiles", "true").text(path), "value", request_ids)
    kept = lines.where(~_subject_line(F.col("value"), needle)).select("value")
    (kept.coalesce(1).write.mode("overwrite").option("compression", "gzip" if name.endswith(".gz") else "none")
     .text(tmp))
    _move_into_place(spark, tmp, path)


def _move_into_place(spark: SparkSession, tmp: str, path: str) -> None:
    fs, htmp = hadoop_fs(spark, tmp)
    parts = [s.getPath() for s in fs.listStatus(htmp) if s.getPath().getName().startswith("part-")]
    _, target = hadoop_fs(spark, path)
    fs.delete(target, False)
    if parts:
        fs.rename(parts[0], target)
    fs.delete(htmp, True)


def _finish_interrupted(spark: SparkSession, landing: str) -> None:
    """A rewrite killed after deleting a file but before moving its copy: move the copy now."""
    fs, root = hadoop_fs(spark, join(landing))
    if not fs.exists(root):
        return
    it = fs.listFiles(root, True)
    leftovers: set[str] = set()
    while it.hasNext():
        p = it.next().getPath()
        parent = p.getParent()
        if parent.getName().startswith(_TMP):
            leftovers.add(parent.toString())
    for tmp in sorted(leftovers):
        folder, name = tmp.rsplit("/", 1)
        target = f"{folder}/{name.removeprefix(_TMP)}"
        _, htarget = hadoop_fs(spark, target)
        if fs.exists(htarget):
            fs.delete(hadoop_fs(spark, tmp)[1], True)  # the original is still there: start over
        else:
            _move_into_place(spark, tmp, target)
