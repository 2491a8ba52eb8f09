"""One nightly run per warehouse at a time: a lease row in the `nightly_lease` Delta table.

Taking, renewing and releasing the lease are each one MERGE whose condition reads the holder: Delta's
optimistic concurrency makes two racing takers conflict (both rewrite the one row's file), the loser
retries and then finds the lease held. A lease has an expiry, renewed at every unit of work, so a
crashed run cannot block the warehouse for longer than `nightly.lease_minutes`; on the holder's own
host a dead process's lease is taken over at once.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.delta import ensure_table, read_delta, retry_conflicts
from skewless.core.errors import LeaseHeldError, LeaseLostError
from skewless.core.localframe import local_frame
from skewless.core.paths import table_path

LEASE_NAME = "nightly"
SCHEMA = T.StructType([
    T.StructField("name", T.StringType(), False),
    T.StructField("token", T.StringType(), False),
    T.StructField("holder", T.StringType(), False),   # host:pid (run id)
    T.StructField("host", T.StringType(), False),
    T.StructField("pid", T.LongType(), False),
    T.StructField("acquired_at", T.TimestampType(), False),
    T.StructField("expires_at", T.TimestampType(), False),
])


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    token: str
    holder: str
    host: str
    pid: int
    expires_at: datetime


class Lease:
    """The lease of one warehouse for one run: `acquire`, then `renew` often, `release` at the end."""

    def __init__(self, spark: SparkSession, warehouse: str, run_id: str, ttl: timedelta) -> None:
        self.spark, self.warehouse, self.ttl = spark, warehouse, ttl
        self.path = table_path(warehouse, N.NIGHTLY_LEASE)
        self.token = uuid.uuid4().hex
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.holder = f"{self.host}:{self.pid} ({run_id})"
        self._renewed = 0.0

    def current(self) -> Holder | None:
        rows = read_delta(self.spark, self.path).where(F.col("name") == LEASE_NAME).collect()
        if not rows:
            return None
        r = rows[0]
        return Holder(r["token"], r["holder"], r["host"], int(r["pid"]), r["expires_at"])

    def acquire(self, wait_s: float, poll_s: float = 5.0, sleep: Callable[[float], None] = time.sleep) -> None:
        """Take the lease, waiting up to `wait_s` for the holder to release it or let it expire;
        LeaseHeldError naming the holder after that."""
        ensure_table(self.spark, self.path, SCHEMA, (), {})
        deadline = time.monotonic() + wait_s
        while True:
            held = self.current()
            stale = held.token if held and held.host == self.host and not _alive(held.pid) else None
            self._take(stale)
            now_held = self.current()
            if now_held is not None and now_held.token == self.token:
                self._renewed = time.monotonic()
                return
            if time.monotonic() >= deadline:
                who = now_held.holder if now_held else "unknown"
                raise LeaseHeldError(self.warehouse, who, now_held.expires_at if now_held else "?",
                                     wait_s)
            sleep(min(poll_s, max(0.0, deadline - time.monotonic())))

    def renew(self, every_s: float | None = None) -> None:
        """Extend the lease (at most once per `every_s`, default a third of its length); LeaseLostError
        when another run holds it now (ours expired)."""
        every = self.ttl.total_seconds() / 3 if every_s is None else every_s
        if time.monotonic() - self._renewed < every:
            return
        self._merge(f"t.token = '{self.token}'", self.ttl)
        held = self.current()
        if held is None or held.token != self.token:
            raise LeaseLostError(held.holder if held else "nobody")
        self._renewed = time.monotonic()

    def release(self) -> None:
        """Expire our lease now (a no-op when it is no longer ours)."""
        self._merge(f"t.token = '{self.token}'", timedelta(seconds=-1))

    def _take(self, stale_token: str | None) -> None:
        mine = f"t.token = '{self.token}' OR t.expires_at < s.acquired_at"
        if stale_token is not None:
            mine += f" OR t.token = '{stale_token}'"
        self._merge(mine, self.ttl, insert=True)

    def _merge(self, condition: str, ttl: timedelta, insert: bool = False) -> None:
        now = _now()
        row = [(LEASE_NAME, self.token, self.holder, self.host, self.pid, now, now + ttl)]

        def merge() -> None:
            source = local_frame(self.spark, row, SCHEMA)
            m = (DeltaTable.forPath(self.spark, self.path).alias("t")
                 .merge(source.alias("s"), "t.name = s.name").whenMatchedUpdateAll(condition=condition))
            (m.whenNotMatchedInsertAll() if insert else m).execute()
        retry_conflicts(merge, f"{N.NIGHTLY_LEASE} of {self.warehouse}")
