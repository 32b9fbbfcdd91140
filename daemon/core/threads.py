"""Which client and which conversation a message belongs to.

Rules of this module:
- Pure: messages and settings values in, decisions out; no IO, no clock (`now_hint` is a parameter).
- Stored threads are reached only through the `ThreadLookup` protocol, which the store implements.
- Threading prefers evidence in this order: References/In-Reply-To, Outlook Thread-Index, then the
  normalized subject with an overlapping participant inside a window; otherwise a new thread whose
  id is derived from the thread's root Message-ID, so re-reading the same mail gives the same id.
- Addresses are compared normalized: lower case, plus-tag removed from the local part.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Literal, Protocol

from daemon.core.model import Client, Direction, ParsedMessage, Person

# Reply and forward prefixes seen in the wild, in many languages; matched case-insensitively,
# with optional counters ("Re[2]:", "RE^3:", "AW(2):") and French spacing before the colon.
REPLY_PREFIXES: tuple[str, ...] = (
    "re", "aw", "sv", "vs", "antw", "antwort", "fwd", "fw", "wg", "tr", "rv", "ref", "réf", "odp",
    "pd", "enc", "res", "rif", "r", "vl", "vb", "doorst", "ynt", "ilt", "返信", "回复", "答复",
    "转发", "轉寄", "ΑΠ", "ΣΧΕΤ", "ΠΡΘ", "תגובה", "Отв", "Пересл",
)
# One pass over all leading prefixes and [tags]: stripping them one at a time would be quadratic
# on a hostile "Re:Re:Re:..." subject.
_PREFIXES_RE = re.compile(
    r"(?:\s*(?:(?:" + "|".join(sorted(map(re.escape, REPLY_PREFIXES), key=len, reverse=True)) + r")"
    r"\s*(?:\[\d+\]|\(\d+\)|\^\d+)?\s*[:：]|\[[^\[\]]*\]))*",
    re.IGNORECASE,
)


def normalize_subject(subject: str) -> str:
    """The subject without any leading reply/forward prefixes or [tags], casefolded, spaces folded."""
    # Asked three times a stored message (the batch's look-ups, its row, threading), and subjects
    # recur: ordinary ones are kept (a few MB at most), a hostile long one is worked out each time.
    return _normalized(subject) if len(subject) <= 300 else _normalize_subject(subject)


def _normalize_subject(subject: str) -> str:
    prefixes = _PREFIXES_RE.match(subject)  # the pattern matches the empty string: never None
    rest = subject[prefixes.end():] if prefixes else subject
    return " ".join(rest.casefold().split())


_normalized = lru_cache(maxsize=4096)(_normalize_subject)


def thread_index_root(value: str | None) -> str | None:
    """Hex of the first 22 bytes of an Outlook Thread-Index: the conversation it belongs to."""
    if not value:
        return None
    compact = "".join(value.split())
    try:
        decoded = base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded[:22].hex() if len(decoded) >= 22 else None


# ------------------------------------------------------------------------------------------
# Clients.


def normalize_address(addr: str) -> str:
    """Lower case, surrounding space and angle brackets gone, "+tag" dropped: jane+x@a -> jane@a."""
    text = addr.strip().strip("<>").strip().lower()
    local, at, domain = text.rpartition("@")
    if not at:
        return text
    base = local.split("+", 1)[0]
    return f"{base or local}@{domain}"


def _domain(addr: str) -> str:
    return addr.rpartition("@")[2]


def match_client(addr: str, clients: Sequence[Client]) -> Client | None:
    """The client this address belongs to: a listed address first, then the most specific listed
    domain (subdomains included); among equals, the client listed first."""
    return _directory(clients).match(addr)


class ClientDirectory:
    """Every client's listed addresses and domains, normalized once, for look-ups by address."""

    def __init__(self, clients: Sequence[Client]) -> None:
        self.by_address: dict[str, Client] = {}
        self.by_domain: dict[str, Client] = {}
        for client in clients:
            for listed in client.addresses:
                self.by_address.setdefault(normalize_address(listed), client)
            for listed in client.domains:
                domain = listed.strip().lower().lstrip(".")
                if domain:
                    self.by_domain.setdefault(domain, client)

    def match(self, addr: str) -> Client | None:
        wanted = normalize_address(addr)
        if "@" not in wanted:
            return None
        if client := self.by_address.get(wanted):
            return client
        labels = _domain(wanted).split(".")
        for start in range(len(labels)):  # the longest listed suffix is the most specific
            if client := self.by_domain.get(".".join(labels[start:])):
                return client
        return None


# A mailbox asks about the same clients thousands of times: the directory of the last tuple of
# clients is kept (a tuple cannot change under it; a list is read afresh every time).
_last_directory: tuple[tuple[Client, ...], ClientDirectory] | None = None


def _directory(clients: Sequence[Client]) -> ClientDirectory:
    global _last_directory
    if not isinstance(clients, tuple):
        return ClientDirectory(clients)
    if _last_directory is None or _last_directory[0] is not clients:
        _last_directory = (clients, ClientDirectory(clients))
    return _last_directory[1]


