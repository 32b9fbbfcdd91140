"""What the read-side commands share: opening settings and store, names, times, verdicts at a moment.

Each command is one call into a module of daemon/queries, returning plain data.

Rules of this module:
- Results are JSON-ready (str, int, bool, None, lists, dicts), times as ISO 8601 in UTC; the
  keys are what `--json` prints, so they only ever grow. daemon/cli/render.py renders the same data.
- Reports open the store with Store.open_readonly: they never write, not even a migration, and
  work while the daemon runs. Verdicts are evaluated fresh from the stored history at `now`, so
  a report is right even when the daemon is not running.
- Nothing here writes: what a person decides from the command line is daemon/flows/operator_actions.py.
- `now` is always a parameter. Problems a user can fix are PartingError: one line each, exit 2.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.adapters.settings.load import load_settings
from daemon.adapters.store import Store, StoreError
from daemon.core.errors import PartingError
from daemon.core.model import Client, Envelope, Settings

if TYPE_CHECKING:  # the listings need no policy (nor the holidays it brings): imported where evaluated
    from daemon.core.policy import Verdict
    from daemon.core.workhours import Calendar

Data = dict[str, Any]


def review_states() -> tuple[str, ...]:
    """Drafts a person may still act on: the states in which review replies are taken.

    A function, so the commands that do not show drafts import no review rules; and from
    core/release_states.py, not the state machine (ten dataclasses) nor core/review.py, which
    brings the reply parser, the mail and authentication modules."""
    from daemon.core.release_states import LIVE_STATES

    return LIVE_STATES["draft"]


# Outbox rows that wait for a person to decide (`parting outbox resend|cancel`).
ATTENTION_STATES: tuple[str, ...] = ("uncertain", "failed")


class ReportError(PartingError):
    """A report or decision cannot be made as asked; the message says why and what to do."""


@contextmanager
def opened(config_path: str | Path, *, write: bool = False) -> Iterator[tuple[Settings, Store]]:
    """The settings and the store (read-only unless `write`); StoreErrors become ReportErrors."""
    with collector_paused():
        settings = load_settings(config_path)
    with store_of(settings, write=write) as store:
        yield settings, store


@contextmanager
def store_of(settings: Settings, *, write: bool = False) -> Iterator[Store]:
    """The store of settings already loaded (read-only unless `write`); StoreErrors become ReportErrors."""
    with store_problems():
        # Not even a decision creates the database: that is the daemon's job, as the service user.
        if not Path(settings.database).exists():
            raise ReportError(f"database {settings.database} does not exist yet: `parting run` creates it "
                              f"(state.database in {settings.source})")
        store = Store.open(settings.database) if write else Store.open_readonly(settings.database)
        try:
            yield store
        finally:
            store.close()


@contextmanager
def collector_paused() -> Iterator[None]:
    """For reading a large configuration or every stored envelope: that makes millions of objects
    and no reference cycles, so the cycle collector's passes (each walking every object still
    alive) would take seconds and free nothing."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def store_problems() -> Iterator[None]:
    try:
        yield
    except StoreError as error:
        raise ReportError(str(error)) from None


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def find_client(settings: Settings, client_id: str) -> Client:
    for client in settings.clients:
        if client.id == client_id:
            return client
    from daemon.adapters.settings.kinds import did_you_mean  # here: only a mistake needs the kinds

    known = [c.id for c in settings.clients]
    raise ReportError(f"no client {client_id!r} in {settings.source}{did_you_mean(client_id, known)}")


def person_name(settings: Settings, person_id: str | None) -> str | None:
    """A person's name; ids that are not people ('parting', a $USER) are shown as written."""
    if person_id is None:
        return None
    return next((p.name for p in settings.people if p.id == person_id), person_id)


def client_name(settings: Settings, client_id: str | None) -> str | None:
    return next((c.name for c in settings.clients if c.id == client_id), client_id)


def zone_of(settings: Settings, client: Client | None = None) -> str:
    return (client.timezone if client else None) or settings.working_hours.timezone


def header(settings: Settings, now: datetime) -> Data:
    return {"now": iso(now), "timezone": settings.working_hours.timezone, "config": settings.source}


def stored_histories(store: Store, now: datetime, *judged_by: Settings,
                     clients: Sequence[Client] | None = None) -> dict[str, list[Envelope]]:
    """The stored history of every client configured in the first settings (or of these), from as
    far back as a verdict at `now` under any of these settings' policies for it reads
    (core/policy.py `replies_read`): judging it gives what judging the whole history gives. The
    order of each history is not promised: a verdict does not depend on it."""
    from daemon.core.policy import replies_read

    replies: dict[str, int | None] = {}
    for client in judged_by[0].clients if clients is None else clients:
        needed = [replies_read(settings.policy_for(client)) for settings in judged_by]
        replies[client.id] = None if None in needed else max(n for n in needed if n is not None)
    with collector_paused():
        return store.recent_histories(replies, now)


def verdicts_at(settings: Settings, histories: dict[str, list[Envelope]], paused: set[str],
                at: datetime, clients: Sequence[Client] | None = None) -> dict[str, Verdict]:
    """Every configured client (or these of them) judged at `at` under its policy in `settings`."""
    from daemon.core.policy import evaluate

    calendar_in = calendars_of(settings)
    calendars: dict[str | None, Calendar] = {}
    verdicts = {}
    for client in settings.clients if clients is None else clients:
        if client.timezone not in calendars:
            calendars[client.timezone] = calendar_in(client.timezone)
        verdicts[client.id] = evaluate(client, histories.get(client.id, []), settings.policy_for(client),
                                       calendars[client.timezone], at, paused=client.id in paused)
    return verdicts


def calendars_of(settings: Settings) -> Callable[[str | None], Calendar]:
    """The working calendar in a zone, with the public holidays the daemon wrote down when they
    are still good (adapters/holiday_cache.py, read once: then the holidays package is not imported)."""
    from daemon.adapters import holiday_cache
    from daemon.core.workhours import Calendar

    known = holiday_cache.read(settings)
    return lambda timezone: Calendar(settings.working_hours, timezone, known_holidays=known)
