"""The picture at the top of the HTML case file: the relationship on a time axis, as plain shapes.

Rules of this module:
- `picture(data)` reads only the case file data (daemon/casefile.py) and returns geometry:
  rectangles, paths, lines and text with their CSS class. The template writes the SVG, so every
  text from mail passes through the template's autoescaping; nothing here writes markup.
- Two panels: the whole relationship (our messages, the client's replies, each request's wait
  for an answer, the steps parting took), then the release in detail (drafts, review decisions,
  sending, deadlines), because the review takes hours and the relationship weeks.
- Times are placed in the case file's time zone; tick labels are short and calm.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

Data = dict[str, Any]

WIDTH = 960
RIGHT = WIDTH - 28
MAX_REQUEST_ROWS = 12
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# Tick steps from fine to coarse: (unit, count). The first that gives few enough ticks is used.
_STEPS = (("hour", 1), ("hour", 3), ("hour", 6), ("hour", 12), ("day", 1), ("day", 2), ("week", 1),
          ("week", 2), ("month", 1), ("month", 3), ("month", 6), ("year", 1), ("year", 5))
MAX_TICKS = 9
_APPROX_SECONDS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 28 * 86400, "year": 365 * 86400}
LEGEND = (("circle", "our", "our message"), ("circle", "theirs", "the client's reply"),
          ("circle", "auto", "automatic reply"), ("bar", "wait", "waiting for an answer"),
          ("bar", "ignored", "past the reply window"), ("triangle", "ladder", "step parting took"),
          ("square", "draft", "draft version"), ("square", "review", "review decision"),
          ("diamond", "release", "release email sent"), ("circle", "deadline", "deadline due"),
          ("square", "closed", "deadline done"),
          ("cross", "refused", "refused or failed"))


def _t(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


@dataclass
class Panel:
    title: str
    top: float
    left: float
    start: datetime
    end: datetime
    zone: tzinfo
    shapes: list[Data] = field(default_factory=list)
    height: float = 0

    def x(self, moment: datetime) -> float:
        span = (self.end - self.start).total_seconds() or 1.0
        share = (moment - self.start).total_seconds() / span
        return round(self.left + max(0.0, min(1.0, share)) * (RIGHT - self.left), 1)

    def add(self, kind: str, cls: str, title: str | None = None, **geometry: Any) -> None:
        self.shapes.append({"kind": kind, "cls": cls, "title": title, **geometry})

    def mark(self, shape: str, cls: str, moment: datetime, y: float, title: str, size: float = 5) -> None:
        self.add("path", cls, title, d=shape_path(shape, self.x(moment), y, size))

    def text(self, x: float, y: float, text: str, cls: str, anchor: str = "start") -> None:
        self.add("text", cls, None, x=round(x, 1), y=round(y, 1), text=text, anchor=anchor)


def shape_path(shape: str, x: float, y: float, r: float) -> str:
    """An SVG path of a small marker centred on (x, y)."""
    if shape == "circle":
        return f"M{x - r:.1f},{y:.1f} a{r},{r} 0 1,0 {2 * r},0 a{r},{r} 0 1,0 {-2 * r},0 Z"
    if shape == "diamond":
        return f"M{x:.1f},{y - r:.1f} L{x + r:.1f},{y:.1f} L{x:.1f},{y + r:.1f} L{x - r:.1f},{y:.1f} Z"
    if shape == "square":
        return f"M{x - r:.1f},{y - r:.1f} h{2 * r} v{2 * r} h{-2 * r} Z"
    if shape == "triangle":
        return f"M{x:.1f},{y - r:.1f} L{x + r:.1f},{y + r * 0.8:.1f} L{x - r:.1f},{y + r * 0.8:.1f} Z"
    if shape == "cross":
        return f"M{x - r:.1f},{y - r:.1f} L{x + r:.1f},{y + r:.1f} M{x + r:.1f},{y - r:.1f} L{x - r:.1f},{y + r:.1f}"
    raise ValueError(f"unknown marker shape {shape!r}")


def picture(data: Data) -> Data:
    """The geometry of the case file's picture: {width, height, panels, legend, description}."""
    zone = ZoneInfo(data["timezone"])
    now = _t(data["generated_at"])
    panels = [_relationship(data, zone, now, top=0)]
    release = _release_panel(data, zone, now, top=panels[0].top + panels[0].height + 18)
    if release is not None:
        panels.append(release)
    legend_top = panels[-1].top + panels[-1].height + 14
    legend, legend_height = _legend(legend_top)
    return {"width": WIDTH, "height": legend_top + legend_height,
            "panels": [{"title": p.title, "shapes": p.shapes} for p in panels],
            "legend": legend, "description": _description(data)}


