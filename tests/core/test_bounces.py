"""Which message of ours a bounce returns, to whom, and why (core/bounces.py)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mailfactory as mf  # noqa: E402

from daemon.core.bounces import delivery_failures  # noqa: E402
from daemon.core.model import DeliveryFailure  # noqa: E402

WHEN = datetime(2026, 10, 5, 10, 2, tzinfo=UTC)


def test_the_returned_headers_name_the_message_and_the_diagnostic_is_the_reason():
    raw, _ = mf.bounce("jane@acme.example", "<req-1@example.com>", WHEN, "b", diagnostic="550 5.1.1 User unknown")
    assert delivery_failures(raw) == (DeliveryFailure("req-1@example.com", "jane@acme.example", "5.1.1",
                                                      "550 5.1.1 User unknown"),)


def test_without_a_diagnostic_the_status_is_the_reason():
    raw, _ = mf.bounce("jane@acme.example", "<req-1@example.com>", WHEN, "b")
    assert delivery_failures(raw)[0].reason == "5.1.1"


def test_a_delay_is_not_a_failure():
    raw, _ = mf.bounce("jane@acme.example", "<req-1@example.com>", WHEN, "b")
    delayed = raw.replace(b"Action: failed\r\nStatus: 5.1.1", b"Action: delayed\r\nStatus: 4.4.7")
    assert delivery_failures(delayed) == ()


def test_an_attached_original_message_names_it_too():
    raw, _ = mf.bounce("jane@acme.example", "<req-1@example.com>", WHEN, "b")
    attached = raw.replace(b"Content-Type: text/rfc822-headers\r\n\r\nMessage-ID: <req-1@example.com>\r\n",
                           b"Content-Type: message/rfc822\r\n\r\nMessage-ID: <req-2@example.com>\r\n"
                           b"Subject: x\r\n\r\nbody\r\n")
    assert delivery_failures(attached)[0].original_message_id == "req-2@example.com"


def test_a_bounce_naming_no_message_of_ours_is_evidence_only():
    raw, _ = mf.bounce("jane@acme.example", "<req-1@example.com>", WHEN, "b")
    anonymous = raw.replace(b"Message-ID: <req-1@example.com>\r\n", b"X-Nothing: here\r\n")
    assert delivery_failures(anonymous) == ()


def test_a_person_s_mail_and_garbage_name_nothing():
    raw, _ = mf.reply("jane@acme.example", "<req-1@example.com>", "Form", WHEN, "r")
    assert delivery_failures(raw) == ()
    assert delivery_failures(b"") == ()
    assert delivery_failures(b"\xff\xfe not mail") == ()
