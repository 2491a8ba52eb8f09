"""Traffic generator: realistic fraud-scoring predictions written through the PredictionLogger.

    skewless generate --start 2026-11-25T00 --hours 3 --rps 40 --seed 7 [--drift-from 2026-11-25T02]

Each simulated serving host runs in its own process with its own logger (synchronous mode, driven by
a simulated clock, so a seed always gives the same files). The quirks of real serving are in the data:
timeouts (null + status), stale and default values, upstream errors, client retries (identical or
not), a few malformed or contract-breaking lines, a file flushed late into the next hour's folder,
clock skew between hosts, a feature that appears mid-way, a new model version, and labels that
arrive days later (some never, some corrected, some for unknown requests). Optionally
(`low_risk_rate`), a sample rate that varies by key, recorded on each record as the logger does.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np

from skewless.core.names import LABELS_DIR, FeatureType
from skewless.serving.logformat import rfc3339
from skewless.serving.logger import PredictionLogger, sample_fraction

MERCHANT_CATEGORIES = ("grocery", "electronics", "travel", "fuel", "restaurants", "gaming", "fashion", "pharmacy")
LOW_RISK_CATEGORIES = frozenset({"grocery", "fuel"})  # what `low_risk_rate` samples less
COUNTRIES = ("US", "GB", "DE", "FR", "BR", "IN", "NG", "JP")
DEVICE_TYPES = ("ios", "android", "web", "pos")
PAYMENT_METHODS = ("card", "wallet", "bank_transfer")
REGIONS = ("us-east-1", "eu-west-1", "ap-south-1")
NEW_FEATURE = "merchant_embedding_norm"
_CATEGORICAL = ("merchant_category", "country", "device_type", "payment_method")
# The served vector's fields and types: a v2 logger's schema (the feature appearing mid-way included).
SERVED_FEATURES: dict[str, FeatureType] = {
    **{n: "numeric" for n in ("amount", "amount_zscore", "merchant_risk", "txn_count_1h", "txn_count_24h",
                              "avg_amount_30d", "account_age_days", "device_fingerprint_score", "ip_risk",
                              "hour_of_day", "distance_from_home_km", "failed_logins_24h", "chargebacks_90d",
                              "email_domain_risk", "velocity_score", NEW_FEATURE)},
    **{n: "categorical" for n in _CATEGORICAL}, "card_present": "boolean",
}


@dataclass(frozen=True)
class GenSpec:
    landing: str
    start: datetime
    hours: int
    rps: float
    seed: int
    hosts: int = 4
    sample_rate: float = 0.1
    drift_from: datetime | None = None
    compress_level: int = 1
    quirks: bool = True
    log_format: Literal["json", "avro"] = "json"  # v1 JSON lines or v2 Avro (+ v1 lines for what v2 cannot hold)
    avro_from: datetime | None = None  # with log_format avro: the hour the hosts switch from v1 to v2
    codec: str = "deflate"
    cut_file: bool = True  # with quirks: one closed file of host 0 is cut short, as a crashed upload
    # Sampling that varies by key: requests at low-risk merchants (LOW_RISK_CATEGORIES) are logged at
    # this rate instead of sample_rate (None: every request at sample_rate). Each record carries its own
    # rate, so a dataset's 1 / sample_rate weights undo the skew the sampling puts in the logs.
    low_risk_rate: float | None = None


@dataclass(frozen=True)
class _HostJob:
    spec: GenSpec
    host: int


def _user_pool(seed: int, size: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "home_country": rng.integers(0, len(COUNTRIES), size),
        "account_age": rng.gamma(2.0, 300.0, size),
        "avg_amount": rng.lognormal(3.5, 0.8, size),
        "risk": rng.beta(1.2, 12.0, size),
    }


def _predictions(job: _HostJob, hour_idx: int, logger: PredictionLogger) -> Iterator[dict[str, Any]]:
    """Yield the sampled records of one host-hour, in logged_at order."""
    spec = job.spec
    hour = spec.start + timedelta(hours=hour_idx)
    rng = np.random.default_rng([spec.seed, job.host, hour_idx])
    n_pred = rng.poisson(spec.rps * 3600 / spec.hosts)
    offsets = np.sort(rng.uniform(0, 3600, n_pred))
    keys = [f"{hour:%Y%m%d%H}-{job.host:02d}-{i:07x}-{spec.seed}" for i in range(n_pred)]
    mask = np.fromiter((logger.sampled(k) for k in keys), dtype=bool, count=n_pred)
    idx = np.flatnonzero(mask)
    n = len(idx)
    if n == 0:
        return
    users = _user_pool(spec.seed, max(1000, int(spec.rps * 50)))
    drifted = spec.drift_from is not None and hour >= spec.drift_from
    uid, risk, fraud, amount, fp_score, cols = _draw_features(rng, n, users, hour, drifted)
    logit = -3.2 + 5 * risk + 1.5 * fp_score + 0.002 * np.minimum(amount, 2000)
    score = np.round(1 / (1 + np.exp(-logit)), 6).tolist()
    second_half = hour_idx >= spec.hours / 2
    v2 = (rng.random(n) < (0.5 if second_half else 0.0)).tolist()
    quirk = rng.random((n, 5)) if spec.quirks else np.ones((n, 5))
    skew_ms = int(rng.integers(-2000, 2000))  # this host's clock error
    uid_l, off_l, fraud_l, ip_l = uid.tolist(), offsets[idx].tolist(), fraud.tolist(), rng.integers(1, 255, (n, 4))
    names = list(cols)
    rows = list(zip(*(cols[k] for k in names), strict=True))
    rates = _rates(spec, [keys[i] for i in idx], cols["merchant_category"])
    for j in range(n):
        if rates[j] is None:
            continue
        feats = dict(zip(names, rows[j], strict=True))
        status = _apply_quirks(feats, quirk[j])
        if second_half:
            feats[NEW_FEATURE] = round(float(feats["amount"]) ** 0.5 / 10, 4)
        u = uid_l[j]
        ts = hour + timedelta(seconds=off_l[j], milliseconds=skew_ms)
        ip = ip_l[j]
        yield {
            "schema_version": 1,
            "request_id": keys[idx[j]],
            "logged_at": ts,
            "model": {"name": "fraud", "version": "v2" if v2[j] else "v1"},
            "entity": {
                "user_id": f"u{u:07d}",
                "device_id": f"d{(u * 7919) % 10_000_019:08d}",
                "email": f"user{u}@example.com",
                "ip": f"{ip[0]}.{ip[1]}.{ip[2]}.{ip[3]}",
            },
            "features": feats,
            "feature_status": status,
            "prediction": {"score": score[j], "decision": "review" if score[j] > 0.5 else "approve"},
            "sample_rate": rates[j],
            "context": {"region": REGIONS[u % 3], "host": f"pod-{job.host}"},
            "_fraud": fraud_l[j],
        }


def _rates(spec: GenSpec, keys: list[str], categories: list[str]) -> list[float | None]:
    """Each sampled request's logging rate, or None where its stratum's lower rate drops it: the key
    is kept by the same hash test the logger applies, at the stratum's rate (<= sample_rate)."""
    low = spec.low_risk_rate
    if low is None:
        return [spec.sample_rate] * len(keys)
    return [spec.sample_rate if c not in LOW_RISK_CATEGORIES else (low if sample_fraction(k) < low else None)
            for k, c in zip(keys, categories, strict=True)]


