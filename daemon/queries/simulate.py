"""`parting simulate`: who would change state under another policy, and why (writes nothing)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from daemon.adapters.settings.load import load_policy_override, load_settings
from daemon.core.model import Client
from daemon.core.policy import Verdict, compare, policy_hash
from daemon.queries.common import (
    Data,
    ReportError,
    collector_paused,
    header,
    iso,
    store_of,
    stored_histories,
    verdicts_at,
)
from daemon.queries.halves import in_halves


def parse_moment(text: str, zone: str) -> datetime:
    """'2026-11-20' (its start) or '2026-11-20 14:30' in `zone`; an explicit offset is kept."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(f"{text!r} is not a date or time: write 2026-11-20 or '2026-11-20 14:30' "
                          f"(read in {zone})") from None
    return moment.replace(tzinfo=ZoneInfo(zone)) if moment.tzinfo is None else moment


def simulate(config_path: str | Path, policy_path: str | Path, *, now: datetime, at: str | None = None) -> Data:
    """Who would change state or ladder under another policy file, at `at` (default `now`).

    Nothing is written: the store is opened read-only and the settings are only read.
    """
    with collector_paused():
        settings = load_settings(config_path)
        other = load_policy_override(policy_path, settings)
    moment = parse_moment(at, settings.working_hours.timezone) if at else now
    with store_of(settings) as store:
        paused = store.paused_clients()

    def changes_among(all_clients: Sequence[Client]) -> list[Data]:
        # Equal policies over the same calendar give equal states and ladders: only the others are judged.
        clients = [client for client in all_clients if settings.working_hours != other.working_hours
                   or settings.policy_for(client) != other.policy_for(client)]
        with store_of(settings) as store:  # each half its own connection: none crosses the fork
            histories = stored_histories(store, moment, settings, other, clients=clients)
        before = verdicts_at(settings, histories, paused, moment, clients)
        after = verdicts_at(other, histories, paused, moment, clients)
        return [change for client in clients
                if (change := _change(client, before[client.id], after[client.id])) is not None]

    # Reading the histories and judging make some million objects, and no reference cycles.
    with collector_paused():
        changes = in_halves(changes_among, settings.clients)
    return {
        **header(settings, now),
        "at": iso(moment),
        "policy_file": str(policy_path),
        "policy_hash_before": policy_hash(settings.policy),
        "policy_hash_after": policy_hash(other.policy),
        "changes": changes,
        "unchanged": len(settings.clients) - len(changes),
    }


def _change(client: Client, old: Verdict, new: Verdict) -> Data | None:
    why = compare(old, new)
    if why is None:
        return None
    return {
        "client": client.id, "name": client.name,
        "before": old.state, "after": new.state,
        "ladder_before": list(old.ladder), "ladder_after": list(new.ladder),
        "ignored_before": old.ignored_count, "ignored_after": new.ignored_count,
        "why": why,
        "rules_fired": _hits_only_in(new, old),
        "rules_cleared": _hits_only_in(old, new),
    }


def _hits_only_in(verdict: Verdict, other: Verdict) -> list[Data]:
    """Rule hits of `verdict` that `other` lacks, matched by rule and messages (not by wording,
    which carries policy-dependent times)."""
    theirs = {(hit.rule, hit.message_ids) for hit in other.reasons}
    return [{"rule": hit.rule, "message_ids": list(hit.message_ids), "detail": hit.detail}
            for hit in verdict.reasons if (hit.rule, hit.message_ids) not in theirs]
