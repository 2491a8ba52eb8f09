"""Great Expectations 1.x on a Spark DataFrame: load a suite from expectations/, validate, report.

The result names each failing expectation and gives sample `request_id`s of the offending rows
(GX's `unexpected_index_column_names`). With a local docs root, the suite runs as a GX checkpoint of a
file-backed context kept there, whose `UpdateDataDocsAction` builds GX's own Data Docs site: the
validation's page is the quality report (an object-store warehouse's site is synced through a local
copy: `quality_site`). Without one, the caller renders a self-contained page (`render_html`). GX is
imported lazily.
"""

from __future__ import annotations

import html
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml
from pyspark.sql import DataFrame

from skewless.core import names as N
from skewless.core.errors import ConfigError

SAMPLE_IDS = 10


@dataclass(frozen=True)
class Outcome:
    expectation: str
    kwargs: dict[str, Any]
    success: bool
    observed: Any = None
    unexpected_count: int | None = None
    sample_request_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QualityReport:
    suite: str
    success: bool
    outcomes: list[Outcome]
    docs_page: str | None = None   # GX Data Docs page of this validation (a path or URI), when built

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.success]

    def summary(self) -> dict[str, Any]:
        return {"suite": self.suite, "success": self.success, "expectations": len(self.outcomes),
                "failed": [o.expectation + _column(o.kwargs) for o in self.failed]}


def _column(kwargs: dict[str, Any]) -> str:
    return f"({kwargs['column']})" if "column" in kwargs else ""


def load_suite(directory: Path, name: str) -> dict[str, Any]:
    """expectations/NAME.json (or .yaml): {"name": ..., "expectations": [{"type": ..., "kwargs": {...}}]}."""
    for ext in ("json", "yaml", "yml"):
        path = directory / f"{name}.{ext}"
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            try:
                suite = json.loads(text) if ext == "json" else yaml.safe_load(text)
            except (json.JSONDecodeError, yaml.YAMLError) as exc:
                raise ConfigError(str(path), "", f"not valid {ext.upper()}: {exc}") from exc
            if not isinstance(suite, dict) or not isinstance(suite.get("expectations"), list):
                raise ConfigError(str(path), "expectations", "expected a list of {type, kwargs}")
            for i, e in enumerate(suite["expectations"]):
                if not isinstance(e, dict) or not isinstance(e.get("type"), str):
                    raise ConfigError(str(path), f"expectations[{i}].type", "missing")
            return {"name": suite.get("name", name), "expectations": suite["expectations"], "source": str(path)}
    raise ConfigError(str(directory / f"{name}.json"), "", "expectation suite not found")


def validate(df: DataFrame, suite: dict[str, Any], docs_root: str | None = None,
             run_name: str | None = None) -> QualityReport:
    """Run the suite on `df` (cache it first: GX reads it once per metric batch); with `docs_root`
    (a local folder), as a checkpoint of the file context there, building its Data Docs page."""
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.ERROR)
    try:
        gx_suite = ExpectationSuite(name=suite["name"], expectations=suite["expectations"])
    except Exception as exc:  # noqa: BLE001 - GX raises many types for a bad suite; name the file
        raise ConfigError(suite.get("source", suite["name"]), "expectations", f"rejected by GX: {exc}") from exc
    context = (gx.get_context(mode="file", project_root_dir=docs_root) if docs_root
               else gx.get_context(mode="ephemeral"))
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_or_update_spark(name="skewless")
    asset = next((a for a in source.assets if a.name == suite["name"]), None) or source.add_dataframe_asset(
        name=suite["name"])
    whole = next((b for b in asset.batch_definitions if b.name == "whole"), None) or (
        asset.add_batch_definition_whole_dataframe("whole"))
    batch = whole.get_batch(batch_parameters={"dataframe": df})
    # Pass 1 computes every expectation's metrics (BASIC: counts, observed values, no row lookups).
    # Pass 2 runs only the failing ones again, asking GX for the request_ids of offending rows:
    # the per-expectation row lookups cost as much as the whole suite, and passing ones need none.
    basic = {"result_format": "BASIC", "partial_unexpected_count": 0}
    page = None
    if docs_root:
        result, page = _checkpoint(context, whole, gx_suite, df, basic, run_name or suite["name"])
    else:
        result = batch.validate(gx_suite, result_format=basic)
    samples: dict[str, list[str]] = {}
    failing = [r.expectation_config for r in result.results if not r.success and r.expectation_config is not None]
    if failing:
        again = batch.validate(ExpectationSuite(name=f"{suite['name']}-failures", expectations=[
            {"type": c.type, "kwargs": {k: v for k, v in c.kwargs.items() if k != "batch_id"}} for c in failing]),
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": [N.REQUEST_ID],
                           "partial_unexpected_count": SAMPLE_IDS, "return_unexpected_index_query": False})
        for r in again.results:
            assert r.expectation_config is not None
            listed = (r.result or {}).get("partial_unexpected_index_list") or []
            samples[_key(r.expectation_config.type, _kwargs(r.expectation_config.kwargs))] = [
                str(x.get(N.REQUEST_ID)) for x in listed if isinstance(x, dict)][:SAMPLE_IDS]
    outcomes = []
    for r in result.results:
        res = dict(r.result or {})
        cfg = r.expectation_config
        assert cfg is not None  # GX sets it on every result of a suite run
        kwargs = _kwargs(cfg.kwargs)
        outcomes.append(Outcome(
            expectation=cfg.type, kwargs=kwargs, success=bool(r.success), observed=res.get("observed_value"),
            unexpected_count=res.get("unexpected_count"), sample_request_ids=samples.get(_key(cfg.type, kwargs), [])))
    # GX reorders results; report them in the suite's order.
    order = {_key(e["type"], e.get("kwargs", {})): i for i, e in enumerate(suite["expectations"])}
    outcomes.sort(key=lambda o: order.get(_key(o.expectation, o.kwargs), 0))
    return QualityReport(suite["name"], bool(result.success), outcomes, page)


