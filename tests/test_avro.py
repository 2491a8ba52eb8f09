"""Log format v2 through compaction: the same traffic in both encodings gives the same tables, and
hostile Avro files (cut, corrupt block, old schema version, changed feature type, empty, not Avro)
each get their exact outcome, with every record accounted for."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import read_table
from skewless.core.progress import Progress
from skewless.devtools.generator import GenSpec, generate
from skewless.ingest import job as compact_run

from . import hostile_avro
from .conftest import HOUR, KEY, ROOT

INGEST_ONLY = [N.SCHEMA_VERSION, N.SOURCE_FILE, N.SOURCE_LINE, N.RECORD_HASH, N.RUN_ID, N.INGESTED_AT]
AUDIT_FIELDS = ("files", "records_read", "loaded", "duplicates", "duplicates_in_run", "duplicates_existing",
                "quarantined", "quarantined_by_reason", "late_records", "event_hours", "new_features", "status")
HOSTILE_HOUR = HOUR + timedelta(hours=5)
# Threads of the one session: last in the run, when both cores are free (tests/beside.py).
pytestmark = pytest.mark.threads


def _compact_all(spark: SparkSession, cfg: Config) -> list[dict[str, Any]]:
    folders = sorted(Path(cfg.paths.landing, N.PREDICTIONS_DIR).glob("date=*/hour=*"))
    hours = [HOUR.replace(day=int(f.parent.name[-2:]), hour=int(f.name[5:])) for f in folders]
    return [compact_run.compact_hour(spark, cfg, h, Progress("test"), KEY) for h in hours]


@pytest.fixture(scope="module")
def both(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The same generated traffic in each encoding, each compacted into its own warehouse. The two are
    independent: built at once, in two threads of the one session (as two jobs share a cluster)."""
    roots = {fmt: tmp_path_factory.mktemp(f"traffic-{fmt}") for fmt in ("json", "avro")}

    def build(fmt: Literal["json", "avro"]) -> dict[str, Any]:
        root = roots[fmt]
        cfg = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
        # Quirks on (retries, broken lines, late files, a feature appearing, a second model version),
        # except the cut file: cutting a gzip and an Avro file at 60% loses different records.
        gen = generate(GenSpec(landing=cfg.paths.landing, start=HOUR, hours=2, rps=5, seed=21, hosts=2,
                               log_format=fmt, cut_file=False), progress=False)
        built: dict[str, Any] = {"cfg": cfg, "gen": gen}
        if fmt == "avro":
            built["expected"] = hostile_avro.write(Path(cfg.paths.landing), HOSTILE_HOUR)
        built["audits"] = _compact_all(spark, cfg)
        return built

    with ThreadPoolExecutor(2) as pool:
        js, av = pool.map(build, ("json", "avro"))
    return {"json": js, "avro": av, "expected": av.pop("expected")}


def _table(spark: SparkSession, cfg: Config, name: str, landing_hours: int = 3) -> Any:
    last = HOUR.replace(tzinfo=None) + timedelta(hours=landing_hours)
    return read_table(spark, cfg.paths.warehouse, name).where(F.col(N.LANDING_HOUR) < F.lit(last))


