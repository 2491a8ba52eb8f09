"""Hostile log-format-v2 files, written with fastavro (not the logger), and each record's expected outcome.

`write(landing, hour)` returns {file name: [(request id, expected reason, None for loaded or
"duplicate"), ...]} in record order for the files whose records are read; the whole-file cases are
listed in WHOLE_FILE.
"""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro

from skewless.serving.avroformat import META_VERSION, prediction_schema

FEATURES: dict[str, Any] = {"amount": "numeric", "country": "categorical", "card_present": "boolean",
                            "ip_risk": "numeric"}
WHOLE_FILE = {"cut.avro": "unreadable_file", "corrupt-block.avro": "unreadable_file",
              "not-avro.avro": "unreadable_file"}


def datum(rid: str, at: datetime, **over: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "request_id": rid, "logged_at": at, "model": {"name": "fraud", "version": "v2"},
        "entity": {"user_id": "u9", "email": "z@example.com", "ip": "10.9.8.7"},
        "features": {"amount": 3.5, "country": "FR", "card_present": False, "ip_risk": None},
        "feature_status": {"ip_risk": "timeout"}, "prediction": {"score": 0.5, "outputs": {"decision": "approve"}},
        "sample_rate": 0.5, "context": {"region": "eu-west-1"},
    }
    rec.update(over)
    return rec


def _file(schema: dict[str, Any], records: list[dict[str, Any]], version: str = "2", block: int = 16000,
          codec: str = "deflate") -> bytes:
    out = io.BytesIO()
    w = fastavro.write.Writer(out, fastavro.parse_schema(copy.deepcopy(schema)), codec=codec, sync_interval=block,
                              metadata={META_VERSION: version})
    for r in records:
        w.write(r)
    w.flush()
    return out.getvalue()


def v2_file(path: Path, records: list[dict[str, Any]], codec: str = "deflate") -> Path:
    """A format-v2 file of the fraud model's `FEATURES` holding `records` (`datum`s)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_file(prediction_schema(FEATURES), records, codec=codec))
    return path


def _with_field(schema: dict[str, Any], name: str, new_type: Any) -> dict[str, Any]:
    s = copy.deepcopy(schema)
    for f in s["fields"]:
        if f["name"] == name:
            f["type"] = new_type
    return s


def write(landing: Path, hour: datetime) -> dict[str, list[tuple[str, str | None]]]:
    folder = landing / "predictions" / f"date={hour:%Y-%m-%d}" / f"hour={hour:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    at = hour.replace(tzinfo=UTC) + timedelta(minutes=10)
    schema = prediction_schema(FEATURES)
    expected: dict[str, list[tuple[str, str | None]]] = {}

    rules = [
        (datum("a-ok", at), None),
        (datum(" ", at), "missing_request_id"),
        (datum("a-future", at + timedelta(days=2)), "out_of_range_timestamp"),
        (datum("a-rate", at, sample_rate=0.0), "bad_sample_rate"),
        (datum("a-nan", at, prediction={"score": float("nan"), "outputs": {}}), "non_finite_number"),
        (datum("a-inf", at, features={"amount": float("inf")}), "non_finite_number"),
        (datum("a-dup", at), None),  # also in a v1 file of the same hour, logged later: that one is the duplicate
        (datum("a-dup", at), "duplicate"),  # repeated in this file: counted as a duplicate, not loaded
    ]
    (folder / "rules.avro").write_bytes(_file(schema, [r for r, _ in rules]))
    expected["rules.avro"] = [(r["request_id"], why) for r, why in rules]

    statuses = _with_field(schema, "feature_status", {"type": "map", "values": "string"})
    (folder / "status-strings.avro").write_bytes(_file(statuses, [
        datum("a-status-ok", at), datum("a-status-bad", at, feature_status={"ip_risk": "bogus"})]))
    expected["status-strings.avro"] = [("a-status-ok", None), ("a-status-bad", "bad_feature_status:ip_risk")]

    old = [datum(f"a-old-{i}", at) for i in range(3)]
    (folder / "old-version.avro").write_bytes(_file(schema, old, version="1"))
    expected["old-version.avro"] = [(r["request_id"], "unsupported_schema_version") for r in old]

    changed = copy.deepcopy(schema)
    feats = next(f for f in changed["fields"] if f["name"] == "features")["type"]
    next(f for f in feats["fields"] if f["name"] == "amount")["type"] = ["null", "string"]
    typed = [datum("a-type-str", at, features={"amount": "12.5"}), datum("a-type-null", at, features={"amount": None})]
    (folder / "type-changed.avro").write_bytes(_file(changed, typed))
    expected["type-changed.avro"] = [("a-type-str", "type_mismatch:amount"), ("a-type-null", None)]

    extra = copy.deepcopy(schema)
    extra["fields"].append({"name": "tenant", "type": "string", "default": ""})
    (folder / "unknown-field.avro").write_bytes(_file(extra, [datum("a-unknown", at) | {"tenant": "t1"}]))
    expected["unknown-field.avro"] = [("a-unknown", "unknown_field:tenant")]

    (folder / "zstd.avro").write_bytes(_file(schema, [datum("a-zstd", at)], codec="zstandard"))
    expected["zstd.avro"] = [("a-zstd", None)]

    (folder / "empty.avro").write_bytes(b"")
    (folder / "header-only.avro").write_bytes(_file(schema, []))
    (folder / "not-avro.avro").write_bytes(json.dumps({"request_id": "a-json"}).encode() + b"\n")

    many = [datum(f"a-cut-{i}", at) for i in range(400)]
    whole = _file(schema, many, block=2000)
    (folder / "cut.avro").write_bytes(whole[: int(len(whole) * 0.6)])
    (folder / "corrupt-block.avro").write_bytes(_corrupt_middle_block(_file(schema, [
        datum(f"a-corrupt-{i}", at) for i in range(400)], block=2000)))
    (folder / "dup.jsonl").write_text(json.dumps({
        "schema_version": 1, "request_id": "a-dup", "logged_at": (at + timedelta(seconds=1)).strftime(
            "%Y-%m-%dT%H:%M:%S.000Z"), "model": {"name": "fraud", "version": "v1"}, "entity": {},
        "features": {}, "prediction": {"score": 0.1}, "sample_rate": 0.5}) + "\n")
    return expected


def _corrupt_middle_block(data: bytes) -> bytes:
    """Overwrite bytes inside the compressed data of a middle block; its sync marker stays intact."""
    blocks = list(fastavro.block_reader(io.BytesIO(data)))
    assert len(blocks) > 4
    sync = data[-16:]
    starts = [i + 16 for i in range(len(data)) if data.startswith(sync, i)]
    mid = starts[len(starts) // 2]
    cut = bytearray(data)
    for i in range(mid + 10, mid + 60):
        cut[i] ^= 0x5A
    return bytes(cut)


def readable_prefix(path: Path) -> int:
    """Records fastavro reads from a file before it fails: counted here, not by the job."""
    n = 0
    try:
        with path.open("rb") as fh:
            for _ in fastavro.reader(fh):
                n += 1
    except Exception:  # noqa: BLE001 - the cut or corrupt point
        pass
    return n
