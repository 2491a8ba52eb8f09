"""Serving-side prediction logger: format v1 (JSON lines, gzip) or v2 (Avro), deterministic sampling,
hourly files. No Spark.

A serving process makes one `PredictionLogger` and calls `log(...)` once per prediction. Sampling
is decided by a hash of the sampling key (the request id, or an entity field such as `user_id`, so an
entity's traffic is logged wholly or not at all). Records go through a bounded queue to a background
writer thread; when the queue is full the record is dropped and counted, so logging never blocks
serving. Files are written under a hidden in-progress name and renamed when closed, so compaction
never reads half a file.

    logger = PredictionLogger("/landing", host="pod-7", sample_rate=0.05, sample_key="user_id")
    logger.log(request_id, model=("fraud", "v3"), entity={...}, features={...}, prediction={"score": s})
    logger.counters()  # {'seen': ..., 'sampled': ..., 'written': ..., 'dropped': ..., 'fallback': ...}

    # v2: Avro with a schema generated from the model's declared features (deflate, or "zstandard")
    PredictionLogger("/landing", host="pod-7", sample_rate=0.05, log_format="avro",
                     features={"amount": "numeric", "country": "categorical"}, codec="deflate")

A v2 logger writes each record that fits its schema as Avro; one that does not (an undeclared
feature, a mistyped or missing field, a NaN) is written as a v1 JSON line into the same hour and
counted as `fallback`: compaction loads or quarantines it as v1, so nothing is dropped or coerced.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import fastavro
import fastavro.write

from skewless.core.names import FeatureType
from skewless.serving.avroformat import (
    CODECS,
    prediction_schema,
    to_avro_record,
)
from skewless.serving.hourfile import AvroHourFile, HourFile
from skewless.serving.logformat import SCHEMA_VERSION, rfc3339

_STOP = object()


def sample_fraction(key: str) -> float:
    """Uniform in [0, 1) from SHA-256 of the key: the same on every host, language and run."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class _Counters:
    seen: int = 0
    sampled: int = 0
    written: int = 0
    dropped: int = 0
    fallback: int = 0  # records a v2 logger wrote as v1 JSON (they do not fit its Avro schema)
    files: int = 0


