"""The logger's output files: one open file of one hour, written under a hidden in-progress name and
renamed into place when closed, so compaction never reads half a file. Format v1 (JSON lines, gzip)
and v2 (Avro object container)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import fastavro.write

from skewless.core.names import PREDICTIONS_DIR
from skewless.core.paths import hour_folder
from skewless.serving.avroformat import META_MODEL, META_VERSION, SCHEMA_VERSION_V2


class HourFile:
    """One open output file of one hour; renamed from its hidden in-progress name on close."""

    def __init__(self, root: Path, host: str, hour: datetime, seq: int, compress: int) -> None:
        suffix = ".jsonl.gz" if compress else ".jsonl"
        raw = self._open(root, hour, f"{host}-{hour:%Y%m%dT%H}-{seq:05d}{suffix}")
        self._fh: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compress, mtime=0) if compress else raw
        )

    def _open(self, root: Path, hour: datetime, name: str) -> io.BufferedWriter:
        folder = root / hour_folder(PREDICTIONS_DIR, hour)
        folder.mkdir(parents=True, exist_ok=True)
        self.hour = hour
        self.final = folder / name
        self.temp = folder / f".{name}.inprogress"  # Spark and Hadoop skip names starting with '.'
        self._raw = open(self.temp, "wb")  # noqa: SIM115 - closed in close()
        self.records = 0
        return self._raw

    def write(self, item: Any) -> None:
        self._fh.write(item)
        self.records += 1

    def _finish(self) -> None:
        self._fh.close()

    def close(self) -> Path:
        self._finish()
        if not self._raw.closed:
            self._raw.close()
        os.replace(self.temp, self.final)
        return self.final


class AvroHourFile(HourFile):
    """An Avro object container file (format v2); the writer schema and version are in its header."""

    BLOCK_BYTES = 256 * 1024  # uncompressed bytes per block: fewer block headers, better compression

    def __init__(self, root: Path, host: str, hour: datetime, seq: int, schema: Any, codec: str,
                 level: int | None, model: str) -> None:
        name = f"{host}-{hour:%Y%m%dT%H}-{seq:05d}.avro"
        raw = self._open(root, hour, name)
        # A sync marker derived from the name: the same traffic gives byte-identical files.
        marker = hashlib.sha256(name.encode()).digest()[:16]
        self._writer = fastavro.write.Writer(
            raw, schema, codec=codec, sync_interval=self.BLOCK_BYTES, sync_marker=marker, compression_level=level,
            metadata={META_VERSION: str(SCHEMA_VERSION_V2), META_MODEL: model})

    def write(self, item: Any) -> None:
        self._writer.write(item)
        self.records += 1

    def _finish(self) -> None:
        self._writer.flush()
        self._raw.close()
