import gzip
import hashlib
import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from skewless.serving.logger import PredictionLogger, sample_fraction

REQ_1, EMPTY = 0.579449, 0.889416  # SHA-256 prefixes of "req-1" and "" (e3b0c442...)
T0 = datetime(2026, 11, 25, 13, 59, 58, tzinfo=UTC)


def _log(logger: PredictionLogger, rid: str, user: str = "u1") -> bool:
    return logger.log(rid, model=("fraud", "v1"), features={"amount": 1.0}, prediction={"score": 0.5},
                      entity={"user_id": user})


def test_sampling_is_deterministic_and_near_the_rate(tmp_path: Path) -> None:
    a = PredictionLogger(tmp_path / "a", host="h", sample_rate=0.1, background=False)
    b = PredictionLogger(tmp_path / "b", host="h", sample_rate=0.1, background=False)
    keys = [f"req-{i}" for i in range(20_000)]
    picked_a = [a.sampled(k) for k in keys]
    picked_b = [b.sampled(k) for k in keys]
    assert picked_a == picked_b
    assert 0.09 < sum(picked_a) / len(keys) < 0.11
    assert a.counters()["seen"] == 20_000 and a.counters()["sampled"] == sum(picked_a)
    # Pinned values: any host in any language computing SHA-256 of the key agrees (a changed rule fails).
    assert sample_fraction("req-1") == int(hashlib.sha256(b"req-1").hexdigest()[:16], 16) / 2**64
    assert [round(sample_fraction(k), 6) for k in ("req-1", "")] == [REQ_1, EMPTY]


def test_entity_sampling_logs_an_entity_wholly_or_not_at_all(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path, host="h", sample_rate=0.3, sample_key="user_id", background=False)
    by_user: dict[str, set[bool]] = {}
    for i in range(3000):
        user = f"u{i % 50}"
        by_user.setdefault(user, set()).add(_log(logger, f"r{i}", user))
    logger.close()
    assert all(len(decisions) == 1 for decisions in by_user.values())
    assert 0 < sum(True in d for d in by_user.values()) < 50


def test_files_rotate_by_hour_and_appear_only_when_closed(tmp_path: Path) -> None:
    now = [T0]
    logger = PredictionLogger(tmp_path, host="pod-1", sample_rate=1.0, background=False, clock=lambda: now[0])
    _log(logger, "r1")
    hour13 = tmp_path / "predictions" / "date=2026-11-25" / "hour=13"
    assert [p.name for p in hour13.iterdir()] == [".pod-1-20261125T13-00001.jsonl.gz.inprogress"]
    now[0] = T0 + timedelta(seconds=5)  # 14:00:03: the next record goes to the next hour's folder
    _log(logger, "r2")
    logger.close()
    assert [p.name for p in hour13.iterdir()] == ["pod-1-20261125T13-00001.jsonl.gz"]
    hour14 = tmp_path / "predictions" / "date=2026-11-25" / "hour=14"
    lines = gzip.decompress(next(hour14.iterdir()).read_bytes()).splitlines()
    rec = json.loads(lines[0])
    assert rec["request_id"] == "r2" and rec["logged_at"] == "2026-11-25T14:00:03.000Z"
    assert rec["sample_rate"] == 1.0 and rec["schema_version"] == 1
    assert logger.counters() == {"seen": 2, "sampled": 2, "written": 2, "dropped": 0, "fallback": 0, "files": 2}


def test_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    gate = threading.Event()

    def slow_clock() -> datetime:
        gate.wait(10)  # the writer thread stalls here, as on a slow disk
        return T0

    logger = PredictionLogger(tmp_path, host="h", sample_rate=1.0, queue_size=2, clock=slow_clock)
    results = [logger.submit({"request_id": f"r{i}"}) for i in range(10)]
    gate.set()
    logger.close()
    counters = logger.counters()
    assert results.count(False) == counters["dropped"] >= 7
    assert counters["written"] + counters["dropped"] == 10


def test_a_restarted_logger_never_overwrites_a_file_of_the_same_hour(tmp_path: Path) -> None:
    # A serving process restarted within the hour (or a second logger of the host, e.g. another
    # encoding) starts its sequence at 1 again: it must take the next free name, not replace the file.
    clock = [T0]
    files = []
    for run in range(2):
        logger = PredictionLogger(tmp_path, host="h", sample_rate=1.0, background=False, clock=lambda: clock[0])
        for i in range(3):
            _log(logger, f"run{run}-{i}")
        logger.close()
        files += logger.closed_files
    assert [f.name for f in files] == ["h-20261125T13-00001.jsonl.gz", "h-20261125T13-00002.jsonl.gz"]
    ids = [json.loads(line)["request_id"] for f in files for line in gzip.decompress(f.read_bytes()).splitlines()]
    assert ids == [f"run{r}-{i}" for r in range(2) for i in range(3)]
