"""A class-data-sharing archive for the suite's short-lived JVMs (every CLI, job and spark-submit
subprocess a test starts): made once per run by one JVM that does typical work and dumps the classes
it loaded at exit (`-XX:ArchiveClassesAtExit`); later JVMs map them instead of loading and verifying
them again. A JVM that cannot use the archive (another JDK, another class path) ignores it
(`-Xshare:auto`), so the archive changes start-up time only, never behaviour.

Run as `python -m tests.jvm_archive ARCHIVE`: the JVM it starts is the dumping one; a marker next to
ARCHIVE says it ended well, for every pytest process of the run (tests/beside.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parent.parent
# Short-lived JVMs boot faster with the C1 compiler only (see conftest).
C1_ONLY = "-XX:TieredStopAtLevel=1"


def start_dump(archive: Path) -> subprocess.Popen[bytes]:
    """The dumping JVM's run, in the background: the suite's first tests go on meanwhile."""
    env = {**os.environ, "SPARK_SUBMIT_OPTS": f"{C1_ONLY} -XX:ArchiveClassesAtExit={archive}"}
    # Niced: the tests running meanwhile keep the cores they use; the dump takes what they leave.
    # Its own process group: the run's end can stop the Python and the JVM it started together.
    return subprocess.Popen([sys.executable, "-m", "tests.jvm_archive", str(archive)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=lambda: os.nice(10),
                            start_new_session=True)


def stop_dump(proc: subprocess.Popen[bytes] | None, archive: Path) -> None:
    """At the run's end: a dump still running is stopped, and the archive (~200 MB) removed."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    shutil.rmtree(archive.parent, ignore_errors=True)


def ready(archive: Path) -> bool:
    """Whether the dumping run ended well and its JVM had written the archive whole (a partial archive
    exists while the JVM writes it)."""
    return _done(archive).is_file() and archive.is_file()


def _done(archive: Path) -> Path:
    return archive.with_name(archive.name + ".done")


def options(archive: Path) -> str:
    return f"{C1_ONLY} -XX:SharedArchiveFile={archive} -Xshare:auto"


def _workload() -> None:
    """What the CLI's JVMs do: a session with Delta, a partitioned write, a MERGE, reads with filters,
    an aggregate, JSON text, history and SQL."""
    from pyspark import SparkContext

    from skewless.core.config import SparkSettings
    from skewless.core.session import build_session

    spark = build_session(SparkSettings(master="local[2]", app_name="skewless-cds", shuffle_partitions=2,
                                        driver_memory="1g", conf={"spark.ui.enabled": "false"}))
    with tempfile.TemporaryDirectory(prefix="skewless-cds-") as tmp:
        _work(spark, Path(tmp))
    gateway = SparkContext._gateway
    spark.stop()
    # The JVM writes the archive as it exits, after this process would have: end it here and wait, so
    # that this process's exit means the archive is whole.
    if gateway is not None and getattr(gateway, "proc", None) is not None:
        gateway.proc.stdin.close()
        gateway.proc.wait(timeout=300)


def _work(spark: SparkSession, root: Path) -> None:
    from delta.tables import DeltaTable

    table = str(root / "t")
    df = spark.range(200).selectExpr("id", "cast(id as string) AS s", "id % 3 AS part",
                                     "named_struct('a', id, 'b', 'x') AS st", "map('k', id) AS m")
    df.write.format("delta").partitionBy("part").save(table)
    (df.where("part = 1").write.format("delta").mode("overwrite").option("replaceWhere", "part = 1")
     .option("userMetadata", "{}").save(table))
    (DeltaTable.forPath(spark, table).alias("t").merge(df.limit(10).alias("s"), "t.id = s.id")
     .whenMatchedUpdateAll().whenNotMatchedInsertAll().execute())
    spark.read.format("delta").load(table).where("part = 2").groupBy("s").count().collect()
    DeltaTable.forPath(spark, table).history(5).collect()
    (root / "j.jsonl").write_text('{"a": 1, "b": "x"}\n{"a": 2}\n')
    spark.read.text(str(root / "j.jsonl")).selectExpr("from_json(value, 'a INT, b STRING') AS v").collect()
    spark.sql(f"DESCRIBE DETAIL delta.`{table}`").collect()


if __name__ == "__main__":
    _workload()
    _done(Path(sys.argv[1])).touch()
