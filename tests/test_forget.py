"""End to end over generated traffic: no raw PII reaches what non-privacy roles read; `forget` leaves
no trace of a subject in any table version reachable by time travel; `purge` enforces retention."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import zlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import fastavro
import pytest
from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config, load
from skewless.core.delta import read_delta, read_table
from skewless.core.paths import table_path
from skewless.core.policy import HashKey, KeySource
from skewless.core.progress import Progress
from skewless.devtools.generator import GenSpec, generate
from skewless.ingest import job as compact_run
from skewless.labels import job as labels_run
from skewless.labels import view as examples_view
from skewless.privacy import job as forget_run
from skewless.privacy.transforms import pseudonyms
from skewless.serving.avroformat import META_VERSION
from skewless.sql.roles import register_role_views

from . import hostile_avro
from .conftest import KEY, ROOT, record, write_hour

START = datetime(2026, 11, 25, 9, tzinfo=UTC)


def _landing_text(landing: str) -> str:
    out = []
    for path in sorted(Path(landing, N.PREDICTIONS_DIR).rglob("*.jsonl*")):
        raw = path.read_bytes()
        if path.suffix == ".gz":  # a truncated upload decompresses up to its cut
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw)
        out.append(raw.decode(errors="replace"))
    return "\n".join(out)


@pytest.fixture(scope="module")
def built_traffic(spark: SparkSession, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """One generated hour with labels, compacted and labeled; plus a malformed line holding PII.
    Built once; each test gets its own copy (`traffic`), since forget and purge change it."""
    root = tmp_path_factory.mktemp("traffic")
    base = load(ROOT / "conf" / "warehouse.yaml").with_paths(str(root / "landing"), str(root / "warehouse"))
    generate(GenSpec(landing=base.paths.landing, start=START, hours=1, rps=1.0, seed=5), progress=False)
    text = _landing_text(base.paths.landing)
    users = Counter(re.findall(r'"user_id":\s*"(u\d+)"', text))
    subject, _ = users.most_common(1)[0]
    email = f"user{int(subject[1:])}@example.com"
    cut = json.dumps({"schema_version": 1, "request_id": "cut-1", "entity": {"user_id": subject, "email": email}},
                     separators=(",", ":"))[:-2]  # cut mid-object: malformed
    write_hour(base.paths.landing, START, "pod-9-crashed", [cut], gz=False)
    compact_run.compact_hour(spark, base, START, Progress("test"), KEY)
    labels_run.run(spark, base, argparse.Namespace(date=None, through="2027-03-31"))
    pii = set(users) | set(re.findall(r'"email":\s*"([^"]+)"', text)) | set(re.findall(r'"ip":\s*"([^"]+)"', text))
    return {"subject": subject, "email": email, "pii": pii, "base": base}


@pytest.fixture()
def traffic(built_traffic: dict[str, object], warehouse: Config, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """This test's copy of the built landing and warehouse (Delta tables hold relative paths)."""
    monkeypatch.setenv("SKEWLESS_PII_KEY", KEY.secret.decode())
    base = built_traffic["base"]
    assert isinstance(base, Config)
    shutil.copytree(base.paths.landing, warehouse.paths.landing)
    shutil.copytree(base.paths.warehouse, warehouse.paths.warehouse)
    return built_traffic


def _view_text(df: DataFrame) -> str:
    return "\n".join(r[0] for r in df.select(F.to_json(F.struct("*"))).collect())


def test_roles_below_privacy_officer_never_see_raw_pii(spark: SparkSession, warehouse: Config,
                                                        traffic: dict[str, object]) -> None:
    pii = traffic["pii"]
    assert isinstance(pii, set) and len(pii) > 100
    for role in ("analyst", "ml_engineer", "privacy_officer"):
        register_role_views(spark, warehouse, role)
        visible = [t for t in N.QUERYABLE if spark.catalog.tableExists(t)]
        text = "\n".join(_view_text(spark.table(t)) for t in visible)
        leaked = sorted(v for v in pii if v in text)
        if role == "privacy_officer":
            assert traffic["email"] in leaked  # the quarantined raw line: the scan does find PII
            assert N.FEATURE_LOGS_QUARANTINE in visible
        else:
            assert leaked == [], role
            assert N.FEATURE_LOGS_QUARANTINE not in visible and N.FEATURE_LOGS in visible
        for t in N.QUERYABLE:
            spark.catalog.dropTempView(t)