def _span(moments: list[datetime], now: datetime) -> tuple[datetime, datetime]:
    start, end = min(moments, default=now - timedelta(days=1)), max([*moments, now])
    if end - start < timedelta(hours=2):
        start = end - timedelta(hours=2)
    pad = (end - start) * 0.03
    return start - pad, end + pad


def _frame(panel: Panel, lanes: list[tuple[str, float]], bottom: float) -> None:
    """Title, lane labels, the vertical grid at the ticks and the axis under the panel."""
    panel.text(0, panel.top + 14, panel.title, "panel-title")
    for label, y in lanes:
        panel.text(panel.left - 12, y + 4, label, "lane-label", "end")
        panel.add("line", "lane", x1=panel.left, y1=y, x2=RIGHT, y2=y)
    for moment, label in ticks(panel.start, panel.end, panel.zone):
        x = panel.x(moment)
        panel.add("line", "grid", x1=x, y1=panel.top + 24, x2=x, y2=bottom)
        panel.text(x, bottom + 15, label, "tick-label", "middle")
    panel.add("line", "axis", x1=panel.left, y1=bottom, x2=RIGHT, y2=bottom)
    panel.height = bottom + 24 - panel.top


def _now_line(panel: Panel, now: datetime, bottom: float) -> None:
    x = panel.x(now)
    panel.add("line", "now", "the moment this case file was made", x1=x, y1=panel.top + 24, x2=x, y2=bottom)
    panel.text(x - 4, panel.top + 34, "now", "now-label", "end")


def _relationship(data: Data, zone: tzinfo, now: datetime, top: float) -> Panel:
    messages = data["messages"]
    windows = data["unanswered"][-MAX_REQUEST_ROWS:]
    steps = [e for e in data["events"] if e["kind"] == "ladder_step"]
    released = [e for e in data["events"] if e["kind"] == "sent" and e["data"].get("kind") == "release"]
    moments = [_t(m["at"]) for m in messages] + [_t(w["sent_at"]) for w in windows] + [_t(e["at"]) for e in steps]
    start, end = _span(moments, now)
    panel = Panel("The relationship", top, 190, start, end, zone)
    ours, theirs = top + 46, top + 74
    waiting = [theirs + 44 + 18 * n for n in range(len(windows))]
    taken = (waiting[-1] if waiting else theirs) + 32
    bottom = taken + 20
    lanes = [("we wrote", ours), ("the client wrote", theirs), ("parting's steps", taken)]
    hidden = len(data["unanswered"]) - len(windows)
    _draft_band(panel, data, top, bottom)
    _frame(panel, lanes, bottom)
    if waiting:
        panel.text(panel.left - 12, waiting[0] - 17, "waiting for an answer" +
                   (f" ({hidden} earlier not shown)" if hidden else ""), "lane-heading", "end")
    for window, y in zip(windows, waiting):
        sent, due, until = _t(window["sent_at"]), _t(window["due_at"]), _t(window["until"])
        panel.text(panel.left - 12, y + 4, _short(window["subject"], 30), "request-label", "end")
        how = "still unanswered" if window["open"] else "answered"
        panel.add("rect", "wait", f"{window['subject']}: sent, {how}", x=panel.x(sent), y=y - 5,
                  w=max(1.5, panel.x(min(due, until)) - panel.x(sent)), h=10)
        if window["ignored"]:
            panel.add("rect", "ignored", f"{window['subject']}: no answer within the reply window",
                      x=panel.x(due), y=y - 5, w=max(1.5, panel.x(until) - panel.x(due)), h=10)
        if not window["open"]:
            panel.mark("circle", "answered", until, y, f"{window['subject']}: answered", 3)
    for m in messages:
        moment, subject = _t(m["at"]), m["subject"] or "(no subject)"
        if m["direction"] == "out":
            release = m["parting_kind"] == "release"
            panel.mark("diamond" if release else "circle", "release" if release else "our", moment, ours,
                       f"we wrote: {subject}", 7 if release else 5)
        elif m["bounce"]:
            panel.mark("cross", "bounce", moment, theirs, f"delivery failure: {subject}", 4)
        else:
            panel.mark("circle", "auto" if m["auto_reply"] else "theirs", moment, theirs,
                       f"{'automatic reply' if m['auto_reply'] else 'the client wrote'}: {subject}")
    marks = [*(("triangle", "ladder", e) for e in steps), *(("diamond", "release", e) for e in released)]
    placed: list[float] = []
    for shape, cls, event in sorted(marks, key=lambda mark: mark[2]["id"], reverse=True):
        # Steps taken within the same hours would hide each other: the earlier ones step aside to the left.
        x = panel.x(_t(event["at"]))
        crowd = sum(1 for other in placed if abs(other - x) < 9)
        placed.append(x)
        panel.add("path", cls, event["summary"], d=shape_path(shape, max(panel.left, x - 9 * crowd), taken,
                                                              7 if shape == "diamond" else 5))
    _now_line(panel, now, bottom)
    return panel


