"""The hostile corpus (`tests/hostile.py`) through `compact` and `labels`: for every case the exact
outcome, and the audit reconciled against lines counted from the files themselves."""

from __future__ import annotations

import argparse
import gzip
import zlib
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.accounting import file_key, unread_files
from skewless.core.config import Config, load
from skewless.core.delta import read_table
from skewless.core.progress import Progress
from skewless.core.storage import list_files, read_landing_text
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run

from . import hostile
from .conftest import KEY, ROOT


@pytest.fixture(scope="module")
def corpus(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("hostile")
    cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    files = hostile.write(Path(cfg.paths.landing))
    audit = compact_run.compact_hour(spark, cfg, hostile.HOUR, Progress("test"), KEY)
    code = labels_run.run(spark, cfg, argparse.Namespace(date=hostile.LABEL_DAY, through=None))
    return {"cfg": cfg, "files": files, "audit": audit, "labels_exit": code}


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_every_prediction_case_has_its_exact_outcome(spark: SparkSession, corpus: dict[str, Any]) -> None:
    cfg: Config = corpus["cfg"]
    cases = hostile.prediction_cases()
    q = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS_QUARANTINE)
    got = {r[N.SOURCE_LINE]: r[N.REASON] for r in q.where(F.col(N.SOURCE_FILE).endswith("/hostile.jsonl"))
           .select(N.SOURCE_LINE, N.REASON).collect()}
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS)
    loaded = {r[0] for r in logs.where(F.col(N.SOURCE_FILE).endswith("/hostile.jsonl")).select(N.SOURCE_LINE)
              .collect()}
    wrong = [(line, text[:60], want, got.get(line, "loaded" if line in loaded else "missing"))
             for line, (text, want) in enumerate(cases, start=1)
             if (want is None and line not in loaded) or (want is not None and got.get(line) != want)]
    assert not wrong, wrong
    assert len(got) + len(loaded) == len(cases)  # each line in exactly one place


def test_values_at_the_edges_load_as_themselves(spark: SparkSession, corpus: dict[str, Any]) -> None:
    logs = read_table(spark, corpus["cfg"].paths.warehouse, N.FEATURE_LOGS)
    amount = {r[0]: r[1] for r in logs.where(F.col(N.REQUEST_ID).isin("h-1e308", "h-negzero"))
              .select(N.REQUEST_ID, "features.amount").collect()}
    assert amount == {"h-1e308": 1e308, "h-negzero": 0.0}  # JSON -0.0 is the number zero
    # The feature whose type flipped was added with the type most of its values hold.
    assert corpus["audit"]["new_features"] == {"flip": "numeric"}
    flip = logs.where(F.col(N.REQUEST_ID).startswith("h-flip")).select(N.REQUEST_ID, "features.flip").collect()
    assert sorted((r[0], r[1]) for r in flip) == [("h-flip-1", 1.5), ("h-flip-2", 2.5)]


def test_every_file_is_accounted_for(spark: SparkSession, corpus: dict[str, Any]) -> None:
    audit, files = corpus["audit"], corpus["files"]
    q = read_table(spark, corpus["cfg"].paths.warehouse, N.FEATURE_LOGS_QUARANTINE)
    whole = sorted((_name(r[N.SOURCE_FILE]), r[N.REASON]) for r in q.where(F.col(N.SOURCE_LINE).isNull()).collect())
    assert whole == [("cut.jsonl.gz", "unreadable_file"), ("not-gzip.jsonl.gz", "unreadable_file")]
    assert audit["status"] == "incomplete" and sorted(audit["truncated_files"]) == ["cut.jsonl.gz", "not-gzip.jsonl.gz"]
    # Lines counted from the files, not by the job: every intact file's lines were read.
    intact = [p for role, p in files.items() if role in ("hostile", "crlf", "crlf_gz", "empty", "empty_gz", "members")]
    cut = read_table(spark, corpus["cfg"].paths.warehouse, N.FEATURE_LOGS).where(
        F.col(N.SOURCE_FILE).endswith("/cut.jsonl.gz")).count()
    cut_quarantined = q.where(F.col(N.SOURCE_FILE).endswith("/cut.jsonl.gz") & F.col(N.SOURCE_LINE).isNotNull()).count()
    expected = sum(hostile.count_lines(p) for p in intact) + cut + cut_quarantined
    assert audit["records_read"] == expected == audit["loaded"] + audit["duplicates"] + audit["quarantined"]
    # What was read from the cut file is a prefix of what Python can decompress from it.
    readable = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(files["cut"].read_bytes())
    assert 0 < cut + cut_quarantined <= readable.count(b"\n") + 1
    # CRLF and several gzip members are complete files, not false alarms.
    logs = read_table(spark, corpus["cfg"].paths.warehouse, N.FEATURE_LOGS)
    ids = {r[0] for r in logs.select(N.REQUEST_ID).collect()}
    assert {f"h-crlf-{i}" for i in range(3)} | {f"h-crlfgz-{i}" for i in range(3)} | {
        f"h-member-{i}" for i in range(3)} <= ids
    assert gzip.decompress(files["members"].read_bytes()).count(b"\n") == 3


def test_every_label_case_has_its_exact_outcome(spark: SparkSession, corpus: dict[str, Any]) -> None:
    wh = corpus["cfg"].paths.warehouse
    q = read_table(spark, wh, N.LABELS_QUARANTINE)
    reasons = sorted((_name(r[N.SOURCE_FILE]), r[N.REASON]) for r in q.collect())
    want = sorted([("hostile.jsonl", r) for _, r in hostile.label_cases() if r is not None]
                  + [("not-gzip.jsonl.gz", "unreadable_file")])
    assert reasons == want
    labels = read_table(spark, wh, N.LABELS).select(N.REQUEST_ID, N.LABEL).collect()
    assert sorted((r[0], r[1]) for r in labels) == [("h-1e308", 1.0), ("h-ok", 1.0)]
    assert corpus["labels_exit"] == 1  # loaded what it could; a check failed (an unreadable file)
    audit = read_table(spark, wh, N.INGESTION_AUDIT).where("job = 'labels'").collect()
    assert len(audit) == 1 and audit[0]["status"] == "incomplete"
    assert audit[0]["records_read"] == hostile.count_lines(corpus["files"]["labels"])


def test_files_of_one_name_in_two_folders_are_accounted_for_separately(spark: SparkSession, tmp_path: Path) -> None:
    for day, lines in (("a", 2), ("b", 1)):
        (tmp_path / day).mkdir()
        (tmp_path / day / "labels pod.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(lines)))
    files = [f for d in ("a", "b") for f in list_files(spark, str(tmp_path / d), (".jsonl",))]
    text = read_landing_text(spark, files)
    read = {file_key(r[0]): int(r[1]) for r in text.groupBy(N.SOURCE_FILE).agg(
        F.sum(F.octet_length(N.RAW_VALUE) + 1)).collect()}
    assert unread_files(spark, files, read) == []
    short = {k: v - 1 for k, v in read.items() if "/b/" in k} | {k: v for k, v in read.items() if "/a/" in k}
    assert [u.path.split("/")[-2:] for u in unread_files(spark, files, short)] == [["b", "labels pod.jsonl"]]