def _draw_features(rng: np.random.Generator, n: int, users: dict[str, np.ndarray], hour: datetime,
                   drifted: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray,
                                           dict[str, list[Any]]]:
    """The served feature columns of `n` sampled requests (the draws' order fixes the seed's output)."""
    uid = rng.zipf(1.3, n) % len(users["risk"])
    risk = users["risk"][uid]
    fraud = rng.random(n) < np.clip(risk * 0.25, 0, 1)
    amount = np.round(users["avg_amount"][uid] * rng.lognormal(0, 0.6, n) * np.where(fraud, 3.0, 1.0), 2)
    fp_score = rng.beta(5, 2, n) if drifted else rng.beta(2, 5, n)
    fp_score = np.round(np.clip(fp_score + fraud * 0.2, 0, 1), 4)
    device = rng.choice(len(DEVICE_TYPES), n, p=[0.1, 0.15, 0.6, 0.15] if drifted else [0.35, 0.35, 0.2, 0.1])
    country = np.where(rng.random(n) < 0.9, users["home_country"][uid], rng.integers(0, len(COUNTRIES), n))
    cols: dict[str, list[Any]] = {
        "amount": amount.tolist(),
        "amount_zscore": np.round((amount - users["avg_amount"][uid]) / (users["avg_amount"][uid] + 1), 4).tolist(),
        "merchant_category": [MERCHANT_CATEGORIES[i] for i in rng.integers(0, len(MERCHANT_CATEGORIES), n)],
        "merchant_risk": np.round(rng.beta(2, 8, n), 4).tolist(),
        "country": [COUNTRIES[i] for i in country],
        "card_present": (rng.random(n) < 0.3).tolist(),
        "txn_count_1h": rng.poisson(1 + fraud * 4, n).astype(float).tolist(),
        "txn_count_24h": rng.poisson(6 + fraud * 10, n).astype(float).tolist(),
        "avg_amount_30d": np.round(users["avg_amount"][uid], 2).tolist(),
        "account_age_days": np.floor(users["account_age"][uid]).tolist(),
        "device_type": [DEVICE_TYPES[i] for i in device],
        "device_fingerprint_score": fp_score.tolist(),
        "ip_risk": np.round(np.clip(risk + rng.normal(0, 0.05, n), 0, 1), 4).tolist(),
        "hour_of_day": [float(hour.hour)] * n,
        "distance_from_home_km": np.round(rng.exponential(15 + fraud * 400, n), 1).tolist(),
        "failed_logins_24h": rng.poisson(0.2 + fraud * 2, n).astype(float).tolist(),
        "chargebacks_90d": rng.poisson(risk * 2, n).astype(float).tolist(),
        "email_domain_risk": np.round(rng.beta(1.5, 10, n), 4).tolist(),
        "velocity_score": np.round(rng.gamma(2, 0.1 + fraud * 0.3, n), 4).tolist(),
        "payment_method": [PAYMENT_METHODS[i] for i in rng.choice(3, n, p=[0.7, 0.2, 0.1])],
    }
    return uid, risk, fraud, amount, fp_score, cols


