"""A self-contained HTML report: no network, no CDN; inline CSS, JS and SVG.

The summary as two charts (open alerts by severity per source; new alerts per day) and a
sortable table of the open alerts, each linking to its vendor console. The charts are
drawn here as SVG, so the page reads the same with JavaScript off; the script only sorts
(click a header, or open the page with #sort=COLUMN or #sort=COLUMN:asc).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape
from typing import Any

from alertpull.alerts.view import OPEN, SEVERITY_ORDER, summarize
from alertpull.record import SEVERITY_IDS
from alertpull.timeutil import format_duration, format_time, parse_time_or_none

COLOURS = {"critical": "#b71c1c", "high": "#e65100", "medium": "#f9a825", "low": "#1565c0",
           "informational": "#78909c", "unknown": "#bdbdbd"}
DAYS = 30  # new alerts per day: the last 30 days
_SAFE_SCHEMES = ("https://", "http://")
# The fields of each alert the page uses (the rest, raw payloads above all, is not read).
FIELDS = ("id", "source", "tenant", "native_id", "title", "severity", "status", "created_at",
          "updated_at", "link")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#212121}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.meta{color:#616161} .charts{display:flex;flex-wrap:wrap;gap:32px}
table{border-collapse:collapse;width:100%} th,td{padding:4px 8px;text-align:left;
border-bottom:1px solid #e0e0e0;vertical-align:top} th{cursor:pointer;user-select:none;
background:#fafafa} th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.when,th{white-space:nowrap}
.sev{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:12px}
.legend span{margin-right:12px} .legend i{display:inline-block;width:10px;height:10px;
margin-right:4px}
"""

_JS = """
(function(){
  var table=document.getElementById('open-alerts'); if(!table) return;
  var heads=table.tHead.rows[0].cells, body=table.tBodies[0];
  function key(row,i){var c=row.cells[i];return c.getAttribute('data-sort')||c.textContent;}
  function sortBy(i,asc){
    var rows=Array.prototype.slice.call(body.rows);
    var numeric=heads[i].getAttribute('data-type')==='number';
    rows.sort(function(a,b){var x=key(a,i),y=key(b,i);
      var d=numeric?(parseFloat(x)-parseFloat(y)):(x<y?-1:x>y?1:0);return asc?d:-d;});
    rows.forEach(function(r){body.appendChild(r);});
    for(var j=0;j<heads.length;j++) heads[j].removeAttribute('aria-sort');
    heads[i].setAttribute('aria-sort',asc?'ascending':'descending');
  }
  for(var i=0;i<heads.length;i++)(function(i){heads[i].addEventListener('click',function(){
    sortBy(i,heads[i].getAttribute('aria-sort')==='descending');});})(i);
  var m=/sort=([a-z_]+)(?::(asc|desc))?/.exec(location.hash);
  if(m){for(var k=0;k<heads.length;k++) if(heads[k].getAttribute('data-key')===m[1])
    sortBy(k,m[2]==='asc');}
})();
"""


def report(alerts: Sequence[dict[str, Any]], now: datetime, title: str) -> str:
    """The page for these current alerts (every status: the charts count the open ones
    and the new ones per day)."""
    open_alerts = sorted((a for a in alerts if a["status"] in OPEN),
                         key=lambda a: (-SEVERITY_IDS.get(a["severity"], 0), a["updated_at"]))
    return "".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1><p class='meta'>{len(open_alerts)} open of {len(alerts)} "
        f"alerts · generated {escape(format_time(now))}</p>",
        "<div class='charts'>",
        f"<section><h2>Open alerts by severity per source</h2>{_by_source(alerts, now)}"
        "</section>",
        f"<section><h2>New alerts per day (last {DAYS} days)</h2>{_per_day(alerts, now)}"
        "</section></div>",
        f"<h2>Open alerts</h2>{_table(open_alerts, now)}",
        f"<script>{_JS}</script></body></html>\n",
    ])


def _legend() -> str:
    return "<p class='legend'>" + "".join(
        f"<span><i style='background:{COLOURS[s]}'></i>{s}</span>" for s in SEVERITY_ORDER
    ) + "</p>"


