"""The Delta Lake jars: fetched once from Maven Central (SHA-1 checked) into a user-level cache.

`skewless jars fetch` downloads and verifies them (run by `make setup`) into $SKEWLESS_JARS_DIR, by
default the user's cache (~/.cache/skewless/jars), shared by every checkout and install;
`skewless jars` prints the comma-separated list for `spark-submit --jars`.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import urllib.request
from pathlib import Path

from skewless.core.errors import DeltaJarsMissingError

DELTA_VERSION = "4.4.0"
SPARK_MINOR = "4.1"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
# (group path, artifact, version): delta-spark for this Spark minor and its storage layer. Its other
# Maven dependencies (Spark, Hadoop, Parquet, Jackson) are already in pyspark's jars.
ARTIFACTS = (
    ("io/delta", f"delta-spark_{SPARK_MINOR}_2.13", DELTA_VERSION),
    ("io/delta", "delta-storage", DELTA_VERSION),
)


def jars_dir() -> Path:
    if os.environ.get("SKEWLESS_JARS_DIR"):
        return Path(os.environ["SKEWLESS_JARS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "skewless" / "jars"


def jar_paths() -> list[Path]:
    return [jars_dir() / f"{artifact}-{version}.jar" for _, artifact, version in ARTIFACTS]


def require_jars() -> list[Path]:
    paths = jar_paths()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DeltaJarsMissingError(f"Delta jars missing: {missing}; run `make setup` (skewless jars fetch)")
    return paths


def fetch() -> list[Path]:
    """Download each jar with its .sha1 from Maven Central; keep verified files only."""
    target = jars_dir()
    target.mkdir(parents=True, exist_ok=True)
    for (group, artifact, version), dest in zip(ARTIFACTS, jar_paths(), strict=True):
        if dest.is_file():
            continue
        url = f"{MAVEN_CENTRAL}/{group}/{artifact}/{version}/{artifact}-{version}.jar"
        with urllib.request.urlopen(url + ".sha1", timeout=60) as resp:
            expected = resp.read().decode().split()[0].strip()
        with urllib.request.urlopen(url, timeout=300) as resp:
            body = resp.read()
        actual = hashlib.sha1(body).hexdigest()  # noqa: S324 - Maven Central publishes SHA-1 sums
        if actual != expected:
            raise DeltaJarsMissingError(f"{url}: sha1 {actual} != published {expected}")
        tmp = dest.with_suffix(".part")
        tmp.write_bytes(body)
        tmp.replace(dest)  # atomic: a killed fetch never leaves a half jar under the final name
        print(f"fetched {dest.name} ({len(body) // 1024} KiB)", file=sys.stderr)
    return jar_paths()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("path", "fetch"), default="path",
                   help="path (default): print the jar list; fetch: download and verify them")


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        fetch()
    else:
        print(",".join(str(p) for p in require_jars()))
    return 0
