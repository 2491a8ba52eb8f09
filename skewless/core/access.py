"""Access tags on every column of every table, and the role-scoped views `skewless sql --role` reads.

A tag is the column's access class in its Delta column metadata (`skewless.access`), nested fields
included, written with the data (the writer's schema carries it; new columns bring theirs). A struct
column's own tag is the highest class among its fields. A column without a tag is treated as
restricted: access fails closed.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.policy import ACCESS_ORDER, Access, PrivacyPolicy

TAG = "skewless.access"
POLICY_PROPERTY = "skewless.privacy.policy"

# Columns the jobs derive or add (not logged fields): their classes are fixed here.
DERIVED: dict[str, Access] = {
    N.EVENT_DATE: "public", N.EVENT_HOUR: "public", N.LANDING_HOUR: "internal", N.LANDING_DATE: "internal",
    N.SOURCE_FILE: "internal", N.SOURCE_LINE: "internal", N.RECORD_HASH: "internal", N.RUN_ID: "internal",
    N.INGESTED_AT: "internal", N.LABEL_DATE: "public",
}
# Tables whose every column is one class: raw text (quarantines), the forget log, the audit.
WHOLE_TABLE: dict[str, Access] = {
    N.FEATURE_LOGS_QUARANTINE: "restricted", N.LABELS_QUARANTINE: "restricted",
    N.PRIVACY_REQUESTS: "restricted", N.INGESTION_AUDIT: "internal", N.DATASET_VERSIONS: "internal",
    N.FORGOTTEN_SUBJECTS: "restricted", N.SKEW_TESTS: "internal",
    N.DRIFT_METRICS: "internal", N.DRIFT_REFERENCES: "internal",
}
LABEL_CLASS: Access = "internal"  # labels and label-derived columns: model targets, not for every analyst


def highest(classes: list[Access]) -> Access:
    return max(classes, key=ACCESS_ORDER.index) if classes else "restricted"


def column_classes(table: str, schema: T.StructType, policy: PrivacyPolicy) -> dict[str, Access]:
    """Access class of every leaf column path of `table` (e.g. `entity.email`, `features.amount`)."""
    out: dict[str, Access] = {}
    for f in schema.fields:
        if table in WHOLE_TABLE:
            out.update({p: WHOLE_TABLE[table] for p in _leaves(f, f.name)})
            continue
        for path in _leaves(f, f.name):
            out[path] = _class_of(table, path, policy)
    return out


def _leaves(f: T.StructField, path: str) -> list[str]:
    if isinstance(f.dataType, T.StructType) and f.name in (N.ENTITY, N.CONTEXT, N.PREDICTION, N.FEATURES):
        return [f"{path}.{c.name}" for c in f.dataType.fields]
    return [path]


def _class_of(table: str, path: str, policy: PrivacyPolicy) -> Access:
    fp = policy.lookup(path)
    if fp is not None:
        return fp.access
    if path in DERIVED:
        return DERIVED[path]
    if table in (N.LABELS, N.LABELED_EXAMPLES):
        return LABEL_CLASS
    return "restricted"  # not named anywhere: fail closed


def tag_schema(schema: T.StructType, classes: Mapping[str, Access]) -> T.StructType:
    """`schema` with `skewless.access` metadata on every field and struct member: a member has its own
    class or, if it has none, its column's; a struct column is tagged with its highest member class."""
    fields = []
    for f in schema.fields:
        own = classes.get(f.name)
        if isinstance(f.dataType, T.StructType) and f.dataType.fields:
            subs = [T.StructField(c.name, c.dataType, c.nullable,
                                  {**c.metadata, TAG: classes.get(f"{f.name}.{c.name}", own or "restricted")})
                    for c in f.dataType.fields]
            tag = highest([s.metadata[TAG] for s in subs])
            fields.append(T.StructField(f.name, T.StructType(subs), f.nullable, {**f.metadata, TAG: tag}))
        else:
            fields.append(T.StructField(f.name, f.dataType, f.nullable, {**f.metadata, TAG: own or "restricted"}))
    return T.StructType(fields)


def tagged(df: DataFrame, table: str, policy: PrivacyPolicy) -> DataFrame:
    """`df` with its columns' access tags in the schema, so the write stores them with the table."""
    return df.to(tag_schema(df.schema, column_classes(table, df.schema, policy)))


def read_tags(schema: T.StructType) -> dict[str, Access | None]:
    """The stored tag of every column path (struct fields one level down); None where untagged."""
    out: dict[str, Access | None] = {}
    for f in schema.fields:
        out[f.name] = f.metadata.get(TAG)
        if isinstance(f.dataType, T.StructType):
            for c in f.dataType.fields:
                out[f"{f.name}.{c.name}"] = c.metadata.get(TAG)
    return out


def role_view(df: DataFrame, clearance: tuple[Access, ...]) -> tuple[DataFrame | None, dict[str, str]]:
    """The columns (and struct fields) of a table a role may read, and the hidden ones with their class.
    None when the role may read no column at all."""
    hidden: dict[str, str] = {}
    cols: list[Column] = []
    for f in df.schema.fields:
        if isinstance(f.dataType, T.StructType) and any(TAG in c.metadata for c in f.dataType.fields):
            keep = []
            for c in f.dataType.fields:
                cls = c.metadata.get(TAG, "restricted")
                if cls in clearance:
                    keep.append(F.col(f.name)[c.name].alias(c.name))
                else:
                    hidden[f"{f.name}.{c.name}"] = cls
            if keep:
                cols.append(F.struct(*keep).alias(f.name))
            continue
        cls = f.metadata.get(TAG, "restricted")
        if cls in clearance:
            cols.append(F.col(f.name))
        else:
            hidden[f.name] = cls
    return (df.select(*cols) if cols else None), hidden
