"""Files through Hadoop's FileSystem: the same calls on local disk and object stores (s3a, abfss, gs).

Listing, small reads and writes, folder copies to and from local disk, and the landing-text reader
shared by the ingest and labels jobs.
Session in, plain values or DataFrames out.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.paths import qualify


def jvm_and_conf(spark: SparkSession) -> tuple[Any, Any]:
    """(the JVM view, the Hadoop configuration): for the project's own JVM classes and Hadoop's."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm, spark.sparkContext._jsc.hadoopConfiguration()


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """(Hadoop FileSystem, Hadoop Path) for any path or URI: local disk and object stores alike."""
    jvm, conf = jvm_and_conf(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(conf), hpath


def write_text(spark: SparkSession, path: str, text: str) -> None:
    """Write a small text file (a report) through Hadoop's FileSystem."""
    fs, hpath = hadoop_fs(spark, path)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def delete_path(spark: SparkSession, path: str) -> None:
    fs, hpath = hadoop_fs(spark, path)
    fs.delete(hpath, True)


@dataclass(frozen=True)
class LandingFile:
    path: str
    size: int


def list_files(spark: SparkSession, folder: str, suffixes: tuple[str, ...]) -> list[LandingFile]:
    """Files directly in `folder` (any Hadoop filesystem), skipping hidden and in-progress names."""
    fs, hpath = hadoop_fs(spark, qualify(folder))
    if not fs.exists(hpath):
        return []
    out = []
    for status in fs.listStatus(hpath):
        name = status.getPath().getName()
        if status.isFile() and not name.startswith((".", "_")) and name.endswith(suffixes):
            out.append(LandingFile(status.getPath().toString(), int(status.getLen())))
    return sorted(out, key=lambda f: f.path)


def newest_file_ms(spark: SparkSession, folder: str, suffixes: tuple[str, ...]) -> int | None:
    """The latest modification time (epoch ms) of the files `list_files` would list; None when none."""
    fs, hpath = hadoop_fs(spark, qualify(folder))
    if not fs.exists(hpath):
        return None
    times = [int(s.getModificationTime()) for s in fs.listStatus(hpath)
             if s.isFile() and not s.getPath().getName().startswith((".", "_"))
             and s.getPath().getName().endswith(suffixes)]
    return max(times) if times else None


def list_subfolders(spark: SparkSession, folder: str, prefix: str) -> list[str]:
    fs, hpath = hadoop_fs(spark, qualify(folder))
    if not fs.exists(hpath):
        return []
    return sorted(s.getPath().getName() for s in fs.listStatus(hpath)
                  if s.isDirectory() and s.getPath().getName().startswith(prefix))


def read_landing_text(spark: SparkSession, files: list[LandingFile]) -> DataFrame:
    """Landing lines with their file and position: `_value`, `source_file`, `_split_start`, `_row_id`.

    ignoreCorruptFiles: a cut gzip yields the lines before the cut instead of failing the run; the
    caller compares the bytes read with each file's (`core.accounting`), so nothing vanishes silently.
    lineSep "\n": a CRLF line keeps its "\r" (JSON whitespace), so its bytes count exactly.
    No files gives the same columns, empty, so callers need no special case."""
    if not files:
        return spark.createDataFrame([], f"{N.RAW_VALUE} string, {N.SOURCE_FILE} string, "
                                         f"{N.SPLIT_START} long, {N.ROW_ID} long")
    df = spark.read.option("ignoreCorruptFiles", "true").option("lineSep", "\n").text([f.path for f in files])
    return df.select(
        F.col("value").alias(N.RAW_VALUE),
        F.col("_metadata.file_path").alias(N.SOURCE_FILE),
        F.col("_metadata.file_block_start").alias(N.SPLIT_START),
        F.monotonically_increasing_id().alias(N.ROW_ID),
    )


def gzip_isize(spark: SparkSession, path: str, size: int) -> int | None:
    """The last 4 bytes of a gzip file: its uncompressed size mod 2^32 (little-endian). One small read."""
    if size < 18:  # shorter than an empty gzip member: nothing to trust
        return None
    fs, hpath = hadoop_fs(spark, path)
    stream = fs.open(hpath)
    try:
        stream.seek(size - 4)
        big_endian = int(stream.readInt()) & 0xFFFFFFFF  # DataInput reads big-endian; gzip stores little
        return int.from_bytes(big_endian.to_bytes(4, "big"), "little")
    finally:
        stream.close()


def download_folder(spark: SparkSession, folder: str, dest: Path, names_only: tuple[str, ...] = ()) -> set[str]:
    """Copy every file under `folder` (any Hadoop filesystem) to the same relative path under the local
    `dest`. A file whose relative path starts with one of `names_only` is not copied but created empty:
    for a caller that needs to know what is there, not what it holds. Returns those empty stand-ins."""
    fs, hpath = hadoop_fs(spark, qualify(folder))
    stubs: set[str] = set()
    if not fs.exists(hpath):
        return stubs
    jvm, _ = jvm_and_conf(spark)
    base = fs.makeQualified(hpath).toUri().getPath().rstrip("/") + "/"
    files = fs.listFiles(hpath, True)
    while files.hasNext():
        src = files.next().getPath()
        rel = src.toUri().getPath().removeprefix(base)
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        if rel.startswith(names_only):
            (dest / rel).touch()
            stubs.add(rel)
        else:  # the raw local filesystem: no `.crc` files beside the copies
            fs.copyToLocalFile(False, src, _local(jvm, dest / rel), True)
    return stubs


def _local(jvm: Any, path: Path) -> Any:
    """A Hadoop Path of a local file, its name taken literally (`as_uri()` would escape `@` as `%40`)."""
    return jvm.org.apache.hadoop.fs.Path("file", None, str(path))


def local_files(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under the local `root`: relative path -> (size, modification time in ns)."""
    return {p.relative_to(root).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in root.rglob("*") if p.is_file()}


def upload_files(spark: SparkSession, src: Path, folder: str, names: list[str]) -> None:
    """Copy the files `names` (relative to the local `src`) to the same paths under `folder` (any
    Hadoop filesystem), replacing what is there."""
    fs, hpath = hadoop_fs(spark, qualify(folder))
    jvm, _ = jvm_and_conf(spark)
    for rel in names:
        fs.copyFromLocalFile(False, True, _local(jvm, src / rel), jvm.org.apache.hadoop.fs.Path(hpath, rel))
