"""The database schema as a list of forward migrations.

Rules:
- MIGRATIONS[n] takes the schema from version n to n + 1; a released migration is never edited,
  a change is a new function appended to the list.
- Each migration runs in its own BEGIN IMMEDIATE transaction together with the version bump,
  so a crash leaves the database at the old version or the new one, never between.
- Times are ISO 8601 UTC text; JSON columns hold JSON text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the migrations get a Database; importing sqlite-utils is the store's, on first write
    import sqlite_utils

_V1 = [
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        client_id TEXT,
        draft_id INTEGER,
        message_ids TEXT NOT NULL DEFAULT '[]',
        data TEXT,
        policy_hash TEXT)""",
    "CREATE INDEX events_client ON events(client_id, id)",
    """CREATE TRIGGER events_no_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only: no UPDATE'); END""",
    """CREATE TRIGGER events_no_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only: no DELETE'); END""",
    """CREATE TABLE folders (
        name TEXT PRIMARY KEY,
        uidvalidity INTEGER NOT NULL,
        last_uid INTEGER NOT NULL DEFAULT 0,
        highestmodseq INTEGER)""",
    """CREATE TABLE messages (
        message_id TEXT PRIMARY KEY,
        client_id TEXT,
        thread_id TEXT NOT NULL,
        direction TEXT NOT NULL CHECK (direction IN ('in', 'out')),
        at TEXT NOT NULL,
        subject TEXT NOT NULL DEFAULT '',
        from_addr TEXT NOT NULL DEFAULT '',
        to_addrs TEXT NOT NULL DEFAULT '[]',
        cc_addrs TEXT NOT NULL DEFAULT '[]',
        in_reply_to TEXT NOT NULL DEFAULT '[]',
        "references" TEXT NOT NULL DEFAULT '[]',
        thread_index_root TEXT,
        norm_subject TEXT NOT NULL DEFAULT '',
        auto_reply TEXT,
        bounce INTEGER NOT NULL DEFAULT 0,
        question INTEGER NOT NULL DEFAULT 0,
        tagged INTEGER NOT NULL DEFAULT 0,
        parting_kind TEXT,
        content_hash TEXT,
        size INTEGER,
        from_staff INTEGER NOT NULL DEFAULT 0,
        ingested_at TEXT,
        body_text TEXT,
        auth_results TEXT)""",
    "CREATE INDEX messages_client_at ON messages(client_id, at)",
    "CREATE INDEX messages_thread ON messages(thread_id, at)",
    "CREATE INDEX messages_subject_at ON messages(norm_subject, at)",
    """CREATE INDEX messages_index_root ON messages(thread_index_root, at)
        WHERE thread_index_root IS NOT NULL""",
    """CREATE TABLE message_uids (
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        message_id TEXT NOT NULL REFERENCES messages(message_id),
        PRIMARY KEY (folder, uidvalidity, uid))""",
    "CREATE INDEX message_uids_message ON message_uids(message_id)",
    """CREATE TABLE quarantine (
        folder TEXT NOT NULL,
        uidvalidity INTEGER NOT NULL,
        uid INTEGER NOT NULL,
        reason TEXT NOT NULL,
        content_hash TEXT,
        size INTEGER,
        at TEXT NOT NULL,
        PRIMARY KEY (folder, uidvalidity, uid))""",
    """CREATE TABLE triage (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL,
        client_id TEXT,
        reason TEXT NOT NULL,
        at TEXT NOT NULL,
        closed_at TEXT,
        closed_by TEXT,
        note TEXT,
        UNIQUE (message_id, reason))""",
    """CREATE TABLE client_state (
        client_id TEXT PRIMARY KEY,
        paused INTEGER NOT NULL DEFAULT 0,
        paused_changed_at TEXT)""",
    """CREATE TABLE verdicts (
        client_id TEXT PRIMARY KEY,
        verdict TEXT NOT NULL,
        at TEXT NOT NULL)""",
    """CREATE TABLE drafts (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('release', 'nudge')),
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        episode,
        current_version INTEGER NOT NULL DEFAULT 1,
        hold_until TEXT,
        subject TEXT NOT NULL)""",
    "CREATE INDEX drafts_state ON drafts(state)",
    "CREATE INDEX drafts_client ON drafts(client_id)",
    """CREATE TABLE draft_versions (
        draft_id INTEGER NOT NULL REFERENCES drafts(id),
        version INTEGER NOT NULL,
        text TEXT NOT NULL,
        text_sha256 TEXT NOT NULL,
        writer TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (draft_id, version))""",
    """CREATE TABLE endorsements (
        draft_id INTEGER NOT NULL,
        version INTEGER NOT NULL,
        person TEXT NOT NULL,
        role TEXT NOT NULL,
        how TEXT NOT NULL CHECK (how IN ('wrote', 'approved')),
        at TEXT NOT NULL,
        via_message_id TEXT,
        auth_verdict TEXT,
        UNIQUE (draft_id, version, person),
        FOREIGN KEY (draft_id, version) REFERENCES draft_versions(draft_id, version))""",
    """CREATE TABLE ladder_steps (
        client_id TEXT NOT NULL,
        episode NOT NULL,
        action TEXT NOT NULL,
        at TEXT NOT NULL,
        draft_id INTEGER REFERENCES drafts(id),
        UNIQUE (client_id, episode, action))""",
    """CREATE TABLE tokens (
        token_id TEXT PRIMARY KEY,
        token_mac TEXT NOT NULL,
        subject_kind TEXT NOT NULL CHECK (subject_kind IN ('draft', 'deadline')),
        subject_id INTEGER NOT NULL,
        version INTEGER,
        text_sha256 TEXT,
        person TEXT NOT NULL,
        role TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        review_message_id TEXT,
        issued_at TEXT NOT NULL,
        used_at TEXT,
        used_by_message_id TEXT UNIQUE)""",
    "CREATE INDEX tokens_subject ON tokens(subject_kind, subject_id)",
    """CREATE TABLE processed_replies (
        message_id TEXT PRIMARY KEY,
        outcome TEXT NOT NULL,
        at TEXT NOT NULL)""",
    """CREATE TABLE deadlines (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        client_id TEXT NOT NULL,
        draft_id INTEGER REFERENCES drafts(id),
        due_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'done', 'cancelled')),
        data TEXT,
        created_at TEXT NOT NULL,
        reminded_at TEXT,
        closed_at TEXT,
        closed_by TEXT,
        note TEXT)""",
    # UNIQUE(kind, client_id, draft_id) would let two rows with a NULL draft_id through:
    # SQLite treats NULLs as distinct in unique constraints.
    """CREATE UNIQUE INDEX deadlines_once
        ON deadlines(kind, client_id, ifnull(draft_id, 0))""",
    "CREATE INDEX deadlines_due ON deadlines(state, due_at)",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY,
        message_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        client_id TEXT,
        draft_id INTEGER REFERENCES drafts(id),
        deadline_id INTEGER REFERENCES deadlines(id),
        sender TEXT NOT NULL,
        recipients TEXT NOT NULL,
        raw BLOB NOT NULL,
        state TEXT NOT NULL DEFAULT 'queued'
            CHECK (state IN ('queued', 'sending', 'sent', 'failed', 'uncertain', 'cancelled')),
        attempts INTEGER NOT NULL DEFAULT 0,
        not_before TEXT,
        next_attempt_at TEXT,
        last_error TEXT,
        server_reply TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        sent_at TEXT)""",
    "CREATE INDEX outbox_state ON outbox(state, created_at, id)",
    "CREATE INDEX outbox_sent_at ON outbox(sent_at) WHERE sent_at IS NOT NULL",
    "CREATE INDEX outbox_draft ON outbox(draft_id)",
    """CREATE TABLE casefile_notes (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        author TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT NOT NULL)""",
    "CREATE INDEX casefile_notes_client ON casefile_notes(client_id, at)",
]


def _v1_initial(db: sqlite_utils.Database) -> None:
    for statement in _V1:
        db.execute(statement)


# Threading by subject asks "the latest message with this subject, from this client or with one of
# these addresses in From/To/Cc": without an index per address it scanned the JSON address lists of
# every message sharing the subject, which grows with the mailbox. Messages are never updated, so
# copying their addresses (with subject and time, to answer from the index alone) stays true.
_V2 = [
    """CREATE TABLE message_addresses (
        address TEXT NOT NULL,
        norm_subject TEXT NOT NULL,
        at TEXT NOT NULL,
        message_id TEXT NOT NULL REFERENCES messages(message_id),
        PRIMARY KEY (address, norm_subject, at, message_id)) WITHOUT ROWID""",
    """INSERT OR IGNORE INTO message_addresses (address, norm_subject, at, message_id)
        SELECT from_addr, norm_subject, at, message_id FROM messages WHERE from_addr != ''
        UNION ALL SELECT t.value, m.norm_subject, m.at, m.message_id
            FROM messages AS m, json_each(m.to_addrs) AS t WHERE t.value != ''
        UNION ALL SELECT c.value, m.norm_subject, m.at, m.message_id
            FROM messages AS m, json_each(m.cc_addrs) AS c WHERE c.value != ''""",
    "CREATE INDEX messages_subject_client_at ON messages(norm_subject, client_id, at)",
]


def _v2_address_index(db: sqlite_utils.Database) -> None:
    for statement in _V2:
        db.execute(statement)


# A staff reply is judged on what its header section held when it arrived: how often each field
# that RFC 5322 allows once appeared, and its own Date (the row's `at` prefers the server's
# time). Kept, like bodies, for staff replies only.
_V3 = [
    "ALTER TABLE messages ADD COLUMN header_counts TEXT",
    "ALTER TABLE messages ADD COLUMN date_header TEXT",
]


def _v3_reply_headers(db: sqlite_utils.Database) -> None:
    for statement in _V3:
        db.execute(statement)


def _v4_evidence_headers(db: sqlite_utils.Database) -> None:
    # The provider's stamps on a staff reply (X-MS-Exchange-Organization-AuthAs, ...): the
    # evidence core/evidence.py judges, kept like auth_results for staff replies only.
    db.execute("ALTER TABLE messages ADD COLUMN evidence_headers TEXT")


# A bounce names the message of ours it returns and the addresses that failed (core/bounces.py):
# kept beside the bounce's messages row (never updated) so the policy can tell an undeliverable
# request from an ignored one, and the owner is told once per message and address.
_DELIVERY_FAILURES = [
    """CREATE TABLE delivery_failures (
        bounce_message_id TEXT NOT NULL,
        recipient TEXT NOT NULL,
        original_message_id TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT '',
        reason TEXT NOT NULL DEFAULT '',
        client_id TEXT,
        at TEXT NOT NULL,
        told_at TEXT,
        PRIMARY KEY (bounce_message_id, recipient))""",
    "CREATE INDEX delivery_failures_client ON delivery_failures(client_id, at)",
    "CREATE INDEX delivery_failures_original ON delivery_failures(original_message_id, recipient)",
]


def _v5_delivery_failures(db: sqlite_utils.Database) -> None:
    for statement in _DELIVERY_FAILURES:
        db.execute(statement)


# What happened outside the mailbox, recorded by a person (an answer by phone or in a meeting, an
# owner change): each row stands in the client's history as a real reply would, starting a new
# episode. Notices are the owner emails that take a reply (ANSWERED): a token names its row.
_RECORDED = [
    """CREATE TABLE recorded (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        how TEXT NOT NULL DEFAULT '',
        note TEXT NOT NULL DEFAULT '',
        by TEXT NOT NULL,
        at TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        via TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX recorded_client ON recorded(client_id, at)",
    """CREATE TABLE notices (
        id INTEGER PRIMARY KEY,
        client_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        episode TEXT NOT NULL,
        at TEXT NOT NULL)""",
    # Tokens now also name a notice (ANSWERED) or a triage item (ASSIGN, DISMISS): SQLite cannot
    # widen a CHECK in place, so the table is copied into one with the wider CHECK.
    """CREATE TABLE tokens_wider (
        token_id TEXT PRIMARY KEY,
        token_mac TEXT NOT NULL,
        subject_kind TEXT NOT NULL CHECK (subject_kind IN ('draft', 'deadline', 'notice', 'triage')),
        subject_id INTEGER NOT NULL,
        version INTEGER,
        text_sha256 TEXT,
        person TEXT NOT NULL,
        role TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        review_message_id TEXT,
        issued_at TEXT NOT NULL,
        used_at TEXT,
        used_by_message_id TEXT UNIQUE)""",
    "INSERT INTO tokens_wider SELECT * FROM tokens",
    "DROP TABLE tokens",
    "ALTER TABLE tokens_wider RENAME TO tokens",
    "CREATE INDEX tokens_subject ON tokens(subject_kind, subject_id)",
]