@dataclass(frozen=True)
class Classification:
    direction: Direction
    client_id: str | None
    from_staff: str | None  # Person.id when a member of staff wrote it, whichever direction
    counterparts: tuple[str, ...]  # the other side's normalized addresses
    from_us: bool = False  # sent from one of our addresses or by staff


def classify(
    msg: ParsedMessage,
    *,
    our_addresses: Sequence[str],
    staff: Sequence[Person],
    clients: Sequence[Client],
) -> Classification:
    """Direction, client and counterparts of a message.

    Staff are us: a message from our mailbox or from staff to anyone outside is outbound, and its
    client is that of the first recipient (To, then Cc) that belongs to one. A message from staff
    only to us (a reviewer's reply) is inbound, with `from_staff` set and no client.
    """
    ours = {normalize_address(a) for a in our_addresses}
    staff_ids = {normalize_address(p.email): p.id for p in staff}
    sender = normalize_address(msg.from_addr) if msg.from_addr else ""
    from_us = sender in ours or sender in staff_ids
    from_staff = staff_ids.get(sender)

    def outside(addresses: Sequence[str]) -> list[str]:
        normalized = (normalize_address(a) for a in addresses)
        return [a for a in dict.fromkeys(normalized) if a not in ours and a not in staff_ids]

    recipients = outside((*msg.to, *msg.cc))
    if from_us and recipients:
        client = next((c for c in (match_client(a, clients) for a in recipients) if c), None)
        return Classification("out", client.id if client else None, from_staff, tuple(recipients), True)
    if from_us:
        return Classification("in", None, from_staff, (), True)
    client = match_client(sender, clients) if sender else None
    others = outside(([sender] if sender else []) + [*recipients, *msg.reply_to])
    return Classification("in", client.id if client else None, None, tuple(others), False)


# ------------------------------------------------------------------------------------------
# Threads.


class ThreadLookup(Protocol):
    """What threading needs from the store."""

    def thread_of_message_ids(self, ids: Sequence[str]) -> str | None:
        """The thread of any stored message with one of these Message-IDs (earlier ids preferred)."""

    def thread_of_index_root(self, root: str) -> str | None:
        """The thread of a stored message whose Thread-Index root is `root`."""

    def thread_of_subject(
        self, normalized_subject: str, client_id: str | None, counterparts: Sequence[str], since: datetime
    ) -> str | None:
        """A thread with this normalized subject, an overlapping participant, active since `since`."""

    def client_of_thread(self, thread_id: str) -> str | None:
        """The client a stored thread belongs to."""


How = Literal["references", "thread-index", "subject", "new"]


@dataclass(frozen=True)
class ThreadAssignment:
    thread_id: str
    how: How
    triage_reason: str | None = None  # set when a person should look at who wrote this


def new_thread_id(root_message_id: str) -> str:
    return "t-" + hashlib.sha256(root_message_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def assign_thread(
    msg: ParsedMessage,
    classification: Classification,
    lookup: ThreadLookup,
    *,
    window: timedelta = timedelta(days=30),
    now_hint: datetime | None = None,
) -> ThreadAssignment:
    """The conversation of `msg`: see the module rules for the order of evidence.

    A new thread is named after the root of the References chain when there is one, so replies to a
    conversation we never stored still land together. Subject matching needs the message's date
    (or `now_hint` when it has none) and a non-empty normalized subject.
    """
    ids = list(dict.fromkeys((*msg.in_reply_to, *reversed(msg.references))))
    found: tuple[str, How] | None = None
    if ids and (thread := lookup.thread_of_message_ids(ids)):
        found = (thread, "references")
    root = thread_index_root(msg.thread_index)
    if found is None and root and (thread := lookup.thread_of_index_root(root)):
        found = (thread, "thread-index")
    subject = normalize_subject(msg.subject)
    when = msg.date or now_hint
    if found is None and subject and when is not None:
        since = when - window
        if thread := lookup.thread_of_subject(subject, classification.client_id, classification.counterparts, since):
            found = (thread, "subject")
    if found is None:
        root_id = (msg.references or msg.in_reply_to or (msg.message_id,))[0]
        return ThreadAssignment(new_thread_id(root_id), "new")
    thread_id, how = found
    return ThreadAssignment(thread_id, how, _triage_reason(msg, classification, lookup, thread_id))


def _triage_reason(
    msg: ParsedMessage, classification: Classification, lookup: ThreadLookup, thread_id: str
) -> str | None:
    """An unknown person writing into a client's thread: a new contact, or mail that is not theirs.

    Machines (auto-replies, bounces) are not worth a person's look.
    """
    if (
        classification.direction != "in"
        or classification.from_us
        or classification.client_id is not None
        or msg.auto_reply
        or msg.bounce
    ):
        return None
    client_id = lookup.client_of_thread(thread_id)
    if client_id is None:
        return None
    sender = normalize_address(msg.from_addr) if msg.from_addr else "(no sender)"
    return f"unknown sender {sender} in a thread of client {client_id}"
