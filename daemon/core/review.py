"""Review by reply: commands, review tokens, judging a reply, and the two-person rule.

Rules of this module:
- A reply counts only when every check of `judge_reply` passes, in its order; each refusal has
  a named code (REFUSALS). Answering a refused sender is `safe_to_answer` only when the sender
  is authenticated, is the person the valid token names, and did not send an auto-reply.
- A reply with more than one of any SINGLE_FIELDS (From, Sender, To, Cc, Subject, Date,
  Message-ID, In-Reply-To, References; RFC 5322 section 3.6) is refused as repeated_header, and
  one dated more than DATE_SKEW before its token was issued (or undated) as older_than_token:
  a DKIM signature covers only the bottom copy of a field, so stacked copies and old dates are
  how a genuine mail of an insider is replayed with a stolen token.
- The command is read from the new text only, by core/replytext.py (re-exported here).
- A token is token_id + "-" + 26 base32 characters of HMAC-SHA256 over the canonical claims;
  the MAC is recomputed from the stored claims and compared with hmac.compare_digest.
- The two-person rule and the draft's state machine live in core/release.py (re-exported here
  for the modules that read them from this one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parseaddr
from typing import Literal

from daemon.core.authres import AuthVerdict, OrganizationalDomain, check_authentication
from daemon.core.mail import SINGLE_FIELDS  # at most one of each (RFC 5322 section 3.6)
from daemon.core.release import (
    LIVE_STATES,
    DraftState,
    Endorsement,
    Outcome,
    Sendability,
    Step,
    apply_command,
    next_step,
    sendable,
)
from daemon.core.replytext import Command, CommandKind, Role, command_help, parse_command, split_reply
from daemon.core.tokenshape import MAC_LENGTH, MAX_MAILBOX_LOCAL, TOKEN_LENGTH, TOKEN_PREFIX  # noqa: F401 - re-exported

# Commands are read in core/replytext.py; they are part of this module's interface too.
__all__ = [
    "LIVE_STATES", "Command", "CommandKind", "DraftState", "Endorsement", "Judgement", "Outcome", "ReplyFacts",
    "Role", "Sendability", "Step", "TokenCheck", "TokenClaims", "TokenRecord", "apply_command",
    "command_help", "issue_token", "judge_reply", "reply_facts", "next_step", "normalise_address", "parse_command",
    "sendable", "split_token", "subject_names_other_review", "subject_tag", "token_address",
    "token_from_addresses", "token_id_from_bytes", "verify_token",
]

REFUSALS = ("no_token", "repeated_header", "unknown_token", "forged_token", "replayed", "expired",
            "older_than_token", "superseded", "not_in_review", "not_a_reply", "wrong_sender", "auto_reply",
            "not_authenticated", "unknown_command")
# A reply cannot be older than the token it answers; clocks of mail clients drift a little.
DATE_SKEW = timedelta(minutes=5)
SUBJECT_KINDS = tuple(LIVE_STATES)  # a notice takes ANSWERED, a triage item ASSIGN or DISMISS


# --------------------------------------------------------------------------------------------
# Tokens.

# The token's prefix and lengths are in core/tokenshape.py (the settings check reads them too).
_TOKEN_ID = re.compile(r"^[a-z0-9]{8,24}$")
_MAC = re.compile(rf"^[a-z2-7]{{{MAC_LENGTH}}}$")
_SUBJECT_TAG = re.compile(r"\[parting #([a-z0-9]{8})\]", re.IGNORECASE)


@dataclass(frozen=True)
class TokenClaims:
    token_id: str  # random: token_id_from_bytes(secrets.token_bytes(10))
    subject_kind: Literal["draft", "deadline", "notice", "triage"]
    subject_id: int
    version: int | None  # None for a deadline
    text_sha256: str | None  # of the exact text under review; None for a deadline
    person: str  # Person.id
    role: str  # "owner", "reviewer" or "deadline"
    expires_at: datetime


@dataclass(frozen=True)
class TokenCheck:
    ok: bool
    reason: str
    code: str = "ok"  # or "forged_token", "replayed", "expired"


def token_id_from_bytes(raw: bytes) -> str:
    """A token id from random bytes the caller drew (10 bytes give 16 characters)."""
    if not 5 <= len(raw) <= 15:
        raise ValueError("a token id takes 5 to 15 random bytes")
    return base64.b32encode(raw).decode().rstrip("=").lower()


def _require_aware(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware")
    return moment


def _mac(key: bytes, claims: TokenClaims) -> str:
    if len(key) < 16:
        raise ValueError("the token key must be at least 16 bytes")
    expires = int(_require_aware(claims.expires_at, "expires_at").timestamp())
    sha = claims.text_sha256.lower() if claims.text_sha256 is not None else None
    canonical = json.dumps(
        ["parting-token-1", claims.token_id, claims.subject_kind, claims.subject_id, claims.version,
         sha, claims.person, claims.role, expires],
        separators=(",", ":"), ensure_ascii=True,
    ).encode()
    digest = hmac.new(key, canonical, hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:MAC_LENGTH]


def issue_token(key: bytes, claims: TokenClaims) -> str:
    """The token for these claims: lower-case letters and digits, at most 51 characters."""
    if not _TOKEN_ID.match(claims.token_id):
        raise ValueError(f"token id {claims.token_id!r} is not 8 to 24 lower-case letters or digits")
    if claims.subject_kind not in SUBJECT_KINDS:
        raise ValueError(f"unknown subject kind {claims.subject_kind!r}")
    return f"{claims.token_id}-{_mac(key, claims)}"


def split_token(token: str) -> tuple[str, str] | None:
    """(token_id, mac), or None when the string is not shaped like a token."""
    token_id, separator, mac = token.strip().lower().partition("-")
    if not separator or not _TOKEN_ID.match(token_id) or not _MAC.match(mac):
        return None
    return token_id, mac


def verify_token(
    key: bytes, token: str, claims_from_store: TokenClaims, now: datetime, *, used_at: datetime | None = None
) -> TokenCheck:
    """Whether `token` was issued with these claims, is unused and has not expired."""
    _require_aware(now, "now")
    parts = split_token(token)
    if parts is None:
        return TokenCheck(False, "the review token is malformed", "forged_token")
    token_id, mac = parts
    mac_ok = hmac.compare_digest(_mac(key, claims_from_store), mac)
    if not mac_ok or token_id != claims_from_store.token_id:
        return TokenCheck(False, "the review token does not verify", "forged_token")
    if used_at is not None:
        return TokenCheck(False, f"the review token was already used at {used_at.isoformat()}",
                          "replayed")
    expires_at = claims_from_store.expires_at
    if now >= expires_at:
        return TokenCheck(False, f"the review token expired at {expires_at.isoformat()}", "expired")
    return TokenCheck(True, "the review token verifies")


def token_address(our_address: str, token: str) -> str:
    """The reply address carrying the token: office+r-<token>@example.com."""
    local, _, domain = our_address.strip().lower().rpartition("@")
    if not local or not domain or split_token(token) is None:
        raise ValueError(f"cannot make a token address from {our_address!r} and {token!r}")
    local = f"{local}+{TOKEN_PREFIX}{token.strip().lower()}"
    if len(local) > 64:  # RFC 5321 4.5.3.1.1
        raise ValueError(f"the local part {local!r} is longer than 64 characters")
    return f"{local}@{domain}"


# What parseaddr reads other than as written, blanks apart: comments, quoting, escapes, routes.
_SPECIALS = frozenset('()"\\<>[]:;,')


def token_from_addresses(addresses: Sequence[str], our_address: str) -> str | None:
    """The first well-formed token in a plus-address of ours among `addresses`, lower-case."""
    local, _, domain = our_address.strip().lower().rpartition("@")
    prefix = f"{local}+{TOKEN_PREFIX}"
    for raw in addresses:
        if raw.isascii() and _SPECIALS.isdisjoint(raw) and prefix not in "".join(raw.split()).lower():
            continue  # (nearly every address: parseaddr, costly, only drops blanks from such a one)
        address = (parseaddr(raw)[1] or raw).strip().lower()
        their_local, at, their_domain = address.rpartition("@")
        if at and their_domain == domain and their_local.startswith(prefix):
            token = their_local[len(prefix):]
            if split_token(token) is not None:
                return token
    return None


def subject_tag(token_id: str) -> str:
    return f"[parting #{token_id[:8].lower()}]"


def subject_names_other_review(subject: str, token_id: str) -> bool:
    """True when the subject carries parting tags and none of them is this token's."""
    tags = {tag.lower() for tag in _SUBJECT_TAG.findall(subject)}
    return bool(tags) and token_id[:8].lower() not in tags


