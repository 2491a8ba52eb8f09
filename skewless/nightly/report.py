"""The morning report: one HTML page per night (`<warehouse>/_reports/nightly/D.html`) and an index of
nights, linking every step's result: compaction by hour with quarantine reasons, the labels run's counts,
each snapshot's quality page, each drift page. Self-contained HTML, no script; every text escaped.
"""

from __future__ import annotations

import posixpath
from datetime import date
from html import escape
from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from skewless.core import names as N
from skewless.core.config import Config
from skewless.core.delta import is_table, read_delta
from skewless.core.paths import join, table_path
from skewless.core.storage import write_text
from skewless.labels import view as examples_view
from skewless.nightly import state

_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.failed,.alert{background:#fce8e6}.check_failed,.warn,.no_reference{background:#fef7e0}
.verdict{padding:.8em 1em;font-size:1.2em;margin-bottom:1em;border-left:6px solid}
.v-succeeded{background:#e6f4ea;border-color:#1e8e3e}.v-failed{background:#fce8e6;border-color:#d93025}
.v-check_failed{background:#fef7e0;border-color:#f9ab00}"""


def _link(page_dir: str, target: str | None, text: str) -> str:
    if not target:
        return escape(text)
    href = posixpath.relpath(target, page_dir) if not target.split("/")[0].endswith(":") else target
    return f'<a href="{escape(href)}">{escape(text)}</a>'


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None) -> str:
    ths = "".join(f"<th>{escape(h)}</th>" for h in head)
    trs = "".join(f'<tr class="{escape((classes or [""] * len(rows))[i])}">' + "".join(f"<td>{c}</td>" for c in r)
                  + "</tr>" for i, r in enumerate(rows))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{trs}</tbody></table>"


def render(day: date, summary: dict[str, Any], steps: dict[str, dict[str, Any]], page_dir: str,
           states: dict[str, int] | None = None) -> str:
    """The night's page. `steps`: each step's counts as recorded (a skipped step's from its own run)."""
    status = summary["status"]
    parts = [f'<h1>skewless nightly {escape(day.isoformat())}</h1>',
             f'<div class="verdict v-{escape(status)}" id="verdict">{escape(status)} (exit {summary["exit_code"]})'
             f'{": " + escape(str(summary.get("error"))) if summary.get("error") else ""}</div>',
             '<p><a href="index.html">all nights</a></p>', "<h2>Steps</h2>"]
    rows, classes = [], []
    for name, s in summary["steps"].items():
        rows.append([f'<a href="#{escape(name)}">{escape(name)}</a>', escape(s["status"]) +
                     (f" (was {escape(s['previous'])})" if s.get("previous") else ""),
                     str(s.get("exit_code", "")), f'{s.get("seconds", 0):.1f}', str(s.get("records", "")),
                     escape(s.get("error") or "")])
        classes.append(s.get("previous") or s["status"])
    parts.append(_table(["step", "status", "exit", "seconds", "records", "error"], rows, classes))
    parts.append(_compaction(steps.get("compact", {})))
    lab = steps.get("labels", {})
    parts.append('<h2 id="labels">labels</h2>' + f"<p>label state of {escape(day.isoformat())}'s predictions</p>"
                 + _table(["label_state", "rows"], [[escape(k), str(v)] for k, v in sorted((states or {}).items())])
                 + "<p>the run's counts</p>" + _table(
        ["count", "value"], [[escape(k), escape(str(v))] for k, v in sorted(lab.items())
                             if isinstance(v, int | float) and not isinstance(v, bool)]))
    pur = steps.get("purge", {})
    parts.append('<h2 id="purge">purge</h2>' + _table(["count", "value"], [[escape(k), escape(str(v))]
                                                                            for k, v in sorted(pur.items())]))
    snap = steps.get("snapshots", {})
    parts.append(f'<h2 id="snapshots">snapshots (as of {escape(str(snap.get("as_of", "")))})</h2>' + _table(
        ["dataset", "version", "status", "rows", "quality"],
        [[escape(n), str(c.get("version")), escape(str(c.get("status"))), str(c.get("rows")),
          _link(page_dir, c.get("report"), "quality report")] for n, c in snap.get("created", {}).items()])
        + _failed_expectations(snap.get("created", {}))
        + f"<p>not due tonight: {escape(', '.join(snap.get('not_due', [])) or 'none')}</p>")
    dr = steps.get("drift", {}).get("checks", {})
    parts.append('<h2 id="drift">drift</h2>' + _table(
        ["model", "status", "reference", "alerting", "warning", "page"],
        [[escape(m), escape(str(c.get("status"))), escape(str(c.get("reference") or c.get("error") or "")),
          escape(", ".join(c.get("alert") or [])), escape(", ".join(c.get("warn") or [])),
          _link(page_dir, c.get("report_path"), "drift page")] for m, c in sorted(dr.items())],
        [str(c.get("status")) for _, c in sorted(dr.items())]))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>nightly {escape(day.isoformat())}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(parts)}</body></html>")


def _failed_expectations(created: dict[str, Any]) -> str:
    """Each failing expectation of tonight's versions with sample request ids of offending rows."""
    rows = [[escape(n), escape(str(f.get("expectation"))), escape(str(f.get("kwargs", {}).get("column", ""))),
             str(f.get("unexpected_count")), escape(", ".join(f.get("sample_request_ids") or []))]
            for n, c in created.items() for f in c.get("failed") or []]
    if not rows:
        return ""
    return "<h3>failing expectations</h3>" + _table(
        ["dataset", "expectation", "column", "unexpected rows", "sample request_ids"], rows, ["failed"] * len(rows))


def _compaction(c: dict[str, Any]) -> str:
    runs = c.get("runs", [])
    rows = [[escape(r["hour"]), escape(r["why"]), escape(r["status"]),
             *(str(r[k]) for k in ("files", "records_read", "loaded", "duplicates", "quarantined", "late_records")),
             escape(", ".join(f"{k} {v}" for k, v in sorted(r.get("quarantined_by_reason", {}).items())))]
            for r in runs]
    return (f'<h2 id="compact">compact</h2><p>{len(runs)} hour(s) compacted, '
            f'{c.get("hours_already_compacted", 0)} already compacted with no file since</p>'
            + _table(["landing hour", "why", "status", "files", "read", "loaded", "duplicates", "quarantined",
                      "late", "quarantine reasons"], rows, [r["status"] for r in runs]))


def render_index(nights: list[tuple[str, str, str]]) -> str:
    rows = [[f'<a href="{escape(d)}.html">{escape(d)}</a>', escape(s), escape(r)] for d, s, r in nights]
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>skewless nightly runs</title>"
            f"<style>{_STYLE}</style></head><body><h1>skewless nightly runs</h1>"
            + _table(["date", "status", "run"], rows, [s for _, s, _ in nights]) + "</body></html>")


