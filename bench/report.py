"""Figures of a bench run: medians with min and max, targets, a rich table and the JSON file."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class Figure:
    group: str
    name: str
    unit: str
    runs: list[float]
    target: str = ""
    # A target as a test on the median: "higher" or "lower" than `limit`; None: no target.
    better: str | None = None
    limit: float | None = None
    note: str = ""
    median: float = field(init=False)
    min: float = field(init=False)
    max: float = field(init=False)
    met: bool | None = field(init=False)

    def __post_init__(self) -> None:
        self.median = statistics.median(self.runs)
        self.min, self.max = min(self.runs), max(self.runs)
        if self.better is None or self.limit is None:
            self.met = None
        else:
            self.met = self.median >= self.limit if self.better == "higher" else self.median <= self.limit


class Results:
    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.details: dict[str, object] = {}

    def add(self, group: str, name: str, unit: str, runs: list[float], **kwargs) -> Figure:
        figure = Figure(group, name, unit, [float(r) for r in runs], **kwargs)
        self.figures.append(figure)
        return figure

    def table(self, title: str) -> Table:
        table = Table(title=title, title_justify="left", show_lines=False)
        for heading, justify in (("benchmark", "left"), ("figure", "left"), ("median", "right"),
                                 ("min", "right"), ("max", "right"), ("runs", "right"), ("target", "left"),
                                 ("met", "center")):
            table.add_column(heading, justify=justify, no_wrap=heading != "figure")
        group = None
        for f in self.figures:
            if f.group != group and group is not None:
                table.add_section()
            shown_group, group = (f.group if f.group != group else ""), f.group
            met = {True: "[green]yes[/]", False: "[red]no[/]", None: ""}[f.met]
            table.add_row(shown_group, f.name, _fmt(f.median, f.unit), _fmt(f.min, f.unit), _fmt(f.max, f.unit),
                          str(len(f.runs)), f.target, met)
        return table

    def write(self, path: Path, header: dict) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**header, "figures": [asdict(f) for f in self.figures], "details": self.details}
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def _fmt(value: float, unit: str) -> str:
    if unit in ("msg/s",):
        text = f"{value:,.0f}"
    elif unit == "%":
        text = f"{value:.1f}"
    elif unit in ("ms",):
        text = f"{value:.1f}"
    elif unit in ("MB",):
        text = f"{value:.1f}"
    elif unit in ("x",):
        text = f"{value:.2f}"
    elif unit == "us/msg":
        text = f"{value:,.0f}"
    else:
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{text} {unit}"


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal:"))
    dovecot = subprocess.run(["/usr/sbin/dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    return {"nproc": os.cpu_count(), "cpu": model, "ram_gb": round(memory_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "kernel": platform.release(), "dovecot": dovecot}


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def print_table(results: Results, title: str, console: Console | None = None,
                after: Callable[[Console], None] | None = None) -> None:
    console = console or Console(width=160)
    console.print(results.table(title))
    if after:
        after(console)


def markdown(data: dict) -> str:
    """The figures of a results file as a Markdown table (`python -m bench.report FILE`)."""
    lines = ["| benchmark | figure | median | min | max | runs | target | met |", "|---|---|--:|--:|--:|--:|---|---|"]
    group = None
    for f in data["figures"]:
        shown, group = (f["group"] if f["group"] != group else ""), f["group"]
        met = {True: "yes", False: "**no**", None: ""}[f["met"]]
        name = f["name"].replace("  of which", "↳ of which").strip()
        lines.append(f"| {shown} | {name} | {_fmt(f['median'], f['unit'])} | {_fmt(f['min'], f['unit'])} | "
                     f"{_fmt(f['max'], f['unit'])} | {len(f['runs'])} | {f['target']} | {met} |")
    m = data["machine"]
    lines.append("")
    lines.append(f"{m['nproc']} x {m['cpu']}, {m['ram_gb']} GB RAM, Python {m['python']}, Dovecot {m['dovecot']}; "
                 f"run {data['started_at']}, {data['duration_seconds']:.0f} s, load {data['load_before']} -> "
                 f"{data['load_after']}.")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    print(markdown(json.loads(Path(sys.argv[1]).read_text())))
