"""Every landing file accounted for: the bytes Spark returned from a file against what the file holds.

Spark reads landing files with `ignoreCorruptFiles`, so one bad upload cannot fail an hour; the price
is that a file that is not gzip, or the rest of a file after a cut or an I/O error, would vanish
without a word. This module makes that loud: for each file, the bytes of the lines read (each line's
bytes plus its newline) are compared with the file's size (plain) or its uncompressed size (gzip).
A file that disagrees is *unread*: the job quarantines it as a whole (`unreadable_file`, the file
named) and the run's status says so; the lines that were read still load.

The gzip trailer gives the uncompressed size mod 2^32 in one small read. Only when it disagrees (a
cut file, or several gzip members, whose trailer covers the last one only) is the file decompressed
as a stream in the JVM to tell which: never on the common path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.localframe import local_frame
from skewless.core.storage import LandingFile, gzip_isize, hadoop_fs

_CHUNK = 1 << 20


@dataclass(frozen=True)
class UnreadFile:
    """A file whose bytes were not all read: what was expected, what was read, and why."""

    path: str
    expected: int | None   # uncompressed bytes the file holds; None when it cannot be decoded at all
    read: int
    detail: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def gzip_length(spark: SparkSession, path: str) -> tuple[int | None, str | None]:
    """(uncompressed bytes, error) by streaming the whole file through the JVM's gzip reader, which
    reads every member. The error names why the stream stopped (not gzip, cut short)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    fs, hpath = hadoop_fs(spark, path)
    raw = fs.open(hpath)
    total = 0
    try:
        stream = jvm.java.util.zip.GZIPInputStream(raw, 65536)
        while (n := int(stream.skip(_CHUNK))) > 0:
            total += n
        return total, None
    except Exception as exc:  # noqa: BLE001 - a py4j error wrapping ZipException/EOFException
        java = getattr(exc, "java_exception", None)
        text = str(java.toString()) if java is not None else (str(exc).splitlines() or [type(exc).__name__])[0]
        return (total if total else None), text[-200:]
    finally:
        raw.close()


def check_file(spark: SparkSession, f: LandingFile, read: int) -> UnreadFile | None:
    """None when the lines read from `f` account for all its bytes (`read`: line bytes plus one
    newline each, so a last line without a newline counts one byte over)."""
    if f.size == 0:
        return None  # nothing written, nothing to lose
    if not f.path.endswith(".gz"):
        if f.size <= read <= f.size + 1:
            return None
        return UnreadFile(f.path, f.size, read, f"read {read} of {f.size} bytes")
    isize = gzip_isize(spark, f.path, f.size)
    if isize is not None and 0 <= (read % 2**32) - isize <= 1:
        return None
    length, error = gzip_length(spark, f.path)
    if error is None and length is not None and length <= read <= length + 1:
        return None  # several gzip members: the trailer only covered the last
    what = f"not readable as gzip ({error})" if length is None else (
        f"read {read} of {length}+ bytes, then: {error}" if error else f"read {read} of {length} bytes")
    return UnreadFile(f.path, length, read, what)


def file_key(path: str) -> str:
    """One spelling of a file's URI, whether it came from a listing or from Spark's `_metadata`
    (percent-encoded, `file:/` or `file:///`): files of different folders may share a name."""
    return unquote(path).replace("file:///", "file:/")


def unread_files(spark: SparkSession, files: list[LandingFile], read_bytes: Mapping[str, int]) -> list[UnreadFile]:
    """The files of a run whose bytes were not all read (`read_bytes`: by `file_key`, from the lines)."""
    out = []
    for f in files:
        bad = check_file(spark, f, read_bytes.get(file_key(f.path), 0))
        if bad is not None:
            out.append(bad)
    return out


FILE_ROW_SCHEMA = T.StructType([
    T.StructField(N.SOURCE_FILE, T.StringType()), T.StructField(N.REASON, T.StringType()),
    T.StructField("_detail", T.StringType()),
])


def file_rows(spark: SparkSession, unread: list[UnreadFile]) -> DataFrame:
    """One row per unread file: (source_file, reason `unreadable_file`, detail)."""
    return local_frame(spark, [(f.path, N.UNREADABLE_FILE, f.detail) for f in unread], FILE_ROW_SCHEMA)