def _by_source(alerts: Sequence[dict[str, Any]], now: datetime) -> str:
    summary = summarize(alerts)
    if not summary:
        return "<p>No open alerts.</p>"
    widest = max(s.total for s in summary)
    label_w, bar_w, row_h = 140, 360, 26
    parts = [f"<svg id='chart-sources' role='img' width='{label_w + bar_w + 120}' "
             f"height='{row_h * len(summary) + 4}' xmlns='http://www.w3.org/2000/svg'>"]
    for row, entry in enumerate(summary):
        y = row * row_h + 2
        parts.append(f"<text x='0' y='{y + 17}' font-size='13'>{escape(entry.source)}</text>")
        x = float(label_w)
        for severity in SEVERITY_ORDER:
            count = entry.open_by_severity.get(severity, 0)
            if not count:
                continue
            w = bar_w * count / widest
            parts.append(f"<rect class='bar' data-source='{escape(entry.source)}' "
                         f"data-severity='{severity}' data-count='{count}' x='{x:.1f}' "
                         f"y='{y}' width='{w:.1f}' height='{row_h - 6}' "
                         f"fill='{COLOURS[severity]}'><title>{escape(entry.source)}: "
                         f"{count} {severity}</title></rect>")
            x += w
        age = f", oldest {format_duration(now - entry.oldest_open)}" if entry.oldest_open \
            else ""
        parts.append(f"<text x='{x + 6:.1f}' y='{y + 17}' font-size='12'>{entry.total}"
                     f"{escape(age)}</text>")
    return "".join(parts) + "</svg>" + _legend()


def _per_day(alerts: Sequence[dict[str, Any]], now: datetime) -> str:
    first_day = (now - timedelta(days=DAYS - 1)).date()
    days = [first_day + timedelta(days=n) for n in range(DAYS)]
    counts: Counter[str] = Counter()
    for alert in alerts:
        created = parse_time_or_none(alert.get("created_at"))
        if created and created.date() >= first_day:
            counts[created.date().isoformat()] += 1
    top = max(counts.values(), default=0) or 1
    bar_w, height = 14, 120
    parts = [f"<svg id='chart-days' role='img' width='{DAYS * bar_w + 40}' "
             f"height='{height + 36}' xmlns='http://www.w3.org/2000/svg'>"]
    for n, day in enumerate(days):
        count = counts.get(day.isoformat(), 0)
        h = height * count / top
        parts.append(f"<rect class='day' data-day='{day}' data-count='{count}' "
                     f"x='{n * bar_w + 2}' y='{height - h + 4:.1f}' width='{bar_w - 3}' "
                     f"height='{h:.1f}' fill='#455a64'><title>{day}: {count} new</title></rect>")
    parts.append(f"<text x='0' y='{height + 22}' font-size='11'>{days[0]}</text>"
                 f"<text x='{DAYS * bar_w - 60}' y='{height + 22}' font-size='11'>{days[-1]}"
                 f"</text><text x='{DAYS * bar_w + 4}' y='14' font-size='11'>{top}</text>")
    return "".join(parts) + "</svg>"


_HEADERS = (("severity", "Severity", "number"), ("title", "Title", "text"),
            ("source", "Source", "text"), ("tenant", "Tenant", "text"),
            ("status", "Status", "text"), ("updated_at", "Updated", "text"),
            ("age", "Open for", "number"))


def _table(alerts: Sequence[dict[str, Any]], now: datetime) -> str:
    if not alerts:
        return "<p>No open alerts.</p>"
    head = "".join(f"<th data-key='{key}' data-type='{kind}'>{label}</th>"
                   for key, label, kind in _HEADERS)
    rows = []
    for a in alerts:
        severity = a["severity"]
        link = a.get("link") or ""
        title = escape(a.get("title") or a["native_id"])
        shown = (f"<a href='{escape(link, quote=True)}' rel='noreferrer noopener' "
                 f"target='_blank'>{title}</a>" if link.startswith(_SAFE_SCHEMES) else title)
        created = parse_time_or_none(a.get("created_at"))
        age = (now - created).total_seconds() if created else 0
        rows.append(
            f"<tr data-id='{escape(a['id'])}'>"
            f"<td data-sort='{SEVERITY_IDS.get(severity, 0)}'><span class='sev' "
            f"style='background:{COLOURS.get(severity, '#bdbdbd')}'>{escape(severity)}"
            f"</span></td><td>{shown}</td><td>{escape(a['source'])}</td>"
            f"<td>{escape(str(a.get('tenant') or ''))}</td><td>{escape(a['status'])}</td>"
            f"<td class='when'>{escape(a['updated_at'])}</td><td data-sort='{age:.0f}'>"
            f"{format_duration(now - created) if created else '-'}</td></tr>")
    return (f"<table id='open-alerts'><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")