def label_states(spark: SparkSession, cfg: Config, day: date) -> dict[str, int]:
    """Rows of `labeled_examples` served on `day`, by label state (one serving date of each table)."""
    if not examples_view.exists(spark, cfg):
        return {}
    rows = (examples_view.labeled_examples(spark, cfg, served_from=day).where(F.col(N.EVENT_DATE) == F.lit(day))
            .groupBy(N.LABEL_STATE).count().collect())
    return {str(r[N.LABEL_STATE]): int(r["count"]) for r in rows}


def write(spark: SparkSession, cfg: Config, day: date, summary: dict[str, Any]) -> str:
    """Write the night's page and the index; return the page's path."""
    folder = join(cfg.paths.warehouse, "_reports", "nightly")
    recorded = state.step_counts(spark, cfg.paths.warehouse, day)
    steps = {name: (recorded.get(name, {}) if s["status"] in ("skipped", "not_run") else s)
             for name, s in summary["steps"].items()}
    page = join(folder, f"{day.isoformat()}.html")
    write_text(spark, page, render(day, summary, steps, folder, label_states(spark, cfg, day)))
    nights = {day.isoformat(): (summary["status"], summary["run_id"])}
    path = table_path(cfg.paths.warehouse, N.NIGHTLY_RUNS)
    if is_table(spark, path):
        for r in (read_delta(spark, path).groupBy(state.NIGHTLY_DATE)
                  .agg(F.max_by(F.struct("status", N.RUN_ID), "finished_at").alias("last")).collect()):
            nights.setdefault(r[state.NIGHTLY_DATE].isoformat(), (r["last"]["status"], r["last"][N.RUN_ID]))
    write_text(spark, join(folder, "index.html"),
               render_index([(d, s, r) for d, (s, r) in sorted(nights.items(), reverse=True)]))
    return page
