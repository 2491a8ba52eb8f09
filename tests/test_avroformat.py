"""Log format v2 without Spark: the generated schema, which records fit it, the Avro logger and its
v1 fallback, and what the warehouse accepts of a writer schema."""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skewless.ingest.avroschema import check_writer_schema
from skewless.serving.avroformat import META_VERSION, prediction_schema, to_avro_record
from skewless.serving.logger import PredictionLogger

from .conftest import record

FEATURES: dict[str, Any] = {"amount": "numeric", "country": "categorical", "card_present": "boolean",
                            "ip_risk": "numeric"}
T0 = datetime(2026, 11, 25, 13, 10, tzinfo=UTC)


def test_a_valid_v1_record_becomes_a_typed_datum() -> None:
    datum = to_avro_record(record("r1", features={"amount": 12, "country": "DE", "card_present": True,
                                                  "ip_risk": None}), FEATURES)
    assert datum is not None
    assert datum["logged_at"] == T0 and datum["features"] == {"amount": 12.0, "country": "DE",
                                                              "card_present": True, "ip_risk": None}
    assert datum["prediction"] == {"score": 0.25, "outputs": {"decision": "approve"}}
    assert isinstance(datum["features"]["amount"], float)
    # Nine fraction digits are cut to Spark's microseconds, as v1's parser does.
    nine = to_avro_record(record("r2", logged_at="2026-11-25T14:10:00.123456789+01:00"), FEATURES)
    assert nine is not None and nine["logged_at"] == T0.replace(microsecond=123456)


@pytest.mark.parametrize("override", [
    {"features": {"amount": "1.5"}}, {"features": {"amount": True}}, {"features": {"card_present": 1}},
    {"features": {"amount": float("nan")}}, {"features": {"undeclared": 1.0}}, {"request_id": None},
    {"logged_at": "2026-11-25 13:10:00Z"}, {"logged_at": "2026-11-25T13:10:00"}, {"model": {"name": "fraud"}},
    {"prediction": {"decision": "x"}}, {"prediction": {"score": "0.5"}}, {"prediction": {"score": 0.5, "n": 3}},
    {"entity": {"user_id": 7}}, {"feature_status": {"ip_risk": "slow"}}, {"sample_rate": "0.1"},
    {"schema_version": 2}, {"tenant": "t1"}, {"context": ["eu"]},
])
def test_a_record_that_does_not_fit_v2_exactly_is_not_encoded(override: dict[str, Any]) -> None:
    assert to_avro_record({**record("r1"), **override}, FEATURES) is None


_value = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                   st.text(max_size=5))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["amount", "country", "card_present", "ip_risk", "other"]), _value))
def test_what_is_encoded_reads_back_as_the_same_values(features: dict[str, Any]) -> None:
    schema = fastavro.parse_schema(prediction_schema(FEATURES))
    datum = to_avro_record(record("r1", features=features), FEATURES)
    ok = all(n in FEATURES and (v is None or (
        FEATURES[n] == "numeric" and isinstance(v, int | float) and not isinstance(v, bool) and v == v
        and abs(v) != float("inf")) or (FEATURES[n] == "boolean" and isinstance(v, bool))
        or (FEATURES[n] == "categorical" and isinstance(v, str))) for n, v in features.items())
    assert (datum is not None) == ok
    if datum is not None:
        back: Any = fastavro.schemaless_reader(_encoded(schema, datum), schema, schema)
        assert back["features"] == {n: (float(features[n]) if FEATURES[n] == "numeric" and features.get(n) is not None
                                        else features.get(n)) for n in FEATURES}


def _encoded(schema: Any, datum: dict[str, Any]) -> Any:
    import io

    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, datum)
    buf.seek(0)
    return buf


def _logger(root: Path, **kw: Any) -> PredictionLogger:
    return PredictionLogger(root, host="h", sample_rate=1.0, background=False, clock=lambda: T0,
                            log_format="avro", features=FEATURES, model="fraud", **kw)


