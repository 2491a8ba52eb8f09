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
        raw = self._open(root, hour, host, seq, suffix)
        self._fh: io.BufferedIOBase = (
            gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=compress, mtime=0) if compress else raw
        )

    def _open(self, root: Path, hour: datetime, host: str, seq: int, suffix: str) -> io.BufferedWriter:
        """Open the first sequence number from `seq` whose file neither exists nor is being written:
        a logger restarted within the hour, or a second logger of the host (another encoding), never
        overwrites a published file or shares another's in-progress one. `self.seq` is the one taken."""
        folder = root / hour_folder(PREDICTIONS_DIR, hour)
        folder.mkdir(parents=True, exist_ok=True)
        self.hour = hour
        while True:
            name = f"{host}-{hour:%Y%m%dT%H}-{seq:05d}{suffix}"
            self.final = folder / name
            self.temp = folder / f".{name}.inprogress"  # Spark and Hadoop skip names starting with '.'
            if not self.final.exists():
                try:
                    self._raw = open(self.temp, "xb")  # noqa: SIM115 - closed in close()
                    break
                except FileExistsError:
                    pass
            seq += 1
        self.seq = seq
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
        raw = self._open(root, hour, host, seq, ".avro")
        # A sync marker derived from the name: the same traffic gives byte-identical files.
        marker = hashlib.sha256(self.final.name.encode()).digest()[:16]
        self._writer = fastavro.write.Writer(
            raw, schema, codec=codec, sync_interval=self.BLOCK_BYTES, sync_marker=marker, compression_level=level,
            metadata={META_VERSION: str(SCHEMA_VERSION_V2), META_MODEL: model})

    def write(self, item: Any) -> None:
        self._writer.write(item)
        self.records += 1

    def _finish(self) -> None:
        self._writer.flush()
        self._raw.close()
