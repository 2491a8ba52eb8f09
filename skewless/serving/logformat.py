"""Log format v1: the JSON Schema files that define it, and helpers shared by writer and reader.

Pure Python (no Spark), so the serving-side logger can import it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_VERSION = 1
PREDICTION_SCHEMA = "prediction_log_v1.json"
# Spark datetime pattern for RFC 3339 with an offset; the fraction is optional, 1-9 digits.
SPARK_RFC3339 = "yyyy-MM-dd'T'HH:mm:ss[.SSSSSSSSS]XXX"


@cache
def json_schema(name: str = PREDICTION_SCHEMA) -> dict[str, Any]:
    text = resources.files("skewless.serving.schemas").joinpath(name).read_text(encoding="utf-8")
    return dict(json.loads(text))


def required_fields(name: str = PREDICTION_SCHEMA) -> tuple[str, ...]:
    return tuple(json_schema(name)["required"])


def feature_statuses() -> tuple[str, ...]:
    return tuple(json_schema()["properties"]["feature_status"]["additionalProperties"]["enum"])


def rfc3339(ts: datetime) -> str:
    """Millisecond RFC 3339 in UTC with a Z, the form the logger writes."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"



def parse_hour(text: str) -> datetime:
    """'2026-11-25T13' (also with ':00' or a full timestamp) -> aware UTC datetime at the hour."""
    for fmt in ("%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text.rstrip("Z"), fmt).replace(tzinfo=UTC, minute=0, second=0)
        except ValueError:
            continue
    raise ValueError(f"not an hour: {text!r} (expected YYYY-MM-DDTHH, e.g. 2026-11-25T13)")


def parse_date(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"not a date: {text!r} (expected YYYY-MM-DD)") from exc