def _subject_rows(df: DataFrame, table: str, hashes: list[str], raw: str, request_ids: list[str]) -> int:
    cols = set(df.columns)
    cond = F.lit(False)
    if N.ENTITY in cols:
        cond = cond | F.col(f"{N.ENTITY}.user_id").isin(*hashes)
    if N.RAW_TEXT in cols:
        cond = cond | F.col(N.RAW_TEXT).contains(f'"{raw}"')
    if N.REQUEST_ID in cols and table != N.PRIVACY_REQUESTS:
        cond = cond | F.col(N.REQUEST_ID).isin(*request_ids)
    return df.where(cond).count()


VACUUMED = re.compile(r"FILE_NOT_EXIST|DELTA_FILE_NOT_FOUND|FileNotFoundException")


def _log(path: str) -> tuple[str, list[str]]:
    """The text of a table's commits, and the data-file path of every action they hold (add, remove, cdc)."""
    texts, named = [], []
    for entry in sorted(Path(path, "_delta_log").glob("*.json")):
        texts.append(entry.read_text(errors="replace"))
        for line in texts[-1].splitlines():
            action = json.loads(line)
            named += [action[kind]["path"] for kind in ("add", "remove", "cdc") if kind in action]
    return "".join(texts), named


def _assert_gone(spark: SparkSession, warehouse: Config, raw: str, hashes: list[str], request_ids: list[str],
                 email: str) -> None:
    """No table version, data file (deletion vectors ignored, _change_data included) or Delta log entry
    of any table holds the subject. Versions are proven through their files: every commit names only
    files under the table's folder, and no data file there holds the subject, so no version reachable
    by time travel can show it (reading each version would only repeat that scan, version by version)."""
    for table in N.TABLES:
        path = table_path(warehouse.paths.warehouse, table)
        if not Path(path).exists():
            continue
        log_text, named = _log(path)
        assert raw not in log_text and email not in log_text, table
        elsewhere = [p for p in named if p.startswith("/") or urlparse(p).scheme or ".." in p.split("/")]
        assert elsewhere == [], (table, elsewhere[:3])
        files = [str(p) for p in Path(path).rglob("*.parquet") if "_delta_log" not in p.parts]
        if files:
            assert _subject_rows(spark.read.option("mergeSchema", "true").parquet(*files),
                                 table, hashes, raw, request_ids) == 0, table
        assert _subject_rows(read_delta(spark, path), table, hashes, raw, request_ids) == 0, table