def test_the_same_traffic_in_both_encodings_gives_the_same_tables(spark: SparkSession, both: dict[str, Any]) -> None:
    js, av = both["json"], both["avro"]
    assert av["gen"]["records"] == js["gen"]["records"] > 1000 and av["gen"]["logger_fallback"] > 0
    v1 = _table(spark, js["cfg"], N.FEATURE_LOGS).drop(*INGEST_ONLY)
    v2 = _table(spark, av["cfg"], N.FEATURE_LOGS).drop(*INGEST_ONLY)
    assert v1.count() > 1000 and "merchant_embedding_norm" in v1.schema[N.FEATURES].dataType.fieldNames()
    # Maps cannot be compared by Spark's set operations: rows collected, sorted, compared with their schema.
    assertDataFrameEqual(v2.collect(), v1.collect(), checkRowOrder=False)
    assert v2.schema == v1.schema
    # Every loaded row came from Avro; the fallback's v1 lines were the broken records, all quarantined.
    assert {r[0] for r in _table(spark, av["cfg"], N.FEATURE_LOGS).select(N.SCHEMA_VERSION).distinct().collect()} \
        == {2}
    cols = [N.LANDING_HOUR, N.REASON, N.REQUEST_ID, N.RAW_TEXT]
    assertDataFrameEqual(_table(spark, av["cfg"], N.FEATURE_LOGS_QUARANTINE).select(*cols).collect(),
                         _table(spark, js["cfg"], N.FEATURE_LOGS_QUARANTINE).select(*cols).collect(),
                         checkRowOrder=False)
    for a1, a2 in zip(js["audits"], av["audits"], strict=False):
        assert {k: a2[k] for k in AUDIT_FIELDS if k != "files"} == {k: a1[k] for k in AUDIT_FIELDS if k != "files"}
        assert a2["status"] == "succeeded"


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_every_hostile_avro_record_has_its_exact_outcome(spark: SparkSession, both: dict[str, Any]) -> None:
    cfg = both["avro"]["cfg"]
    hour = HOSTILE_HOUR.replace(tzinfo=None)
    q = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS_QUARANTINE).where(F.col(N.LANDING_HOUR) == hour)
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS).where(F.col(N.LANDING_HOUR) == hour)
    got = {(_name(r[N.SOURCE_FILE]), r[N.SOURCE_LINE]): r[N.REASON] for r in q.collect()}
    loaded = {(_name(r[N.SOURCE_FILE]), r[N.SOURCE_LINE]) for r in logs.collect()}
    for name, cases in both["expected"].items():
        for line, (rid, want) in enumerate(cases, start=1):
            at = (name, line)
            outcome = got.get(at) or ("loaded" if at in loaded else "duplicate")
            assert outcome == (want or "loaded"), (name, line, rid)
    # A quarantined record keeps its JSON rendering as raw text, and its request id.
    old = q.where(F.col(N.SOURCE_FILE).endswith("/old-version.avro")).orderBy(N.SOURCE_LINE).first()
    assert old is not None and old[N.REQUEST_ID] == "a-old-0" and '"request_id":"a-old-0"' in old[N.RAW_TEXT]
    # Dedup across formats: the v1 line logged a second later is the duplicate, not the Avro record.
    assert loaded >= {("rules.avro", 7)} and ("dup.jsonl", 1) not in loaded and ("dup.jsonl", 1) not in got


def test_every_avro_file_is_accounted_for(spark: SparkSession, both: dict[str, Any]) -> None:
    cfg = both["avro"]["cfg"]
    audit = both["avro"]["audits"][-1]
    hour = HOSTILE_HOUR.replace(tzinfo=None)
    q = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS_QUARANTINE).where(F.col(N.LANDING_HOUR) == hour)
    whole = {(_name(r[N.SOURCE_FILE]), r[N.REASON]) for r in q.where(F.col(N.SOURCE_LINE).isNull()).collect()}
    assert whole == set(hostile_avro.WHOLE_FILE.items())
    assert audit["status"] == "incomplete" and sorted(audit["truncated_files"]) == sorted(hostile_avro.WHOLE_FILE)
    assert any("cut short" in u for u in audit["unreadable_files"] if u.startswith("cut.avro"))
    assert any("not readable as Avro" in u for u in audit["unreadable_files"] if u.startswith("not-avro.avro"))
    # Records counted here with fastavro, not by the job: what was read of each file is what a reader gets.
    folder = Path(cfg.paths.landing, N.PREDICTIONS_DIR, f"date={hour:%Y-%m-%d}", f"hour={hour:%H}")
    logs = read_table(spark, cfg.paths.warehouse, N.FEATURE_LOGS).where(F.col(N.LANDING_HOUR) == hour)
    for name in ("cut.avro", "corrupt-block.avro"):
        read = logs.where(F.col(N.SOURCE_FILE).endswith(f"/{name}")).count()
        assert 0 < read == hostile_avro.readable_prefix(folder / name) < 400, name
    intact = sum(len(v) for v in both["expected"].values()) + 1  # + the v1 line of dup.jsonl
    read_prefixes = sum(hostile_avro.readable_prefix(folder / n) for n in ("cut.avro", "corrupt-block.avro"))
    assert audit["records_read"] == intact + read_prefixes
    assert audit["records_read"] == audit["loaded"] + audit["duplicates"] + audit["quarantined"]
