"""core/mail.py's encoded-word fast paths (a Subject that is one encoded word; display names that
are one encoded word) read values exactly as email.policy.default does, or decline: on tricky
hand-made values and on bench/parsing_check's random ones."""

from __future__ import annotations

import sys
from email import policy
from pathlib import Path

import pytest

from daemon.core import mail

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.parsing_check import Generator, structured_addresses, structured_text  # noqa: E402

WORDS = [
    "=?utf-8?q?Re=3A_Rechnung_f=C3=BCr_M=C3=A4rz?=", "=?UTF-8?Q?caf=C3=A9?=", "=?utf-8?b?Wm/DqyDDnG5hbA==?=",
    "=?iso-8859-1?q?B=FCro?=", "=?utf-8?q?two__spaces?=", "=?utf-8?q?=?=", "=?utf-8?q?=ZZ?=", "=?utf-8?q?a=?=",
    "=?utf-8?q?tab=09inside?=", "=?utf-8?q?line=0Abreak?=", "=?utf-8?q?=FF=FE?=", "=?bogus?q?x?=",
    "=?utf-8*en?q?lang?=", "=?utf-8?b?not base64?=", "=?utf-8?b?YWJj?=", "=?utf-8?b?YWJ?=", "=?utf-8?x?what?=",
    "=?unknown-8bit?q?=E9?=", "=?utf-8?q?=22quoted=22?=", "=?utf-8?q?a,b?=", "=?utf-8?q?=3C=3E?=", "",
    "=?utf-8?q?x?= trailing", "=?utf-8?q?x?==?utf-8?q?y?=", "=?utf-8?Q?_lead_and_trail_?=",
]


@pytest.mark.parametrize("value", WORDS)
def test_a_subject_of_one_encoded_word_reads_as_the_standard_library_reads_it(value: str) -> None:
    text = mail._encoded_word_text(value)
    if text is not None:
        assert text == str(policy.default.header_fetch_parse("Subject", value))


@pytest.mark.parametrize("value", WORDS)
def test_a_display_name_of_one_encoded_word_reads_as_the_standard_library_reads_it(value: str) -> None:
    for listed in (f"{value} <jane@acme.example>", f"{value} <jane@acme.example>, bob@x.example",
                   f"a@b.example,{value} <c.d@e.example>"):
        found = mail._plain_addresses(listed)
        if found is not None:
            assert found == structured_addresses(listed), listed


def test_common_encoded_words_take_the_fast_path() -> None:
    assert mail._encoded_word_text(WORDS[0]) == "Re: Rechnung für März"
    assert mail._encoded_word_text(WORDS[2]) == "Zoë Ünal"
    assert mail._plain_addresses(f"{WORDS[3]} <office@example.com>") == [("Büro", "office@example.com")]
    assert mail._encoded_word_text("=?utf-8?q?line=0Abreak?=") is None  # control characters: the slow path


def test_random_encoded_words_read_as_the_standard_library_reads_them() -> None:
    generate = Generator(7)
    accepted = 0
    for _ in range(3000):
        word, listed = generate.encoded_word(), generate.encoded_list()
        text = mail._encoded_word_text(word)
        if text is not None:
            accepted += 1
            assert text == structured_text(word), word
        found = mail._plain_addresses(listed)
        if found is not None:
            assert found == structured_addresses(listed), listed
    assert accepted > 300
