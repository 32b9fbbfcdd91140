"""Header shapes for each provider's evidence that a reply came from a colleague, with the refusals."""

from __future__ import annotations

import pytest

from daemon.core.evidence import EvidencePolicy, judge_evidence

DOMAINS = ("example.com",)
MS365 = EvidencePolicy("microsoft365", "", DOMAINS)
GOOGLE = EvidencePolicy("google", "", DOMAINS)
GENERIC = EvidencePolicy("generic", "mx.example.com", DOMAINS)

INTERNAL = (("X-MS-Exchange-Organization-AuthAs", "Internal"),
            ("X-MS-Exchange-Organization-AuthSource", "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"),
            ("X-MS-Exchange-Organization-AuthMechanism", "04"))
GOOGLE_OWN = ("mx.google.com; dkim=pass header.i=@example.com header.s=google header.b=AbCd; "
              "spf=pass (google.com: domain of bob@example.com designates 209.85.220.41 as permitted sender) "
              "smtp.mailfrom=bob@example.com; dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com")


def test_exchange_internal_is_a_colleague_and_names_its_evidence():
    verdict = judge_evidence(MS365, "bob@example.com", (), INTERNAL)
    assert verdict.ok and verdict.method == "exchange-authas"
    assert verdict.reason.startswith("X-MS-Exchange-Organization-AuthAs: Internal (AuthSource AM0PR01MB1234")


def test_exchange_headers_are_refused_when_the_provider_is_not_microsoft365():
    for policy in (GENERIC, GOOGLE):
        verdict = judge_evidence(policy, "bob@example.com", (), INTERNAL)
        assert not verdict.ok and "trusted only with mailbox.provider: microsoft365" in verdict.reason


@pytest.mark.parametrize("auth_as", ["Anonymous", "Partner", "External", ""])
def test_exchange_other_than_internal_is_refused(auth_as):
    headers = (("X-MS-Exchange-Organization-AuthAs", auth_as), *INTERNAL[1:])
    verdict = judge_evidence(MS365, "bob@example.com", (), headers)
    assert not verdict.ok and "only Internal" in verdict.reason


def test_exchange_internal_with_a_from_outside_the_company_is_refused():
    verdict = judge_evidence(MS365, "bob@partner.example", (), INTERNAL)
    assert not verdict.ok and "partner.example is not one of the company's (example.com)" in verdict.reason


def test_exchange_without_source_and_mechanism_or_with_disagreeing_copies_is_refused():
    assert "without AuthSource" in judge_evidence(MS365, "bob@example.com", (), INTERNAL[:1]).reason
    stacked = (("X-MS-Exchange-Organization-AuthAs", "Internal"), ("X-MS-Exchange-Organization-AuthAs", "Anonymous"),
               *INTERNAL[1:])
    assert "different values" in judge_evidence(MS365, "bob@example.com", (), stacked).reason


def test_microsoft365_without_stamps_says_why():
    verdict = judge_evidence(MS365, "bob@example.com", (), ())
    assert not verdict.ok and "not mail from inside the tenant" in verdict.reason


def test_google_own_stamp_with_the_company_dkim_key_is_a_colleague():
    verdict = judge_evidence(GOOGLE, "bob@example.com", (GOOGLE_OWN,))
    assert verdict.ok and verdict.method == "google-dkim"
    assert "dkim=pass for example.com (Authentication-Results from mx.google.com" in verdict.reason


def test_google_header_below_the_topmost_is_refused():
    forged_below = ("mx.example.net; spf=pass smtp.mailfrom=bob@example.com", GOOGLE_OWN)
    verdict = judge_evidence(GOOGLE, "bob@example.com", forged_below)
    assert not verdict.ok and "not written by Google's MX" in verdict.reason


def test_google_spf_alone_or_the_gappssmtp_proxy_signature_is_refused():
    spf_only = ("mx.google.com; spf=pass smtp.mailfrom=bob@example.com; "
                "dkim=pass header.i=@example-com.20230601.gappssmtp.com")
    verdict = judge_evidence(GOOGLE, "bob@example.com", (spf_only,))
    assert not verdict.ok and "set up DKIM for example.com in the Google Admin console" in verdict.reason


def test_google_from_outside_the_company_is_refused_even_with_its_own_dkim():
    other = "mx.google.com; dkim=pass header.i=@other.example; dmarc=pass header.from=other.example"
    verdict = judge_evidence(GOOGLE, "eve@other.example", (other,))
    assert not verdict.ok and "not one of the company's" in verdict.reason


def test_google_dmarc_fail_wins():
    failing = GOOGLE_OWN.replace("dmarc=pass", "dmarc=fail")
    assert not judge_evidence(GOOGLE, "bob@example.com", (failing,)).ok


def test_the_configured_authserv_id_still_counts_first_and_is_named():
    verdict = judge_evidence(GENERIC, "bob@example.com", ("mx.example.com; dmarc=pass header.from=example.com",))
    assert verdict.ok and verdict.reason == "dmarc=pass (Authentication-Results from mx.example.com)"
    refused = judge_evidence(GENERIC, "bob@example.com", ("mx.example.com; dmarc=fail header.from=example.com",))
    assert not refused.ok and "dmarc=fail" in refused.reason
