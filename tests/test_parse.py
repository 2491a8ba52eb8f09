"""Every quarantine reason, and the typed columns of a loadable record, on inline lines."""

import json
from datetime import timedelta

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.errors import MissingColumnsError
from skewless.ingest.parse import ParseRules, classify, parse_lines

from .conftest import HOUR, record

RULES = ParseRules(HOUR.replace(tzinfo=None), timedelta(hours=72), timedelta(minutes=15),
                   {"amount": "numeric", "country": "categorical", "card_present": "boolean", "ip_risk": "numeric"})


def _lines(spark: SparkSession, texts: list[str]) -> DataFrame:
    rows = [(t, "file:/landing/a.jsonl", 0, i, HOUR.replace(tzinfo=None)) for i, t in enumerate(texts)]
    return spark.createDataFrame(rows, f"{N.RAW_VALUE} string, {N.SOURCE_FILE} string, {N.SPLIT_START} long, "
                                       f"{N.ROW_ID} long, {N.LANDING_HOUR} timestamp")


def _reasons(spark: SparkSession, texts: list[str]) -> list[str | None]:
    out = classify(parse_lines(_lines(spark, texts)), RULES).orderBy(N.ROW_ID).select(N.REASON).collect()
    return [r[0] for r in out]


def _j(**overrides: object) -> str:
    return json.dumps({**record("r1"), **overrides})


CASES = [
    ('{"request_id": "r1", "logged_at": ', "malformed_json"),
    ("\x00\x00 binary garbage", "malformed_json"),
    ("[1, 2, 3]", "not_an_object"),
    ("   ", "empty_record"),
    (_j(schema_version=2), "unsupported_schema_version"),
    (json.dumps({k: v for k, v in record("r1").items() if k != "schema_version"}), "unsupported_schema_version"),
    (_j(request_id=None), "missing_request_id"),
    (_j(request_id="  "), "missing_request_id"),
    (_j(logged_at=None), "missing_logged_at"),
    (_j(logged_at="25/11/2026 13:04"), "bad_timestamp"),
    (_j(logged_at="2026-11-25T13:04:05"), "bad_timestamp"),  # RFC 3339 requires an offset
    (_j(logged_at="2026-11-21T13:04:05Z"), "out_of_range_timestamp"),  # older than the late tolerance
    (_j(logged_at="2026-11-25T14:20:00Z"), "out_of_range_timestamp"),  # after the hour + 15 minutes
    (_j(model={"name": "fraud"}), "missing_model"),
    (_j(prediction={"decision": "approve"}), "missing_score"),
    (_j(prediction={"score": "high"}), "type_mismatch:prediction.score"),
    (json.dumps({k: v for k, v in record("r1").items() if k != "sample_rate"}), "missing_sample_rate"),
    (_j(sample_rate="ten percent"), "type_mismatch:sample_rate"),
    (_j(sample_rate=0), "bad_sample_rate"),
    (_j(sample_rate=1.5), "bad_sample_rate"),
    (_j(feature_status={"ip_risk": "slow"}), "bad_feature_status:ip_risk"),
    (_j(features={"amount": "N/A"}), "type_mismatch:amount"),
    (_j(features={"amount": 1.0, "card_present": "maybe"}), "type_mismatch:card_present"),
    (_j(entity="u1"), "type_mismatch:entity"),
    (_j(features=[1, 2]), "type_mismatch:features"),
    # Strict types: the JSON type decides, never a conversion.
    (_j(features={"amount": "1.5"}), "type_mismatch:amount"),
    (_j(features={"country": 49}), "type_mismatch:country"),
    (_j(features={"country": {"iso": "DE"}}), "type_mismatch:country"),
    (_j(features={"card_present": "true"}), "type_mismatch:card_present"),
    (_j(features={"card_present": 1}), "type_mismatch:card_present"),
    (_j(request_id=42), "type_mismatch:request_id"),
    (_j(sample_rate="0.1"), "type_mismatch:sample_rate"),
    (_j(schema_version="1"), "unsupported_schema_version"),
    (_j(prediction={"score": "0.5"}), "type_mismatch:prediction.score"),
    (_j(entity={"user_id": 7}), "type_mismatch:entity"),
    (_j(context={"region": ["eu"]}), "type_mismatch:context"),
    (_j(model={"name": "fraud", "version": 1}), "type_mismatch:model"),
    (_j(feature_status={"ip_risk": None}), "bad_feature_status:ip_risk"),  # was a NULL reason: loaded
    (_j(feature_status={"amount": "ok", "ip_risk": 3}), "bad_feature_status:ip_risk"),
    (_j(surprise=1), "unknown_field:surprise"),
    ('{"schema_version": 1, "request_id": "a", "request_id": "b"}', "duplicate_key"),
    (_j().replace('"amount": 12.5', '"amount": NaN'), "non_finite_number"),
    (_j().replace('"score": 0.25', '"score": -Infinity'), "non_finite_number"),
    ("\r", "empty_record"),
]


def test_each_quarantine_reason(spark: SparkSession) -> None:
    # One frame for all cases (one Spark job); a mismatch names its case.
    got = _reasons(spark, [text for text, _ in CASES])
    wrong = [(i, text[:80], want, have) for i, ((text, want), have) in enumerate(zip(CASES, got, strict=True))
             if want != have]
    assert not wrong, wrong


def test_quirks_are_data_not_errors(spark: SparkSession) -> None:
    quirky = [
        _j(features={"amount": None, "ip_risk": None}, feature_status={"amount": "timeout", "ip_risk": "error"}),
        _j(features={"amount": 3, "brand_new_feature": "x"}),  # undeclared feature: kept, not an error
        _j(logged_at="2026-11-25T12:58:00.5+01:00"),  # an offset, and late by an hour: still loadable
        _j(model={"name": "unknown_model", "version": "v9"}),
    ]
    assert _reasons(spark, quirky) == [None] * len(quirky)


def test_loadable_record_is_typed(spark: SparkSession) -> None:
    out = classify(parse_lines(_lines(spark, [_j()])), RULES).select(
        N.REQUEST_ID, N.LOGGED_AT, "model.name", "features.amount", "features.country", "features.card_present",
        "features.ip_risk", F.col("feature_status")["ip_risk"].alias("ip_risk_status"), "prediction.score",
        F.col("prediction.outputs")["decision"].alias("decision"), N.SAMPLE_RATE, N.RAW_TEXT)
    expected = out.sparkSession.createDataFrame(
        [("r1", HOUR.replace(minute=10, tzinfo=None), "fraud", 12.5, "DE", True, None, "timeout", 0.25,
          "approve", 0.1, None)], out.schema)
    assertDataFrameEqual(out, expected)


def test_quarantined_rows_keep_their_raw_text(spark: SparkSession) -> None:
    bad = '{"request_id": "r9", truncated'
    row = classify(parse_lines(_lines(spark, [bad])), RULES).select(N.REASON, N.RAW_TEXT, N.RECORD_HASH).first()
    assert row is not None
    assert (row[N.REASON], row[N.RAW_TEXT], row[N.RECORD_HASH]) == ("malformed_json", bad, None)


def test_missing_columns_are_named(spark: SparkSession) -> None:
    with pytest.raises(MissingColumnsError, match=r"parse_lines: missing columns \['_row_id'"):
        parse_lines(_lines(spark, ["{}"]).drop(N.ROW_ID))
