"""The drift run's HTML page: the verdict, every feature sorted by severity, and for each drifted
feature its reference and current distributions side by side plus its PSI over the latest checks.

Self-contained: inline SVG, no script, no external asset; every text escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from skewless.drift.evaluate import FeatureResult

_STYLE = """body{font:14px system-ui,sans-serif;margin:2em;max-width:80em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.alert{background:#fce8e6}.warn{background:#fef7e0}.insufficient_data{color:#777}
.verdict{padding:.8em 1em;font-size:1.2em;margin-bottom:1em;border-left:6px solid}
.v-ok{background:#e6f4ea;border-color:#1e8e3e}.v-alert{background:#fce8e6;border-color:#d93025}
.v-warn{background:#fef7e0;border-color:#f9ab00}figure{display:inline-block;margin:0 1.5em 1em 0;vertical-align:top}
figcaption{font-size:12px;color:#555}.ref{fill:#5f8dd3}.cur{fill:#e8710a}.line{stroke:#d93025;fill:none;stroke-width:2}"""
_COLUMNS = ("feature", "type", "status", "psi", "ks / js", "p-value", "null share (ref → cur)", "worst share change")


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.4g}"


def _row(r: FeatureResult) -> str:
    psi, ks, js = r.metric("psi"), r.metric("ks"), r.metric("js")
    dist = ks or js
    null = r.metric("share:null")
    shares = [m for m in r.metrics if m["metric"].startswith("share:")]
    worst = max(shares, key=lambda m: m["value"]) if shares else None
    cells = [escape(r.feature), escape(r.feature_type), escape(r.status),
             _num(psi and psi["value"]), _num(dist and dist["value"]), _num(ks and ks["p_value"]),
             f"{_num(null and null['reference_value'])} → {_num(null and null['current_value'])}",
             escape(f"{worst['metric'][6:]} {worst['value']:.3g}") if worst else ""]
    tds = "".join(f'<td class="num">{c}</td>' if i in (3, 4, 5) else f"<td>{c}</td>" for i, c in enumerate(cells))
    return f'<tr class="{escape(r.status)}">{tds}</tr>'


def bars(labels: list[str], ref: list[float], cur: list[float], width: int = 520, height: int = 180) -> str:
    """Reference (blue) and current (orange) shares per bin or category, side by side."""
    n = max(len(labels), 1)
    top = max([*ref, *cur, 1e-9])
    slot = (width - 40) / n
    parts = []
    for i, (label, r, c) in enumerate(zip(labels, ref, cur, strict=True)):
        x = 30 + i * slot
        for j, (v, cls) in enumerate(((r, "ref"), (c, "cur"))):
            h = (height - 40) * v / top
            parts.append(f'<rect class="{cls}" x="{x + 2 + j * slot * 0.45:.1f}" y="{height - 25 - h:.1f}" '
                         f'width="{slot * 0.42:.1f}" height="{h:.1f}"><title>{escape(label)}: '
                         f'{"reference" if j == 0 else "current"} {v:.3%}</title></rect>')
        parts.append(f'<text x="{x + slot / 2:.1f}" y="{height - 10}" font-size="9" text-anchor="middle">'
                     f'{escape(label[:12])}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<text x="30" y="12" font-size="11">share (max {top:.1%})</text>{"".join(parts)}</svg>')


def trend(points: list[tuple[str, float]], warn: float, alert: float, width: int = 260, height: int = 120) -> str:
    """PSI over the latest checks (oldest left), with the warn and alert lines."""
    if not points:
        return ""
    top = max([v for _, v in points] + [alert * 1.2])
    step = (width - 20) / max(len(points) - 1, 1)

    def y(v: float) -> float:
        return height - 15 - (height - 30) * v / top

    path = " ".join(f"{10 + i * step:.1f},{y(v):.1f}" for i, (_, v) in enumerate(points))
    dots = "".join(f'<circle cx="{10 + i * step:.1f}" cy="{y(v):.1f}" r="3"><title>{escape(s)}: PSI {v:.3f}'
                   f"</title></circle>" for i, (s, v) in enumerate(points))
    lines = "".join(f'<line x1="10" x2="{width - 10}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="{c}" '
                    f'stroke-dasharray="4 3"/>' for t, c in ((warn, "#f9ab00"), (alert, "#d93025")))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">{lines}'
            f'<polyline class="line" points="{path}"/>{dots}</svg>')


def render(summary: dict[str, Any], segments: dict[str, list[FeatureResult]],
           trends: dict[str, list[tuple[str, float]]]) -> str:
    verdict = summary["status"]
    title = f"Drift: {summary['model']} {summary['current']} vs {summary['reference']}"
    head = (f"<h1>{escape(title)}</h1><div class='verdict v-{escape(verdict)}'>{escape(verdict.upper())}: "
            f"{len(summary['alert'])} alerting, {len(summary['warn'])} warning, "
            f"{len(summary['insufficient_data'])} with too little data</div>"
            f"<p>reference rows {summary['rows']['reference']}, current rows {summary['rows']['current']}; "
            f"run {escape(summary['run_id'])}, check {escape(summary['check_id'])}. "
            f"Conventions: docs/drift.md.</p>")
    body = []
    for segment, results in segments.items():
        body.append(f"<h2>segment {escape(segment)}</h2><table class='features'><thead><tr>"
                    + "".join(f"<th>{escape(c)}</th>" for c in _COLUMNS) + "</tr></thead><tbody>"
                    + "".join(_row(r) for r in results) + "</tbody></table>")
        for r in results:
            if r.status not in ("warn", "alert"):
                continue
            psi = r.metric("psi")
            line = trend(trends.get(r.feature, []), psi["warn"], psi["alert"]) if psi and segment == "all" else ""
            body.append(f"<h3>{escape(r.feature)}: {escape(r.status)}</h3>"
                        f"<figure>{bars(r.plot['labels'], r.plot['reference'], r.plot['current'])}"
                        f"<figcaption>reference (blue) vs current (orange)</figcaption></figure>"
                        + (f"<figure>{line}<figcaption>PSI over the latest checks</figcaption></figure>"
                           if line else ""))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{head}{''.join(body)}</body></html>")
