"""Authentication-Results: parsing (RFC 8601) and the trust decision."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from daemon.adapters.publicsuffix import organizational_domain
from daemon.core.authres import (
    AuthResultsError,
    AuthVerdict,
    aligned,
    check_authentication,
    parse_authentication_results,
)

OURS = "mx.example.com"
GMAIL_STYLE = (
    "mx.example.com;\r\n\tdkim=pass header.i=@example.com header.s=20230601 header.b=AbC+d/12==;\r\n"
    "\tspf=pass (mx.example.com: domain of alice@example.com designates 209.85.220.41 as permitted"
    " sender) smtp.mailfrom=alice@example.com;\r\n"
    "\tdmarc=pass (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from=example.com"
)


def check(*headers: str, from_domain: str = "example.com"):
    return check_authentication(headers, authserv_id=OURS, from_domain=from_domain,
                                organizational_domain=organizational_domain)


# -- parsing -------------------------------------------------------------------------------------


def test_parse_folded_header_with_comments() -> None:
    parsed = parse_authentication_results(GMAIL_STYLE)
    assert parsed.authserv_id == "mx.example.com"
    assert parsed.version is None
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    dkim, spf, dmarc = parsed.results
    assert dkim.properties == {"header.i": "@example.com", "header.s": "20230601", "header.b": "AbC+d/12=="}
    assert spf.properties == {"smtp.mailfrom": "alice@example.com"}
    assert dmarc.properties == {"header.from": "example.com"}
    assert parsed.problems == ()


def test_parse_version_quoted_strings_reason_and_method_version() -> None:
    parsed = parse_authentication_results(
        '"mx.example.com" 1; dkim/1=fail reason="signature verification failed" header.d=example.com;'
        " spf = pass smtp.mailfrom = example.com")
    assert (parsed.authserv_id, parsed.version) == ("mx.example.com", 1)
    assert parsed.results[0] == ("dkim", "fail", {"reason": "signature verification failed",
                                                   "header.d": "example.com"})
    assert parsed.results[1] == ("spf", "pass", {"smtp.mailfrom": "example.com"})


def test_parse_none_and_header_name_prefix() -> None:
    parsed = parse_authentication_results("Authentication-Results: mx.example.com (nested (comment)); none")
    assert (parsed.authserv_id, parsed.results) == ("mx.example.com", ())


def test_parse_keeps_readable_results_and_names_the_unreadable_ones() -> None:
    parsed = parse_authentication_results("mx.example.com; dkim pass; spf=pass smtp.mailfrom=example.com")
    assert [r.method for r in parsed.results] == ["spf"]
    assert parsed.problems == ("unreadable result 'dkim pass'",)


@pytest.mark.parametrize("value", ["", "   ", "; dkim=pass", "(only a comment)", "=pass"])
def test_parse_without_authserv_id_raises(value: str) -> None:
    with pytest.raises(AuthResultsError):
        parse_authentication_results(value)


@given(st.text())
def test_parse_raises_nothing_but_its_own_error(value: str) -> None:
    with contextlib.suppress(AuthResultsError):
        parse_authentication_results(value)


@pytest.mark.parametrize("value", ["0 \u00b2", "mx.example.com \u00b2; dkim=pass", "mx.example.com \u0663; spf=pass",
                                   "mx.example.com " + "9" * 5000 + "; dmarc=pass"])
def test_a_version_that_is_not_ascii_digits_is_a_problem_not_a_crash(value: str) -> None:
    # "\u00b2".isdigit() is True but int() refuses it; 5000 digits exceed int()'s limit.
    parsed = parse_authentication_results(value)
    assert parsed.version is None
    assert parsed.problems and "after the authserv-id" in parsed.problems[0]


# -- alignment -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("domain", "organizational"), [
    ("example.com", "example.com"), ("mail.example.com", "example.com"), ("a.b.example.com.", "example.com"),
    ("example.co.uk", "example.co.uk"), ("mail.example.co.uk", "example.co.uk"),
    ("shop.example.com.au", "example.com.au"),
    ("localhost", "localhost"),
    ("evil.ac.at", "evil.ac.at"), ("www.uni.ac.at", "uni.ac.at"), ("a.b.github.io", "b.github.io"),
    ("Mail.Example.COM", "example.com"), ("co.uk", "co.uk"),
])
def test_organizational_domain_from_the_public_suffix_list(domain: str, organizational: str) -> None:
    assert organizational_domain(domain) == organizational


@pytest.mark.parametrize(("domain", "from_domain", "expected"), [
    ("example.com", "example.com", True),
    ("mail.example.com", "example.com", True),
    ("example.com", "eu.example.com", True),
    ("EXAMPLE.com", "example.COM", True),
    ("evil.example", "example.com", False),
    ("example.com.evil.example", "example.com", False),
    ("evil.co.uk", "example.co.uk", False),
    ("evil.ac.at", "uni.ac.at", False),  # the hand-written list knew no ac.at
    ("mail.uni.ac.at", "uni.ac.at", True),
    ("evil.github.io", "example.github.io", False),
    ("", "example.com", False),
])
def test_relaxed_alignment(domain: str, from_domain: str, expected: bool) -> None:
    assert aligned(domain, from_domain, organizational_domain) is expected


def test_without_the_public_suffix_list_alignment_is_strict() -> None:
    assert aligned("example.com", "EXAMPLE.com.")
    assert not aligned("mail.example.com", "example.com")
    verdict = check_authentication(["mx.example.com; dkim=pass header.d=mail.example.com"], authserv_id=OURS,
                                   from_domain="example.com")
    assert not verdict.ok


def test_an_alignment_function_that_raises_aligns_nothing() -> None:
    def broken(domain: str) -> str:
        raise ValueError(domain)

    assert not aligned("mail.example.com", "example.com", broken)


# -- the decision --------------------------------------------------------------------------------


def test_dmarc_pass_is_authentic() -> None:
    assert check("mx.example.com; dmarc=pass header.from=example.com") == AuthVerdict(True, "dmarc=pass", "dmarc")


def test_dmarc_pass_for_another_from_domain_is_not() -> None:
    verdict = check("mx.example.com; dmarc=pass header.from=other.example")
    assert not verdict.ok
    assert verdict.reason == "dmarc=pass for other.example, not example.com"


def test_dmarc_pass_without_header_from_says_nothing_about_this_from() -> None:
    verdict = check("mx.example.com; dmarc=pass")
    assert (verdict.ok, verdict.reason) == (False, "dmarc=pass without header.from")


@pytest.mark.parametrize("failing", ["fail", "softfail", "permerror", "temperror"])
def test_a_failing_dkim_result_overrides_its_pass_in_either_order(failing: str) -> None:
    passing, bad = "dkim=pass header.d=example.com", f"dkim={failing} header.d=example.com"
    for results in (f"{passing}; {bad}", f"{bad}; {passing}"):
        verdict = check(f"mx.example.com; {results}")
        assert not verdict.ok, results
        assert f"dkim=pass overridden by dkim={failing}" in verdict.reason


def test_a_failing_spf_result_overrides_its_pass() -> None:
    verdict = check("mx.example.com; spf=pass smtp.mailfrom=example.com; spf=softfail smtp.mailfrom=example.com")
    assert not verdict.ok and "spf=pass overridden by spf=softfail" in verdict.reason


def test_dmarc_pass_listed_before_dmarc_fail_does_not_win() -> None:
    verdict = check("mx.example.com; dmarc=pass header.from=example.com; dmarc=fail header.from=example.com")
    assert verdict == AuthVerdict(False, "dmarc=fail")


def test_dmarc_temperror_overrides_its_pass_but_aligned_dkim_still_counts() -> None:
    verdict = check("mx.example.com; dmarc=pass header.from=example.com; dmarc=temperror header.from=example.com")
    assert (verdict.ok, verdict.reason) == (False, "dmarc=pass overridden by dmarc=temperror; dmarc=temperror")
    verdict = check("mx.example.com; dmarc=temperror header.from=example.com; dkim=pass header.d=example.com")
    assert (verdict.ok, verdict.method) == (True, "dkim")


def test_a_failure_of_one_method_does_not_override_another() -> None:
    verdict = check("mx.example.com; spf=fail smtp.mailfrom=example.com; dkim=pass header.d=example.com")
    assert (verdict.ok, verdict.method) == (True, "dkim")


def test_dkim_aligned_is_authentic() -> None:
    verdict = check("mx.example.com; dkim=pass header.d=mail.example.com")
    assert (verdict.ok, verdict.method, verdict.reason) == (True, "dkim", "dkim=pass for mail.example.com")


def test_dkim_aligned_by_header_i() -> None:
    assert check("mx.example.com; dkim=pass header.i=@eu.example.com").ok


def test_dkim_not_aligned_is_refused_with_the_domain() -> None:
    verdict = check("mx.example.com; dkim=pass header.d=evil.example; spf=none")
    assert not verdict.ok
    assert "dkim=pass for evil.example not aligned with example.com" in verdict.reason
    assert "spf=none" in verdict.reason


def test_spf_aligned_is_authentic() -> None:
    verdict = check("mx.example.com; spf=pass smtp.mailfrom=bounces@example.com")
    assert (verdict.ok, verdict.method) == (True, "spf")


def test_spf_pass_for_the_helo_name_only_is_refused() -> None:
    verdict = check("mx.example.com; spf=pass smtp.helo=mail.example.com")
    assert not verdict.ok
    assert verdict.reason == "spf=pass without a domain to align"


def test_dmarc_fail_wins_over_aligned_dkim() -> None:
    verdict = check("mx.example.com; dkim=pass header.d=mail.example.com; dmarc=fail header.from=example.com")
    assert verdict == AuthVerdict(False, "dmarc=fail")


def test_forged_passing_header_below_our_failing_one_is_ignored() -> None:
    verdict = check(
        "mx.example.com; dkim=fail header.d=example.com; spf=fail smtp.mailfrom=example.com; dmarc=none",
        "mx.example.com; dmarc=pass header.from=example.com",
    )
    assert not verdict.ok
    assert verdict.reason == "dmarc=none; dkim=fail; spf=fail"


def test_only_another_authserv_id_is_not_trusted() -> None:
    verdict = check("mx.other.example; dmarc=pass header.from=example.com")
    assert verdict == AuthVerdict(False, "no Authentication-Results from mx.example.com")


def test_ours_is_found_below_a_header_of_another_id_and_wins_over_the_rest() -> None:
    verdict = check(
        "filter.internal.example; dmarc=fail",
        "MX.Example.COM; dkim=pass header.d=example.com",
        "mx.example.com; dmarc=fail header.from=example.com",
    )
    assert (verdict.ok, verdict.method) == (True, "dkim")


def test_garbage_header_is_refused_with_a_reason() -> None:
    verdict = check("this is ; not = a header ;;; ===")
    assert not verdict.ok
    assert verdict.reason == "no Authentication-Results from mx.example.com"


def test_our_header_with_garbage_results_is_refused_with_the_problem() -> None:
    verdict = check("mx.example.com; dkim pass header.d example.com")
    assert not verdict.ok
    assert "unreadable result" in verdict.reason


def test_our_header_without_results() -> None:
    verdict = check("mx.example.com; none")
    assert verdict.reason == "no dmarc, dkim or spf result from mx.example.com"


def test_no_headers_at_all() -> None:
    assert check() == AuthVerdict(False, "no Authentication-Results from mx.example.com")


def test_no_configured_authserv_id_trusts_nothing() -> None:
    verdict = check_authentication(["; dmarc=pass"], authserv_id=" ", from_domain="example.com")
    assert not verdict.ok
    assert "no authserv_id" in verdict.reason


def test_sender_without_domain_is_refused() -> None:
    assert not check("mx.example.com; dmarc=pass", from_domain="").ok