def _v6_recorded_evidence(db: sqlite_utils.Database) -> None:
    for statement in _RECORDED:
        db.execute(statement)


# Triage closed by a person: a message assigned to a client counts in that client's history from
# then on (messages are never updated, so the assignment lives beside it), and an address the
# person chose to learn makes later mail from it the client's.
_TRIAGE = [
    """CREATE TABLE message_assignments (
        message_id TEXT PRIMARY KEY REFERENCES messages(message_id),
        client_id TEXT NOT NULL,
        by TEXT NOT NULL,
        at TEXT NOT NULL)""",
    "CREATE INDEX message_assignments_client ON message_assignments(client_id)",
    """CREATE TABLE learned_addresses (
        address TEXT PRIMARY KEY,
        client_id TEXT NOT NULL,
        by TEXT NOT NULL,
        at TEXT NOT NULL,
        message_id TEXT)""",
]


def _v7_triage(db: sqlite_utils.Database) -> None:
    for statement in _TRIAGE:
        db.execute(statement)


# The owner each client had when parting last read the configuration: a different owner in a
# reloaded (or restarted) configuration is an owner change, which starts a new episode.
_OWNERS = [
    """CREATE TABLE client_owners (
        client_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        since TEXT NOT NULL)""",
]


def _v8_client_owners(db: sqlite_utils.Database) -> None:
    for statement in _OWNERS:
        db.execute(statement)


