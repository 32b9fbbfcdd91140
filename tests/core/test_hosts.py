"""Host judgements of the core: loopback, and which providers file their own Sent copy."""

from __future__ import annotations

import pytest

from daemon.core.hosts import appends_to_sent, files_own_sent_copy


@pytest.mark.parametrize("choice, host, files_copy", [
    ("auto", "smtp.gmail.com", False),
    ("auto", "SMTP.Gmail.com.", False),
    ("auto", "smtp-relay.gmail.com", False),
    ("auto", "smtp.googlemail.com", False),
    ("auto", "smtp.office365.com", False),
    ("auto", "smtp-mail.outlook.com", False),
    ("auto", "outlook.office365.com", False),
    ("auto", "smtp.example.com", True),
    ("auto", "outlook.example.com", True),  # a self-hosted server named outlook files nothing itself
    ("auto", "mail.notgmail.com", True),
    ("true", "smtp.gmail.com", True),
    ("false", "smtp.example.com", False),
])
def test_append_to_sent_auto_leaves_it_to_gmail_and_microsoft_365(choice, host, files_copy):
    assert appends_to_sent(choice, host) is files_copy


def test_the_provider_list_is_matched_by_domain_not_by_substring():
    assert files_own_sent_copy("smtp.gmail.com") and not files_own_sent_copy("gmail.com.evil.example")