def _draft_band(panel: Panel, data: Data, top: float, bottom: float) -> None:
    """A quiet band over the time the release was in review and after: the second panel's span."""
    if not data["drafts"]:
        return
    start = _t(min(d["created_at"] for d in data["drafts"] if d["kind"] == "release")) \
        if any(d["kind"] == "release" for d in data["drafts"]) else None
    if start is None:
        return
    x = panel.x(start)
    panel.add("rect", "band", "the release, shown in detail below", x=x, y=top + 24,
              w=max(3.0, RIGHT - x), h=bottom - top - 24)


def _release_panel(data: Data, zone: tzinfo, now: datetime, top: float) -> Panel | None:
    releases = [d for d in data["drafts"] if d["kind"] == "release"]
    if not releases:
        return None
    ids = {d["id"] for d in releases}
    rows: list[tuple[str, str, str, datetime, str]] = []  # (label, shape, cls, when, title)
    for draft in releases:
        for version in draft["versions"]:
            writer = "drafted from the template" if version["writer"] == "parting" else f"by {version['writer_name']}"
            rows.append((f"version {version['version']} {writer}", "square", "draft",
                         _t(version["created_at"]), f"draft {draft['id']} version {version['version']}"))
    for e in data["events"]:
        if e["draft_id"] not in ids:
            continue
        kind, d = e["kind"], e["data"]
        if kind == "review_decision":
            rows.append((f"{e['who'] or d.get('person')} ({d.get('role')}): {str(d.get('command', '')).upper()}",
                         "square", "review", _t(e["at"]), e["summary"]))
        elif kind == "reply_refused":
            rows.append((f"reply refused: {d.get('code')}", "cross", "refused", _t(e["at"]), e["summary"]))
        elif kind in ("sent", "send_failed", "send_uncertain") and d.get("kind") == "release":
            label = "release email sent" if kind == "sent" else kind.replace("_", " ")
            rows.append((label, "diamond", "release" if kind == "sent" else "refused", _t(e["at"]), e["summary"]))
        elif kind == "release_cancelled":
            rows.append(("release cancelled", "cross", "refused", _t(e["at"]), e["summary"]))
    rows.sort(key=lambda row: row[3])
    deadlines = [d for d in data["deadlines"] if d["draft_id"] in ids]
    notes = [n for n in data["notes"] if n["at"] >= min(d["created_at"] for d in releases)]
    moments = [row[3] for row in rows] + [_t(d["due_at"]) for d in deadlines] + \
              [_t(d["closed_at"]) for d in deadlines if d["closed_at"]] + [_t(n["at"]) for n in notes]
    start, end = _span(moments, now)
    panel = Panel("The release, from the first draft to the follow-up", top, 300, start, end, zone)
    y = top + 46
    placed = []
    for label, shape, cls, moment, title in rows:
        placed.append((label, y))
        panel.mark(shape, cls, moment, y, title, 7 if shape == "diamond" else 5)
        _time_label(panel, moment, y)
        y += 24
    for deadline in deadlines:
        what = deadline["kind"].replace("_", " ")
        placed.append((f"{what} ({deadline['state']})", y))
        created, due = _t(deadline["created_at"]), _t(deadline["due_at"])
        panel.add("rect", "deadline-wait", f"{what}: due {_label(due, zone)}", x=panel.x(created), y=y - 4,
                  w=max(1.5, panel.x(due) - panel.x(created)), h=8)
        panel.mark("circle", "deadline", due, y, f"{what} due", 5)
        if deadline["closed_at"]:
            done = deadline["state"] == "done"
            panel.mark("square" if done else "cross", "closed" if done else "refused", _t(deadline["closed_at"]), y,
                       deadline["how"] or deadline["state"], 4)
        _time_label(panel, due, y)
        y += 24
    for note in notes:
        placed.append((f"note by {note['author']}", y))
        panel.mark("square", "note", _t(note["at"]), y, note["text"], 4)
        y += 24
    bottom = y - 4
    _frame(panel, [(_short(label, 44), row_y) for label, row_y in placed], bottom)
    _now_line(panel, now, bottom)
    return panel