def test_forget_removes_the_subject_sticks_and_nothing_outlives_the_retentions(
        spark: SparkSession, warehouse: Config, traffic: dict[str, object], capsys: pytest.CaptureFixture[str],
) -> None:
    """One subject's whole life after a forget: its rows leave every table at once (counted per table),
    the landing files are rewritten without it, a rerun has nothing left to delete, reruns of the hour
    and late files bring nothing back, and once the retention passes no table version, data file or
    Delta log entry holds it; the quarantine's own retention then empties it."""
    raw, email = str(traffic["subject"]), str(traffic["email"])
    hashes = pseudonyms(raw, [KEY])
    fl = table_path(warehouse.paths.warehouse, N.FEATURE_LOGS)
    logs = read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS)
    request_ids = [r[0] for r in logs.where(F.col("entity.user_id").isin(*hashes)).select(N.REQUEST_ID).collect()]
    examples = examples_view.labeled_examples(spark, warehouse)
    assert request_ids and examples.where(F.col(N.REQUEST_ID).isin(*request_ids)).count() == len(request_ids)
    labeled = read_table(spark, warehouse.paths.warehouse, N.LABELS).where(
        F.col(N.REQUEST_ID).isin(*request_ids)).count()
    before = DeltaTable.forPath(spark, fl).history(1).first()["version"]  # type: ignore[index]
    # A format-v2 file too: the subject's value in its entity, one of its request ids, and a stranger.
    at = START.replace(minute=20)
    hour_dir = Path(warehouse.paths.landing) / N.PREDICTIONS_DIR / f"date={START:%Y-%m-%d}" / f"hour={START:%H}"
    v2 = hostile_avro.v2_file(
        hour_dir / "pod-8.avro",
        [hostile_avro.datum("v2-subject", at, entity={"user_id": raw}),
         hostile_avro.datum(request_ids[0], at), hostile_avro.datum("v2-stranger", at)])
    args = argparse.Namespace(entity=f"user_id={raw}", reason="ticket-42", vacuum_retain_hours=None,
                              rewrite_landing=True)  # the policy's retention: 168 h
    capsys.readouterr()
    assert forget_run.run_forget(spark, warehouse, args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["deleted_feature_logs"] == len(request_ids) and first["deleted_feature_logs_quarantine"] == 1
    assert labeled and first["deleted_labels"] == labeled
    assert examples_view.labeled_examples(spark, warehouse).where(F.col(N.REQUEST_ID).isin(*request_ids)).count() == 0
    assert raw not in _landing_text(warehouse.paths.landing)  # also the malformed line that never loaded
    with v2.open("rb") as f:
        reader = fastavro.reader(f)
        assert [r["request_id"] for r in reader if isinstance(r, dict)] == ["v2-stranger"]
        assert reader.metadata[META_VERSION] == "2" and reader.codec == "deflate"
    requests = read_table(spark, warehouse.paths.warehouse, N.PRIVACY_REQUESTS).collect()
    assert [(r["entity_field"], r["subject_pseudonym"], r["reason"]) for r in requests] == [
        ("user_id", hashes[0], "ticket-42")]
    assert raw not in json.dumps([r.asDict(recursive=True) for r in requests], default=str)
    assert forget_run.run_forget(spark, warehouse, args) == 0  # a rerun converges: nothing left to delete
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rows_deleted"] == 0

    # Until the retention passes, time travel still reads the subject (documented in docs/security.md).
    old = read_delta(spark, fl, version=before)
    assert old.where(F.col("entity.user_id").isin(*hashes)).count() == len(request_ids)

    # A rerun of the hour and a late file with the subject's records bring nothing back.
    late = START + timedelta(hours=1)
    records = [record(f"late-{i}", logged_at="2026-11-25T09:59:00.000Z",
                      entity={"user_id": raw, "email": email, "ip": "10.0.0.1"}) for i in range(3)]
    write_hour(warehouse.paths.landing, late, "pod-7-late",
               [*records, record(request_ids[0], logged_at="2026-11-25T09:58:00.000Z")])
    for hour in (START, late):
        audit = compact_run.compact_hour(spark, warehouse, hour, Progress("test"), KEY)
        assert audit["records_read"] == audit["loaded"] + audit["duplicates"] + audit["quarantined"]
    assert audit["quarantined_by_reason"] == {N.FORGOTTEN_SUBJECT: 4}
    assert read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS).where(
        F.col("entity.user_id").isin(*hashes) | F.col(N.REQUEST_ID).isin(*request_ids)).count() == 0
    kept = read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS_QUARANTINE).where(
        F.col(N.REASON) == N.FORGOTTEN_SUBJECT)
    # The rerun of the first hour read none of the subject's lines (rewritten away); the late file's 4
    # records were kept out by the tombstones, without their text.
    assert kept.count() == 4 and kept.where(F.col(N.RAW_TEXT).isNotNull()).count() == 0
    labels_run.run(spark, warehouse, argparse.Namespace(date=None, through="2027-03-31"))
    assert examples_view.labeled_examples(spark, warehouse).where(
        F.col(N.REQUEST_ID).isin(*request_ids)).count() == 0
    assert read_table(spark, warehouse.paths.warehouse, N.LABELS).where(
        F.col(N.REQUEST_ID).isin(*request_ids)).count() == 0

    # Once the retention has passed (here: purge with 0 h, as the nightly run does at the policy's),
    # nothing of the subject is left anywhere.
    # A purge keeps the quarantine rows of hours landed on or after its date (nothing landed before
    # the 25th) and VACUUMs every table at its retention.
    capsys.readouterr()
    forget_run.run_purge(spark, warehouse, argparse.Namespace(before="2026-11-25", vacuum_retain_hours=0))
    purged = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert purged["purged_feature_logs_quarantine"] == 0 and purged["vacuumed_tables"] >= 6
    assert read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS_QUARANTINE).count() > 0
    _assert_gone(spark, warehouse, raw, hashes, request_ids, email)
    # ...and the version before the forget, read above, now fails for the reason that it should. (Its
    # rows read, not counted: Delta answers a bare count from the log's statistics.)
    with pytest.raises(Exception, match=VACUUMED.pattern):
        read_delta(spark, fl, version=before).where(F.col("entity.user_id").isin(*hashes)).count()

    # The quarantine's retention: a purge drops the rows of hours landed before its date, files included.
    forget_run.run_purge(spark, warehouse, argparse.Namespace(before="2026-11-26", vacuum_retain_hours=0))
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["purged_feature_logs_quarantine"] > 0
    assert read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS_QUARANTINE).count() == 0
    quarantine = table_path(warehouse.paths.warehouse, N.FEATURE_LOGS_QUARANTINE)
    assert not [p for p in Path(quarantine).rglob("*.parquet") if "_delta_log" not in p.parts]  # data files


