"""`forget --rewrite-landing`: the subject's lines leave the landing files too, so replaying a landing
folder (the documented recovery, `compact --hour`) cannot even read them.

A line is the subject's when it holds the raw value as a JSON string or names one of the subject's
request ids (label lines do). Only files holding such a line are rewritten: the kept lines, in order,
go to `_forget-tmp-<name>/` (hidden from every job), then replace the original. A run killed between
the two steps is finished by the next `forget --rewrite-landing`, which first moves any leftover
rewritten copy into place.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.paths import AVRO_SUFFIX, LANDING_SUFFIXES, join
from skewless.core.progress import Progress
from skewless.core.storage import LandingFile, hadoop_fs, list_files, list_subfolders, read_landing_text

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
    """Rewrite the landing files holding the subject's lines (`needle`: the raw value as a JSON
    string); the number of lines removed. Format-v2 (Avro) files are not rewritten: said loudly."""
    _finish_interrupted(spark, landing)
    skipped = avro_files(spark, landing)
    if skipped:
        progress.step(f"landing: WARNING {len(skipped)} format-v2 (Avro) files were not searched or rewritten "
                      f"(only v1 JSON lines are); the tombstones still keep the subject out of every load")
    files = landing_files(spark, landing)
    lines = _with_ids(read_landing_text(spark, files), N.RAW_VALUE, request_ids)
    hits = {r[N.SOURCE_FILE]: int(r["n"]) for r in lines.where(_subject_line(F.col(N.RAW_VALUE), needle))
            .groupBy(N.SOURCE_FILE).agg(F.count(F.lit(1)).alias("n")).collect()}  # a few files: small
    for path in sorted(hits):
        _rewrite_file(spark, path, needle, request_ids)
        progress.step(f"landing: {hits[path]} lines of the subject removed from {path.rsplit('/', 1)[-1]}")
    return sum(hits.values())


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
