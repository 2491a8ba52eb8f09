"""What drift profiles, in a fixed order, and the cell keys both sides agree on (no Spark here: the
metrics and the report read these too)."""

from __future__ import annotations

from dataclasses import dataclass

ALL = "all"
NULL_KEY, CATEGORY_KEY, STATUS_KEY = 0, 1, -1
# A feature's entry under this key: n = its non-missing rows, w = the sum of their squared weights.
SQUARES_KEY = -2
STATUS_FEATURE = -1  # a feature_status entry's `f`: its `s` is "feature" SEP "status"
SEP = "\x00"
TAIL = "__tail__"  # categories past the cap, summed (a high-cardinality feature stays small)


@dataclass(frozen=True)
class FeatureSet:
    """The monitored features in a fixed order: numeric ones first, then categorical (booleans included)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    def index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}


