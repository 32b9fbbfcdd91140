"""Mail templates: every one renders from its documented context, strictly, and reads well."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest

from daemon.adapters.templates import (
    SAMPLE_CONTEXTS,
    RenderedMail,
    TemplateProblem,
    Templates,
    default_directory,
)
from daemon.core.outgoing import check_header_value

TEMPLATE_FILES = sorted(p.name for p in default_directory().glob("*.txt.j2"))
# Words that would turn a release email into an accusation.
BLAME_WORDS = ["ignor", "unresponsive", "failed to", "never repl", "no response", "silence",
               "your fault", "blame", "chase", "chasing", "disappoint", "frustrat", "repeatedly",
               "despite", "unfortunately you", "lack of"]


@pytest.fixture(scope="module")
def templates() -> Templates:
    return Templates()


def test_every_shipped_mail_template_has_a_documented_context() -> None:
    assert set(TEMPLATE_FILES) >= set(SAMPLE_CONTEXTS)
    assert {name for name in TEMPLATE_FILES if not name.startswith("casefile")} == set(SAMPLE_CONTEXTS)


@pytest.mark.parametrize("name", sorted(SAMPLE_CONTEXTS))
def test_every_template_renders_with_its_samples(templates: Templates, name: str) -> None:
    mail = templates.render_with_samples(name)
    assert isinstance(mail, RenderedMail)
    assert mail.subject and check_header_value("Subject", mail.subject) == mail.subject
    assert not mail.body.startswith(("\n", "Subject:"))
    assert mail.body.endswith("\n")
    assert "{{" not in mail.body and "{%" not in mail.body
    assert max(len(line) for line in mail.body.splitlines()) < 200


@pytest.mark.parametrize("name", sorted(SAMPLE_CONTEXTS))
def test_template_specific_variables_are_used(templates: Templates, name: str) -> None:
    common = {"company", "client", "owner", "person"}
    for key in set(SAMPLE_CONTEXTS[name]) - common:
        context = {k: v for k, v in SAMPLE_CONTEXTS[name].items() if k != key}
        with pytest.raises(TemplateProblem, match=key):
            templates.render(name, **context)


def test_missing_variable_names_template_line_and_variable(templates: Templates) -> None:
    context = copy.deepcopy(SAMPLE_CONTEXTS["nudge.txt.j2"])
    del context["requests"]
    with pytest.raises(TemplateProblem) as caught:
        templates.render("nudge.txt.j2", **context)
    message = str(caught.value)
    assert "nudge.txt.j2" in message
    assert "requests" in message
    source = (default_directory() / "nudge.txt.j2").read_text().splitlines()
    line = int(re.search(r"line (\d+)", message).group(1))
    assert "requests" in source[line - 1]


def test_missing_attribute_is_named_too(templates: Templates) -> None:
    context = copy.deepcopy(SAMPLE_CONTEXTS["release.txt.j2"])
    del context["owner"]["email"]
    with pytest.raises(TemplateProblem, match=r"release\.txt\.j2, line \d+: variable email"):
        templates.render("release.txt.j2", **context)


def test_release_email_is_warm_and_blames_nobody(templates: Templates) -> None:
    mail = templates.render_with_samples("release.txt.j2")
    text = f"{mail.subject}\n{mail.body}".lower()
    for word in BLAME_WORDS:
        assert word not in text, word
    for needed in ["thank you", "not able to continue", "hand over", "final invoice",
                   "alice@example.com", "questions"]:
        assert needed in text, needed
    assert mail.body.rstrip().endswith("Alice Smith\nExample Design Ltd")
    assert "\r" not in mail.subject and "\n" not in mail.subject


def test_nudge_is_friendly_and_lists_the_requests(templates: Templates) -> None:
    mail = templates.render_with_samples("nudge.txt.j2")
    text = mail.body.lower()
    for word in BLAME_WORDS + ["urgent", "immediately", "final notice", "last chance"]:
        assert word not in text, word
    assert '"Logo files for the brochure?", sent Mon 2 Feb 2026' in mail.body
    assert mail.body.rstrip().endswith("Alice Smith\nExample Design Ltd")


def test_review_mails_explain_how_to_answer(templates: Templates) -> None:
    for name in ("owner_review.txt.j2", "review_request.txt.j2"):
        body = templates.render_with_samples(name).body
        for command in ("APPROVE", "EDIT", "REJECT", "HOLD"):
            assert f"\n  {command}" in body, (name, command)
        assert SAMPLE_CONTEXTS[name]["draft"]["text"].strip() in body
    assert "owner will see any edit" in templates.render_with_samples("review_request.txt.j2").body


def test_send_failed_says_what_to_do(templates: Templates) -> None:
    failed = templates.render_with_samples("send_failed.txt.j2")
    assert failed.subject.startswith("Not sent")
    assert "parting outbox resend 42" in failed.body
    context = copy.deepcopy(SAMPLE_CONTEXTS["send_failed.txt.j2"])
    context["message"]["status"] = "uncertain"
    uncertain = templates.render("send_failed.txt.j2", **context)
    assert uncertain.subject.startswith("Perhaps not sent")
    assert "Sent folder" in uncertain.body


def test_a_newline_smuggled_into_the_subject_is_refused(templates: Templates) -> None:
    context = copy.deepcopy(SAMPLE_CONTEXTS["release.txt.j2"])
    context["company"]["name"] = "Example\rBcc: x@evil.example"
    with pytest.raises(TemplateProblem, match="line 1"):
        templates.render("release.txt.j2", **context)
    context["company"]["name"] = "Example\nBcc: x@evil.example"
    with pytest.raises(TemplateProblem):
        templates.render("release.txt.j2", **context)


def test_user_directory_overrides_file_by_file(tmp_path: Path) -> None:
    (tmp_path / "release.txt.j2").write_text(
        "Subject: Goodbye from {{ company.name }}\n\nDear {{ person.name }}, thank you.\n")
    mine = Templates(str(tmp_path))
    assert mine.render_with_samples("release.txt.j2") == RenderedMail(
        "Goodbye from Example Design Ltd", "Dear Jane Doe, thank you.\n")
    # Templates the user did not copy still come from the shipped set.
    assert mine.render_with_samples("nudge.txt.j2") == Templates().render_with_samples("nudge.txt.j2")


@pytest.mark.parametrize("source,problem", [
    ("Dear {{ person.name }}\n", "line 1: must start with 'Subject"),
    ("Subject: \n\nbody\n", "subject is empty"),
    ("Subject: Hi\nno blank line\n", "line 2: must be blank"),
    ("Subject: Hi\n\n{% if %}\n", "line 3"),
])
def test_malformed_templates_are_reported(tmp_path: Path, source: str, problem: str) -> None:
    (tmp_path / "release.txt.j2").write_text(source)
    with pytest.raises(TemplateProblem, match=re.escape(problem)):
        Templates(str(tmp_path)).render_with_samples("release.txt.j2")


def test_unknown_template_and_missing_directory_are_reported(tmp_path: Path) -> None:
    with pytest.raises(TemplateProblem, match="not found"):
        Templates().render("nope.txt.j2")
    with pytest.raises(TemplateProblem, match="not a folder"):
        Templates(str(tmp_path / "absent"))