def test_key_rotation_forget_finds_both_keys_and_tombstones_hold_under_the_new_one(
        spark: SparkSession, warehouse: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    k2 = HashKey("k2", b"rotated-key-" + b"9" * 30, demo=False)
    monkeypatch.setenv("SKEWLESS_PII_KEY", KEY.secret.decode())
    monkeypatch.setenv("SKEWLESS_K2", k2.secret.decode())
    policy = warehouse.privacy_policy
    rotated = dataclasses.replace(warehouse, policy=dataclasses.replace(
        policy, key=KeySource("k2", env="SKEWLESS_K2"), previous_keys=(KeySource("k1", env="SKEWLESS_PII_KEY"),)))
    subject = {"user_id": "u9", "email": "u9@example.com", "ip": "10.0.0.9"}
    hours = [START + timedelta(hours=i) for i in range(3)]
    for i, hour in enumerate(hours[:2]):
        write_hour(warehouse.paths.landing, hour, "p", [record(f"h{i}-{j}", logged_at=f"{hour:%Y-%m-%dT%H}:05:00Z",
                                                               entity=subject) for j in range(2)])
    compact_run.compact_hour(spark, warehouse, hours[0], Progress("test"), KEY)  # before the rotation: k1
    compact_run.compact_hour(spark, rotated, hours[1], Progress("test"), k2, (KEY,))  # after: k2
    logs = read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS)
    assert sorted(r[0][:3] for r in logs.select("entity.user_id").collect()) == ["k1:", "k1:", "k2:", "k2:"]
    forget_run.run_forget(spark, rotated, argparse.Namespace(entity="user_id=u9", reason="", vacuum_retain_hours=0))
    assert read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS).count() == 0  # rows of both keys
    write_hour(warehouse.paths.landing, hours[2], "late", [record("late-1", logged_at=f"{hours[2]:%Y-%m-%dT%H}:01:00Z",
                                                                  entity=subject)])
    audit = compact_run.compact_hour(spark, rotated, hours[2], Progress("test"), k2, (KEY,))
    assert audit["quarantined_by_reason"] == {N.FORGOTTEN_SUBJECT: 1} and audit["loaded"] == 0
