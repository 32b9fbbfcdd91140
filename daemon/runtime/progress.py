"""Backfill progress: a rich progress bar on a terminal, a log line every tenth otherwise."""

from __future__ import annotations

from collections.abc import Callable

from daemon.runtime.logs import get_logger


def progress_reporter(interactive: bool) -> Callable[[str, int, int], None]:
    log = get_logger("backfill")
    if interactive:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

        bar = Progress(TextColumn("reading {task.description}"), BarColumn(), MofNCompleteColumn(),
                       TimeRemainingColumn(), transient=True)
        tasks: dict[str, TaskID] = {}

        def draw(folder: str, done: int, total: int) -> None:
            if folder not in tasks:
                bar.start()
                tasks[folder] = bar.add_task(folder, total=total)
            bar.update(tasks[folder], completed=done, total=total)
            if done >= total:
                bar.remove_task(tasks.pop(folder))
                log.info("%s: read %d messages", folder, total)
                if not tasks:
                    bar.stop()

        return draw

    reported: dict[str, int] = {}

    def log_lines(folder: str, done: int, total: int) -> None:
        tenth = done * 10 // total if total else 10
        if done == 0 or tenth > reported.get(folder, -1):
            reported[folder] = tenth
            log.info("%s: %d of %d messages read (%d%%)", folder, done, total, done * 100 // max(total, 1))

    return log_lines
