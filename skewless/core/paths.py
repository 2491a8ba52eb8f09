"""Every path the project builds, in one place: tables, landing folders, snapshot folders.

Pure strings (no Spark, no I/O), so the serving side builds the same landing paths as the jobs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from skewless.core import names as N

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
# Landing files the jobs read: JSON lines (format v1), plain or gzip; predictions also Avro (format v2).
LANDING_SUFFIXES = (".jsonl", ".jsonl.gz")
AVRO_SUFFIX = ".avro"
SNAPSHOTS_DIR = "snapshots"


def qualify(path: str) -> str:
    """Local paths become absolute (Spark resolves relative ones against its own cwd); URIs pass."""
    return path if _SCHEME.match(path) else str(Path(path).resolve())


def local_path(path: str) -> str | None:
    """The local filesystem path of `path` (a plain path or a file: URI), None for an object store."""
    if path.startswith("file:"):
        return "/" + path[len("file:"):].lstrip("/")
    return None if _SCHEME.match(path) else str(Path(path).resolve())


def join(root: str, *parts: str) -> str:
    return "/".join([qualify(root).rstrip("/"), *parts])


def table_path(warehouse: str, name: str) -> str:
    return join(warehouse, name)


def hour_folder(kind: str, ts: datetime) -> str:
    """Relative landing folder of an hour: predictions/date=YYYY-MM-DD/hour=HH."""
    ts = ts.astimezone(UTC) if ts.tzinfo else ts
    return f"{kind}/date={ts:%Y-%m-%d}/hour={ts:%H}"


def predictions_hour(landing: str, hour: datetime) -> str:
    return join(landing, hour_folder(N.PREDICTIONS_DIR, hour))


def predictions_date(landing: str, day: datetime) -> str:
    return join(landing, N.PREDICTIONS_DIR, f"date={day:%Y-%m-%d}")


def labels_root(landing: str) -> str:
    return join(landing, N.LABELS_DIR)


def labels_date(landing: str, day: datetime) -> str:
    return join(landing, N.LABELS_DIR, f"date={day:%Y-%m-%d}")


def snapshot_path(warehouse: str, name: str, version: int) -> str:
    return join(warehouse, SNAPSHOTS_DIR, name, f"v{version:04d}")


def snapshots_root(warehouse: str) -> str:
    return join(warehouse, SNAPSHOTS_DIR)
