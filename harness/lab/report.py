"""report.html of a lab night: one self-contained page (inline CSS, inline SVG plots, no
scripts, no network) with the table of cells, the comparison with the previous night and
the detection rate of each cell over the past nights."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .. import atomicio
from ..verdict import wilson_interval
from .matrix import report_heading
from .record import CellRecord

if TYPE_CHECKING:
    from .night import NightSummary

COLOURS = {"clean": "#2e7d32", "corrupted": "#c62828", "crashed": "#ef6c00",
           "error": "#757575"}

CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 24px 0 8px; }
.meta { color: #555; margin-bottom: 12px; }
.totals span { display: inline-block; padding: 3px 10px; margin-right: 6px; border-radius: 4px;
  background: #eee; }
.totals .bad { background: #ffcdd2; } .totals .good { background: #c8e6c9; }
table.cells { border-collapse: collapse; width: 100%; font-size: 13px; }
td.reports { min-width: 170px; max-width: 260px; overflow-wrap: break-word; }
table.cells th, table.cells td { border-bottom: 1px solid #ddd; padding: 4px 6px;
  text-align: left; vertical-align: top; }
table.cells th { background: #f5f5f5; position: sticky; top: 0; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.id { white-space: nowrap; font-family: ui-monospace, monospace; font-size: 12px; }
.verdict { font-weight: 600; }
.v-clean { color: #2e7d32; } .v-corrupted { color: #c62828; } .v-crashed { color: #ef6c00; }
.v-error { color: #757575; }
tr.fail td { background: #fff3f3; }
.tag { font-size: 12px; padding: 1px 6px; border-radius: 3px; color: #fff; }
.tag.pass { background: #2e7d32; } .tag.fail { background: #c62828; }
.tag.regression { background: #6a1b9a; } .tag.fixed { background: #1565c0; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
.plot-box { border: 1px solid #ddd; border-radius: 4px; padding: 4px; }
svg.plot text { font: 10px system-ui, sans-serif; fill: #444; }
svg.plot .title { font-size: 11px; font-weight: 600; fill: #222; }
svg.plot .grid { stroke: #e0e0e0; } svg.plot .axis { stroke: #888; }
svg.plot .trend { fill: none; stroke: #90a4ae; stroke-width: 1.5; }
svg.plot .ci { stroke-width: 2; } svg.plot .current { stroke: #000; stroke-width: 1.5; }
ul.changes li { margin: 2px 0; }
small { color: #666; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _rate(cell: CellRecord) -> str:
    if not cell.trials:
        return "n/a"
    low, high = cell.ci95
    return f"{cell.rate or 0:.2f} [{low:.2f}, {high:.2f}]"


def _marks(summary: NightSummary) -> dict[str, list[tuple[str, str]]]:
    marks: dict[str, list[tuple[str, str]]] = {}
    for r in summary.regressions:
        marks.setdefault(r.id, []).append(("regression", f"{r.kind}: {r.detail}"))
    for f in summary.comparison.fixes if summary.comparison else ():
        marks.setdefault(f.id, []).append(("fixed", f.detail))
    return marks


def _row(c: CellRecord, marks: Sequence[tuple[str, str]]) -> str:
    links = " · ".join(f'<a href="{_e(c.paths[k])}">{label}</a>' for k, label in
                     (("console", "console"), ("dmesg", "dmesg"), ("result", "result"),
                      ("record", "cell.json"), ("ktap", "KTAP")))
    titles = c.report_titles
    first = next(iter(titles.items()), None)
    reports = "" if first is None else (
    f"{_e(first[0])}" + (f" &times;{first[1]}" if first[1] > 1 else "")
        + (f" <small>+{len(titles) - 1} more</small>" if len(titles) > 1 else ""))
    tags = "".join(f' <span class="tag {kind}" title="{_e(text)}">{kind}</span>'
                   for kind, text in marks)
    ok = "pass" if c.passed else "fail"
    axes = " · ".join(_e(v) for v in c.cell.axis_values().values())
    return (
    f'<tr class="cell {ok}" id="cell-{_e(c.id)}">'
        f'<td class="id" title="{axes} · repeat {_e(c.cell.repeat)}">{_e(c.id)}</td>'
        f'<td>{_e(c.expected)}</td>'
        f'<td class="verdict v-{_e(c.verdict)}" title="{_e(c.reason or "")}">'
        f'{_e(c.verdict)}</td>'
        f'<td><span class="tag {ok}">{ok}</span>{tags}</td>'
        f'<td class="num">{_e(c.iterations)}</td>'
        f'<td class="num">{_e(c.detections)}/{_e(c.trials)}</td>'
        f'<td class="num">{_e(_rate(c))}</td>'
        f'<td class="num">{c.seconds:.0f}</td>'
        f'<td class="reports">{reports}</td><td class="logs">{links}</td></tr>')


def _table(summary: NightSummary) -> str:
    marks = _marks(summary)
    rows = [_row(c, marks.get(c.id, [])) for c in summary.cells]
    head = "".join(f"<th>{h}</th>" for h in (
    report_heading(), "expected", "verdict", "outcome",
        "iterations", "detected/batches", "rate [95% CI]", "s", "kernel reports", "logs"))
    return (f'<table class="cells"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def plot_svg(cid: str, points: Sequence[tuple[str, CellRecord | None]],
             width: int = 320, height: int = 160) -> str:
    """Detection rate of one cell per night, with its 95% Wilson interval as a whisker;
    the last point is this night. A night without the cell (or without trials) is a gap."""
    left, right, top, bottom = 34, 10, 20, 30
    pw, ph = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        inset = 14.0  # keeps the first and last whiskers off the frame
        return left + (pw / 2 if n == 1 else inset + (pw - 2 * inset) * i / (n - 1))

    def y(v: float) -> float:
        return top + ph * (1 - v)

    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'data-cell="{_e(cid)}"><title>{_e(cid)}: detection rate per night</title>',
             f'<text class="title" x="{left}" y="13">{_e(cid)}</text>']
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<line class="grid" x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" '
                     f'y2="{y(v):.1f}"/><text x="{left - 4}" y="{y(v) + 3:.1f}" '
                     f'text-anchor="end">{v:.1f}</text>')
    parts.append(f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + ph}"/>')
    trend_at = len(parts)  # the trend line goes under the points
    trend = []
    for i, (night, cell) in enumerate(points):
        label = night if len(night) <= 14 else night[:13] + "…"
        if n <= 4 or i in (0, n - 1) or (n <= 12 and i % max(1, n // 3) == 0):
            anchor = "middle" if n == 1 else ("start" if i == 0 else
                                              ("end" if i == n - 1 else "middle"))
            at = x(i) + (-12 if anchor == "start" else 12 if anchor == "end" else 0)
            parts.append(f'<text x="{at:.1f}" y="{height - 10}" text-anchor="{anchor}">'
                         f"{_e(label)}</text>")
        if cell is None or not cell.trials:
            continue
        detections, trials = cell.detections, cell.trials
        rate = detections / trials
        low, high = wilson_interval(detections, trials)
        colour = COLOURS.get(cell.verdict, "#555")
        trend.append(f"{x(i):.1f},{y(rate):.1f}")
        parts.append(f'<line class="ci" x1="{x(i):.1f}" y1="{y(low):.1f}" x2="{x(i):.1f}" '
                     f'y2="{y(high):.1f}" stroke="{colour}"/>')
        current = ' current' if i == n - 1 else ''
        parts.append(f'<circle class="point{current}" cx="{x(i):.1f}" cy="{y(rate):.1f}" '
                     f'r="4" fill="{colour}"><title>{_e(night)}: {_e(cell.verdict)}, '
                     f'rate {rate:.2f} [{low:.2f}, {high:.2f}] ({detections}/{trials} '
                     f'batches)</title></circle>')
    if len(trend) > 1:
        parts.insert(trend_at, f'<polyline class="trend" points="{" ".join(trend)}"/>')
    if not trend:
        parts.append(f'<text x="{left + pw / 2:.1f}" y="{top + ph / 2:.1f}" '
                     'text-anchor="middle">no stress batches</text>')
    parts.append("</svg>")
    return "".join(parts)


def _plots(summary: NightSummary, nights: Sequence[NightSummary]) -> str:
    series = [(n.night or n.finished_at or f"night {i + 1}", {c.id: c for c in n.cells})
              for i, n in enumerate(nights)]
    series.append((summary.night or "this night", {c.id: c for c in summary.cells}))
    boxes = []
    for cell in summary.cells:
        points = [(night, cells.get(cell.id)) for night, cells in series]
        boxes.append(f'<div class="plot-box">{plot_svg(cell.id, points)}</div>')
    return f'<div class="plots">{"".join(boxes)}</div>'


def _comparison(summary: NightSummary) -> str:
    comparison = summary.comparison
    if not comparison:
        return "<p>No previous night to compare with.</p>"
    items = []
    for r in comparison.regressions:
        items.append(f'<li><span class="tag regression">regression</span> '
                     f'<a href="#cell-{_e(r.id)}">{_e(r.id)}</a>: {_e(r.kind)}: '
                     f'{_e(r.detail)}</li>')
    for f in comparison.fixes:
        items.append(f'<li><span class="tag fixed">fixed</span> '
                     f'<a href="#cell-{_e(f.id)}">{_e(f.id)}</a>: {_e(f.detail)}</li>')
    for r in comparison.rate_changes:
        if r not in comparison.regressions:
            items.append(f"<li>rate change {_e(r.id)}: {_e(r.detail)}</li>")
    extra = []
    if comparison.new:
        extra.append(f"new cells: {_e(', '.join(comparison.new))}")
    if comparison.missing:
        extra.append(f"cells not in this night: {_e(', '.join(comparison.missing))}")
    body = f'<ul class="changes">{"".join(items)}</ul>' if items else \
        "<p>No regressions and no fixes.</p>"
    previous = comparison.previous
    return (f"<p>Compared with <b>{_e(previous.get('night') or '?')}</b> "
            f"(finished {_e(previous.get('finished_at') or '?')}).</p>{body}"
            + "".join(f"<p><small>{x}</small></p>" for x in extra))


def _totals(summary: NightSummary) -> str:
    t = summary.totals
    regressions = len(summary.regressions)
    return (
    f'<span class="{"good" if not t.failed else "bad"}">{_e(t.passed)} passed</span>'
        f'<span class="{"bad" if t.failed else ""}">{_e(t.failed)} failed</span>'
        f'<span>{_e(t.not_run)} not run</span>'
        f'<span class="{"bad" if regressions else ""}">{regressions} regression(s)</span>'
        + ('<span class="bad">interrupted</span>' if summary.interrupted else "")
        + "".join(f'<p class="not-run"><small>not run: {_e(cid)}: '
                  f'{_e(summary.why_not_run(cid))}</small></p>' for cid in summary.not_run))


def render_report(summary: NightSummary, nights: Sequence[NightSummary]) -> str:
    host = summary.host
    shard_text = (f" · merged from {len(summary.shards)} shard(s)" if summary.shards else
                  (f" · shard {summary.shard}" if summary.shard else ""))
    title = f"oomrace lab: {summary.name} {summary.night}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>{CSS}</style></head><body>
<h1>{_e(title)}</h1>
<div class="meta">matrix {_e(summary.matrix)} · started {_e(summary.started_at)}
 · finished {_e(summary.finished_at)} · {summary.seconds / 60:.1f} min
 · host {_e(host.get("hostname", "?"))} ({_e(host.get("cpus", "?"))} cpus,
 {_e(host.get("memory_mb", "?"))} MiB) · oomrace {_e(host.get("oomrace", "?"))}
 {_e((host.get("commit") or "")[:12])}{" (dirty)" if host.get("dirty") else ""}{shard_text}</div>
<div class="totals">{_totals(summary)}</div>
<h2>Changes since the previous night</h2>
{_comparison(summary)}
<h2>Cells</h2>
{_table(summary)}
<h2>Detection rate per cell over the nights</h2>
<p><small>Each point is one night's rate of stress batches that showed corruption; the
whisker is its 95% Wilson interval; the last point is this night
({len(nights)} earlier night(s) in the history).</small></p>
{_plots(summary, nights)}
</body></html>
"""


def write_report(path: Path, summary: NightSummary, nights: Sequence[NightSummary]) -> None:
    atomicio.write_text(path, render_report(summary, nights))
