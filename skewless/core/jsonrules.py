"""JSON checks shared by the line parsers (predictions, labels): JSON types of VARIANT values, and why
a line the VARIANT parser refused was refused. Pure Column expressions."""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# A NaN/Infinity token where a value starts (not inside a string, for any sane line).
NON_FINITE = r"[:,\[]\s*-?(NaN|Infinity)\s*[,}\]]"


def variant_type(value: Column) -> Column:
    """A VARIANT's JSON type: 'VOID' (JSON null), 'STRING', 'BOOLEAN', 'BIGINT', 'DECIMAL(p,s)',
    'DOUBLE', 'OBJECT<...>', 'ARRAY<...>'; null when the value is absent."""
    return F.schema_of_variant(value)


def is_number(vtype: Column) -> Column:
    return vtype.isin("BIGINT", "INT", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT") | vtype.startswith("DECIMAL")


def has_duplicate_key(text: Column, objects: tuple[str, ...]) -> Column:
    """Whether the line's top-level object, or one of its `objects`, repeats a key. (A duplicate
    stops the VARIANT parser; Jackson's key listing keeps them: compare with the distinct keys.)"""
    def repeats(keys: Column) -> Column:
        return F.coalesce(F.size(keys) != F.size(F.array_distinct(keys)), F.lit(False))

    found = repeats(F.json_object_keys(text))
    for name in objects:
        found = found | repeats(F.json_object_keys(F.get_json_object(text, f"$.{name}")))
    return found