# One release state machine (issue #17): the store refuses what the flows must never do, so a
# code path that forgets the rule fails loudly instead of sending twice. A draft keeps the
# envelope its readers saw; an outbox row names the version it carries.
_LIVE_RELEASE = "kind IN ('release', 'nudge') AND state IN ('queued', 'sending', 'uncertain', 'failed')"
_SECOND_SENT = """SELECT RAISE(ABORT, 'a release was already sent to this client in this episode')
    WHERE NEW.kind = 'release' AND NEW.state = 'sent' AND NEW.draft_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM outbox AS o JOIN drafts AS d ON d.id = o.draft_id, drafts AS n
        WHERE n.id = NEW.draft_id AND o.id != NEW.id AND o.kind = 'release' AND o.state = 'sent'
          AND d.client_id = n.client_id AND d.episode IS n.episode)"""
_V9 = [
    "ALTER TABLE drafts ADD COLUMN envelope TEXT",
    "ALTER TABLE outbox ADD COLUMN draft_version INTEGER",
    # A database from before this rule may hold two live rows for a draft: the older ones go.
    f"""UPDATE outbox SET state = 'cancelled' WHERE draft_id IS NOT NULL AND {_LIVE_RELEASE}
        AND id NOT IN (SELECT max(id) FROM outbox WHERE draft_id IS NOT NULL AND {_LIVE_RELEASE}
                       GROUP BY draft_id)""",
    f"CREATE UNIQUE INDEX outbox_one_live_release ON outbox(draft_id) WHERE draft_id IS NOT NULL AND {_LIVE_RELEASE}",
    f"CREATE TRIGGER outbox_one_sent_release_update BEFORE UPDATE OF state ON outbox BEGIN {_SECOND_SENT}; END",
    f"CREATE TRIGGER outbox_one_sent_release_insert BEFORE INSERT ON outbox BEGIN {_SECOND_SENT}; END",
]


