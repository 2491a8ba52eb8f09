"""The serving engine: loads a model package with the standard library and numpy, scores one example
or a batch the way a serving host would. No Spark, no JVM.

    model = ServingModel.load("models/fraud-2026.12.1")
    model.score_one({"amount": 42.0, "country": "US", "logged_at": "2026-11-25T13:10:00Z", ...})
    model.score({"amount": [...], ...})            # a batch: one sequence per input feature

`overrides` replaces a stage's implementation by name: how a team plugs in its own serving code, and
how the tests inject known skew bugs into the serving side only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from skewless.core.errors import UsageError
from skewless.serving.package import read_manifest
from skewless.serving.stages import KINDS, Stage, StageFn


class ServingModel:
    def __init__(self, manifest: Mapping[str, Any], overrides: Mapping[str, StageFn] | None = None) -> None:
        self.manifest = manifest
        self.stages = tuple(Stage.from_manifest(s) for s in manifest["stages"])
        self.features: dict[str, str] = dict(manifest["features"])
        unknown = sorted(set(overrides or {}) - {s.name for s in self.stages})
        if unknown:
            raise UsageError(f"overrides for unknown stages {unknown} (stages: {[s.name for s in self.stages]})")
        self._fns = [(overrides or {}).get(s.name) or KINDS[s.kind] for s in self.stages]
        self.score_column = self.stages[-1].outputs[0].column

    @classmethod
    def load(cls, path: str | Path, overrides: Mapping[str, StageFn] | None = None) -> ServingModel:
        return cls(read_manifest(path), overrides)

    def run(self, raw: Mapping[str, Any], upto: int | None = None) -> dict[str, np.ndarray]:
        """Every physical column of stages 0..upto (all stages by default), from raw served values."""
        missing = sorted(set(self.features) - set(raw))
        if missing:
            raise UsageError(f"examples lack input features {missing}")
        cols: dict[str, Any] = {f: raw[f] for f in self.features}
        last = len(self.stages) - 1 if upto is None else upto
        for k in range(last + 1):
            cols.update(self.run_stage(k, cols))
        return {c: v for c, v in cols.items() if c not in self.features}

    def run_stage(self, k: int, cols: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Stage k alone, on the columns given (the skew test's isolated check feeds it Spark's inputs)."""
        return self._fns[k](self.stages[k], cols)

    def score(self, raw: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        return self.run(raw)[self.score_column]

    def score_one(self, example: Mapping[str, Any]) -> float:
        return float(self.score({f: [example.get(f)] for f in self.features})[0])
