"""The fault suite's summary: every fault test reports what it tried and what it found, and the
session ends with one table (printed after the test results, and written as JSON to
.pytest_cache/d/parting-faults/last-summary.json).

A row is: the fault family, what was tried, how many times, and the three numbers that must be
zero: losses (a message, reply, event or decision that vanished), duplicates (anything that
happened twice: a second copy at the SMTP server, an approval applied twice) and accepted
forgeries. Rows carry the real numbers, so a failing run's table says what went wrong.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest


@dataclass
class FaultRow:
    family: str
    tried: str
    count: int
    losses: int = 0
    duplicates: int = 0
    forgeries_accepted: int = 0
    notes: str = ""
    passed: bool = True


@dataclass
class FaultResults:
    rows: list[FaultRow] = field(default_factory=list)
    seconds: float = 0.0  # setup, call and teardown of the fault tests, whatever else the session ran

    def add(self, family: str, tried: str, count: int, *, losses: int = 0, duplicates: int = 0,
            forgeries_accepted: int = 0, notes: str = "") -> FaultRow:
        row = FaultRow(family, tried, count, losses, duplicates, forgeries_accepted, notes)
        self.rows.append(row)
        return row

    def table(self) -> list[str]:
        headers = ("family", "tried", "count", "losses", "dups", "forged ok", "notes")
        cells = [[r.family, r.tried, str(r.count), str(r.losses), str(r.duplicates), str(r.forgeries_accepted),
                  r.notes + ("" if r.passed else " [TEST FAILED]")] for r in self.rows]
        totals: dict[str, list[int]] = {}
        for row in self.rows:
            total = totals.setdefault(row.family, [0, 0, 0, 0, 0])
            for i, value in enumerate((1, row.count, row.losses, row.duplicates, row.forgeries_accepted)):
                total[i] += value
        for family, (kinds, *numbers) in totals.items():
            cells.append([f"= {family}", f"{kinds} kind{'s' if kinds > 1 else ''}", *map(str, numbers), ""])
        widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
        line = "  ".join(f"{{:<{w}}}" for w in widths)
        return [line.format(*headers), line.format(*("-" * w for w in widths)), *(line.format(*c) for c in cells)]


RESULTS = FaultResults()
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def fault_results() -> FaultResults:
    return RESULTS


@pytest.fixture
def record(fault_results: FaultResults, request: pytest.FixtureRequest):
    """`record(family, tried, count, ...)`; rows a failing test recorded are marked failed."""
    added: list[FaultRow] = []

    def add(*args: Any, **kwargs: Any) -> FaultRow:
        row = fault_results.add(*args, **kwargs)
        added.append(row)
        return row

    yield add
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for row in added:
            row.passed = False


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if HERE in Path(report.fspath).resolve().parents:
        RESULTS.seconds += report.duration


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    if not RESULTS.rows:
        return
    terminalreporter.section("parting fault summary")
    for line in RESULTS.table():
        terminalreporter.write_line(line)
    totals = {key: sum(getattr(r, key) for r in RESULTS.rows) for key in ("losses", "duplicates", "forgeries_accepted")}
    terminalreporter.write_line(
        f"losses {totals['losses']}, duplicates {totals['duplicates']}, accepted forgeries "
        f"{totals['forgeries_accepted']}; the fault tests took {RESULTS.seconds:.0f} s")
    if getattr(config, "cache", None) is not None:
        path = config.cache.mkdir("parting-faults") / "last-summary.json"
        path.write_text(json.dumps({"rows": [asdict(r) for r in RESULTS.rows], "totals": totals,
                                    "seconds": round(RESULTS.seconds, 1)}, indent=2) + "\n")
        terminalreporter.write_line(f"written to {path}")
