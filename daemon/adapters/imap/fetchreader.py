"""A narrow reader for the two FETCH answers a backfill reads by the thousand, with imapclient's
own parser for anything else.

Rules of this module:
- `fetch(client, uids, items)` is `client.fetch(uids, items)` (UID FETCH, no modifiers): the same
  command on imapclient's connection, the same errors, the same answer. Only the reading of the
  answer differs: each message whose answer has exactly one of the two shapes Dovecot and most
  servers send is read with one regular expression:
  - header fields, INTERNALDATE, RFC822.SIZE: `n (UID u INTERNALDATE "..." RFC822.SIZE s
    BODY[HEADER.FIELDS (...)] {k}` then the literal then `)`;
  - a whole message and its size (`fetch_messages`): `n (UID u RFC822.SIZE s BODY[]<0> {k}` then
    the literal then `)` (`BODY[]` without the origin too).
  If any part of the answer has another shape (other items or order, NIL, a quoted string, a
  FETCH without UID, a UID twice...), the whole answer goes to imapclient's parser instead.
- Values are what imapclient's parser gives (INTERNALDATE aware in the zone the server wrote,
  as with normalise_times off), so callers need not know which reader read them.

Why: imapclient's general parser (a lexer over every token, then a tuple tree) took more time
than the server and the socket together for the header answers, in every batch of a backfill;
for the bodies it is ~5% of the daemon's CPU, in the fetch thread, holding the GIL the threading
of the batch needs meanwhile.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import imapclient
from imapclient.imapclient import join_message_ids, seq_to_parenstr_upper
from imapclient.response_parser import parse_fetch_response

_MONTHS = {name.encode(): number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
_ANSWER = re.compile(
    rb'(\d+) \(UID (\d+) INTERNALDATE "([ \d]\d)-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)"'
    rb" RFC822\.SIZE (\d+) (BODY\[HEADER\.FIELDS \([^()\"\\{}]*\)\]) \{(\d+)\}")
_WHOLE = re.compile(rb"(\d+) \(UID (\d+) RFC822\.SIZE (\d+) (BODY\[\](?:<\d+>)?) \{(\d+)\}")


def fetch(client: imapclient.IMAPClient, uids: Sequence[int], items: Sequence[str]) -> dict[int, dict[bytes, Any]]:
    """client.fetch(uids, items), read by `read_answer` where it can (see the module rules)."""
    if not uids:
        return {}
    if not client.use_uid or client.normalise_times:
        return client.fetch(uids, items)  # not the answers read here
    imap = client._imap
    tag = imap._command("UID", "FETCH", join_message_ids(uids), seq_to_parenstr_upper(items))
    typ, data = imap._command_complete("FETCH", tag)
    client._checkok("fetch", typ, data)
    typ, data = imap._untagged_response(typ, data, "FETCH")
    response = read_answer(data)
    if response is None:
        response = parse_fetch_response(data, False, True)
    # As imapclient does: unsolicited answers about other messages are dropped.
    return {uid: response[uid] for uid in (int(u) for u in uids) if uid in response}


def read_answer(data: list[Any]) -> dict[int, dict[bytes, Any]] | None:
    """imapclient's parse_fetch_response(data) for answers of the two shapes (see the module
    rules); None for any other shape."""
    if not data or len(data) % 2:
        return None
    found: dict[int, dict[bytes, Any]] = {}
    for index in range(0, len(data), 2):
        item, end = data[index], data[index + 1]
        if end != b")" or not isinstance(item, tuple) or len(item) != 2:
            return None
        line, literal = item
        if not isinstance(line, bytes) or not isinstance(literal, bytes):
            return None
        match = _ANSWER.fullmatch(line)
        if match is None:
            whole = _WHOLE.fullmatch(line)
            if whole is None or int(whole.group(5)) != len(literal) or int(whole.group(2)) in found:
                return None
            found[int(whole.group(2))] = {b"SEQ": int(whole.group(1)), b"RFC822.SIZE": int(whole.group(3)),
                                          whole.group(4): literal}
            continue
        if int(match.group(14)) != len(literal):
            return None
        (seq, uid, day, month, year, hour, minute, second, sign, zone_hours, zone_minutes, size, section,
         _) = match.groups()
        number = _MONTHS.get(month)
        if number is None or int(uid) in found:
            return None
        offset = timedelta(hours=int(zone_hours), minutes=int(zone_minutes))
        zone = timezone(-offset if sign == b"-" else offset)  # "-0000" too: imapclient reads it as UTC
        try:
            when = datetime(int(year), number, int(day), int(hour), int(minute), int(second), tzinfo=zone)
        except ValueError:
            return None  # a date imapclient's parser must judge
        found[int(uid)] = {b"SEQ": int(seq), b"INTERNALDATE": when, b"RFC822.SIZE": int(size), section: literal}
    return found