# --------------------------------------------------------------------------------------------
# Judging one reply.


@dataclass(frozen=True)
class ReplyFacts:
    from_addr: str
    to_addrs: tuple[str, ...]
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    auto_reply: str | None  # why the reply is automatic; None when a person wrote it
    authentication_results: tuple[str, ...]  # raw header values, topmost first
    new_text: str  # replytext.split_reply(...)[0]
    token: str | None  # token_from_addresses(to + cc, our address); None: it carries none
    # (field, count) of SINGLE_FIELDS as the message arrived (core/mail.py counts them); None when
    # they were not counted, which refuses the reply as repeated_header would.
    header_counts: tuple[tuple[str, int], ...] | None = ()
    date: datetime | None = None  # its Date header; judged against the token's issue


def reply_facts(
    *, from_addr: str, to_addrs: Sequence[str], cc_addrs: Sequence[str], in_reply_to: Sequence[str],
    references: Sequence[str], subject: str, auto_reply: str | None, authentication_results: Sequence[str],
    text: str | None, our_address: str, header_counts: tuple[tuple[str, int], ...] | None,
    date: datetime | None,
) -> ReplyFacts:
    """The facts of a reply from what core/mail.py read out of it (stored or just parsed): its
    new text (replytext.split_reply) and the token in a plus-address of ours among To and Cc."""
    addresses = (*to_addrs, *cc_addrs)
    return ReplyFacts(
        from_addr=from_addr, to_addrs=addresses, in_reply_to=tuple(in_reply_to), references=tuple(references),
        subject=subject, auto_reply=auto_reply, authentication_results=tuple(authentication_results),
        new_text=split_reply(text or "")[0], token=token_from_addresses(addresses, our_address),
        header_counts=header_counts, date=date,
    )


