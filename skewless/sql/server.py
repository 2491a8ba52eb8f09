"""`skewless sql --serve --role R`: Spark's Thrift server (JDBC/ODBC, HiveServer2 protocol) on one
long-lived session bound to the role, so beeline, DBeaver or any Hive JDBC client reads the role's views
by name, through the same guard as every other entry point.

Every connection shares the one bound session (`spark.sql.hive.thriftServer.singleSession`), and the
whole application is bound, so a session made any other way reads nothing. The server listens on
127.0.0.1 unless told otherwise; on any other address it requires a password file (users checked by the
JVM provider in skewless/sql/jvm). SIGTERM or Ctrl-C stops it cleanly.
"""

from __future__ import annotations

import ipaddress
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from pyspark.sql import SparkSession

from skewless.core.errors import UsageError
from skewless.sql.roles import Binding

_AUTH_CLASS = "io.skewless.sql.PasswordFileAuthenticator"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(host: str, port: int, password_file: Path | None) -> None:
    """Refuse a setup that would expose the role's data without a login (before the JVM starts)."""
    if not 0 < port < 65536:
        raise UsageError(f"--port {port}: not a TCP port")
    if not is_loopback(host) and password_file is None:
        raise UsageError(f"--host {host} is not loopback: --password-file is required (see skewless sql-user)")
    if password_file is not None and not password_file.is_file():
        raise UsageError(f"--password-file {password_file}: no such file (create it with skewless sql-user add)")


def configure(spark: SparkSession, host: str, port: int, password_file: Path | None) -> None:
    """HiveServer2 settings, read by the server from the session's Hadoop configuration at start."""
    conf = {"hive.server2.thrift.bind.host": host, "hive.server2.thrift.port": str(port),
            "hive.server2.transport.mode": "binary", "hive.server2.authentication": "NONE",
            "hive.server2.enable.doAs": "false"}
    if password_file is not None:
        jvm = spark.sparkContext._jvm
        assert jvm is not None
        jvm.io.skewless.sql.PasswordFileAuthenticator.configure(str(password_file.resolve()))
        conf.update({"hive.server2.authentication": "CUSTOM", "hive.server2.custom.authentication.class": _AUTH_CLASS})
        # Each login builds a fresh HiveConf, which reads JVM system properties, not the session's conf.
        jvm.java.lang.System.setProperty("hive.server2.custom.authentication.class", _AUTH_CLASS)
    for key, value in conf.items():
        spark.conf.set(key, value)


def serve(spark: SparkSession, binding: Binding, host: str, port: int, password_file: Path | None) -> int:
    """Start the server on the bound session and block until SIGTERM/SIGINT; then stop it. Exit 0."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    server = jvm.org.apache.spark.sql.hive.thriftserver.HiveThriftServer2.startWithSparkSession(
        spark._jsparkSession, False)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    login = "a user of --password-file" if password_file else "no password (loopback only)"
    print(f"skewless sql: serving role {binding.role} ({', '.join(binding.views)}) on "
          f"jdbc:hive2://{host}:{port}/ - {login}; e.g. beeline -u jdbc:hive2://{host}:{port}/", file=sys.stderr,
          flush=True)
    while not stop.wait(0.5):
        pass
    print("skewless sql: stopping the server", file=sys.stderr, flush=True)
    server.stop()
    return 0
