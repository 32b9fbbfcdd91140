"""Reading replies: the corpus of real-world reply shapes, split_reply, html_to_text, commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.core.mail import message_text
from daemon.core.replytext import Command, command_help, html_to_text, parse_command, split_reply

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "replies"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text(encoding="utf-8"))
# A phrase only the quoted review email contains: it must never reach the new text.
REVIEW_ONLY = "adopt the email below as yours"


def corpus_message(path: Path) -> bytes:
    """The corpus file as the raw message the IMAP adapter fetches: whole messages (.eml) as they
    are, bare replies (.txt, .html) wrapped as a single-part UTF-8 message."""
    raw = path.read_bytes()
    if path.suffix == ".eml":
        return raw
    subtype = "html" if path.suffix == ".html" else "plain"
    head = (f"From: alice@example.com\r\nTo: office@example.com\r\nSubject: Re: review\r\n"
            f"Message-ID: <{path.stem}@example.com>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
    return head.encode() + raw


def reply_text(path: Path) -> str:
    """The reply's text read by production's path: core/mail.message_text on the fetched body, as
    flows/ingest.py does (plain text, else the HTML through the one converter)."""
    return message_text(corpus_message(path)) or ""


def test_the_corpus_is_large_and_every_file_has_an_expectation() -> None:
    files = {p.name for p in CORPUS.iterdir() if p.name != "manifest.json"}
    listed = [entry["file"] for entry in MANIFEST]
    assert sorted(listed) == sorted(files)
    assert len(files) >= 30


@pytest.mark.parametrize("case", MANIFEST, ids=[entry["file"] for entry in MANIFEST])
def test_corpus_reply_gives_the_expected_command(case: dict) -> None:
    new_text, _rest = split_reply(reply_text(CORPUS / case["file"]))
    command = parse_command(new_text, role=case["role"])

    assert command.kind == case["kind"], (new_text, command.problem)
    assert REVIEW_ONLY not in new_text
    for name in ("reason", "days", "text"):
        if name in case:
            assert getattr(command, name) == case[name]
    if command.kind == "unknown":
        assert case["problem"] in command.problem
    else:
        assert command.problem is None


# -- parse_command -------------------------------------------------------------------------------

COMMANDS = [
    # (new text, role, kind, reason, days)
    ("Approve.", "owner", "approve", "", None),
    ("APPROVED", "reviewer", "approve", "", None),
    ("approve!", "owner", "approve", "", None),
    ("**Approve**", "owner", "approve", "", None),
    ("\n\n  Approve.\n", "reviewer", "approve", "", None),
    ("Approve\n\nAlice", "owner", "approve", "", None),
    ("Approve\nThanks, Alice", "owner", "approve", "", None),
    ("REJECT\nShe paid.\n\nAlice", "owner", "reject", "She paid.", None),
    ("REJECT she paid\nyesterday\n\nAlice", "owner", "reject", "she paid\nyesterday", None),
    ("REJECT: she paid", "owner", "reject", "she paid", None),
    ("reject", "reviewer", "reject", "", None),
    ("HOLD 3 days", "owner", "hold", "", 3),
    ("hold 3", "owner", "hold", "", 3),
    ("hold 1 day.", "reviewer", "hold", "", 1),
    ("Hold for 5 days, Jane is away", "owner", "hold", "Jane is away", 5),
    ("hold 90d", "owner", "hold", "", 90),
    ("HOLD 2 because of the audit", "owner", "hold", "because of the audit", 2),
    ("DONE", "deadline", "done", "", None),
    ("done - left a voicemail", "deadline", "done", "left a voicemail", None),
]


@pytest.mark.parametrize(("text", "role", "kind", "reason", "days"), COMMANDS)
def test_commands(text: str, role: str, kind: str, reason: str, days: int | None) -> None:
    command = parse_command(text, role=role)  # type: ignore[arg-type]
    assert (command.kind, command.reason, command.days) == (kind, reason, days)


@pytest.mark.parametrize(("text", "role", "problem"), [
    ("I don't approve", "owner", "does not start with a command"),
    ("Not approved", "owner", "does not start with a command"),
    ("Genehmigt", "owner", "English words"),
    ("approvement", "owner", "does not start with a command"),
    ("1. approve", "owner", "does not start with a command"),
    ("Approve?", "owner", "question"),
    ("Approve, looks right to me", "reviewer", "says more than APPROVE"),
    ("HOLD 0 days", "owner", "out of range"),
    ("HOLD 91 days", "owner", "out of range"),
    ("hold three days", "owner", "in digits"),
    ("Hold on, let me check", "reviewer", "in digits"),
    ("hold 4 business days", "owner", "calendar days"),
    ("EDIT", "owner", "EDIT needs your new text"),
    ("EDIT\n-- \nAlice", "owner", "EDIT needs your new text"),
    ("EDIT Dear Jane,\nwe are done", "owner", "EDIT alone"),
    ("DONE", "owner", "does not start with a command"),
    ("APPROVE", "deadline", "DONE <note>"),
    ("", "reviewer", "no new text"),
    ("   \n\t\n", "reviewer", "no new text"),
])
def test_unknown_commands_explain_what_to_write(text: str, role: str, problem: str) -> None:
    command = parse_command(text, role=role)  # type: ignore[arg-type]
    assert command.kind == "unknown"
    assert problem in command.problem
    assert ("HOLD <n> days" in command.problem) == (role != "deadline")


# -- the grammar: greetings first, then the command; APPROVE alone ------------------------------

GREETINGS = ["Hi Alice,", "Hello,", "Dear Bob,", "Hallo,", "Bonjour,", "Hi,", "hello all!", "Dear Mr. O'Neil,",
             "Good morning Alice,", "Hi Alice Smith", "Bonjour à tous,"]


@pytest.mark.parametrize("greeting", GREETINGS)
def test_a_greeting_line_before_the_command_is_skipped(greeting: str) -> None:
    assert parse_command(f"{greeting}\n\nApproved.\n\nBob", role="owner") == Command("approve")
    assert parse_command(f"{greeting}\nREJECT she paid", role="owner") == Command("reject", reason="she paid")


def test_the_most_ordinary_reply_is_an_approval() -> None:
    new_text, _ = split_reply("Hi Alice,\n\nApproved.\n\nBob\n\nOn Mon, 2 Nov 2026 at 10:00, Office wrote:\n> x")
    assert parse_command(new_text, role="reviewer") == Command("approve")


@pytest.mark.parametrize("text", [
    "Hi Alice, approved",  # not only a salutation and a name: the line is the command line
    "Hi Alice,",  # a greeting and nothing else
    "Hi Alice,\nHi again,\nHello,\nApproved",  # at most two greeting lines
    "Thanks Alice,\nApproved",  # not a salutation
    "Dear Bob, I approve",
])
def test_more_than_a_greeting_is_not_skipped(text: str) -> None:
    assert parse_command(text, role="owner").kind == "unknown"


def test_a_salutation_followed_by_much_white_space_is_read_in_linear_time() -> None:
    # An ambiguous greeting pattern backtracked quadratically here (minutes for this line).
    assert parse_command("Hi" + " " * 100_000 + "!!\nApprove", role="owner").kind == "unknown"
    assert parse_command("Hi   Alice ,\nApprove", role="owner") == Command("approve")


NOT_APPROVALS = [
    "Approve - NOT. We should call them first.",
    "Approved by whom? I never saw this.",
    "Approve only after Alice fixes the date",
    "Approve if she has not paid by Friday",
    "Approve unless Bob objects",
    "Approved, but change the date",
    "Approve after the audit",
    "approve not",
    "APPROVE? Not sure",
    "Approve. Is that right?",
    "Approved (?)",
    "Approve\nonly after Alice fixes the date",
    "Approve\nbut not before Monday",
    "Approve\nAre you sure?",
    "Hi Bob,\nApprove - NOT",
]


@pytest.mark.parametrize("text", NOT_APPROVALS)
def test_negations_conditions_and_questions_are_never_an_approval(text: str) -> None:
    command = parse_command(text, role="owner")
    assert command.kind == "unknown"
    assert "An APPROVE line holds the word and nothing else" in command.problem


@pytest.mark.parametrize("text", ["Approve", "APPROVED.", "**Approve**", "approve!", "Approve\nThanks, Alice",
                                  "Approve\n\nAlice", "Hi Alice,\n\nApproved.\n\nBob"])
def test_what_is_an_approval(text: str) -> None:
    assert parse_command(text, role="reviewer") == Command("approve")


def test_command_help_shows_the_grammar_and_what_is_and_is_not_an_approval() -> None:
    text = command_help("owner")
    assert "A greeting line may come first" in text
    assert "The command words are exactly: APPROVE, APPROVED, EDIT, HOLD, REJECT, REJECTED, STOP." in text
    assert 'read as APPROVE:      "Hi Alice," then "Approved."' in text
    assert 'not read as APPROVE:  "Approve only after Alice fixes the date"' in text
    # the two examples are true of the parser
    assert parse_command("Hi Alice,\nApproved.", role="owner") == Command("approve")
    assert parse_command("Approve only after Alice fixes the date", role="owner").kind == "unknown"
    assert "The command words are exactly: DONE." in command_help("deadline")
    assert "APPROVE" not in command_help("deadline")


def test_every_refusal_for_an_unknown_command_carries_the_grammar() -> None:
    for text in ("Genehmigt", "Approve?", "HOLD 0 days", "Approve only if"):
        assert command_help("owner") in parse_command(text, role="owner").problem


def test_edit_text_is_exact_below_the_edit_line() -> None:
    text = "Edit.\n\n  Dear Jane,  \n\n\tIndented line\t\nBye\n\n-- \nAlice Smith\n"
    command = parse_command(text, role="reviewer")
    assert command.kind == "edit"
    assert command.text == "  Dear Jane,\n\n\tIndented line\nBye"


def test_an_unknown_role_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="role"):
        parse_command("Approve", role="client")  # type: ignore[arg-type]


# -- split_reply ---------------------------------------------------------------------------------


def test_top_posted_reply_keeps_the_quote_and_header_in_the_rest() -> None:
    text = "Approve\n\nOn Mon, 2 Nov 2026 at 10:00, Bob <b@x.example> wrote:\n\n> APPROVE\n> hello\n"
    new, rest = split_reply(text)
    assert new == "Approve"
    assert rest.startswith("On Mon, 2 Nov 2026 at 10:00, Bob <b@x.example> wrote:")
    assert "> APPROVE" in rest


def test_bottom_posted_reply_takes_the_text_below_the_quote() -> None:
    text = "On 02/11/2026 10:00, Bob wrote:\n> Please decide.\n\nREJECT she called\n"
    assert split_reply(text)[0] == "REJECT she called"


def test_interleaved_reply_keeps_every_unquoted_line() -> None:
    new, _ = split_reply((CORPUS / "interleaved.txt").read_text(encoding="utf-8"))
    assert new.splitlines()[0] == "hold 1 day"
    assert "I will try to call Jane once more tomorrow." in new
    assert "parting proposes" not in new


def test_signature_and_everything_after_it_are_the_rest() -> None:
    new, rest = split_reply("approve\n-- \nAlice\nREJECT in a signature\n")
    assert new == "approve"
    assert rest == "--\nAlice\nREJECT in a signature"


@pytest.mark.parametrize("footer", [
    "Sent from my iPhone", "Sent from my Galaxy", "Get Outlook for iOS", "Von meinem iPhone gesendet",
    "Envoyé de mon iPhone", "Enviado desde mi iPhone", "Verzonden vanaf mijn iPhone",
    "Skickat från min iPhone",
])
def test_mobile_footers_end_the_new_text(footer: str) -> None:
    assert split_reply(f"Approve\n\n{footer}\n\nEDIT\nnot new text\n")[0] == "Approve"


@pytest.mark.parametrize("separator", [
    "-----Original Message-----", "-----Ursprüngliche Nachricht-----", "-----Message d'origine-----",
    "-----Mensaje original-----", "-----Oorspronkelijk bericht-----",
    "---------- Forwarded message ---------", "Begin forwarded message:",
])
def test_original_message_separators_end_the_new_text(separator: str) -> None:
    assert split_reply(f"Approve\n{separator}\nREJECT unquoted original\n")[0] == "Approve"


@pytest.mark.parametrize("block", [
    "From: Parting <o@x>\nSent: Monday\nTo: Alice\nSubject: Review",
    "Von: Parting <o@x>\nGesendet: Montag\nAn: Alice\nBetreff: Review",
    "De : Parting <o@x>\nEnvoyé : lundi\nÀ : Alice\nObjet : Review",
    "De: Parting <o@x>\nEnviado: lunes\nPara: Alice\nAsunto: Review",
    "Van: Parting <o@x>\nVerzonden: maandag\nAan: Alice\nOnderwerp: Review",
    "Från: Parting <o@x>\nSkickat: måndag\nTill: Alice\nÄmne: Review",
    "Fra: Parting <o@x>\nSendt: mandag\nTil: Alice\nEmne: Review",
    "Da: Parting <o@x>\nInviato: lunedì\nA: Alice\nOggetto: Review",
    "De: Parting <o@x>\nEnviado: segunda-feira\nPara: Alice\nAssunto: Review",
])
def test_outlook_header_blocks_end_the_new_text(block: str) -> None:
    new, rest = split_reply(f"EDIT\nDear Jane,\n\n{block}\n\nAlice,\nAPPROVE adopts it\n")
    assert new == "EDIT\nDear Jane,"
    assert rest.endswith("APPROVE adopts it")


@pytest.mark.parametrize("header", [
    "Il giorno lun 2 nov 2026 alle ore 10:00 Parting <o@x> ha scritto:",
    "Em seg., 2 de nov. de 2026 às 10:00, Parting <o@x> escreveu:",
    "Den 2. nov. 2026 kl. 10.00 skrev Parting <o@x>:",
])
def test_more_quote_header_languages(header: str) -> None:
    assert split_reply(f"Approve\n\n{header}\n\n> x\n")[0] == "Approve"


def test_a_from_line_without_a_header_block_is_new_text() -> None:
    text = "REJECT\nFrom: what I heard, Jane is back on Monday.\nThanks\n"
    assert split_reply(text)[0] == text.strip()


def test_a_sentence_like_a_quote_header_without_a_time_stays_new_text() -> None:
    text = "On reflection, as Bob wrote:\nwe keep them.\n"
    assert split_reply(text)[0] == text.strip()


def test_quote_header_wrapped_over_three_lines_is_dropped() -> None:
    text = "Approve\n\nOn Mon, 2 Nov 2026 at 10:00, Parting\nOffice <office@example.com>\nwrote:\n> x\n"
    assert split_reply(text)[0] == "Approve"


def test_invisible_characters_and_crlf_do_not_hide_a_command() -> None:
    assert split_reply("\ufeff\u200bApprove\r\n\r\n> quoted\r\n")[0] == "Approve"


# -- html_to_text --------------------------------------------------------------------------------


def test_html_drops_head_style_and_script_and_breaks_blocks() -> None:
    html = ("<html><head><title>T</title><style>p{color:red}</style></head><body>"
            "<script>alert(1)</script><p>Approve</p><div>line <b>two</b></div>one<br>two</body></html>")
    assert html_to_text(html) == "Approve\nline two\none\ntwo"


def test_html_unclosed_head_ends_at_the_body() -> None:
    assert html_to_text("<head><meta charset=utf-8><body><div>Approve</div>") == "Approve"


def test_html_blockquote_is_marked_as_quoted() -> None:
    text = html_to_text("<div>REJECT</div><blockquote><div>APPROVE</div></blockquote><div>after</div>")
    assert text.splitlines() == ["REJECT", "> APPROVE", "after"]


def test_html_gmail_quote_container_quotes_its_attribution_line() -> None:
    html = ('<div>Approve</div><div class="gmail_quote"><div class="gmail_attr">On Mon wrote:</div>'
            "<blockquote>x</blockquote></div>")
    lines = html_to_text(html).splitlines()
    assert lines[0] == "Approve"
    assert all(line.startswith(">") for line in lines[1:])


def test_html_outlook_reply_marker_quotes_everything_after_it() -> None:
    html = '<div>Approve</div><div id="divRplyFwdMsg"><b>From:</b> x</div><div>APPROVE</div>'
    assert html_to_text(html).splitlines() == ["Approve", "> From: x", "> APPROVE"]


def test_html_nbsp_paragraph_is_an_empty_line_and_entities_are_decoded() -> None:
    html = "<p>Dear Jane,</p><p>&nbsp;</p><p>Fish &amp; chips&nbsp;&lt;3</p>"
    assert html_to_text(html) == "Dear Jane,\n\nFish & chips <3"


def test_html_pre_keeps_its_lines_and_indentation() -> None:
    assert html_to_text("<div>a</div><pre>\nEDIT\n  indented\nline</pre>") == "a\nEDIT\n  indented\nline"


def test_html_stray_and_unclosed_tags_do_not_lose_text() -> None:
    assert html_to_text("</div></span><div><p>Approve<div>more") == "Approve\nmore"


# -- properties ----------------------------------------------------------------------------------


@given(st.text())
def test_split_reply_never_returns_a_quoted_line_as_new_text(text: str) -> None:
    new, _rest = split_reply(text)
    assert not any(line.lstrip(" \t").startswith(">") for line in new.splitlines())


@given(st.lists(st.sampled_from([
    "Approve", "> APPROVE", "", "-- ", "text", "On Mon, 2 Nov 2026 at 10:00, B wrote:", "From: a", "Sent: b",
    "To: c", "EDIT", "> > REJECT", "Sent from my iPhone", "________",
])))
def test_split_reply_new_text_lines_come_from_the_input_in_order(lines: list[str]) -> None:
    new, _rest = split_reply("\n".join(lines))
    remaining = iter(line.rstrip() for line in lines)
    assert all(any(line == candidate for candidate in remaining) for line in new.splitlines())


@given(st.text(), st.sampled_from(["owner", "reviewer", "deadline"]))
def test_parse_command_never_raises_and_explains_unknown(text: str, role: str) -> None:
    command = parse_command(text, role=role)  # type: ignore[arg-type]
    assert command.kind in ("approve", "reject", "hold", "edit", "done", "unknown")
    assert (command.problem is not None) == (command.kind == "unknown")


@given(st.text())
def test_html_to_text_never_raises(html: str) -> None:
    assert isinstance(html_to_text(html), str)


@given(st.text(alphabet=" \t\u00a0\u2003\u3000\u200b\ufeff", max_size=6))
def test_no_rule_of_split_reply_fires_on_a_blank_line(blank: str) -> None:
    # split_reply keeps a blank line without asking its rules: that holds only while each needs
    # a visible character, as here (a rule added for blank lines must drop that shortcut).
    from daemon.core.replytext import _ends_new_text, _is_quoted, _quote_header_length

    lines = [blank, "On Mon, 2 Nov 2026 at 10:00, B wrote:", "> quoted"]
    if blank.strip():
        return
    assert not _is_quoted(blank)
    assert not _ends_new_text(lines, 0)
    assert _quote_header_length(lines, 0) == 0
