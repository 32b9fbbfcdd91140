"""The one HTML-to-text converter (core/htmltext.py): what it keeps, what it marks as quoted, and
that hostile markup stays linear (checked by what the parser is given, not by a clock)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core import mailbody
from daemon.core.htmltext import _TAG, _tame, html_to_text
from daemon.core.mail import parse_message


@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("a<br>b<br/>c", "a\nb\nc"),
        ("<div>one</div><div>two</div>", "one\ntwo"),
        ("<p>one</p><p>two</p>", "one\ntwo"),
        ("<style>.x{}</style>shown<script>alert(1)</script> too", "shown too"),
        ("<STYLE type='text/css'>.x{}</STYLE >ok", "ok"),
        ("Tom &amp; Jerry&nbsp;&lt;3", "Tom & Jerry <3"),
        ("new<blockquote>old<br>older</blockquote>after", "new\n> old\n> older\nafter"),
        ("<blockquote>a<blockquote>b</blockquote></blockquote>", "> a\n>> b"),
        ("kept <!-- hidden --> text", "kept text"),
        ("unclosed <!-- everything after", "unclosed"),
        ("a < b and c > d", "a < b and c > d"),
        ("<b>bold</b>   and\n\n  spaced", "bold and spaced"),
        ("<![if !supportLists]>-<![endif]>item", "-item"),
        ('<a title="x>y">link</a>', "link"),
    ],
)
def test_html_to_text(markup: str, expected: str) -> None:
    assert html_to_text(markup) == expected


HOSTILE = [
    "<a " * 20_000, '<a b="' * 20_000, "<" * 50_000, "</" * 20_000, "<![a>" * 10_000,
    "<div>" * 5_000 + "</span>" * 5_000, "<p>hi</p>" + "<a " * 20_000 + '<a b="' * 5_000,
    "<" + "a" * 50_000, "<a" + "b" * 50_000,  # a tag name never closed: minutes before *+
]


@pytest.mark.parametrize("markup", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_markup_reaches_the_parser_only_as_complete_tags(markup: str) -> None:
    # html.parser is quadratic only when a "<" does not open a complete tag (it rescans to the end
    # for each); after _tame every "<" opens a tag that ends at the next ">".
    tamed = _tame(markup)
    for start in (m.start() for m in re.finditer("<", tamed)):
        assert _TAG.match(tamed, start), tamed[start:start + 40]
    assert isinstance(html_to_text(markup), str)


def test_deep_quotes_are_marked_with_a_bounded_prefix() -> None:
    text = html_to_text("<blockquote>" * 2_000 + "deep" + "</blockquote>" * 2_000)
    assert text == ">>>>>>>> deep"


def test_mailbody_has_no_converter_of_its_own() -> None:
    assert mailbody.html_to_text is html_to_text


def test_an_outlook_html_reply_is_read_by_the_quote_aware_converter_in_production() -> None:
    # The weaker converter knew only <blockquote>: Outlook's unquoted original ended up as new text.
    html = ('<div>Approve</div><div id="divRplyFwdMsg"><b>From:</b> office@example.com</div>'
            '<div>REJECT everything</div>')
    raw = ("From: alice@example.com\r\nTo: office@example.com\r\nSubject: Re: x\r\n"
           "Message-ID: <h1@example.com>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html).encode()
    assert parse_message(raw).text == "Approve\n> From: office@example.com\n> REJECT everything"


@given(st.text())
def test_html_to_text_never_raises_and_keeps_no_control_characters_in_mail(markup: str) -> None:
    assert isinstance(html_to_text(markup), str)
    raw = ("From: a@example.com\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + markup).encode(
        "utf-8", "surrogatepass")
    text = mailbody.first_text(raw)
    assert text is None or not re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]", text)
