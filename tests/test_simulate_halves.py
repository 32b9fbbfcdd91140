"""`parting simulate` judges its clients in two halves, the second in a forked child, and the
answer is the one a single process gives, whatever becomes of the child (queries/halves.py)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import pytest

from daemon.queries import halves
from daemon.queries.halves import in_halves
from tests.test_cli_reports import LOOSER, STRICTER, setup, simulate  # noqa: F401 - setup is a fixture


@pytest.fixture(autouse=True)
def two_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever this machine has: the halves are the same on one CPU, only slower."""
    monkeypatch.setattr(halves, "_cpus", lambda: 2)


def where(items: Sequence[int]) -> list[tuple[int, int]]:
    return [(item * item, os.getpid()) for item in items]


def test_the_second_half_is_judged_in_another_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(halves, "FORK_FROM", 4)
    done = in_halves(where, list(range(9)))
    assert [square for square, _ in done] == [n * n for n in range(9)]
    assert {pid for _, pid in done[:4]} == {os.getpid()}
    assert os.getpid() not in {pid for _, pid in done[4:]}, "the second half ran in the child"


def test_few_items_or_one_cpu_stay_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {pid for _, pid in in_halves(where, list(range(50)))} == {os.getpid()}
    monkeypatch.setattr(halves, "FORK_FROM", 4)
    monkeypatch.setattr(halves, "_cpus", lambda: 1)
    assert {pid for _, pid in in_halves(where, list(range(50)))} == {os.getpid()}


@pytest.mark.parametrize("failure", ["raises", "dies", "says nothing"])
def test_a_failing_child_leaves_its_half_to_this_process(monkeypatch: pytest.MonkeyPatch, failure: str) -> None:
    parent = os.getpid()

    def fragile(items: Sequence[int]) -> list[tuple[int, int]]:
        if os.getpid() != parent:
            if failure == "raises":
                raise RuntimeError("broken in the child")
            os._exit(3 if failure == "dies" else 0)
        return where(items)

    monkeypatch.setattr(halves, "FORK_FROM", 4)
    assert in_halves(fragile, list(range(9))) == [(n * n, parent) for n in range(9)]


@pytest.mark.parametrize("policy", [STRICTER, LOOSER])
def test_simulate_in_halves_says_what_one_process_says(setup, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                       policy: str) -> None:
    whole = json.loads(simulate(setup, policy, "--json").stdout)
    monkeypatch.setattr(halves, "FORK_FROM", 2)  # the setup's two clients: one each
    split = json.loads(simulate(setup, policy, "--json").stdout)
    assert split == whole and whole["changes"]


def test_a_failing_first_half_fails_and_leaves_no_child_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    parent = os.getpid()

    def big_then_broken(items: Sequence[int]) -> list[bytes]:
        if os.getpid() == parent:
            raise RuntimeError("broken here")
        return [b"x" * 100_000 for _ in items]  # more than a pipe holds: the child waits to write

    monkeypatch.setattr(halves, "FORK_FROM", 4)
    with pytest.raises(RuntimeError, match="broken here"):
        in_halves(big_then_broken, list(range(9)))
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # the child was waited for


def test_simulate_judges_again_under_other_working_hours_even_with_equal_policies(setup) -> None:  # noqa: F811
    # Equal policies are skipped only over the same calendar: a whole configuration whose week
    # has seven working days makes globex's question (Friday 30 October, the `patient` five
    # business days) ignored by Thursday 5 November, which the Monday-to-Friday week does not.
    whole = setup["config"].read_text().replace("days: [mon, tue, wed, thu, fri]  ",
                                                "days: [mon, tue, wed, thu, fri, sat, sun]")
    assert whole != setup["config"].read_text()
    data = json.loads(simulate(setup, whole, "--at", "2026-11-05", "--json").stdout)
    assert data["policy_hash_before"] == data["policy_hash_after"]
    assert [(c["client"], c["before"], c["after"]) for c in data["changes"]] == [("globex", "awaiting", "overdue")]
