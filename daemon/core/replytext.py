"""Reading a person's reply: the new text they wrote (apart from quote and signature), and its command.

Rules of this module:
- Pure text in, text out; no IO. Never raises on odd input: at worst the new text is empty,
  which makes any command unknown (safe), never a command read from the quoted review email.
- Lines quoted with ">" are never new text, wherever they stand (top, bottom or interleaved
  posting); neither is a quote header ("On ... wrote:" and its translations).
- A signature ("-- ", "--"), a mobile footer ("Sent from my iPhone"), an Outlook original-message
  block or a forwarded-message marker ends the new text: everything below it is the rest.
- HTML-only replies become text first (`html_to_text`): quoted parts get a "> " prefix, so the
  same rules apply to them.
- The command grammar (strict about what counts, kind to how people write; `command_help`
  sends it with every refusal):
      reply        = *blank [greeting [greeting]] command-line *line
      greeting     = a salutation (SALUTATIONS: Hi, Hello, Dear, Hallo, Bonjour...) and at most
                     three name words, optionally ended by "," "!" "." or ":" ("Hi Alice,")
      command-line = APPROVE | APPROVED                     and nothing else but punctuation
                   | REJECT | REJECTED  [reason]            reason: the rest of the line and the
                                                            paragraph below it
                   | HOLD [for] n [day|days|d] [reason]     n in digits, 1 to 90
                   | EDIT                                    new text on the lines below
                   | DONE [note]                             deadlines only
  The command words are exactly COMMAND_WORDS, English, any letter case, with leading
  punctuation allowed ("**Approve**"). "Approve?" or any "?" on an APPROVE line, any other word
  on it ("NOT", "only", "if", "by whom"...), and a "?" or a QUALIFIERS word (not, only, if,
  unless, after, but...) on the lines right below it, up to a blank line, make the reply
  "unknown", answered with help: a misread APPROVE is the one mistake this tool must never make,
  so when in doubt parting asks again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from daemon.core.htmltext import html_to_text

__all__ = ["Command", "command_help", "html_to_text", "is_signature_line", "parse_command", "split_reply"]

_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"), None)

# A quote header starts with one of these words and, joined over up to three wrapped lines,
# ends with the client's "wrote:"; it must carry a time of day, as every client writes one,
# so that a sentence of the person's own ("On reflection, as Bob wrote:") stays new text.
# English, German, French, Spanish, Dutch, Swedish/Danish, Italian, Portuguese.
_HEADER_START = re.compile(r"^\s*(On|Am|Le|El|Op|Den|Il|Em)\s", re.IGNORECASE)
_HEADER_FULL = re.compile(
    r"^\s*(?:On\s.*\bwrote\s*:|Am\s.*\bschrieb\b.*:|Le\s.*\ba\s+écrit\s*:"
    r"|El\s.*\bescribió\s*:|Op\s.*\bschreef\b.*:|Den\s.*\bskrev\b.*:|Il\s.*\bha\s+scritto\s*:"
    r"|Em\s.*\bescreveu\s*:)\s*$",
    re.IGNORECASE,
)
_TIME_OF_DAY = re.compile(r"\d{1,2}[:.h]\d{2}")
# "Bob <b@x> wrote:" alone on a line counts only when a ">" quote follows it.
_WROTE_LINE = re.compile(
    r"\b(wrote|schrieb|a\s+écrit|escribió|schreef|skrev|ha\s+scritto|escreveu)\s*:\s*$", re.IGNORECASE
)

_ORIGINAL_MESSAGE = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|originalnachricht|message d'origine"
    r"|mensaje original|oorspronkelijk bericht|ursprungligt meddelande|forwarded message"
    r"|weitergeleitete nachricht|message transféré|mensaje reenviado|doorgestuurd bericht)\s*-{2,}\s*$",
    re.IGNORECASE,
)
_FORWARDED = re.compile(
    r"^\s*(begin forwarded message|anfang der weitergeleiteten nachricht|début du message réexpédié"
    r"|inicio del mensaje reenviado|begin doorgestuurd bericht|vidarebefordrat brev)\s*:\s*$",
    re.IGNORECASE,
)
_MOBILE_FOOTER = re.compile(
    r"^\s*(sent from my \S.*|sent from (mail|outlook|yahoo mail) for \S.*"
    r"|sent from (outlook|yahoo mail|gmail).*|get outlook for \S.*|sent with proton mail.*"
    r"|von meinem \S.* gesendet|gesendet von meinem \S.*"
    r"|envoyé de mon \S.*|envoyé depuis mon \S.*|enviado desde mi \S.*|verzonden (vanaf|met) mijn \S.*"
    r"|verstuurd vanaf mijn \S.*|skickat från min \S.*)\s*$",
    re.IGNORECASE,
)
_UNDERSCORES = re.compile(r"^\s*_{8,}\s*$")
# Outlook's header block of the original message, in English, German, French, Spanish, Dutch,
# Swedish, Danish/Norwegian, Italian and Portuguese; Outlook may bold the names ("*From:*")
# when it turns HTML into text. Missing one would put the unquoted original into the new text.
_FROM_FIELD = re.compile(r"^\s*\*?\s*(from|von|de|van|från|fra|da)\s*\*?\s*:", re.IGNORECASE)
# Every expression _ends_new_text tries on a line, as one: no match, none of them matches.
_MAY_END_NEW_TEXT = re.compile("|".join(f"(?:{rule.pattern})" for rule in (
    _MOBILE_FOOTER, _ORIGINAL_MESSAGE, _FORWARDED, _UNDERSCORES, _FROM_FIELD)), re.IGNORECASE)
_OTHER_FIELD = re.compile(
    r"^\s*\*?\s*(sent|date|to|cc|subject|gesendet|datum|an|betreff|envoyé|à|objet|enviado|fecha"
    r"|para|asunto|verzonden|aan|onderwerp|skickat|till|ämne|sendt|dato|til|emne|inviato|data|a"
    r"|oggetto|assunto|kopie|copie)\s*\*?\s*:",
    re.IGNORECASE,
)


def is_signature_line(line: str) -> bool:
    """The usenet signature separator "-- " (and "--", which mail clients often leave)."""
    return line.strip() == "--"


def split_reply(text: str) -> tuple[str, str]:
    """(new text, rest): what the person wrote, and the quote, quote headers and signature."""
    lines = _normalise(text).split("\n")
    keep = [False] * len(lines)
    index = 0
    while index < len(lines):
        if not lines[index].strip():  # (every test below needs a visible character)
            keep[index] = True
            index += 1
        elif _is_quoted(lines[index]):
            index += 1
        elif _ends_new_text(lines, index):
            break
        elif header := _quote_header_length(lines, index):
            index += header
        else:
            keep[index] = True
            index += 1
    new = [line.rstrip() for line, kept in zip(lines, keep, strict=True) if kept]
    rest = [line.rstrip() for line, kept in zip(lines, keep, strict=True) if not kept]
    return _trim_blank_lines(new), _trim_blank_lines(rest)


def _normalise(text: str) -> str:
    # Every line boundary str.splitlines knows (\v, \f, \x1c-\x1e, \x85, \u2028...) becomes "\n", so
    # a line read later with splitlines is a line that was judged here: never a quote let through.
    text = "\n".join(text.splitlines()).translate(_INVISIBLE)
    return text.replace("\xa0", " ")


def _is_quoted(line: str) -> bool:
    return line.lstrip(" \t").startswith(">")


def _next_content_lines(lines: list[str], start: int, count: int) -> list[str]:
    found = []
    for line in lines[start:]:
        if line.strip():
            found.append(line)
            if len(found) == count:
                break
    return found


def _ends_new_text(lines: list[str], index: int) -> bool:
    line = lines[index]
    if is_signature_line(line):
        return True
    if not _MAY_END_NEW_TEXT.match(line):  # (most lines: one match instead of five)
        return False
    if _MOBILE_FOOTER.match(line):
        return True
    if _ORIGINAL_MESSAGE.match(line) or _FORWARDED.match(line):
        return True
    if _UNDERSCORES.match(line):
        following = _next_content_lines(lines, index + 1, 1)
        return bool(following) and _FROM_FIELD.match(following[0]) is not None
    return _starts_header_block(lines, index)


def _starts_header_block(lines: list[str], index: int) -> bool:
    """A "From:" line with at least two more header fields (Sent, To, Subject...) right below."""
    if not _FROM_FIELD.match(lines[index]):
        return False
    fields = {
        match.group(1).lower()
        for line in _next_content_lines(lines, index + 1, 5)
        if (match := _OTHER_FIELD.match(line))
    }
    return len(fields) >= 2


def _quote_header_length(lines: list[str], index: int) -> int:
    """How many lines the quote header starting here spans; 0 when there is none."""
    first = lines[index]
    if _HEADER_START.match(first):
        joined = ""
        for length in range(1, 4):
            if index + length > len(lines):
                break
            line = lines[index + length - 1]
            if not line.strip() or (length > 1 and _is_quoted(line)):
                break
            joined = f"{joined} {line.strip()}".strip()
            if len(joined) > 400:
                break
            if _HEADER_FULL.match(joined) and _TIME_OF_DAY.search(joined):
                return length
    if ":" in first and _WROTE_LINE.search(first):  # (it ends in ":"; the search tries every position)
        following = _next_content_lines(lines, index + 1, 1)
        if following and _is_quoted(following[0]):
            return 1
    return 0


def _trim_blank_lines(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


# --------------------------------------------------------------------------------------------
# The command (the grammar is in the module's rules at the top and in `command_help`).

CommandKind = Literal["approve", "reject", "hold", "edit", "stop", "done", "answered", "assign", "dismiss", "unknown"]
# "notice": an owner notice or nudge (ANSWERED); "last_chance": the notice sent when a version
# becomes sendable (it can only stop it); "triage": a message from an unknown address.
Role = Literal["owner", "reviewer", "deadline", "notice", "last_chance", "triage"]

COMMANDS_FOR_ROLE: dict[str, tuple[str, ...]] = {
    "owner": ("approve", "reject", "hold", "edit", "stop"),
    "reviewer": ("approve", "reject", "hold", "edit", "stop"),
    "deadline": ("done",),
    "notice": ("answered",),  # an owner notice or nudge: the client answered outside email
    "last_chance": ("stop", "reject", "hold"),
    "triage": ("assign", "dismiss"),  # a message from an unknown address
}
# Exactly these words are commands, in any letter case.
COMMAND_WORDS = {"approve": "approve", "approved": "approve", "reject": "reject",
                 "rejected": "reject", "hold": "hold", "edit": "edit", "stop": "stop", "done": "done",
                 "answered": "answered", "assign": "assign", "dismiss": "dismiss"}
MAX_HOLD_DAYS = 90
MAX_GREETING_LINES = 2
_FIRST_WORD = re.compile(r"^[\W_]*([^\W\d_]+)(.*)$")
_HOLD = re.compile(r"^\s*[:\-–—]?\s*(?:for\s+)?(\d{1,6})\s*([^\W\d_]+)?(.*)$", re.IGNORECASE)
_OTHER_TIME_UNITS = {"week", "weeks", "wk", "wks", "w", "month", "months", "year", "years", "hour",
                     "hours", "h", "hr", "hrs", "minute", "minutes", "min", "mins", "business", "working"}
_PUNCTUATION = " \t:;,.!-–—*_"
# A greeting line: a salutation, then at most three name words (letters, "." "'" "-"), then at
# most one closing mark. "Hi Alice," and "Bonjour !" yes; "Hi Alice, approved" no.
SALUTATIONS = ("hi", "hello", "hey", "dear", "hallo", "hello all", "hi all", "hi there", "good morning",
               "good afternoon", "good evening", "bonjour", "salut", "hola", "hej", "moin", "guten tag",
               "guten morgen", "liebe", "lieber", "ciao", "buongiorno", "goedemorgen", "beste", "olá")
# Matched against the stripped line, at most MAX_GREETING_LENGTH characters. Every repeat starts
# with white space and the name characters exclude it, so the match is linear (an ambiguous
# "\s*[,!]?\s*$" took minutes on a greeting followed by 100,000 spaces).
MAX_GREETING_LENGTH = 80
_GREETING = re.compile(
    r"(?:" + "|".join(re.escape(s).replace(r"\ ", " ") for s in sorted(SALUTATIONS, key=len, reverse=True))
    + r")(?:[ \t]+[^\W\d_][\w.'’-]{0,30}){0,3}(?:[ \t]?[,!.:])?",
    re.IGNORECASE,
)
# Words that turn an approval into something else: a negation, a condition, a doubt. They are
# not read, only noticed: any of them (or any other word, or a "?") on the APPROVE line, or one of
# them or a "?" on the lines right below it, makes the reply unknown and parting asks again.
QUALIFIERS = frozenset({
    "not", "no", "don't", "dont", "do", "never", "only", "if", "unless", "after", "before", "but",
    "except", "until", "till", "once", "when", "provided", "wait", "hold", "however", "whom", "who",
    "why", "maybe", "perhaps", "pending", "conditional", "conditionally", "nicht", "pas", "ne",
})
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    reason: str = ""  # REJECT's reason, or the note given with HOLD or DONE
    days: int | None = None  # HOLD
    text: str | None = None  # EDIT: the replacement text
    problem: str | None = None  # unknown: what went wrong and what the person can write


def command_help(role: str) -> str:
    """What a person may write: the grammar of the command, with what is and is not an APPROVE."""
    words = ", ".join(sorted(w.upper() for w, kind in COMMAND_WORDS.items() if kind in COMMANDS_FOR_ROLE.get(
        role, ())))
    lines = [
        "Write your command in English above the quoted email (commands are English words whatever the"
        " language of your mail). A greeting line may come first (\"Hi Alice,\", \"Hello,\", \"Dear Bob,\");"
        " the next line must start with one of these words:",
    ]
    if role == "deadline":
        lines.append("  DONE <note>       the follow-up is done; the note goes into the case file")
        lines.append("  DONE reached <note> | DONE no answer | DONE left message   the call's outcome")
    elif role == "notice":
        lines.append("  ANSWERED <note>   the client answered outside email (ANSWERED by phone: <note>,"
                     " ANSWERED in a meeting: <note>); a new episode begins")
    elif role == "triage":
        lines += ["  ASSIGN <client id> [LEARN]   the message is that client's; LEARN: later mail from"
                  " its address too",
                  "  DISMISS <note>               the message needs nothing; the note is kept"]
    elif role == "last_chance":
        lines += ["  STOP              do not send it",
                  "  REJECT <reason>   do not send it; the reason is recorded",
                  f"  HOLD <n> days     do not send it now; ask again in n days (1 to {MAX_HOLD_DAYS})"]
    else:
        lines += ["  APPROVE           send this version (the owner adopts it as their email); write it"
                  " alone on its line",
                  "  REJECT <reason>   do not send it; the reason is recorded",
                  f"  HOLD <n> days     ask again in n days (1 to {MAX_HOLD_DAYS})",
                  "  EDIT              then your own text on the lines below: it becomes a new version",
                  "  STOP              do not send it (as REJECT, without a reason)"]
    lines.append(f"The command words are exactly: {words}.")
    if "approve" in COMMANDS_FOR_ROLE.get(role, ()):
        lines += [
            "An APPROVE line holds the word and nothing else. Anything more on it (NOT, only, if, unless,"
            " after, but, a question mark, any other word), or a question mark or such a word on the"
            " lines right below it, is not an approval: parting asks again.",
            "  read as APPROVE:      \"Hi Alice,\" then \"Approved.\"",
            "  not read as APPROVE:  \"Approve only after Alice fixes the date\"",
        ]
    return "\n".join(lines)


def parse_command(new_text: str, *, role: Role) -> Command:
    """The command on the first non-empty line of the reply's new text after any greeting lines."""
    if role not in COMMANDS_FOR_ROLE:
        raise ValueError(f"unknown role {role!r}")
    lines = [line.rstrip() for line in new_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = _until_signature(lines)
    content = [i for i, line in enumerate(lines) if line.strip()]
    if not content:
        return _unknown(role, "Your reply had no new text above the quoted email.")
    first = content[0]
    for index in content[:MAX_GREETING_LINES]:
        if not _is_greeting(lines[index]):
            break
        later = [i for i in content if i > index]
        if not later:
            return _unknown(role, "Your reply had a greeting but no command below it.")
        first = later[0]
    shown = lines[first].strip()[:80]
    match = _FIRST_WORD.match(lines[first].strip())
    kind = COMMAND_WORDS.get(match.group(1).lower()) if match else None
    if match is None or kind is None or kind not in COMMANDS_FOR_ROLE[role]:
        return _unknown(role, f"The line {shown!r} does not start with a command.")
    remainder, below = match.group(2), lines[first + 1:]
    if remainder.strip().startswith("?"):
        return _unknown(role, f"{shown!r} reads as a question, not a decision.")
    if kind == "approve":
        return _approve(shown, remainder, below, role)
    if kind == "edit":
        return _edit(remainder, below, role)
    if kind == "hold":
        return _hold(remainder, below, role)
    return Command(kind, reason=_reason(remainder, below))  # type: ignore[arg-type]


def _is_greeting(line: str) -> bool:
    stripped = " ".join(line.split())  # white space folded: "Good  morning" is "Good morning"
    return len(stripped) <= MAX_GREETING_LENGTH and _GREETING.fullmatch(stripped) is not None


def _approve(shown: str, remainder: str, below: list[str], role: str) -> Command:
    """APPROVE alone: a misread approval is the one mistake that must never happen."""
    if "?" in remainder or "\uff1f" in remainder:
        return _unknown(role, f"{shown!r} reads as a question, not a decision.")
    if _has_words(remainder):
        return _unknown(role, f"{shown!r} says more than APPROVE; write APPROVE alone on its line"
                              " if you approve, or REJECT or HOLD if you do not.")
    for line in below:
        if not line.strip():
            break
        words = {word.lower().replace("’", "'") for word in _WORD.findall(line)}
        if "?" in line or "\uff1f" in line or words & QUALIFIERS:
            return _unknown(role, f"The line below APPROVE, {line.strip()[:80]!r}, may qualify the"
                                  " approval; write APPROVE alone if you approve, or REJECT or HOLD.")
    return Command("approve")


def _until_signature(lines: list[str]) -> list[str]:
    cut = next((i for i, line in enumerate(lines) if is_signature_line(line)), len(lines))
    return lines[:cut]


def _unknown(role: str, lead: str) -> Command:
    return Command("unknown", problem=f"{lead}\n{command_help(role)}")


def _has_words(text: str) -> bool:
    """Anything but punctuation: "Approve." and "**Approve**" carry no note."""
    return any(char.isalnum() for char in text)


def _reason(remainder: str, below: list[str]) -> str:
    """The rest of the command line and the lines right below it, up to the first blank line;
    with nothing after the command word, the first paragraph below it."""
    first = remainder.strip().lstrip(_PUNCTUATION).strip() if _has_words(remainder) else ""
    paragraph: list[str] = []
    for line in below:
        if not line.strip():
            if paragraph or first:
                break
            continue
        paragraph.append(line.strip())
    return "\n".join([first, *paragraph] if first else paragraph)


def _hold(remainder: str, below: list[str], role: str) -> Command:
    example = f"for example: HOLD 3 days (1 to {MAX_HOLD_DAYS} days)"
    match = _HOLD.match(remainder)
    if not match:
        return _unknown(role, f"HOLD needs a number of days written in digits, {example}.")
    days, unit, tail = int(match.group(1)), (match.group(2) or "").lower(), match.group(3)
    if unit in _OTHER_TIME_UNITS:
        return _unknown(role, f"HOLD counts calendar days, {example}.")
    if unit and unit not in ("day", "days", "d"):
        tail = f"{match.group(2)}{tail}"
    if not 1 <= days <= MAX_HOLD_DAYS:
        return _unknown(role, f"HOLD {days} days is out of range: {example}.")
    return Command("hold", reason=_reason(tail, below), days=days)


def _edit(remainder: str, below: list[str], role: str) -> Command:
    if _has_words(remainder):
        return _unknown(role, "Write EDIT alone on the first line and your new text on the lines below it.")
    text = "\n".join(below).strip("\n")
    if not text.strip():
        return _unknown(role, "EDIT needs your new text on the lines below it; there was none.")
    return Command("edit", text=text)