def _apply_quirks(feats: dict[str, Any], q: np.ndarray) -> dict[str, str]:
    """Serving's quirks, as data: timeouts and errors (null), stale cache entries, defaults."""
    status: dict[str, str] = {}
    if q[0] < 0.02:
        feats["ip_risk"], status["ip_risk"] = None, "timeout"
    if q[1] < 0.01:
        feats["device_fingerprint_score"], status["device_fingerprint_score"] = None, "timeout"
    if q[2] < 0.03:
        feats["avg_amount_30d"] = round(feats["avg_amount_30d"] * 0.9, 2)
        status["avg_amount_30d"] = "stale"
    if q[3] < 0.02:
        feats["merchant_risk"], status["merchant_risk"] = 0.5, "default"
    if q[4] < 0.005:
        feats["velocity_score"], status["velocity_score"] = None, "error"
    return status


def _broken(record: dict[str, Any], kind: int) -> bytes | dict[str, Any]:
    """Contract-breaking variants of a record, as a misbehaving client or a crash would write them."""
    if kind == 0:
        text = json.dumps(record, separators=(",", ":"))
        return text[: len(text) // 2].encode() + b"\n"  # truncated line
    if kind == 1:
        return {**record, "request_id": None}
    if kind == 2:
        return {**record, "logged_at": "25/11/2026 13:04"}
    if kind == 3:
        return {**record, "features": {**record["features"], "amount": "N/A"}}
    return b"\x00\x00 not json at all\n"


def _run_host(job: _HostJob) -> dict[str, int]:
    spec = job.spec
    rng = np.random.default_rng([spec.seed, job.host, 10_000])
    clock = [spec.start]
    loggers = {fmt: PredictionLogger(
        spec.landing, host=f"pod-{job.host}", sample_rate=spec.sample_rate, background=False,
        compress_level=spec.compress_level, clock=lambda: clock[0], log_format=fmt,
        features=SERVED_FEATURES if fmt == "avro" else None, codec=spec.codec, model="fraud",
    ) for fmt in {"json", spec.log_format}}
    switch = spec.avro_from or spec.start
    labels: dict[str, list[str]] = {}
    stats = {"records": 0, "retries": 0, "broken": 0, "labels": 0}
    for h in range(spec.hours):
        logger = loggers["avro" if spec.log_format == "avro" and spec.start + timedelta(hours=h) >= switch
                         else "json"]
        # One host-hour in four is flushed 20-60 minutes late, into the next hour's folder.
        late = timedelta(minutes=int(rng.integers(20, 60))) if spec.quirks and rng.random() < 0.25 else timedelta()
        for rec in _predictions(job, h, logger):
            fraud = rec.pop("_fraud")
            written = rec["logged_at"] + late + timedelta(milliseconds=int(rng.integers(0, 1500)))
            clock[0] = max(clock[0], written)
            rec["logged_at"] = rfc3339(rec["logged_at"])
            roll = rng.random() if spec.quirks else 0.5
            if roll < 0.0005:
                bad = _broken(rec, int(rng.integers(0, 5)))
                if isinstance(bad, bytes):
                    logger.inject_raw_line(bad)
                else:
                    logger.submit(bad)
                stats["broken"] += 1
                continue
            logger.submit(rec)
            stats["records"] += 1
            if roll > 0.995:  # client retry: the same request logged again, identical or not
                retry = rec if roll > 0.9985 else {**rec, "prediction": {**rec["prediction"], "score": 0.0}}
                logger.submit(retry)
                stats["retries"] += 1
            _labels_for(rec, fraud, rng, labels, spec.quirks)
    closed: list[Path] = []
    for each in loggers.values():
        each.close()
        closed += each.closed_files
    closed.sort(key=lambda p: (p.parent.parent.name, p.parent.name, p.name))
    if spec.quirks and spec.cut_file and job.host == 0 and len(closed) > 1:
        # A host crashed while uploading: one file is cut short (compaction must survive it).
        victim = closed[len(closed) // 2]
        data = victim.read_bytes()
        victim.write_bytes(data[: max(64, int(len(data) * 0.6))])
        stats["truncated_files"] = 1
    stats["labels"] = _write_labels(spec, job.host, labels)
    for each in loggers.values():
        for k, v in each.counters().items():
            stats[f"logger_{k}"] = stats.get(f"logger_{k}", 0) + v
    return stats


def _labels_for(rec: dict[str, Any], fraud: bool, rng: np.random.Generator,
                out: dict[str, list[str]], quirks: bool) -> None:
    """Chargebacks for frauds, days later: 10% never arrive, 3% are corrected to 0 afterwards."""
    if not fraud or rng.random() < 0.10:
        return
    served = datetime.fromisoformat(rec["logged_at"].replace("Z", "+00:00"))
    delay = timedelta(days=float(np.clip(rng.lognormal(np.log(20), 0.7), 0.5, 90)))
    events = [(served + delay, 1.0, "chargeback")]
    if rng.random() < 0.03:
        events.append((served + delay + timedelta(days=float(rng.uniform(1, 10))), 0.0, "dispute_won"))
    if quirks and rng.random() < 0.01:
        events.append((served - timedelta(hours=2), 1.0, "chargeback"))  # observed before the prediction
    for at, label, source in events:
        line = json.dumps({"request_id": rec["request_id"], "label": label, "observed_at": rfc3339(at),
                           "source": source}, separators=(",", ":"))
        out.setdefault(f"{at:%Y-%m-%d}", []).append(line)
    if quirks and rng.random() < 0.01:
        out.setdefault(f"{served + delay:%Y-%m-%d}", []).append(
            json.dumps({"request_id": f"unknown-{rng.integers(1 << 40)}", "label": 1.0,
                        "observed_at": rfc3339(served + delay)}))


def _write_labels(spec: GenSpec, host: int, labels: dict[str, list[str]]) -> int:
    total = 0
    for day, lines in sorted(labels.items()):
        folder = Path(spec.landing) / LABELS_DIR / f"date={day}"
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"labels-pod-{host}-{spec.seed}.jsonl"
        tmp = folder / f".{final.name}.inprogress"
        tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
        os.replace(tmp, final)
        total += len(lines)
    return total


def generate(spec: GenSpec, progress: bool = True) -> dict[str, Any]:
    """Write every host's traffic in parallel processes; returns summed counts."""
    started = time.monotonic()
    jobs = [_HostJob(spec, h) for h in range(spec.hosts)]
    workers = min(len(jobs), os.cpu_count() or 1)
    totals: dict[str, Any] = {}
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers) as pool:
        for i, stats in enumerate(pool.imap_unordered(_run_host, jobs), 1):
            for k, v in stats.items():
                totals[k] = totals.get(k, 0) + v
            if progress:
                print(f"generate: host {i}/{len(jobs)} done, {stats['records']} records", flush=True)
    totals["hosts"] = spec.hosts
    totals["hours"] = spec.hours
    totals["seconds"] = round(time.monotonic() - started, 2)
    return totals