def _time_label(panel: Panel, moment: datetime, y: float) -> None:
    x = panel.x(moment)
    if x > RIGHT - 110:
        panel.text(x - 11, y + 4, _label(moment, panel.zone), "time-label", "end")
    else:
        panel.text(x + 11, y + 4, _label(moment, panel.zone), "time-label")


def _legend(top: float) -> tuple[list[Data], float]:
    """The legend's items in as many rows as the width needs, and the height they take."""
    items, x, y = [], 0.0, top
    for shape, cls, label in LEGEND:
        width = 22 + 6.2 * len(label) + 20
        if x and x + width > RIGHT:
            x, y = 0.0, y + 20
        if shape == "bar":
            items.append({"kind": "rect", "cls": cls, "x": x, "y": y - 5, "w": 16, "h": 10})
        else:
            items.append({"kind": "path", "cls": cls, "d": shape_path(shape, x + 6, y, 5)})
        items.append({"kind": "text", "cls": "legend-label", "x": x + 22, "y": y + 4, "text": label,
                      "anchor": "start"})
        x += width
    return items, y - top + 12


def _description(data: Data) -> str:
    """The picture in one sentence, for screen readers and for anyone who cannot see it."""
    s = data["summary"]
    real, automatic = s["real_replies"], s["messages_in"] - s["real_replies"]
    ignored = sum(1 for w in data["unanswered"] if w["ignored"])
    parts = [f"{data['client']['name']}: {s['messages_out']} message(s) from us, "
             f"{real or 'no'} real repl{'y' if real == 1 else 'ies'} from the client"
             + (f" and {automatic} automatic message(s)" if automatic else ""),
             f"{ignored} request(s) went past their reply window"]
    if data["summary"]["release_sent_at"]:
        parts.append("the release email was sent")
    return "; ".join(parts) + "."


def _short(text: str, limit: int) -> str:
    text = " ".join((text or "(no subject)").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _label(moment: datetime, zone: tzinfo) -> str:
    local = moment.astimezone(zone)
    return f"{_DAYS[local.weekday()]} {local.day} {_MONTHS[local.month - 1]} {local:%H:%M}"


# ---- the time axis ----------------------------------------------------------------------------------


def ticks(start: datetime, end: datetime, zone: tzinfo) -> list[tuple[datetime, str]]:
    """Round moments between start and end (local midnights, Mondays, months...) with short labels."""
    span = (end - start).total_seconds()
    for unit, count in _STEPS:
        if span / (_APPROX_SECONDS[unit] * count) > MAX_TICKS + 2:
            continue  # far too many: do not even list them
        moments = list(_moments(start, end, zone, unit, count))
        if len(moments) <= MAX_TICKS:
            return _labelled(moments, zone, unit)
    return []


def _moments(start: datetime, end: datetime, zone: tzinfo, unit: str, count: int):
    local = start.astimezone(zone)
    if unit == "hour":
        moment = local.replace(minute=0, second=0, microsecond=0)
        while moment <= end:
            if moment >= start and moment.hour % count == 0:
                yield moment
            moment = (moment.astimezone(ZoneInfo("UTC")) + timedelta(hours=1)).astimezone(zone)
        return
    day = local.date()
    if unit == "week":
        day -= timedelta(days=day.weekday())
    elif unit in ("month", "year"):
        day = day.replace(day=1, month=1 if unit == "year" else day.month)
    while True:
        moment = datetime.combine(day, time(0), zone)
        if moment > end:
            return
        if moment >= start:
            yield moment
        day = _next_day(day, unit, count)


def _next_day(day: date, unit: str, count: int) -> date:
    if unit == "day":
        return day + timedelta(days=count)
    if unit == "week":
        return day + timedelta(weeks=count)
    months = count * (12 if unit == "year" else 1)
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def _labelled(moments: list[datetime], zone: tzinfo, unit: str) -> list[tuple[datetime, str]]:
    labelled, previous = [], None
    for moment in moments:
        local = moment.astimezone(zone)
        if unit == "hour":
            label = f"{local:%H:%M}" if previous == local.date() else f"{local.day} {_MONTHS[local.month - 1]} {local:%H:%M}"
        elif unit in ("day", "week"):
            label = f"{local.day} {_MONTHS[local.month - 1]}"
        elif unit == "month":
            label = f"{_MONTHS[local.month - 1]} {local.year}"
        else:
            label = str(local.year)
        previous = local.date()
        labelled.append((moment, label))
    return labelled