@pytest.mark.parametrize("codec", ["deflate", "zstandard"])
def test_the_avro_logger_writes_v2_and_falls_back_to_v1_for_the_rest(tmp_path: Path, codec: str) -> None:
    logger = _logger(tmp_path, codec=codec)
    for i in range(50):
        logger.log(f"r{i}", model=("fraud", "v3"), features={"amount": i, "country": "DE"},
                   prediction={"score": 0.5}, entity={"user_id": "u1"}, logged_at=T0)
    logger.log("bad", model=("fraud", "v3"), features={"amount": "N/A"}, prediction={"score": 0.5}, logged_at=T0)
    logger.log("new", model=("fraud", "v3"), features={"brand_new": 1.0}, prediction={"score": 0.5}, logged_at=T0)
    logger.close()
    assert logger.counters() | {"seen": 0} == {"seen": 0, "sampled": 52, "written": 52, "dropped": 0,
                                               "fallback": 2, "files": 2}
    avro, = tmp_path.glob("predictions/date=2026-11-25/hour=13/*.avro")
    with avro.open("rb") as fh:
        reader = fastavro.reader(fh)
        rows: list[Any] = list(reader)
        assert reader.codec == codec and reader.metadata[META_VERSION] == "2"
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(50)]
    assert rows[7]["features"] == {"amount": 7.0, "country": "DE", "card_present": None, "ip_risk": None}
    jsonl, = tmp_path.glob("predictions/date=2026-11-25/hour=13/*.jsonl.gz")
    fallback = [json.loads(x) for x in gzip.decompress(jsonl.read_bytes()).splitlines()]
    assert [(r["request_id"], r["features"]) for r in fallback] == [("bad", {"amount": "N/A"}),
                                                                    ("new", {"brand_new": 1.0})]
    assert not list(tmp_path.rglob(".*inprogress"))


def test_the_same_traffic_gives_byte_identical_avro_files(tmp_path: Path) -> None:
    for run in ("a", "b"):
        logger = _logger(tmp_path / run)
        for i in range(20):
            logger.log(f"r{i}", model=("fraud", "v3"), features={"amount": i}, prediction={"score": 0.1}, logged_at=T0)
        logger.close()
    a, b = (next((tmp_path / r).rglob("*.avro")).read_bytes() for r in ("a", "b"))
    assert a == b


@pytest.mark.parametrize(("kw", "match"), [
    ({"log_format": "parquet"}, "log_format must be"), ({"features": {}}, "needs the model's declared features"),
    ({"codec": "snappy"}, "codec"),
])
def test_a_bad_avro_logger_is_refused_at_construction(tmp_path: Path, kw: dict[str, Any], match: str) -> None:
    args: dict[str, Any] = {"log_format": "avro", "features": FEATURES} | kw
    with pytest.raises(ValueError, match=match):
        PredictionLogger(tmp_path, host="h", sample_rate=1.0, background=False, **args)


def _meta(schema: dict[str, Any], version: str = "2") -> dict[str, str]:
    return {"avro.schema": json.dumps(schema), META_VERSION: version}


def _edit(name: str, new_type: Any) -> dict[str, Any]:
    s = copy.deepcopy(prediction_schema(FEATURES))
    for f in s["fields"]:
        if f["name"] == name:
            f["type"] = new_type
    return s


@pytest.mark.parametrize(("meta", "reason"), [
    (_meta(prediction_schema(FEATURES)), None),
    (_meta(_edit("logged_at", {"type": "long", "logicalType": "timestamp-millis"})), None),
    (_meta(_edit("request_id", ["null", "string"])), None),
    (_meta(_edit("feature_status", {"type": "map", "values": "string"})), None),
    (_meta(prediction_schema(FEATURES), version="1"), "unsupported_schema_version"),
    (_meta(prediction_schema(FEATURES), version="3"), "unsupported_schema_version"),
    ({"avro.schema": "{not json"}, "unsupported_schema_version"),
    (_meta(_edit("request_id", "long")), "type_mismatch:request_id"),
    (_meta(_edit("logged_at", "string")), "type_mismatch:logged_at"),
    (_meta(_edit("entity", {"type": "map", "values": "long"})), "type_mismatch:entity"),
    (_meta(_edit("sample_rate", "string")), "type_mismatch:sample_rate"),
    (_meta({**prediction_schema(FEATURES), "fields": [f for f in prediction_schema(FEATURES)["fields"]
                                                      if f["name"] != "request_id"]}), "missing_request_id"),
    (_meta({**prediction_schema(FEATURES), "fields": [*prediction_schema(FEATURES)["fields"],
                                                      {"name": "tenant", "type": "string"}]}), "unknown_field:tenant"),
])
def test_a_writer_schema_is_accepted_or_gets_one_reason(meta: dict[str, str], reason: str | None) -> None:
    assert check_writer_schema(meta).reason == reason


def test_feature_types_come_from_the_writer_schema() -> None:
    schema = prediction_schema({"a": "numeric", "b": "categorical", "c": "boolean"})
    feats = next(f for f in schema["fields"] if f["name"] == "features")["type"]["fields"]
    feats += [{"name": "d", "type": "int"}, {"name": "e", "type": ["null", "bytes"]}]
    checked = check_writer_schema(_meta(schema))
    assert dict(checked.features) == {"a": "numeric", "b": "categorical", "c": "boolean", "d": "numeric", "e": None}
    assert checked.status_enum and checked.reason is None
