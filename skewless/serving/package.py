"""The model package: a folder with `manifest.json` that a serving host loads with the standard library.

    PKG/manifest.json   format version, model name and version, input features with types, the ordered
                        stages with every fitted parameter, the scorer, the training dataset version,
                        and `content_hash` (sha256 of the canonical manifest without that field)
    PKG/spark/          the fitted Spark ML pipeline, for the offline side only (the skew test)

A manifest whose hash does not match is refused: a package is what was fitted, or nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from skewless.core.errors import InvariantError, UsageError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPARK_DIR = "spark"
HASH = "content_hash"


def content_hash(manifest: dict[str, Any]) -> str:
    body = {k: v for k, v in manifest.items() if k != HASH}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def sealed(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with its content hash set (after any change)."""
    return {**manifest, HASH: content_hash(manifest)}


def read_manifest(path: str | Path) -> dict[str, Any]:
    """`PKG/manifest.json`, its format version and hash checked."""
    file = Path(path) / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise UsageError(f"{path}: not a model package (no {MANIFEST})") from exc
    except json.JSONDecodeError as exc:
        raise InvariantError(f"{file}: not valid JSON: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise InvariantError(f"{file}: format_version {manifest.get('format_version')!r}, "
                             f"this skewless reads {FORMAT_VERSION}")
    actual = content_hash(manifest)
    if manifest.get(HASH) != actual:
        raise InvariantError(f"{file}: content hash {actual[:12]} != recorded "
                             f"{str(manifest.get(HASH))[:12]}: the manifest was changed after it was written")
    return dict(manifest)


def publish(staging: Path, out: Path, *, replace: bool) -> None:
    """Move a complete staged package folder to `out` in one rename (never a half-written package)."""
    if out.exists():
        if not replace:
            raise UsageError(f"{out}: exists (pass --replace to overwrite a package)")
        trash = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
        return
    os.replace(staging, out)


def write_manifest(folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    final = sealed(manifest)
    (folder / MANIFEST).write_text(json.dumps(final, indent=2, sort_keys=True, allow_nan=False) + "\n",
                                   encoding="utf-8")
    return final