@dataclass(frozen=True)
class TokenRecord:
    """What the store holds for the presented token's id."""

    claims: TokenClaims
    person_email: str  # the address of claims.person
    review_message_id: str | None  # Message-ID of the review email the token went out in
    used_at: datetime | None = None
    issued_at: datetime | None = None  # when given, a reply dated earlier (beyond DATE_SKEW) is refused


@dataclass(frozen=True)
class Judgement:
    accepted: bool
    reason: str
    command: Command | None
    safe_to_answer: bool
    code: str  # "accepted" or one of REFUSALS
    authentication: AuthVerdict | None = None
    authentication_skipped: bool = False  # accepted although authentication failed (opt-out)


_SINGLE_LOWER = frozenset(name.lower() for name in SINGLE_FIELDS)


def normalise_address(address: str) -> str:
    return (parseaddr(address)[1] or address).strip().lower()


def _message_ids(values: Sequence[str]) -> set[str]:
    return {part.strip("<>").lower() for value in values for part in value.split() if part.strip("<>")}


def judge_reply(
    reply: ReplyFacts,
    token: TokenRecord | None,
    *,
    key: bytes,
    now: datetime,
    authserv_id: str,
    require_authentication: bool,
    current_version: int | None,
    draft_state: str,
    current_text_sha256: str | None = None,
    organizational_domain: OrganizationalDomain | None = None,
    authentication: AuthVerdict | None = None,
) -> Judgement:
    """Accept the reply's command, or refuse it with the first failing check's code and reason.

    The caller finds the token with token_from_addresses, looks its claims up by token id and
    passes them as `token` (None when the id is unknown). For a deadline token, pass None as
    `current_version` and the deadline's state as `draft_state`. `organizational_domain` (from
    the Public Suffix List, adapters/publicsuffix.py) makes DKIM/SPF alignment relaxed; without
    it the signing domain must equal the From domain. `authentication`: the verdict of
    core/evidence.py (the provider's evidence, which applies the same alignment); None: the
    configured authserv-id's Authentication-Results only.
    """
    sender = normalise_address(reply.from_addr)
    auth = authentication or check_authentication(reply.authentication_results, authserv_id=authserv_id,
                                                  from_domain=sender.rpartition("@")[2],
                                                  organizational_domain=organizational_domain)
    named = token is not None and "@" in sender and sender == normalise_address(token.person_email)

    def refuse(
        code: str, reason: str, command: Command | None = None, *, token_valid: bool = True
    ) -> Judgement:
        safe = auth.ok and named and token_valid and reply.auto_reply is None
        return Judgement(False, reason, command, safe, code, auth)

    if not reply.token:
        return refuse("no_token", "the reply carries no review token", token_valid=False)
    # Checked before the token, since a stacked To may be where the token came from; answered
    # only when the token is genuine (it names the person the answer would go to).
    genuine = token is not None and verify_token(key, reply.token, token.claims, now).code != "forged_token"
    if reply.header_counts is None:
        return refuse("repeated_header", "the reply's header fields were not counted when it arrived;"
                      " please send it again", token_valid=genuine)
    repeated = [f"{count} {name}" for name, count in reply.header_counts
                if count > 1 and name.lower() in _SINGLE_LOWER]
    if repeated:
        return refuse("repeated_header", f"the reply has {', '.join(repeated)} header fields; RFC 5322 allows"
                      " one of each, and stacked copies are how a genuine mail is replayed", token_valid=genuine)
    if token is None:
        return refuse("unknown_token", "the review token is not known", token_valid=False)
    check = verify_token(key, reply.token, token.claims, now, used_at=token.used_at)
    if not check.ok:
        return refuse(check.code, check.reason, token_valid=check.code != "forged_token")
    claims = token.claims
    if token.issued_at is not None:
        if reply.date is None:
            return refuse("older_than_token", "the reply has no readable Date, so it cannot be shown to be"
                          " newer than its review token")
        if reply.date < token.issued_at - DATE_SKEW:
            return refuse("older_than_token", f"the reply is dated {reply.date.isoformat()}, before its review"
                          f" token was issued at {token.issued_at.isoformat()}: a replay of older mail")
    stale_text = (current_text_sha256 is not None
                  and (claims.text_sha256 or "").lower() != current_text_sha256.lower())
    if claims.version != current_version or stale_text:
        return refuse("superseded", f"version {claims.version} was superseded by version {current_version}")
    if draft_state not in LIVE_STATES.get(claims.subject_kind, ()):
        return refuse("not_in_review",
                      f"the {claims.subject_kind} is no longer in review (it is {draft_state})")
    review_id = (token.review_message_id or "").strip("<> ").lower()
    if not review_id or review_id not in _message_ids((*reply.in_reply_to, *reply.references)):
        return refuse("not_a_reply", f"the reply does not reference the review email <{review_id}>")
    if subject_names_other_review(reply.subject, claims.token_id):
        return refuse("not_a_reply", f"the subject names another review than {subject_tag(claims.token_id)}")
    if not named:
        return refuse("wrong_sender", f"the reply came from {sender or 'nobody'}, but the token was issued"
                      f" to {claims.person} <{normalise_address(token.person_email)}>")
    if reply.auto_reply is not None:
        return refuse("auto_reply", f"the reply is automatic ({reply.auto_reply})")
    if not auth.ok and require_authentication:
        return refuse("not_authenticated", f"the sender is not authenticated: {auth.reason}")
    command = parse_command(reply.new_text, role=claims.role)  # type: ignore[arg-type]
    if command.kind == "unknown":
        return refuse("unknown_command", command.problem or "no command", command)
    how = (f"authentication skipped (require_authentication is off): {auth.reason}" if not auth.ok
           else f"authenticated by {auth.reason}")
    reason = f"{command.kind.upper()} from {claims.person} for version {claims.version}; {how}"
    return Judgement(True, reason, command, auth.ok, "accepted", auth, authentication_skipped=not auth.ok)
