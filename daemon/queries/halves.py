"""Judging many clients on two cores: the second half in a forked child, the first here.

Rules of this module:
- Only for work that reads what this process already holds (the loaded settings and histories)
  and returns plain, picklable data: fork gives the child all of it without copying, and only
  the result comes back, through a pipe.
- The answer never depends on the child: if it cannot be forked, fails or dies, its half is done
  here, so the result is always `work(first half) + work(second half)`.
- Not worth a process below `FORK_FROM` items, nor where there is no fork (Windows) or one CPU.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

# A fork costs a few tens of milliseconds (the child touches, and so copies, the pages it reads);
# judging a client costs some 50 to 150 microseconds.
FORK_FROM = 2000


def in_halves(work: Callable[[Sequence[Item]], list[Result]], items: Sequence[Item]) -> list[Result]:
    """work(items), the second half computed in a forked child when that is worth it."""
    if len(items) < FORK_FROM or not hasattr(os, "fork") or _cpus() < 2:
        return work(items)
    middle = len(items) // 2
    first, second = items[:middle], items[middle:]
    reading, writing = os.pipe()
    try:
        child = os.fork()
    except OSError:
        os.close(reading)
        os.close(writing)
        return work(items)
    if child == 0:  # pragma: no cover - runs in the child, which leaves through os._exit
        _child(work, second, reading, writing)
    os.close(writing)
    try:
        with os.fdopen(reading, "rb") as pipe:
            mine = work(first)
            sent = pipe.read()
    finally:
        # Should this half fail, the closed pipe fails the child's write, and it ends too.
        _, status = os.waitpid(child, 0)
    if status == 0 and sent:
        try:
            return mine + pickle.loads(sent)
        except Exception:  # noqa: BLE001 - a half-written answer: do the child's half here
            pass
    return mine + work(second)


def _cpus() -> int:
    """The CPUs this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _child(work: Callable[[Sequence[Item]], list[Result]], items: Sequence[Item], reading: int,
           writing: int) -> None:  # pragma: no cover - runs in the child
    code = 1
    try:
        os.close(reading)
        answer = pickle.dumps(work(items), protocol=pickle.HIGHEST_PROTOCOL)
        with os.fdopen(writing, "wb") as pipe:
            pipe.write(answer)
        code = 0
    finally:
        # Never back into the parent's code: no exit handlers, no flushing of its buffered output.
        os._exit(code)
