"""Log format v2: Avro object container files whose writer schema is generated from the model's
declared features. Pure Python (no Spark), shared by the serving logger and the warehouse's checks.

Schema minimization: each feature is a typed field of a `Features` record (a union with null), so a
record carries no feature names, quotes or digits as text. The top-level fields are the v1 contract
without `schema_version`, which is file-level: the file's metadata `skewless.schema_version` = "2".

A record either fits the schema exactly, or it is not written as Avro at all: `to_avro_record`
returns None and the logger writes the record as a v1 JSON line into the same landing hour, where
compaction quarantines it with the v1 reason (`type_mismatch:amount`, `bad_timestamp`, ...) or, for
an undeclared feature, loads it as v1 does. Nothing is coerced and nothing is dropped.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from skewless.core.names import FeatureType
from skewless.serving.logformat import feature_statuses

SCHEMA_VERSION_V2 = 2
META_VERSION = "skewless.schema_version"
META_MODEL = "skewless.model"
NAMESPACE = "io.skewless.log.v2"
CODECS = ("deflate", "zstandard", "null")
AVRO_TYPES: dict[str, str] = {"numeric": "double", "categorical": "string", "boolean": "boolean"}
TOP_FIELDS = ("request_id", "logged_at", "model", "entity", "features", "feature_status", "prediction",
              "sample_rate", "context")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
_V1_FIELDS = frozenset({"schema_version", *TOP_FIELDS})


def prediction_schema(features: Mapping[str, FeatureType]) -> dict[str, Any]:
    """The v2 writer schema for a model with these declared features (in this order)."""
    strings = {"type": "map", "values": "string"}
    return {
        "type": "record", "name": "Prediction", "namespace": NAMESPACE,
        "doc": "skewless prediction log, format v2 (docs/log-format.md)",
        "fields": [
            {"name": "request_id", "type": "string"},
            {"name": "logged_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
            {"name": "model", "type": {"type": "record", "name": "Model", "fields": [
                {"name": "name", "type": "string"}, {"name": "version", "type": "string"}]}},
            {"name": "entity", "type": strings},
            {"name": "features", "type": {"type": "record", "name": "Features", "fields": [
                {"name": name, "type": ["null", AVRO_TYPES[ftype]], "default": None}
                for name, ftype in features.items()]}},
            {"name": "feature_status", "type": {"type": "map", "values": {
                "type": "enum", "name": "FeatureStatus", "symbols": list(feature_statuses())}}},
            {"name": "prediction", "type": {"type": "record", "name": "Output", "fields": [
                {"name": "score", "type": "double"}, {"name": "outputs", "type": strings}]}},
            {"name": "sample_rate", "type": "double"},
            {"name": "context", "type": strings},
        ],
    }


def parse_rfc3339(text: object) -> datetime | None:
    """The v1 timestamp rule (RFC 3339 with an offset, 0-9 fraction digits) -> aware datetime, or None.
    Digits past the microsecond are cut, as Spark's timestamp (microseconds) does."""
    m = _RFC3339.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    frac = (m.group(2) or "")[:6].ljust(6, "0")
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    try:
        return datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")
    except ValueError:
        return None


def _typed_features(feats: Mapping[str, Any], features: Mapping[str, FeatureType]) -> dict[str, Any] | None:
    """The Features record (every declared feature, null when absent), or None when a value is
    undeclared or not of its feature's type. One pass, on the logger's hot path."""
    out: dict[str, Any] = dict.fromkeys(features)
    for name, value in feats.items():
        ftype = features.get(name)
        if ftype is None:
            return None
        if value is None:
            continue
        if ftype == "numeric":
            if type(value) is not float and (isinstance(value, bool) or not isinstance(value, int | float)):
                return None
            if not math.isfinite(value):
                return None
            value = float(value)
        elif not isinstance(value, bool if ftype == "boolean" else str):
            return None
        out[name] = value
    return out


def _strings(value: object) -> dict[str, str] | None:
    if value is None:
        return {}
    if isinstance(value, dict) and all(type(k) is str and type(v) is str for k, v in value.items()):
        return dict(value)
    return None


def to_avro_record(record: Mapping[str, Any], features: Mapping[str, FeatureType],
                   statuses: frozenset[str] = frozenset(feature_statuses())) -> dict[str, Any] | None:
    """A v1-shaped record -> the v2 Avro datum, or None when it does not fit v2 exactly (a missing or
    mistyped field, a non-finite number, an undeclared feature, an unknown field, a bad status)."""
    if not _V1_FIELDS.issuperset(record) or record.get("schema_version", 1) != 1:
        return None
    request_id, model, prediction = record.get("request_id"), record.get("model"), record.get("prediction")
    rate = record.get("sample_rate")
    logged_at = record.get("logged_at")
    ts = logged_at if isinstance(logged_at, datetime) and logged_at.tzinfo else parse_rfc3339(logged_at)
    if (not isinstance(request_id, str) or ts is None or not isinstance(model, dict)
            or not isinstance(model.get("name"), str) or not isinstance(model.get("version"), str)
            or set(model) - {"name", "version"} or not isinstance(prediction, dict)
            or not isinstance(rate, int | float) or isinstance(rate, bool) or not math.isfinite(rate)):
        return None
    score = prediction.get("score")
    if not isinstance(score, int | float) or isinstance(score, bool) or not math.isfinite(score):
        return None
    # Outputs other than the score are strings in v2; another type is logged as v1 (its text is v1's).
    outputs = {k: v for k, v in prediction.items() if k != "score"}
    feats = record.get("features") or {}
    status = record.get("feature_status") or {}
    entity, context = _strings(record.get("entity")), _strings(record.get("context"))
    if (not all(isinstance(v, str) for v in outputs.values()) or entity is None or context is None
            or not isinstance(feats, dict)
            or not isinstance(status, dict) or not all(s in statuses for s in status.values())):
        return None
    typed = _typed_features(feats, features)
    if typed is None:
        return None
    return {
        "request_id": request_id, "logged_at": ts.astimezone(UTC), "model": {"name": model["name"],
                                                                             "version": model["version"]},
        "entity": entity, "features": typed, "feature_status": dict(status),
        "prediction": {"score": float(score), "outputs": outputs}, "sample_rate": float(rate), "context": context,
    }
