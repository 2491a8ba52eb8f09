"""Dataset references (`NAME@3`, `NAME@latest`, `NAME@2026-11-20`) and the one rule that resolves them.

Pure Python over plain version records (dicts), so the Spark reader and the Spark-free Arrow reader
resolve a reference to the same version.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from skewless.core.errors import UsageError

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PUBLISHED = "published"


@dataclass(frozen=True)
class Ref:
    name: str
    kind: Literal["version", "latest", "date"]
    version: int = 0
    day: date | None = None


def parse_ref(text: str) -> Ref:
    """`NAME@3`, `NAME@latest` (latest published), `NAME@2026-11-20` (latest published that day or before);
    a bare NAME means @latest."""
    name, _, ref = text.partition("@")
    if not _NAME.match(name):
        raise UsageError(f"{text!r}: not a dataset reference (NAME, NAME@N, NAME@latest or NAME@YYYY-MM-DD)")
    if ref in ("", "latest"):
        return Ref(name, "latest")
    if ref.isdigit():
        return Ref(name, "version", version=int(ref))
    try:
        return Ref(name, "date", day=date.fromisoformat(ref))
    except ValueError as exc:
        raise UsageError(f"{text!r}: after @ give a version number, latest, or a date YYYY-MM-DD") from exc


def choose_version(records: Iterable[Mapping[str, Any]], text: str | Ref, *,
                   published_only: bool = True) -> Mapping[str, Any]:
    """The version record a reference names among `records` (rows of dataset_versions, any names).

    `@latest` and `@DATE` only ever pick published versions (`@DATE`: created that UTC day or before);
    `@N` picks N, and refuses a failed N unless `published_only` is off (to inspect it)."""
    ref = parse_ref(text) if isinstance(text, str) else text
    label = text if isinstance(text, str) else f"{ref.name}@{ref.kind}"
    mine = sorted((r for r in records if r["name"] == ref.name), key=lambda r: int(r["version"]))
    known = "versions: " + (", ".join(f"{r['version']} {r['status']}" for r in mine) or "none")
    if ref.kind == "version":
        found = [r for r in mine if int(r["version"]) == ref.version]
        if not found:
            raise UsageError(f"{label}: no such version ({known})")
        if published_only and found[0]["status"] != PUBLISHED:
            raise UsageError(f"{label}: version {ref.version} {found[0]['status']} its quality gate; "
                             "it is not published")
        return found[0]
    published = [r for r in mine if r["status"] == PUBLISHED]
    if ref.kind == "date":
        assert ref.day is not None
        published = [r for r in published if r["created_at"].date() <= ref.day]
    if not published:
        raise UsageError(f"{label}: no published version{' by then' if ref.kind == 'date' else ''} ({known})")
    return published[-1]
