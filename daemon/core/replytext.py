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
- The command is the first non-empty line of the new text and must start with an English
  command word ("Approve.", "APPROVED" yes; "I don't approve", "Genehmigt" no). Anything else
  is "unknown" with a problem that tells the person what they can write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Literal

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
        if _is_quoted(lines[index]):
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
    if is_signature_line(line) or _MOBILE_FOOTER.match(line):
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
    if _WROTE_LINE.search(first):
        following = _next_content_lines(lines, index + 1, 1)
        if following and _is_quoted(following[0]):
            return 1
    return 0


def _trim_blank_lines(lines: list[str]) -> str:
    return "\n".join(lines).strip("\n")


# --------------------------------------------------------------------------------------------
# The command.

CommandKind = Literal["approve", "reject", "hold", "edit", "stop", "done", "unknown"]
# "notice": the last-chance notice sent when a version becomes sendable (it can only stop it).
Role = Literal["owner", "reviewer", "deadline", "notice"]

COMMANDS_FOR_ROLE: dict[str, tuple[str, ...]] = {
    "owner": ("approve", "reject", "hold", "edit", "stop"),
    "reviewer": ("approve", "reject", "hold", "edit", "stop"),
    "deadline": ("done",),
    "notice": ("stop", "reject", "hold"),
}
_COMMAND_WORDS = {"approve": "approve", "approved": "approve", "reject": "reject",
                  "rejected": "reject", "hold": "hold", "edit": "edit", "stop": "stop",
                  "done": "done"}
MAX_HOLD_DAYS = 90
_FIRST_WORD = re.compile(r"^[\W_]*([^\W\d_]+)(.*)$")
_HOLD = re.compile(r"^\s*[:\-–—]?\s*(?:for\s+)?(\d{1,6})\s*([^\W\d_]+)?(.*)$", re.IGNORECASE)
_OTHER_TIME_UNITS = {"week", "weeks", "wk", "wks", "w", "month", "months", "year", "years", "hour",
                     "hours", "h", "hr", "hrs", "minute", "minutes", "min", "mins", "business", "working"}
_PUNCTUATION = " \t:;,.!-–—*_"


@dataclass(frozen=True)
class Command:
    kind: CommandKind
    reason: str = ""  # REJECT's reason, or the note given with APPROVE, HOLD or DONE
    days: int | None = None  # HOLD
    text: str | None = None  # EDIT: the replacement text
    problem: str | None = None  # unknown: what went wrong and what the person can write


def command_help(role: str) -> str:
    lines = ["Write one of these English words on the first line of your reply, above the quoted"
             " email (commands are English words whatever the language of your mail):"]
    if role == "deadline":
        lines.append("  DONE <note>       the follow-up is done; the note goes into the case file")
    elif role == "notice":
        lines += ["  STOP              do not send it",
                  "  REJECT <reason>   do not send it; the reason is recorded",
                  f"  HOLD <n> days     do not send it now; ask again in n days (1 to {MAX_HOLD_DAYS})"]
    else:
        lines += ["  APPROVE           send this version (the owner adopts it as their email)",
                  "  REJECT <reason>   do not send it; the reason is recorded",
                  f"  HOLD <n> days     ask again in n days (1 to {MAX_HOLD_DAYS})",
                  "  EDIT              then your own text on the lines below: it becomes a new version",
                  "  STOP              do not send it (as REJECT, without a reason)"]
    return "\n".join(lines)