def _v9_release_rules(db: sqlite_utils.Database) -> None:
    for statement in _V9:
        db.execute(statement)


# Every index entry is written for each message a backfill stores, so only indexes some query
# reads are kept. messages_subject_at (norm_subject, at) is a prefix of what
# messages_subject_client_at (norm_subject, client_id, at) answers, and nothing reads
# message_uids by message_id (messages are never deleted, so no foreign key check needs it).
_V10 = [
    "DROP INDEX IF EXISTS messages_subject_at",
    "DROP INDEX IF EXISTS message_uids_message",
]


def _v10_fewer_ingest_indexes(db: sqlite_utils.Database) -> None:
    for statement in _V10:
        db.execute(statement)


# A subject look-up asks, per address, only for the latest message with the subject (the caller
# weighs its time against its own `since`), so one row per (address, subject) answers it, with
# the thread at hand: a fifth of message_addresses' rows in a real mailbox (a thread repeats its
# subject and people), one index seek per look-up instead of three (the join to messages), and a
# backfill rewrites far fewer index pages. Messages are never updated, so a row stays true until
# a later message with the same address and subject replaces it.
_V11 = [
    """CREATE TABLE latest_by_address_subject (
        address TEXT NOT NULL,
        norm_subject TEXT NOT NULL,
        at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        PRIMARY KEY (address, norm_subject)) WITHOUT ROWID""",
    """INSERT INTO latest_by_address_subject (address, norm_subject, at, message_id, thread_id)
        SELECT address, norm_subject, at, message_id, thread_id FROM (
            SELECT a.address, a.norm_subject, a.at, a.message_id, m.thread_id, row_number() OVER (
                PARTITION BY a.address, a.norm_subject ORDER BY a.at DESC, a.message_id DESC) AS n
            FROM message_addresses AS a JOIN messages AS m ON m.message_id = a.message_id)
        WHERE n = 1""",
    "DROP TABLE message_addresses",
]


