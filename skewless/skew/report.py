"""The skew test's HTML page: the verdict first, then the numbers, the worst examples, and where the
divergence starts. Self-contained (no script, no external asset), every value escaped."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}.pass{background:#e6f4ea;border-left:6px solid #1e8e3e}.fail{background:#fce8e6;
border-left:6px solid #d93025}.verdict{padding:.8em 1em;font-size:1.2em;margin-bottom:1em}code{font-size:13px}
td.num{text-align:right;font-variant-numeric:tabular-nums}"""


def _table(rows: list[dict[str, Any]], columns: list[str], cls: str = "") -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f'<td class="num">{v:.6g}</td>'
    if isinstance(v, bool) or v is None:
        return f"<td>{escape(str(v))}</td>"
    if isinstance(v, int):
        return f'<td class="num">{v}</td>'
    return f"<td>{escape(str(v))}</td>"


def render(report: dict[str, Any]) -> str:
    ok = report["passed"]
    model = report["model"]
    title = f"Skew test: {model['name']} {model['version']}"
    verdict = ("PASSED: offline and serving agree" if ok else "FAILED: the deploy is blocked")
    summary = [{"measure": k, "value": report[k]} for k in (
        "examples", "tolerance", "max_abs_diff", "p99_abs_diff", "mean_abs_diff", "over_tolerance")]
    summary += [{"measure": "package hash", "value": report["package_hash"]},
                {"measure": "trained on", "value": report["dataset"]},
                {"measure": "examples from", "value": report["source"]}]
    served = report.get("served") or {}
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)}</title>"
             f"<style>{_STYLE}</style></head><body>",
             f"<h1>{escape(title)}</h1>",
             f'<div id=verdict class="verdict {"pass" if ok else "fail"}">{escape(verdict)}</div>',
             "<h2>Summary</h2>", _table(summary, ["measure", "value"], "summary")]
    if served:
        parts += ["<h2>Against the scores production served</h2>",
                  _table([served], ["compared", "max_abs_diff", "over_tolerance"], "served")]
    parts += ["<h2>Worst examples</h2>",
              _table(report["worst"], ["request_id", "offline", "serving", "abs_diff"], "worst")]
    loc = report.get("localization")
    if loc:
        iso = loc["isolated"]
        parts += [f"<h2>Where it diverges: stage <code>{escape(loc['stage'])}</code> ({escape(loc['kind'])})</h2>",
                  f"<p>Found by binary search in {loc['comparisons']} comparisons over {loc['stages']} stages. "
                  f"Run alone on the offline side's inputs, the stage "
                  f"{'still differs' if iso.get('differs') else 'agrees (it amplified an upstream difference)'}"
                  f" (max |diff| {escape(str(iso.get('max_abs_diff', iso.get('error'))))}).</p>"]
        if loc.get("serving_error"):
            parts.append(f"<p>The serving engine raised: <code>{escape(loc['serving_error'])}</code></p>")
        rows = [{"output": d["output"], "slot": d["slot"], "rows differing": d["rows_differing"],
                 "max |diff|": d["max_abs_diff"], "example": d["examples"][0]["request_id"] if d["examples"] else "",
                 "offline": d["examples"][0]["offline"] if d["examples"] else None,
                 "serving": d["examples"][0]["serving"] if d["examples"] else None} for d in loc["differing"]]
        parts.append(_table(rows, ["output", "slot", "rows differing", "max |diff|", "example", "offline", "serving"],
                            "differing"))
    parts.append("</body></html>\n")
    return "\n".join(parts)
