"""HTML to text: the one converter for HTML-only mail, aware of how Gmail, Outlook and Apple Mail
mark what they quote.

Rules of this module:
- Pure; no IO. Never raises: at worst some markup is shown as text.
- Quoted parts (<blockquote>, Gmail's gmail_quote, Thunderbird's moz-cite-prefix, Yahoo's
  yahoo_quoted) and everything after Outlook's divRplyFwdMsg / appendonsend marker get a ">"
  prefix per level, so that core/replytext.split_reply treats them as the quote they are. A
  Gmail signature becomes the "-- " separator.
- Linear in its input, because mail is attacker-controlled: html.parser.HTMLParser is quadratic
  on unclosed markup in Python 3.11 (64 KiB of "<a " took a minute), so `_tame` first rewrites the
  markup in one linear pass: every "<" that does not open a complete tag becomes "&lt;",
  comments, declarations and processing instructions (which carry no text) are dropped, and
  tags keep only balanced quotes. The parser then never scans past the next ">".
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# A complete tag: a name, then attribute text in which quotes are balanced and "<" never appears.
# Each attempt to match stops at the next "<", and the possessive quantifiers (*+) never give
# back what they took: the name and attribute classes overlap, and backtracking between them
# made an unclosed "<aaaa..." quadratic.
_TAG = re.compile(r"</?[a-zA-Z][^\s/<>\"'=]*+(?:[^<>\"']|\"[^<\"]*+\"|'[^<']*+')*+>")
_DECLARATION = re.compile(r"<[!?][^<>]*>")
MAX_QUOTE_MARKS = 8
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
        parser.feed(_tame(html))
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser rarely raises; keep what was read so far
        pass
    try:
        return parser.text()
    except Exception:  # noqa: BLE001 - never raise on mail; an unreadable body has no text
        return ""


def _tame(markup: str) -> str:
    """The markup with only complete tags left (see the module's rules); linear time."""
    out: list[str] = []
    position = 0
    while True:
        start = markup.find("<", position)
        if start < 0:
            out.append(markup[position:])
            return "".join(out)
        out.append(markup[position:start])
        if markup.startswith("<!--", start):
            end = markup.find("-->", start + 4)
            position = len(markup) if end < 0 else end + 3  # an unclosed comment hides the rest
            continue
        declaration = _DECLARATION.match(markup, start)
        if declaration is not None:
            position = declaration.end()
            continue
        tag = _TAG.match(markup, start)
        if tag is None:
            out.append("&lt;")
            position = start + 1
        else:
            out.append(tag.group(0))
            position = tag.end()


class _ReplyHtmlParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self._lines: list[tuple[int, str]] = []  # (quote depth, text)
        self._current: list[str] = []
        self._current_depth = 0
        self._open: list[tuple[str, bool]] = []  # (tag, quotes its content)
        self._open_names: dict[str, int] = {}  # how many of each tag are open: stray end tags in O(1)
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
        if tag == "body" and self._open_names.get("head"):
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
        self._open_names[tag] = self._open_names.get(tag, 0) + 1
        self._quote_depth += quotes
        self._pre += tag == "pre"
        self._pre_opened = tag == "pre"

    def handle_endtag(self, tag: str) -> None:
        if tag in _BLOCK:
            self._flush()
        if not self._open_names.get(tag):
            return  # a stray end tag: browsers ignore it too
        while self._open:
            name, quotes = self._open.pop()
            self._open_names[name] -= 1
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
            # One ">" per level, at most MAX_QUOTE_MARKS: the depth matters only as "quoted or not",
            # and thousands of nested blockquotes must not make the text quadratic.
            rendered = f"{'>' * min(depth, MAX_QUOTE_MARKS)} {line}".rstrip() if depth else line
            if not rendered.strip() and out and not out[-1].strip():
                continue  # one blank line is enough where HTML stacked empty blocks
            out.append(rendered)
        return "\n".join(out).strip("\n")