def _v11_latest_by_address_subject(db: sqlite_utils.Database) -> None:
    for statement in _V11:
        db.execute(statement)


# The other two look-ups of threading are answered the same way, by the latest message of each
# key, and the two messages indexes that answered them go: every message a backfill stores wrote
# an entry on a random page of each (keyed by subject, by thread), while these tables hold a row
# per subject and client (a fifth of the messages in the bench's mailbox) and per thread with a
# client. latest_by_client_subject also answers "does any stored message have this subject": a
# message with no client has its row under client_id '' (a client id is never empty: settings'
# IDENT). Rows come from each Message-ID's stored row (the first copy), as the indexes' did.
_V12 = [
    """CREATE TABLE latest_by_client_subject (
        norm_subject TEXT NOT NULL,
        client_id TEXT NOT NULL,
        at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        PRIMARY KEY (norm_subject, client_id)) WITHOUT ROWID""",
    """INSERT INTO latest_by_client_subject (norm_subject, client_id, at, message_id, thread_id)
        SELECT norm_subject, client_id, at, message_id, thread_id FROM (
            SELECT norm_subject, ifnull(client_id, '') AS client_id, at, message_id, thread_id, row_number() OVER (
                PARTITION BY norm_subject, ifnull(client_id, '') ORDER BY at DESC, message_id DESC) AS n
            FROM messages)
        WHERE n = 1""",
    """CREATE TABLE latest_client_by_thread (
        thread_id TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        message_id TEXT NOT NULL,
        client_id TEXT NOT NULL) WITHOUT ROWID""",
    """INSERT INTO latest_client_by_thread (thread_id, at, message_id, client_id)
        SELECT thread_id, at, message_id, client_id FROM (
            SELECT thread_id, at, message_id, client_id, row_number() OVER (
                PARTITION BY thread_id ORDER BY at DESC, message_id DESC) AS n
            FROM messages WHERE client_id IS NOT NULL)
        WHERE n = 1""",
    "DROP INDEX IF EXISTS messages_subject_client_at",
    "DROP INDEX IF EXISTS messages_thread",
]


def _v12_latest_by_client(db: sqlite_utils.Database) -> None:
    for statement in _V12:
        db.execute(statement)


Migration = Callable[["sqlite_utils.Database"], None]

MIGRATIONS: list[Migration] = [_v1_initial, _v2_address_index, _v3_reply_headers, _v4_evidence_headers,
                               _v5_delivery_failures, _v6_recorded_evidence, _v7_triage, _v8_client_owners,
                               _v9_release_rules, _v10_fewer_ingest_indexes,
                               _v11_latest_by_address_subject, _v12_latest_by_client]
SCHEMA_VERSION = len(MIGRATIONS)

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL)"""


def stored_version(db: sqlite_utils.Database) -> int:
    """The schema version written in the database; 0 for a database parting never touched."""
    if "schema_version" not in db.table_names():
        return 0
    row = db.execute("SELECT version FROM schema_version WHERE id = 1").fetchone()
    return 0 if row is None else int(row[0])


def set_version(db: sqlite_utils.Database, version: int) -> None:
    db.execute(
        "INSERT INTO schema_version (id, version) VALUES (1, ?)"
        " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
        [version],
    )
