"""What the warehouse accepts of a v2 file's writer schema (its header), decided once per distinct schema.

Pure Python. A file's schema is checked as a whole against the v2 contract; a file that breaks it
quarantines every record it holds with one reason (its raw text still kept), and the rest of the
hour loads. Feature fields are not part of that check: a feature whose type differs from the
warehouse's is a per-record `type_mismatch:<feature>` (its null values still load), as in v1.

Compatible changes (loaded as they are): features added or removed, a feature's numeric width (int,
long, float, double are all numeric), a field made nullable, `timestamp-millis` for `logged_at`, a
string map for `feature_status` instead of the enum, a new codec Avro reads. Anything else is a new
schema version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from skewless.core import names as N
from skewless.core.names import FeatureType
from skewless.serving.avroformat import META_VERSION, SCHEMA_VERSION_V2, TOP_FIELDS

_NUMERIC = frozenset({"int", "long", "float", "double"})
_REQUIRED = {N.REQUEST_ID: N.MISSING_REQUEST_ID, N.LOGGED_AT: N.MISSING_LOGGED_AT, N.MODEL: N.MISSING_MODEL,
             N.PREDICTION: N.MISSING_SCORE, N.SAMPLE_RATE: N.MISSING_SAMPLE_RATE}


@dataclass(frozen=True)
class WriterSchema:
    """A writer schema as compaction uses it: the reason every record of its files gets (None: none),
    the type of each feature field (None: not a feature type), and the schema's JSON text."""

    text: str
    reason: str | None
    features: Mapping[str, FeatureType | None] = field(default_factory=dict)
    fields: tuple[str, ...] = ()
    status_enum: bool = True


def _base(t: Any) -> tuple[Any, bool]:
    """(the non-null branch of a ["null", T] union or T itself, nullable); unions of two types stay."""
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return (rest[0] if len(rest) == 1 else t), "null" in t
    return t, False


def _name(t: Any) -> Any:
    return t.get("type") if isinstance(t, dict) and t.get("type") in ("string", "long", "double", "boolean") \
        and "logicalType" not in t else t


def feature_type(t: Any) -> FeatureType | None:
    base = _name(_base(t)[0])
    if base in _NUMERIC:
        return "numeric"
    by_avro: dict[str, FeatureType] = {"string": "categorical", "boolean": "boolean"}
    return by_avro.get(base) if isinstance(base, str) else None


def _is_map(t: Any, values: str) -> bool:
    t = _base(t)[0]
    if not (isinstance(t, dict) and t.get("type") == "map"):
        return False
    v = _name(_base(t["values"])[0])
    return v == values or (values == "enum" and isinstance(v, dict) and v.get("type") == "enum")


def _record(t: Any, fields: Mapping[str, frozenset[str]]) -> bool:
    t = _base(t)[0]
    if not (isinstance(t, dict) and t.get("type") == "record"):
        return False
    have = {f["name"]: _name(_base(f["type"])[0]) for f in t.get("fields", [])}
    return all(name in have and have[name] in kinds for name, kinds in fields.items())


def _field_ok(name: str, t: Any) -> bool:
    base = _name(_base(t)[0])
    checks = {
        N.REQUEST_ID: lambda: base == "string",
        N.LOGGED_AT: lambda: isinstance(base, dict) and base.get("type") == "long"
        and base.get("logicalType") in ("timestamp-micros", "timestamp-millis"),
        N.MODEL: lambda: _record(t, {"name": frozenset({"string"}), "version": frozenset({"string"})}),
        N.ENTITY: lambda: _is_map(t, "string"),
        N.CONTEXT: lambda: _is_map(t, "string"),
        N.FEATURE_STATUS: lambda: _is_map(t, "string") or _is_map(t, "enum"),
        N.PREDICTION: lambda: _record(t, {"score": _NUMERIC}) and _outputs_ok(t),
        N.SAMPLE_RATE: lambda: base in _NUMERIC,
        N.FEATURES: lambda: isinstance(base, dict) and base.get("type") == "record",
    }
    return checks[name]()


def _outputs_ok(t: Any) -> bool:
    fields = {f["name"]: f["type"] for f in _base(t)[0].get("fields", [])}
    return set(fields) <= {"score", "outputs"} and ("outputs" not in fields or _is_map(fields["outputs"], "string"))


def check_writer_schema(metadata: Mapping[str, str]) -> WriterSchema:
    """A v2 file's header metadata -> how its records are read, or the one reason they all get."""
    text = metadata.get("avro.schema", "")
    try:
        schema = json.loads(text)
    except ValueError:
        return WriterSchema(text, N.UNSUPPORTED_SCHEMA_VERSION)
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return WriterSchema(text, N.UNSUPPORTED_SCHEMA_VERSION)
    top = {f["name"]: f["type"] for f in schema.get("fields", [])}
    if metadata.get(META_VERSION) != str(SCHEMA_VERSION_V2):
        return WriterSchema(text, N.UNSUPPORTED_SCHEMA_VERSION, fields=tuple(top))
    unknown = sorted(set(top) - set(TOP_FIELDS))
    missing = [reason for name, reason in _REQUIRED.items() if name not in top]
    reason = (f"{N.UNKNOWN_FIELD}:{unknown[0]}" if unknown else missing[0] if missing else
              next((f"{N.TYPE_MISMATCH}:{n}" for n, t in top.items() if not _field_ok(n, t)), None))
    feats = _base(top.get(N.FEATURES, {"fields": []}))[0]
    features = {f["name"]: feature_type(f["type"]) for f in feats.get("fields", [])} if isinstance(feats, dict) else {}
    return WriterSchema(text, reason, features, tuple(top), status_enum=not _is_map(top.get(N.FEATURE_STATUS),
                                                                                        "string"))
