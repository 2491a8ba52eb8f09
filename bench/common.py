"""What every benchmark does with its result: write the JSON file, print it, clean its work folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def publish(results: Path, result: dict[str, Any], work: Path) -> None:
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    shutil.rmtree(work, ignore_errors=True)
