"""Pipeline specs (conf/models/<name>-pipeline.yaml): the offline stages of a model, validated before
Spark starts. Each stage reads named values and writes new ones; every error names the file and key."""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from skewless.core.errors import ConfigError
from skewless.core.yamlconf import LOADED, build, read_yaml

InputType = Literal["numeric", "categorical", "boolean", "timestamp"]
StageKind = Literal["imputer", "clip", "log1p", "hour_of_day", "bucketize", "standard_scaler", "one_hot",
                    "feature_hasher", "assemble", "custom"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
RESERVED = ("inputs", "score")  # the first stage (raw values -> columns) and the scorer


@dataclass(frozen=True)
class StageSpec:
    name: str
    kind: StageKind
    inputs: tuple[str, ...]
    output: str = ""                       # the vector a standard_scaler / feature_hasher / assemble makes
    outputs: tuple[str, ...] = ()          # hour_of_day and custom: names of new values (default: inputs)
    strategy: Literal["mean", "median"] = "mean"  # imputer
    relative_error: float = 0.001          # imputer median and bucketize quantiles: Spark's approxQuantile
    lower: float | None = None             # clip
    upper: float | None = None
    splits: tuple[float, ...] = ()         # bucketize: -.inf < ... < .inf, the same for every input
    quantiles: int = 0                     # bucketize: or this many buckets fitted (QuantileDiscretizer)
    with_mean: bool = False                # standard_scaler (Spark's defaults)
    with_std: bool = True
    drop_last: bool = True                 # one_hot (Spark's default); unseen and missing: all zeros
    num_features: int = 0                  # feature_hasher
    serving: str = ""                      # custom: "module:function" for the serving engine (numpy)
    spark: str = ""                        # custom: "module:function" for Spark (DataFrame -> DataFrame)
    options: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScorerSpec:
    kind: Literal["logistic_regression"] = "logistic_regression"
    input: str = "features"
    reg_param: float = 0.0
    elastic_net: float = 0.0
    max_iter: int = 100
    standardization: bool = True


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    version: str
    features: dict[str, InputType]
    stages: tuple[StageSpec, ...]
    scorer: ScorerSpec = field(default_factory=ScorerSpec)
    label: str = "label"
    weight: str = "weight"                 # "" to fit unweighted
    split: Literal["train", "validation", "test"] = "train"
    tolerance: float = 1e-6                # the skew test's max |offline - serving| for this model
    source_file: str = field(default="", metadata=LOADED)


def load_spec(path: str | Path) -> PipelineSpec:
    file = Path(path)
    spec = build(PipelineSpec, read_yaml(file), str(file))
    validate(spec, str(file))
    return dataclasses.replace(spec, source_file=str(file))


def _fail(src: str, key: str, msg: str) -> ConfigError:
    return ConfigError(src, key, msg)


_WANTS = {"imputer": "number", "clip": "number", "log1p": "number", "bucketize": "number",
          "standard_scaler": "number", "hour_of_day": "timestamp", "one_hot": "categorical",
          "feature_hasher": "categorical", "assemble": "any", "custom": "any"}


def validate(spec: PipelineSpec, src: str) -> None:
    """Names, types and the order of values: a stage only reads what earlier stages made."""
    if not spec.features:
        raise _fail(src, "features", "declare at least one input feature")
    if not 0 < spec.tolerance < 1:
        raise _fail(src, "tolerance", f"must be in (0, 1), got {spec.tolerance}")
    kinds: dict[str, str] = {}
    for name, t in spec.features.items():
        if not _NAME.match(name):
            raise _fail(src, f"features.{name}", "not a valid feature name")
        kinds[name] = "number" if t in ("numeric", "boolean") else t
    seen: set[str] = set()
    missing = set(spec.features)  # values that may be missing (NaN) at this point of the pipeline
    for i, st in enumerate(spec.stages):
        key = f"stages[{i}]"
        if not _NAME.match(st.name) or st.name in RESERVED or st.name in seen:
            raise _fail(src, f"{key}.name", f"{st.name!r}: stage names are unique lower_snake_case, not {RESERVED}")
        seen.add(st.name)
        if not st.inputs:
            raise _fail(src, f"{key}.inputs", "a stage reads at least one value")
        for j, inp in enumerate(st.inputs):
            if inp not in kinds:
                raise _fail(src, f"{key}.inputs[{j}]", f"{inp!r} is not an input feature or an earlier output "
                                                      f"(known: {', '.join(kinds)})")
            want, got = _WANTS[st.kind], kinds[inp]
            if want != "any" and got != want:
                raise _fail(src, f"{key}.inputs[{j}]", f"{st.kind} reads {want} values; {inp!r} is {got}")
        _check_kind(st, key, src)
        gaps = [x for x in st.inputs if x in missing]
        if st.kind == "assemble" and gaps:
            raise _fail(src, f"{key}.inputs", f"{gaps} may be missing here: impute them first (a model "
                                              "cannot score NaN)")
        fills = st.kind in ("imputer", "bucketize", "one_hot", "feature_hasher", "custom") or (
            st.kind == "clip" and st.upper is not None)
        for name, kind in produced(st):
            kinds[name] = kind
            if not fills and (gaps if st.kind == "standard_scaler" else name in missing or
                              (st.kind == "hour_of_day" and gaps)):
                missing.add(name)
            else:
                missing.discard(name)
    if kinds.get(spec.scorer.input) != "vector":
        raise _fail(src, "scorer.input", f"{spec.scorer.input!r} must be a vector made by an assemble stage")


def produced(st: StageSpec) -> list[tuple[str, str]]:
    """(logical name, kind) of what a stage writes."""
    if st.kind in ("standard_scaler", "feature_hasher", "assemble"):
        return [(st.output or st.name, "vector")]
    if st.kind == "one_hot":
        return [(i, "vector") for i in st.inputs]
    if st.kind == "hour_of_day":
        return [(o, "number") for o in (st.outputs or st.inputs)]
    if st.kind == "custom":
        return [(o, "number") for o in (st.outputs or st.inputs)]
    return [(i, "number") for i in st.inputs]


def _check_kind(st: StageSpec, key: str, src: str) -> None:
    if st.kind == "bucketize":
        if bool(st.splits) == bool(st.quantiles):
            raise _fail(src, f"{key}.splits", "give either splits or quantiles")
        s = st.splits
        if s and (s[0] != -math.inf or s[-1] != math.inf or any(b <= a for a, b in zip(s, s[1:], strict=False))):
            raise _fail(src, f"{key}.splits", "must rise strictly from -.inf to .inf")
    if st.kind == "clip" and st.lower is None and st.upper is None:
        raise _fail(src, f"{key}", "clip needs lower, upper or both")
    if st.kind == "clip" and st.lower is not None and st.upper is not None and st.lower > st.upper:
        raise _fail(src, f"{key}.lower", "must be <= upper")
    if st.kind == "feature_hasher" and st.num_features < 1:
        raise _fail(src, f"{key}.num_features", "must be >= 1")
    if st.kind == "custom" and (":" not in st.serving or ":" not in st.spark):
        raise _fail(src, f"{key}.serving", "custom stages name both entry points (serving, spark) as module:function")
    if st.kind == "hour_of_day" and st.outputs and len(st.outputs) != len(st.inputs):
        raise _fail(src, f"{key}.outputs", "one output per input")
