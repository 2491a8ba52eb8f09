"""The session's jars: Delta Lake's and spark-avro's, fetched once from Maven Central (SHA-1 checked),
and the project's own JVM code (the SQL extension that is the role guard, the Avro block walker),
compiled from its Java sources with the JDK against the installed pyspark's jars.

`skewless jars fetch` downloads, verifies and builds them (run by `make setup`) into $SKEWLESS_JARS_DIR,
by default the user's cache (~/.cache/skewless/jars), shared by every checkout and install;
`skewless jars` prints the comma-separated list for `spark-submit --jars`. The extension's jar is named
by a hash of its sources, so a changed source is a new jar, built on first use if `make setup` did not.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from importlib import resources
from pathlib import Path

from skewless.core.errors import DeltaJarsMissingError

DELTA_VERSION = "4.4.0"
SPARK_MINOR = "4.1"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
# (group path, artifact, version): delta-spark for this Spark minor and its storage layer. Its other
# Maven dependencies (Spark, Hadoop, Parquet, Jackson) are already in pyspark's jars.
# spark-avro reads log format v2: the newest 4.1 release on Maven Central (Spark's 4.1 patch releases
# share the data source API; pyspark ships the Avro library itself).
SPARK_AVRO_VERSION = "4.1.1"
ARTIFACTS = (
    ("io/delta", f"delta-spark_{SPARK_MINOR}_2.13", DELTA_VERSION),
    ("io/delta", "delta-storage", DELTA_VERSION),
    ("org/apache/spark", "spark-avro_2.13", SPARK_AVRO_VERSION),
)
# Folders of the project's Java sources (package data), compiled into one jar.
JVM_SOURCES = (("sql", "jvm"), ("ingest", "jvm"), ("privacy", "jvm"), ("drift", "jvm"))


def jars_dir() -> Path:
    if os.environ.get("SKEWLESS_JARS_DIR"):
        return Path(os.environ["SKEWLESS_JARS_DIR"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "skewless" / "jars"


def jar_paths() -> list[Path]:
    return [jars_dir() / f"{artifact}-{version}.jar" for _, artifact, version in ARTIFACTS]


def require_jars() -> list[Path]:
    """Delta's and spark-avro's jars, and the project's own (built here if its sources changed)."""
    paths = jar_paths()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise DeltaJarsMissingError(f"jars missing: {missing}; run `make setup` (skewless jars fetch)")
    return [*paths, build_extension()]


def _extension_sources() -> list[tuple[str, bytes]]:
    # Package data read as resources (the package may be a zip under spark-submit --py-files).
    out = []
    for parts in JVM_SOURCES:
        folder = resources.files("skewless").joinpath(*parts)
        out += [(f"{'/'.join(parts)}/{f.name}", f.read_bytes()) for f in folder.iterdir() if f.name.endswith(".java")]
    return sorted(out)


def extension_jar() -> Path:
    digest = hashlib.sha256()
    for name, body in _extension_sources():
        digest.update(name.encode() + b"\0" + body + b"\0")
    digest.update(SPARK_MINOR.encode())
    return jars_dir() / f"skewless-sql-extension-{digest.hexdigest()[:12]}.jar"


def _spark_jars() -> Path:
    return Path(str(resources.files("pyspark").joinpath("jars")))


def build_extension() -> Path:
    """The extension's jar, compiled with javac against pyspark's and Delta's jars if it is not there.
    Built in a private folder and renamed into place: concurrent first uses all end with one whole jar."""
    dest = extension_jar()
    if dest.is_file():
        return dest
    javac, jar = shutil.which("javac"), shutil.which("jar")
    if javac is None or jar is None:
        raise DeltaJarsMissingError("javac and jar (JDK 17) are needed to build the SQL extension; "
                                    "install a JDK, or run `make setup` where one is")
    dest.parent.mkdir(parents=True, exist_ok=True)
    classpath = os.pathsep.join([str(_spark_jars() / "*"), *(str(p) for p in jar_paths())])
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".build-") as tmp:
        src, classes = Path(tmp, "src"), Path(tmp, "classes")
        src.mkdir()
        files = []
        for name, body in _extension_sources():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            (src / name).write_bytes(body)
            files.append(str(src / name))
        for cmd in ([javac, "-nowarn", "--release", "17", "-d", str(classes), "-cp", classpath, *files],
                    [jar, "cf", str(Path(tmp, "out.jar")), "-C", str(classes), "."]):
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise DeltaJarsMissingError(f"building the SQL extension failed: {' '.join(cmd[:2])}: "
                                            f"{done.stderr.strip()[-2000:]}")
        Path(tmp, "out.jar").replace(dest)
    print(f"built {dest.name}", file=sys.stderr)
    return dest


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
    build_extension()
    return require_jars()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("path", "fetch"), default="path",
                   help="path (default): print the jar list; fetch: download and verify Delta's and "
                        "spark-avro's, build the project's JVM code")


def run(args: argparse.Namespace) -> int:
    if args.action == "fetch":
        fetch()
    else:
        print(",".join(str(p) for p in require_jars()))
    return 0