def _checkpoint(context: Any, whole: Any, suite: Any, df: DataFrame, result_format: dict[str, Any],
                run_name: str) -> tuple[Any, str | None]:
    """The suite as a checkpoint whose action updates Data Docs: (the validation result, its page)."""
    from great_expectations.checkpoint import Checkpoint, UpdateDataDocsAction
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.core.validation_definition import ValidationDefinition

    stored = context.suites.add_or_update(suite)
    definition = context.validation_definitions.add_or_update(
        ValidationDefinition(name=suite.name, data=whole, suite=stored))
    checkpoint = context.checkpoints.add_or_update(Checkpoint(
        name=suite.name, validation_definitions=[definition], actions=[UpdateDataDocsAction(name="data_docs")],
        result_format=result_format))
    run = checkpoint.run(batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=run_name))
    ident, result = next(iter(run.run_results.items()))
    urls = context.get_docs_sites_urls(resource_identifier=ident)
    url = str(urls[0]["site_url"]) if urls else ""
    return result, (unquote(url.removeprefix("file://")) or None)  # a file URL: `@` is %40


def _kwargs(kwargs: Any) -> dict[str, Any]:
    return {k: v for k, v in dict(kwargs).items() if k != "batch_id"}


def _key(kind: str, kwargs: dict[str, Any]) -> str:
    return kind + json.dumps(kwargs, sort_keys=True, default=str)


def render_html(report: QualityReport, title: str) -> str:
    """A self-contained page: one row per expectation, failures first, with sample request ids."""
    rows = []
    for o in sorted(report.outcomes, key=lambda o: o.success):
        color = "#2e7d32" if o.success else "#c62828"
        rows.append(
            f"<tr><td style='color:{color}'>{'pass' if o.success else 'FAIL'}</td>"
            f"<td>{html.escape(o.expectation)}</td>"
            f"<td><code>{html.escape(json.dumps(o.kwargs, default=str))}</code></td>"
            f"<td>{html.escape(json.dumps(o.observed, default=str)) if o.observed is not None else ''}</td>"
            f"<td>{'' if o.unexpected_count is None else o.unexpected_count}</td>"
            f"<td>{html.escape(', '.join(o.sample_request_ids))}</td></tr>")
    verdict = "passed" if report.success else f"FAILED ({len(report.failed)} of {len(report.outcomes)})"
    return (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif}td,th{border:1px solid #ccc;padding:4px;vertical-align:top}"
        "table{border-collapse:collapse}</style>"
        f"<h1>{html.escape(title)}</h1><p>Suite <b>{html.escape(report.suite)}</b>: {verdict}</p>"
        "<table><tr><th>result</th><th>expectation</th><th>arguments</th><th>observed</th>"
        f"<th>unexpected rows</th><th>sample request_ids</th></tr>{''.join(rows)}</table>")
