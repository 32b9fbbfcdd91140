"""Case files written: after a release, beside the database; and notes a person keeps.

- Writing is atomic (temp file, fsync, rename); a case file that cannot be written is logged
  and never stops the daemon.
- Every sent release gets its case file exactly once (`casefile_written` events say which have one).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from daemon.adapters.files import write_atomically
from daemon.adapters.store import OutboxRow, Store
from daemon.adapters.templates import TemplateProblem, Templates
from daemon.core.errors import PartingError
from daemon.core.model import Client, Settings
from daemon.flows.context import Context
from daemon.queries.casefile.build import build_casefile, render_html, render_markdown
from daemon.queries.common import ReportError, find_client, iso, opened

Data = dict[str, Any]


def write_text_atomically(path: str | os.PathLike[str], text: str) -> Path:
    """Write `text` to `path` by temp file, fsync and rename: readers see the old file or the new one."""
    return write_atomically(Path(path), text)


def write_casefile(store: Store, settings: Settings, templates: Templates, client_id: str,
                   folder: str | os.PathLike[str], *, now: datetime) -> Path:
    """Write <client>-<date>.md and .html side by side in `folder`; returns the HTML file's path.

    Both are rendered before either is written, so a template problem leaves no half case file."""
    data = build_casefile(store, settings, client_id, now=now)
    markdown, html = render_markdown(data, templates), render_html(data, templates)
    directory = Path(folder)
    directory.mkdir(parents=True, exist_ok=True)
    day = now.astimezone(ZoneInfo(data["timezone"])).date().isoformat()
    stem = f"{re.sub(r'[^A-Za-z0-9._-]', '_', client_id).lstrip('.') or 'client'}-{day}"
    write_text_atomically(directory / f"{stem}.md", markdown)
    return write_text_atomically(directory / f"{stem}.html", html)


def write_missing_casefiles(ctx: Context, now: datetime) -> list[Path]:
    """Every sent release has a case file: a cycle step, so a release marked sent by any path
    (the sender, crash recovery from the Sent folder, `parting outbox confirm`, or a crash between
    `sent` and the write) gets one exactly once; `casefile_written` events say which have one."""
    written = {e.draft_id for e in ctx.store.events(kinds=["casefile_written"])}
    paths = []
    for row in ctx.store.rows(["sent"]):
        if row.kind == "release" and row.draft_id not in written:
            path = casefile_after_release(ctx, row, now)
            if path is not None:
                paths.append(path)
                written.add(row.draft_id)
    return paths


def casefile_after_release(ctx: Context, row: OutboxRow, now: datetime) -> Path | None:
    """After a release email was sent: write the case file beside the database, in casefiles/,
    and record a `casefile_written` event. A failure is logged; the daemon carries on."""
    if row.kind != "release" or row.client_id is None:
        return None
    if str(ctx.settings.database) == ":memory:":
        ctx.log.warning("no case file: the database is in memory", extra={"client": row.client_id})
        return None
    folder = Path(ctx.settings.database).parent / "casefiles"
    try:
        path = write_casefile(ctx.store, ctx.settings, ctx.templates, row.client_id, folder, now=now)
    except Exception as problem:  # noqa: BLE001 - the release left; its case file is bookkeeping, never a crash
        ctx.log.error("case file not written: %s", problem, extra={"client": row.client_id},
                      exc_info=not isinstance(problem, (OSError, TemplateProblem, PartingError)))
        return None
    ctx.store.append_event("casefile_written", at=now, client_id=row.client_id, draft_id=row.draft_id,
                           message_ids=[row.message_id],
                           data={"path": str(path), "markdown": str(path.with_suffix(".md"))})
    ctx.log.info("case file written to %s", path, extra={"client": row.client_id})
    return path



def add_note(config_path: str | Path, client_id: str, text: str, *, who: str, now: datetime) -> Data:
    """Keep a note (a retrospective answer, what a call brought) in the client's case file."""
    if not text.strip():
        raise ReportError("the note is empty: write what you want to keep, in quotes")
    with opened(config_path, write=True) as (settings, store):
        client: Client = find_client(settings, client_id)
        note_id = store.add_note(client.id, who, text.strip(), now)
        return {"id": note_id, "client": client.id, "name": client.name, "author": who, "text": text.strip(),
                "at": iso(now)}