def parse_command(new_text: str, *, role: Role) -> Command:
    """The command on the first non-empty line of the reply's new text."""
    if role not in COMMANDS_FOR_ROLE:
        raise ValueError(f"unknown role {role!r}")
    lines = [line.rstrip() for line in new_text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    lines = _until_signature(lines)
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return _unknown(role, "Your reply had no new text above the quoted email.")
    shown = lines[first].strip()[:80]
    match = _FIRST_WORD.match(lines[first].strip())
    kind = _COMMAND_WORDS.get(match.group(1).lower()) if match else None
    if match is None or kind is None or kind not in COMMANDS_FOR_ROLE[role]:
        return _unknown(role, f"The first line of your reply, {shown!r}, does not start with a command.")
    remainder, below = match.group(2), lines[first + 1:]
    if remainder.strip().startswith("?"):
        return _unknown(role, f"{shown!r} reads as a question, not a decision.")
    if kind == "edit":
        return _edit(remainder, below, role)
    if kind == "hold":
        return _hold(remainder, below, role)
    return Command(kind, reason=_reason(remainder, below, look_below=kind != "approve"))  # type: ignore[arg-type]


def _until_signature(lines: list[str]) -> list[str]:
    cut = next((i for i, line in enumerate(lines) if is_signature_line(line)), len(lines))
    return lines[:cut]


def _unknown(role: str, lead: str) -> Command:
    return Command("unknown", problem=f"{lead}\n{command_help(role)}")


def _has_words(text: str) -> bool:
    """Anything but punctuation: "Approve." and "**Approve**" carry no note."""
    return any(char.isalnum() for char in text)


def _reason(remainder: str, below: list[str], *, look_below: bool = True) -> str:
    """The rest of the command line and the lines right below it, up to the first blank line;
    with nothing after the command word, the first paragraph below it. APPROVE's note is its
    own line only, so that a sign-off ("Approve" / "Thanks, Alice") is not taken for a note."""
    first = remainder.strip().lstrip(_PUNCTUATION).strip() if _has_words(remainder) else ""
    if not look_below:
        return first
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


# --------------------------------------------------------------------------------------------
# HTML-only replies.

_SKIPPED = {"style", "script", "head", "title", "template"}
_VOID = {"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"}
_BLOCK = {
    "address", "article", "aside", "blockquote", "center", "dd", "div", "dl", "dt", "fieldset",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
# Outlook (web and desktop) and Outlook for Mac mark where the original message begins; from
# there to the end everything is the quote.
_QUOTE_STARTS_HERE = {"divrplyfwdmsg", "appendonsend", "olk_src_body_section"}
_QUOTING_CLASSES = {"gmail_quote", "gmail_quote_container", "yahoo_quoted", "moz-cite-prefix"}


def html_to_text(html: str) -> str:
    """Readable text of an HTML reply; quoted parts (Gmail, Outlook, Apple Mail) start with "> "."""
    parser = _ReplyHtmlParser()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser rarely raises; keep what was read so far
        pass
    return parser.text()


class _ReplyHtmlParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[tuple[int, str]] = []  # (quote depth, text)
        self._current: list[str] = []
        self._current_depth = 0
        self._open: list[tuple[str, bool]] = []  # (tag, quotes its content)
        self._quote_depth = 0
        self._rest_is_quote = False
        self._skipping = 0
        self._pre = 0
        self._pre_opened = False

    # -- structure -------------------------------------------------------------------------

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name.lower(): (value or "") for name, value in attrs}
        element_id = attributes.get("id", "").lower()
        classes = set(attributes.get("class", "").lower().split())
        if element_id in _QUOTE_STARTS_HERE or classes & _QUOTE_STARTS_HERE:
            self._flush()
            self._rest_is_quote = True
        if tag == "body" and any(name == "head" for name, _ in self._open):
            self.handle_endtag("head")  # an unclosed <head> ends where the body begins
        if tag in _SKIPPED:
            self._skipping += 1
        if tag == "br":
            self._flush(force=True)
            return
        if tag in _BLOCK:
            self._flush()
        if "gmail_signature" in classes:
            self._flush()
            self._lines.append((self._depth(), "-- "))
        if tag in _VOID:
            return
        quotes = tag == "blockquote" or bool(classes & _QUOTING_CLASSES)
        self._open.append((tag, quotes))
        self._quote_depth += quotes
        self._pre += tag == "pre"
        self._pre_opened = tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK:
            self._flush()
        if not any(name == tag for name, _ in self._open):
            return  # a stray end tag: browsers ignore it too
        while self._open:
            name, quotes = self._open.pop()
            self._quote_depth -= quotes
            self._pre -= name == "pre"
            if name in _SKIPPED:
                self._skipping = max(0, self._skipping - 1)
            if name == tag:
                break

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._pre:
            if self._pre_opened and data.startswith("\n"):
                data = data[1:]  # HTML ignores the line break right after <pre>
            self._pre_opened = False
            first, *others = data.split("\n")
            self._add(first)
            for part in others:
                self._flush(force=True)
                self._add(part)
            return
        # HTML collapses ASCII white space only: a no-break space is content, and a block
        # holding just "&nbsp;" is how Outlook writes an empty line.
        data = re.sub(r"[ \t\r\n\f]+", " ", data)
        if not self._current or "".join(self._current).endswith(" "):
            data = data.lstrip(" ")
        self._add(data)

    # -- lines -----------------------------------------------------------------------------

    def _depth(self) -> int:
        return max(self._quote_depth, 1 if self._rest_is_quote else 0)

    def _add(self, data: str) -> None:
        if not data:
            return
        if not self._current:
            self._current_depth = self._depth()
        self._current.append(data)

    def _flush(self, force: bool = False) -> None:
        raw = "".join(self._current)
        line = raw.replace("\xa0", " ").rstrip()
        if line or force or "\xa0" in raw:
            self._lines.append((self._current_depth if line else self._depth(), line))
        self._current = []

    def text(self) -> str:
        self._flush()
        out: list[str] = []
        for depth, line in self._lines:
            rendered = f"{'>' * depth} {line}".rstrip() if depth else line
            if not rendered.strip() and out and not out[-1].strip():
                continue  # one blank line is enough where HTML stacked empty blocks
            out.append(rendered)
        return "\n".join(out).strip("\n")
