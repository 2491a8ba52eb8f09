"""Keyed hashing, the policy's validation, access tags and the privacy step inside compaction."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from skewless.core import names as N
from skewless.core.access import TAG
from skewless.core.config import Config, load
from skewless.core.delta import read_table
from skewless.core.errors import ConfigError
from skewless.core.paths import table_path
from skewless.core.policy import DEMO_KEY, HashKey, KeySource, PrivacyPolicy, dev_key_path, resolve_key
from skewless.core.progress import Progress
from skewless.ingest import job as compact_run
from skewless.privacy.transforms import UnpolicedFieldError, pseudonym, pseudonyms

from .conftest import HOUR, KEY, ROOT, record, write_hour


def _py_hmac(secret: bytes, value: str) -> str:
    return hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()


def test_hmac_is_rfc2104_stable_and_keyed(spark: SparkSession) -> None:
    other = HashKey("k2", b"another-key-" * 8, demo=False)  # > 64 bytes: HMAC hashes the key first
    values = ["u1", "a@example.com", "", "ünïcødé", None]
    df = spark.createDataFrame([(v,) for v in values], "v string")
    rows = df.select(pseudonym(F.col("v"), KEY).alias("a"), pseudonym(F.col("v"), other).alias("b")).collect()
    for value, row in zip(values, rows, strict=True):
        if value is None:
            assert row["a"] is None and row["b"] is None
            continue
        assert row["a"] == f"k1:{_py_hmac(KEY.secret, value)}"
        assert row["b"] == f"k2:{_py_hmac(other.secret, value)}"
        assert row["a"][3:] != row["b"][3:]
        assert pseudonyms(value, [KEY, other]) == [row["a"], row["b"]]  # what `forget` looks for
    # A batch holding nulls only (a partition where a member is absent): nulls, not a worker crash.
    nulls = spark.createDataFrame([(None,), (None,)], "v string").repartition(1)
    assert [r[0] for r in nulls.select(pseudonym(F.col("v"), KEY)).collect()] == [None, None]


def _policy_file(tmp_path: Path, edit: str) -> Path:
    """A copy of conf/ with one edit to privacy.yaml: (old line, new line) separated by ' => '."""
    old, new = edit.split(" => ")
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "warehouse.yaml").write_text((ROOT / "conf" / "warehouse.yaml").read_text())
    (conf / "models").mkdir()
    (conf / "models" / "fraud.yaml").write_text((ROOT / "conf" / "models" / "fraud.yaml").read_text())
    text = (ROOT / "conf" / "privacy.yaml").read_text()
    assert old in text
    (conf / "privacy.yaml").write_text(text.replace(old, new))
    return conf / "warehouse.yaml"


@pytest.mark.parametrize(("edit", "match"), [
    ("  request_id:       {access: internal, action: keep} => ", r"fields\.request_id: missing"),
    ("action: keep}\n  logged_at => action: hash}\n  logged_at", r"fields\.request_id\.action: must be keep"),
    ("  features.*:                 {access: internal, action: keep} => ",
     r"fields\.features\.account_age_days: declared feature has no policy"),
    ("width: 5} => width: 0}", r"distance_from_home_km\.width: generalize needs a bucket width > 0"),
    ("features.amount:            {access: internal, action: keep} => "
     "features.amount:            {access: internal, action: hash}", r"features\.amount\.action: hash does not apply"),
    ("{access: restricted, action: hash}     # a new => {access: secret, action: hash}     # a new",
     r"fields\.entity\.\*\.access: 'secret' is not one of"),
    ("default_role: analyst => default_role: intern", r"default_role: 'intern' is not a role"),
    ("retention: => retention:\n  keep_forever: true", r"retention\.keep_forever: unknown key"),
])
def test_policy_rejects_bad_entries_with_their_key(tmp_path: Path, edit: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load(_policy_file(tmp_path, edit))


def test_prod_refuses_a_missing_demo_or_short_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    src = KeySource(version="k7", env="SKEWLESS_TEST_KEY")
    monkeypatch.delenv("SKEWLESS_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="key: no key for version k7 .* refuses to hash with the demo key"):
        resolve_key(src, "prod", "privacy.yaml")
    assert resolve_key(src, "demo", "privacy.yaml") == HashKey("k7", DEMO_KEY, demo=True)
    assert resolve_key(src, "test", "privacy.yaml") == HashKey("k7", DEMO_KEY, demo=True)
    monkeypatch.setenv("SKEWLESS_TEST_KEY", DEMO_KEY.decode())
    for profile in ("prod", "dev"):  # the public key is refused outside demo and test, even when given
        with pytest.raises(ConfigError, match=f"profile {profile} refuses to hash with the demo key"):
            resolve_key(src, profile, "privacy.yaml", warehouse=str(tmp_path / "wh"))
    monkeypatch.setenv("SKEWLESS_TEST_KEY", "short")
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        resolve_key(src, "prod", "privacy.yaml")
    key_file = tmp_path / "pii.key"
    key_file.write_text("x" * 40 + "\n")
    from_file = resolve_key(KeySource(version="k8", env=None, file=str(key_file)), "prod", "privacy.yaml")
    assert from_file == HashKey("k8", b"x" * 40, demo=False)
    with pytest.raises(ConfigError, match="inside the repository"):
        resolve_key(KeySource(version="k9", env=None, file=str(ROOT / "conf" / "x.key")), "prod", "p.yaml")


def _all_tagged(schema: T.StructType) -> list[str]:
    untagged = []
    for f in schema.fields:
        if TAG not in f.metadata:
            untagged.append(f.name)
        if isinstance(f.dataType, T.StructType):
            untagged += [f"{f.name}.{c.name}" for c in f.dataType.fields if TAG not in c.metadata]
    return untagged


def test_compaction_applies_the_policy_before_the_first_write(spark: SparkSession, warehouse: Config) -> None:
    rec = record("r1", entity={"user_id": "u1", "email": "a@example.com", "ip": "10.1.2.3", "phone": "+4912345"},
                 context={"region": "eu-west-1", "session": "s-secret"})
    rec["features"]["distance_from_home_km"] = 12.7
    bad = '{"request_id": "r2", "entity": {"email": "b@example.com"'  # malformed: quarantined, raw
    write_hour(warehouse.paths.landing, HOUR, "pod-1", [rec, bad])
    audit = compact_run.compact_hour(spark, warehouse, HOUR, Progress("test"), KEY)

    logs = read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS)
    row = logs.select("entity", "context", "prediction", "features.distance_from_home_km").first()
    assert row is not None
    assert row["entity"].asDict() == {
        "email": f"k1:{_py_hmac(KEY.secret, 'a@example.com')}", "ip": "10.1.2.0",
        "phone": f"k1:{_py_hmac(KEY.secret, '+4912345')}", "user_id": f"k1:{_py_hmac(KEY.secret, 'u1')}"}
    assert row["context"].asDict() == {"region": "eu-west-1"}  # context.* is `drop`
    assert row["prediction"].asDict() == {"score": 0.25, "decision": "approve"}
    assert row["distance_from_home_km"] == 10.0  # generalized to a 5 km bucket
    for name in (N.FEATURE_LOGS, N.FEATURE_LOGS_QUARANTINE, N.INGESTION_AUDIT):
        schema = read_table(spark, warehouse.paths.warehouse, name).schema
        assert _all_tagged(schema) == [], name
    tags = {f.name: f.metadata[TAG] for f in logs.schema[N.ENTITY].dataType.fields}  # type: ignore[attr-defined]
    assert tags == {"email": "restricted", "ip": "restricted", "phone": "restricted", "user_id": "internal"}
    quarantine = read_table(spark, warehouse.paths.warehouse, N.FEATURE_LOGS_QUARANTINE)
    assert {f.metadata[TAG] for f in quarantine.schema.fields} == {"restricted"}
    policy: PrivacyPolicy = warehouse.privacy_policy
    assert audit["privacy_policy"] == policy.tag and audit["key_version"] == "k1"
    commit = DeltaTable.forPath(spark, table_path(warehouse.paths.warehouse, N.FEATURE_LOGS)).history(1).first()
    meta = json.loads(commit["userMetadata"]) if commit is not None else {}
    assert meta["skewless.privacy.policy"] == policy.tag and meta["run_id"].startswith("compact-20261125T13-")


def test_a_field_without_policy_stops_the_run_before_any_write(spark: SparkSession, warehouse: Config) -> None:
    policy = warehouse.privacy_policy
    strict = dataclasses.replace(policy, fields={k: v for k, v in policy.fields.items() if k != "entity.*"})
    wh = dataclasses.replace(warehouse, policy=strict)
    write_hour(wh.paths.landing, HOUR, "pod-1", [record("r1", entity={"user_id": "u1", "passport": "X123"})])
    with pytest.raises(UnpolicedFieldError, match=r"fields\.entity\.passport: records of landing hour 2026-11-25T13"):
        compact_run.compact_hour(spark, wh, HOUR, Progress("test"), KEY)
    assert not Path(table_path(wh.paths.warehouse, N.FEATURE_LOGS)).exists()
    assert not Path(table_path(wh.paths.warehouse, N.FEATURE_LOGS_QUARANTINE)).exists()


def _needles(secret: bytes) -> list[str]:
    """The key and both HMAC pads in every form a plan, a page or a log could print them."""
    block = secret.ljust(64, b"\0")
    pads = [bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)]
    forms = [secret.decode(errors="replace"), secret.hex()]
    for pad in pads:
        forms += [pad.hex(), pad.hex().upper(), " ".join(f"{b:02X}" for b in pad[:16]), pad[:16].hex().upper()]
    return forms


def test_the_key_never_enters_a_plan_the_ui_or_the_event_log(spark: SparkSession, warehouse: Config) -> None:
    write_hour(warehouse.paths.landing, HOUR, "part-0", [record(f"r{i}", entity={"user_id": f"u{i}",
               "email": f"x{i}@example.com"}) for i in range(20)])
    compact_run.compact_hour(spark, warehouse, HOUR, Progress("test"), KEY)
    df = spark.createDataFrame([("u1",)], "v string").select(pseudonym(F.col("v"), KEY).alias("p"))
    assert df.first()["p"] == f"k1:{_py_hmac(KEY.secret, 'u1')}"  # type: ignore[index]
    texts = [df._jdf.queryExecution().toString()]  # EXPLAIN EXTENDED: parsed, analysed, optimised, physical
    store = spark._jsparkSession.sharedState().statusStore()  # what the UI's SQL tab renders
    executions = store.executionsList()
    for i in range(executions.size()):
        e = executions.apply(i)
        texts += [str(e.description()), str(e.details()), str(e.physicalPlanDescription())]
        graph = store.planGraph(e.executionId())
        nodes = graph.allNodes()
        texts += [str(nodes.apply(j).desc()) for j in range(nodes.size())]
    assert any("pseudonym_k1" in t for t in texts)  # the hashing is there, by name only
    everything = "\n".join(texts)
    needles = _needles(KEY.secret)
    for needle in needles:
        assert needle not in everything, needle[:20]
    # The session's event log so far, file by file (it holds every test's plans: hundreds of MB). Plain
    # JSON lines that name the hashing: a search that could not read it would prove nothing.
    log_dir = Path(str(spark.conf.get("spark.eventLog.dir")).removeprefix("file:"))
    logs = list(log_dir.rglob("events_*"))  # not the status marker, nor the file system's .crc files
    named = False
    for log in logs:
        data = log.read_bytes()
        assert data.startswith(b'{"Event":'), f"{log}: not a plain JSON event log"
        named = named or b"pseudonym_k1" in data
        for needle in needles:
            assert needle.encode() not in data, (log.name, needle[:20])
    assert logs and named, [p.name for p in logs]


def test_dev_without_a_key_makes_a_private_random_key_per_warehouse(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SKEWLESS_KEY_DIR", str(tmp_path / "keys"))
    src = KeySource(version="k1", env="SKEWLESS_UNSET_KEY")
    monkeypatch.delenv("SKEWLESS_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match="no key for version k1"):
        resolve_key(src, "dev", "privacy.yaml")  # no warehouse to keep a key for: refuse
    first = resolve_key(src, "dev", "privacy.yaml", warehouse=str(tmp_path / "a"))
    path = dev_key_path(str(tmp_path / "a"), "k1")
    assert not first.demo and first.secret != DEMO_KEY and len(first.secret) >= 32
    assert path.stat().st_mode & 0o777 == 0o600 and ROOT not in path.parents
    assert str(path) in capsys.readouterr().err  # the path is printed once, when the key is made
    again = resolve_key(src, "dev", "privacy.yaml", warehouse=str(tmp_path / "a"))
    assert again == first and str(path) not in capsys.readouterr().err
    other = resolve_key(src, "dev", "privacy.yaml", warehouse=str(tmp_path / "b"))
    assert other.secret != first.secret


def test_generalize_keeps_every_value_in_its_bucket_even_at_the_edges(spark: SparkSession) -> None:
    from skewless.core.policy import FieldPolicy
    from skewless.privacy.transforms import apply_action

    values = [12.0, 14.99, -0.1, -5.0, 0.0, 1e308, -1e308, None]
    df = spark.createDataFrame([(v,) for v in values], "v double")
    got = [r[0] for r in df.select(apply_action(F.col("v"), FieldPolicy("internal", "generalize", width=5.0), KEY))
           .collect()]
    assert got[:5] == [10.0, 10.0, -5.0, -5.0, 0.0] and got[7] is None
    assert got[5] == pytest.approx(1e308) and got[6] == pytest.approx(-1e308)  # never Long.MAX x width
