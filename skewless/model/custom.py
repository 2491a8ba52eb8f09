"""A team's own stage in the offline pipeline: a Spark ML transformer that calls `module:function`.

The function gets the DataFrame, {input name: column}, {output name: column to write} and the stage's
options, and returns the DataFrame with the output columns added. It is saved with the pipeline
(its entry point and arguments, not its code): the module must be importable where the skew test runs.
"""

from __future__ import annotations

import importlib
import json
from typing import Any

from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame


class EntryPointTransformer(Transformer, DefaultParamsReadable["EntryPointTransformer"], DefaultParamsWritable):
    entry = Param(Params._dummy(), "entry", "module:function", typeConverter=TypeConverters.toString)
    arguments = Param(Params._dummy(), "arguments", "inputs, outputs and options as JSON",
                      typeConverter=TypeConverters.toString)

    def __init__(self) -> None:
        super().__init__()

    @classmethod
    def of(cls, entry: str, inputs: dict[str, str], outputs: dict[str, str],
           options: dict[str, str]) -> EntryPointTransformer:
        t = cls()
        t._set(entry=entry, arguments=json.dumps({"inputs": inputs, "outputs": outputs, "options": options}))
        return t

    def _transform(self, dataset: DataFrame) -> DataFrame:
        module, _, attr = self.getOrDefault(self.entry).partition(":")
        args: dict[str, Any] = json.loads(self.getOrDefault(self.arguments))
        fn = getattr(importlib.import_module(module), attr)
        out: DataFrame = fn(dataset, args["inputs"], args["outputs"], args["options"])
        return out
