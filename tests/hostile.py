"""A hostile landing corpus: every case with the outcome the format's rules require.

    python -m tests.hostile LANDING_DIR      (writes one prediction hour and one label date)

Each prediction case is one line of `hostile.jsonl` (plain, LF); its expected outcome is `None`
(loads) or the quarantine reason. Other files test the file-level rules: CRLF (plain and gzip), empty
files, a `.gz` that is not gzip, a gzip cut short, and a gzip of several members.
"""

from __future__ import annotations

import gzip
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from .conftest import record

HOUR = datetime(2026, 11, 25, 13)
LABEL_DAY = "2026-12-01"
BIG_BYTES = 50 * 1024 * 1024  # the 50 MB single line


def _j(rid: str, **over: Any) -> str:
    return json.dumps(record(rid, **over))


def _nested(depth: int) -> str:
    return '{"a":' * depth + '"x"' + "}" * depth


def prediction_cases() -> list[tuple[bytes, str | None]]:
    ok = _j("h-ok")
    return [
        (ok.encode(), None),
        (_j("h-utf8").replace("DE", "D\udcff").encode("utf-8", "surrogateescape"), "invalid_utf8"),
        (_j("h-nul").replace("eu-west-1", "eu\x00west").encode(), "malformed_json"),  # raw NUL in a string
        (_j("h-big", context={"blob": "x" * BIG_BYTES}).encode(), "record_too_large"),
        (_j("h-deep").replace('"region": "eu-west-1"', '"region": ' + _nested(5000)).encode(), "malformed_json"),
        (_j("h-nested", context={"region": json.loads(_nested(50))}).encode(), "type_mismatch:context"),
        (_j("h-numstr", features={"amount": "12.5"}).encode(), "type_mismatch:amount"),
        (ok.replace('"amount": 12.5', '"amount": NaN').replace("h-ok", "h-nan").encode(), "non_finite_number"),
        (ok.replace('"score": 0.25', '"score": Infinity').replace("h-ok", "h-inf").encode(), "non_finite_number"),
        (_j("h-1e308", features={"amount": 1e308}).encode(), None),
        (_j("h-negzero", features={"amount": -0.0}).encode(), None),
        (_j("h-no-offset", logged_at="2026-11-25T13:10:00").encode(), "bad_timestamp"),
        (_j("h-9999", logged_at="9999-12-31T23:59:59Z").encode(), "out_of_range_timestamp"),
        (ok.replace('"request_id": "h-ok"', '"request_id": "h-dup", "request_id": "h-dup2"').encode(), "duplicate_key"),
        (ok.replace('"amount": 12.5', '"amount": 12.5, "amount": 13').replace("h-ok", "h-dupf").encode(),
         "duplicate_key"),
        (_j("h-flip-1", features={"flip": 1.5}).encode(), None),
        (_j("h-flip-2", features={"flip": 2.5}).encode(), None),
        (_j("h-flip-3", features={"flip": "high"}).encode(), "type_mismatch:flip"),
        (_j("h-space", features={"bad name": 1}).encode(), "bad_feature_name:bad name"),
        (_j("h-case", features={"Amount": 1}).encode(), "bad_feature_name:Amount"),
        (_j("h-semi", features={"x;y": 1}).encode(), "bad_feature_name:x;y"),
        (_j("h-unknown", trace_id="t-1").encode(), "unknown_field:trace_id"),
        (_j("h-yes", features={"card_present": "yes"}).encode(), "type_mismatch:card_present"),
        (_j("h-one", features={"card_present": 1}).encode(), "type_mismatch:card_present"),
        (_j("h-obj", entity={"user_id": {"id": 1}}).encode(), "type_mismatch:entity"),
    ]


def label_cases() -> list[tuple[bytes, str | None]]:
    def lab(rid: str, **over: Any) -> str:
        return json.dumps({"request_id": rid, "label": 1, "observed_at": f"{LABEL_DAY}T09:00:00Z", **over})

    return [
        (lab("h-ok").encode(), None),
        (lab("h-1e308").encode(), None),
        (lab("h-flip-1", label="1").encode(), "type_mismatch:label"),
        (lab("h-flip-2", label=7).encode(), "label_out_of_range"),
        (lab("h-negzero").replace('"label": 1', '"label": NaN').encode(), "non_finite_number"),
        (lab("h-ok").replace('"label": 1', '"label": 1, "label": 0').encode(), "duplicate_key"),
        (lab("h-ok", note="x").encode(), "unknown_field:note"),
        (lab("h-okX").replace("h-okX", "h-ok\udcff").encode("utf-8", "surrogateescape"), "invalid_utf8"),
        (lab("h-ok", observed_at=f"{LABEL_DAY}T09:00:00").encode(), "bad_timestamp"),
    ]


def _lines(cases: list[tuple[bytes, str | None]]) -> bytes:
    return b"".join(text + b"\n" for text, _ in cases)


def write(landing: Path) -> dict[str, Path]:
    """Write the corpus; returns the files by role."""
    hour = landing / "predictions" / f"date={HOUR:%Y-%m-%d}" / f"hour={HOUR:%H}"
    labels = landing / "labels" / f"date={LABEL_DAY}"
    hour.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    crlf = b"".join(_j(f"h-crlf-{i}").encode() + b"\r\n" for i in range(3))
    cut = gzip.compress(b"".join(_j(f"h-cut-{i}").encode() + b"\n" for i in range(400)))
    files = {
        "hostile": hour / "hostile.jsonl",
        "crlf": hour / "crlf.jsonl",
        "crlf_gz": hour / "crlf.jsonl.gz",
        "empty": hour / "empty.jsonl",
        "empty_gz": hour / "empty.jsonl.gz",
        "not_gzip": hour / "not-gzip.jsonl.gz",
        "cut": hour / "cut.jsonl.gz",
        "members": hour / "members.jsonl.gz",
        "labels": labels / "hostile.jsonl",
        "labels_not_gzip": labels / "not-gzip.jsonl.gz",
    }
    files["hostile"].write_bytes(_lines(prediction_cases()))
    files["crlf"].write_bytes(crlf)
    files["crlf_gz"].write_bytes(gzip.compress(crlf.replace(b"h-crlf", b"h-crlfgz")))
    files["empty"].write_bytes(b"")
    files["empty_gz"].write_bytes(b"")
    files["not_gzip"].write_bytes(_j("h-notgz").encode() + b"\n")
    files["cut"].write_bytes(cut[: len(cut) // 2])
    files["members"].write_bytes(b"".join(gzip.compress(_j(f"h-member-{i}").encode() + b"\n") for i in range(3)))
    files["labels"].write_bytes(_lines(label_cases()))
    files["labels_not_gzip"].write_bytes(b'{"request_id": "h-ok", "label": 0}\n')
    return files


def count_lines(path: Path) -> int:
    """Lines in a file, counted here and not by the job: gzip (all members) or plain."""
    data = path.read_bytes()
    if path.name.endswith(".gz") and data:
        data = gzip.decompress(data)
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


if __name__ == "__main__":
    for role, path in write(Path(sys.argv[1])).items():
        print(role, path)