class PredictionLogger:
    def __init__(
        self,
        landing: str | os.PathLike[str],
        *,
        host: str,
        sample_rate: float,
        sample_key: str = "request_id",
        queue_size: int = 10_000,
        max_records_per_file: int = 200_000,
        compress_level: int = 6,
        background: bool = True,
        block_when_full: bool = False,
        clock: Callable[[], datetime] | None = None,
        log_format: Literal["json", "avro"] = "json",
        features: Mapping[str, FeatureType] | None = None,
        codec: str = "deflate",
        codec_level: int | None = None,
        model: str = "",
    ) -> None:
        if not 0 < sample_rate <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {sample_rate}")
        if not host or "/" in host:
            raise ValueError(f"host must be a non-empty name without '/', got {host!r}")
        if log_format not in ("json", "avro"):
            raise ValueError(f"log_format must be 'json' (v1) or 'avro' (v2), got {log_format!r}")
        if log_format == "avro" and (not features or codec not in CODECS):
            raise ValueError(f"an Avro logger needs the model's declared features and a codec in {CODECS}; "
                             f"got {len(features or {})} features and codec {codec!r}")
        self._features: dict[str, FeatureType] = dict(features or {})
        self._avro = (fastavro.parse_schema(prediction_schema(self._features)), codec, codec_level, model) \
            if log_format == "avro" else None
        self._avro_file: AvroHourFile | None = None
        self._root = Path(landing)
        self._host = host
        self.sample_rate = sample_rate
        self._sample_key = sample_key
        self._max_records = max_records_per_file
        self._compress = compress_level
        self._block = block_when_full
        self._clock = clock or (lambda: datetime.now(UTC))
        self._counters = _Counters()
        self._lock = threading.Lock()
        self._file: HourFile | None = None
        self._seq = 0
        self.closed_files: list[Path] = []
        self._queue: queue.Queue[Any] | None = None
        self._thread: threading.Thread | None = None
        if background:
            self._queue = queue.Queue(maxsize=queue_size)
            self._thread = threading.Thread(target=self._drain, name=f"prediction-logger-{host}", daemon=True)
            self._thread.start()

    # -- serving-side API -------------------------------------------------------------------------
    def sampled(self, key: str) -> bool:
        """Count one prediction as seen; True when its key falls in the sample."""
        keep = sample_fraction(key) < self.sample_rate
        with self._lock:
            self._counters.seen += 1
            self._counters.sampled += keep
        return keep

    def log(
        self,
        request_id: str,
        *,
        model: tuple[str, str],
        features: Mapping[str, Any],
        prediction: Mapping[str, Any],
        entity: Mapping[str, str] | None = None,
        feature_status: Mapping[str, str] | None = None,
        context: Mapping[str, str] | None = None,
        logged_at: datetime | None = None,
    ) -> bool:
        """Log one prediction if it is sampled; returns whether it was queued (False: not sampled or dropped)."""
        key = request_id if self._sample_key == "request_id" else (entity or {}).get(self._sample_key, request_id)
        if not self.sampled(key):
            return False
        record: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "request_id": request_id,
            "logged_at": rfc3339(logged_at or self._clock()),
            "model": {"name": model[0], "version": model[1]},
            "entity": dict(entity or {}),
            "features": dict(features),
            "prediction": dict(prediction),
            "sample_rate": self.sample_rate,
        }
        if feature_status:
            record["feature_status"] = dict(feature_status)
        if context:
            record["context"] = dict(context)
        return self.submit(record)

    def submit(self, record: Mapping[str, Any]) -> bool:
        """Queue an already-sampled, complete format-v1 record."""
        if self._queue is None:
            self._write(record)
            return True
        try:
            self._queue.put(record, block=self._block)
            return True
        except queue.Full:
            with self._lock:
                self._counters.dropped += 1
            return False

    def inject_raw_line(self, line: bytes) -> None:
        """Write bytes as they are, for replay and fault-injection tools (the generator's broken lines).
        Synchronous loggers only: with a writer thread the bytes could interleave with its records."""
        if self._queue is not None:
            raise RuntimeError("inject_raw_line needs a logger made with background=False")
        now = self._clock().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        current = self._file if self._file is not None and self._file.hour == now else self._rotate(now)
        assert current is not None
        current.write(line)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(vars(self._counters))

    def close(self) -> None:
        """Flush the queue, close and publish the open file. Idempotent."""
        if self._thread is not None and self._queue is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
        self._rotate(None)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writer side ------------------------------------------------------------------------------
    def _drain(self) -> None:
        assert self._queue is not None
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                self._write(item)
            except Exception:  # noqa: BLE001 - a write failure must never kill serving; it is counted
                with self._lock:
                    self._counters.dropped += 1

    def _write(self, record: Mapping[str, Any]) -> None:
        now = self._clock().astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        datum = to_avro_record(record, self._features) if self._avro is not None else None
        if datum is not None:
            avro = self._avro_file
            if avro is None or avro.hour != now or avro.records >= self._max_records:
                avro = self._rotate_avro(now)
            avro.write(datum)
        else:
            current = self._file
            if current is None or current.hour != now or current.records >= self._max_records:
                current = self._rotate(now)
            assert current is not None
            current.write(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")
        with self._lock:
            self._counters.written += 1
            self._counters.fallback += self._avro is not None and datum is None

    def _rotate(self, hour: datetime | None) -> HourFile | None:
        if self._file is not None:
            self.closed_files.append(self._file.close())
            self._file = None
        if hour is None and self._avro_file is not None:
            self.closed_files.append(self._avro_file.close())
            self._avro_file = None
        if hour is not None:
            self._seq += 1
            self._file = HourFile(self._root, self._host, hour, self._seq, self._compress)
            self._seq = self._file.seq
            with self._lock:
                self._counters.files += 1
        return self._file

    def _rotate_avro(self, hour: datetime) -> AvroHourFile:
        assert self._avro is not None
        if self._avro_file is not None:
            self.closed_files.append(self._avro_file.close())
        self._seq += 1
        schema, codec, level, model = self._avro
        self._avro_file = AvroHourFile(self._root, self._host, hour, self._seq, schema, codec, level, model)
        self._seq = self._avro_file.seq
        with self._lock:
            self._counters.files += 1
        return self._avro_file
