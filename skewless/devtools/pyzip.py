"""`python -m skewless.devtools.pyzip OUT.zip`: the package as the zip `spark-submit --py-files` takes.

Sources and package data only (no caches); read through `importlib.resources`, which works inside a zip.
"""

from __future__ import annotations

import sys
import zipfile
from importlib import resources
from pathlib import Path

SKIP_DIRS = {"__pycache__"}
SKIP_SUFFIXES = (".pyc", ".pyo")


def build(out: Path) -> int:
    root = Path(str(resources.files("skewless")))  # an installed (not zipped) package: a folder
    out.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_dir() or SKIP_DIRS & set(path.parts) or path.name.endswith(SKIP_SUFFIXES):
                continue
            zf.write(path, Path("skewless") / path.relative_to(root))
            n += 1
    return n


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m skewless.devtools.pyzip OUT.zip", file=sys.stderr)
        return 2
    n = build(Path(argv[0]))
    print(f"{argv[0]}: {n} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
