"""The cheap tests that let the body reading skip a regular expression's scan skip it only when
the scan could find nothing (core/mailbody.py `may_hold_link`, core/replytext.py's "wrote:" line)."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.core.mailbody import _LINK, _QUESTION_RE, asks_something, fold, may_hold_link
from daemon.core.replytext import _WROTE_LINE

# Letters of the links' prefixes in both cases, with the characters Python's case-insensitive
# matching takes for them ("İ" and "ı" for "i", "ſ" for "s", the Kelvin sign for "k").
LINKISH = st.text(alphabet="htpsfwmailoHTPSFWMAILO:/.İıſK ?x\n", max_size=40)


@given(LINKISH | st.text(max_size=40))
@example("maİlto:someone@example.com")
@example("MAıLTO:someone@example.com")
@example("WwW.example.com?")
@example("HTTPſ://example.com/?q")
@example("ftp://x?")
def test_a_link_is_never_missed(text: str) -> None:
    assert may_hold_link(text) or _LINK.search(text) is None


def _asks_as_before(new_text: str) -> bool:
    text = _LINK.sub(" ", new_text)
    return any(mark in text for mark in "?\uff1f\u00bf") or _QUESTION_RE.search(fold(text)) is not None


@given(LINKISH | st.text(max_size=60))
@example("See maİlto:a@b.example?")
@example("could you send www.example.com")
def test_asks_something_answers_as_with_the_scan(text: str) -> None:
    assert asks_something(text) == _asks_as_before(text)


@given(st.text(alphabet="wroteschibéWROTE :\t>x", max_size=30) | st.text(max_size=30))
@example("Bob <bob@example.com> wrote:")
@example("Am 1. März schrieb Anna :  ")
def test_a_wrote_line_always_holds_a_colon(line: str) -> None:
    assert ":" in line or _WROTE_LINE.search(line) is None


def test_a_wrote_line_before_a_quote_still_ends_the_new_text() -> None:
    from daemon.core.replytext import split_reply

    for header in ("Bob <bob@example.com> wrote:", "Anna Schmidt schrieb :", "Marie a écrit:  "):
        new, rest = split_reply(f"Thanks, see below.\n\n{header}\n> Could you send the invoice?\n")
        assert new == "Thanks, see below." and header.strip() in rest
    new, _ = split_reply("As Bob wrote: it is done.\n> quoted\n")  # not alone on its line: new text
    assert new == "As Bob wrote: it is done."


@given(st.text(alphabet="sentfromyphoneOriginalMsg-_ *:vdeäFROM\t", max_size=40) | st.text(max_size=40))
@example("Sent from my iPhone")
@example("-----Original Message-----")
@example("________________")
@example("*From:* Bob")
@example("Begin forwarded message:")
def test_the_one_expression_matches_whenever_one_of_the_five_does(line: str) -> None:
    from daemon.core import replytext

    five = (replytext._MOBILE_FOOTER, replytext._ORIGINAL_MESSAGE, replytext._FORWARDED, replytext._UNDERSCORES,
            replytext._FROM_FIELD)
    assert bool(replytext._MAY_END_NEW_TEXT.match(line)) == any(rule.match(line) for rule in five)
