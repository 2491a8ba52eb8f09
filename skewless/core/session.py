"""The one Spark session builder: Delta extension and catalog, UTC, sized for the machine.

Under spark-submit the JVM already exists, so master, jars and driver memory come from the submit
line and are never set here; under plain `python` they come from conf/warehouse.yaml.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from contextlib import ExitStack
from importlib import resources
from typing import IO

from pyspark import SparkConf, SparkContext
from pyspark.java_gateway import launch_gateway
from pyspark.sql import SparkSession

from skewless.core.config import SparkSettings
from skewless.core.jars import require_jars

GUARD_EXTENSION = "io.skewless.sql.SkewlessSqlExtension"
# The one line the JVM prints on every start because Spark's launcher adds the Vector API module.
_JVM_NOISE = (b"WARNING: Using incubator modules:",)


def under_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands its gateway port to the Python driver.
    return "PYSPARK_GATEWAY_PORT" in os.environ


def base_conf(settings: SparkSettings) -> dict[str, str]:
    conf = {
        # Delta's parser first, the role guard (skewless/sql/jvm) last: it wraps the parser Delta built, so
        # it sees Delta's commands too. The guard does nothing until a session is bound to a role.
        "spark.sql.extensions": f"io.delta.sql.DeltaSparkSessionExtension,{GUARD_EXTENSION}",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.ui.showConsoleProgress": "false",
        # `skewless sql --serve`: every JDBC connection shares the one session bound to the role (static).
        "spark.sql.hive.thriftServer.singleSession": "true",
        # Delta's replaceWhere on data columns (landing_hour) is how a rerun replaces its own rows.
        "spark.databricks.delta.replaceWhere.dataColumns.enabled": "true",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.sources.partitionOverwriteMode": "static",
        # Delta replays its log with this many tasks (default 50): match the machine, not a cluster.
        "spark.databricks.delta.snapshotPartitions": str(settings.shuffle_partitions),
        # Constraint inference is exponential in wide plans with many aliases (the feature columns): a
        # compaction's write, retried after a lost commit race, spent minutes in it and filled a 2 GB
        # heap. Its inferred filters (IS NOT NULL on join keys) are not what these plans need.
        "spark.sql.constraintPropagation.enabled": "false",
        # A landing hour's plans compile to the same classes as the last hour's, but one run's wide plans
        # (a projection per feature section) need more than the 100 classes Spark keeps by default.
        "spark.sql.codegen.cache.maxEntries": "1000",
        # PySpark's DataFrame debugging records the Python call site in the JVM around every Column
        # call: about five Py4J round trips each. A compaction builds over a thousand Columns per hour,
        # so this alone cost 2-3 s of driver time per hour (measured). Errors keep Spark's own context.
        "spark.python.sql.dataFrameDebugging.enabled": "false",
        # HotSpot never JIT-compiles a method over 8,000 bytes of bytecode, so a larger whole-stage method
        # runs in the bytecode interpreter: fall back to per-operator code (its methods are split small).
        "spark.sql.codegen.hugeMethodLimit": "8000",
        # VACUUM lists files with this many tasks (default 10,000: half a minute on a small table).
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": str(4 * settings.shuffle_partitions),
    }
    conf.update(settings.conf)
    return conf


# The quiet log4j2 configuration, extracted once per process if the package is zipped (--py-files).
_FILES = ExitStack()


def quiet_log_config() -> str:
    ref = resources.files("skewless.core").joinpath("log4j2-quiet.properties")
    return str(_FILES.enter_context(resources.as_file(ref)))


def build_session(settings: SparkSettings, *, verbose: bool = False) -> SparkSession:
    builder = SparkSession.builder.appName(settings.app_name)
    conf = base_conf(settings)
    if not under_spark_submit():
        conf["spark.master"] = settings.master
        conf["spark.driver.memory"] = settings.driver_memory
        # Python workers (the keyed hashing runs in them) use this interpreter, not the first python3 on PATH.
        conf.setdefault("spark.pyspark.python", sys.executable)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        if "spark.jars" not in settings.conf and "spark.jars.packages" not in settings.conf:
            conf["spark.jars"] = ",".join(str(p) for p in require_jars())
        if not verbose:  # the JVM starts here: its logging is ours to choose
            java = f"-Dlog4j2.configurationFile=file:{quiet_log_config()}"
            conf["spark.driver.extraJavaOptions"] = " ".join(filter(None, [conf.get("spark.driver.extraJavaOptions"),
                                                                           java]))
        # Local mode talks to itself only: bind to loopback instead of guessing an interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    if not verbose and not under_spark_submit():
        _start_quiet_jvm(conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    # Under spark-submit the JVM (and its log4j configuration) came from the submit line.
    spark.sparkContext.setLogLevel("INFO" if verbose else "ERROR")
    # The JVM's own console lines (Delta's VACUUM prints "Deleted N files ...") go to stderr: a job's
    # stdout is its JSON summary alone, for whoever parses it.
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    jvm.java.lang.System.setOut(jvm.java.lang.System.err)
    return spark


def _start_quiet_jvm(conf: dict[str, str]) -> None:
    """Start the driver JVM with its stderr through a filter that drops the start-up noise above and
    passes every other byte on to this process's stderr. Only when no JVM exists yet."""
    if SparkContext._gateway is not None or SparkContext._active_spark_context is not None:
        return
    spark_conf = SparkConf(loadDefaults=False)
    for key, value in conf.items():
        spark_conf.set(key, value)
    gateway = launch_gateway(spark_conf, popen_kwargs={"stderr": subprocess.PIPE})
    threading.Thread(target=_forward, args=(gateway.proc.stderr,), name="jvm-stderr", daemon=True).start()
    SparkContext._ensure_initialized(gateway=gateway, conf=spark_conf)


def _forward(stream: IO[bytes]) -> None:
    for line in iter(stream.readline, b""):
        if not line.startswith(_JVM_NOISE):
            os.write(2, line)
