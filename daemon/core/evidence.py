"""Who is a colleague, per provider: the evidence that a staff reply came from inside the company.

Rules of this module:
- Pure: header values in, an `AuthVerdict` out (authres's type, so judge_reply takes it as is).
  Every verdict names the evidence it rests on, for the acceptance log line and the case file.
- Each source is trusted only where it cannot be forged from outside:
  * Authentication-Results from the configured authserv-id, topmost only (daemon/core/authres.py):
    our own receiving server wrote it and removes copies claiming its name from inbound mail.
  * Microsoft 365: `X-MS-Exchange-Organization-AuthAs: Internal`, with AuthSource (the server that
    authenticated the sender) and AuthMechanism. Exchange Online stamps these on mail submitted by
    an authenticated user of the same tenant and removes every X-MS-Exchange-Organization-* header
    from mail that enters from outside (its header firewall), so a sender elsewhere cannot bring
    one in. Trusted only with `mailbox.provider: microsoft365` (elsewhere anyone can write the
    header), only for `Internal` (`Anonymous` is mail from the internet, `Partner` a partner
    organisation's connector, `External` a remote authenticated sender) and only for a From in the
    company's own domains. Several copies that disagree are refused.
  * Google Workspace: Gmail's MX writes `Authentication-Results: mx.google.com; ...` at the top of
    every message it delivers, including mail between users of the same domain, and a DKIM
    signature made with the domain's own key (`header.i=@company.example`) can only come from the
    domain's Workspace. So: the topmost Authentication-Results must be mx.google.com's (a
    `mx.google.com` header lower down was written before Google's MX saw the message, i.e. by
    the sender), with dkim=pass aligned with a company domain and a From in those domains. SPF
    alone is not enough: `include:_spf.google.com` lets every Google customer pass it, and a
    domain without its own DKIM key is signed `*.gappssmtp.com`, which aligns with nothing.
  Sources: docs/providers.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.core.authres import (
    AuthResultsError,
    AuthVerdict,
    OrganizationalDomain,
    aligned,
    check_authentication,
    parse_authentication_results,
)
from daemon.core.model import Settings

AUTH_AS = "x-ms-exchange-organization-authas"
AUTH_SOURCE = "x-ms-exchange-organization-authsource"
AUTH_MECHANISM = "x-ms-exchange-organization-authmechanism"
EVIDENCE_HEADER_FIELDS: tuple[str, ...] = (
    "X-MS-Exchange-Organization-AuthAs", "X-MS-Exchange-Organization-AuthSource",
    "X-MS-Exchange-Organization-AuthMechanism",
)
GOOGLE_AUTHSERV_ID = "mx.google.com"


@dataclass(frozen=True)
class EvidencePolicy:
    """What the deployment trusts: its provider, its own server's authserv-id, its domains."""

    provider: str  # generic | microsoft365 | google
    authserv_id: str  # review.authserv_id ("" when none is configured)
    company_domains: tuple[str, ...]  # lower-case domains of our mailbox addresses


def judge_evidence(
    policy: EvidencePolicy,
    from_addr: str,
    authentication_results: Sequence[str],
    evidence_headers: Sequence[tuple[str, str]] = (),
    organizational_domain: OrganizationalDomain | None = None,
) -> AuthVerdict:
    """The strongest evidence that `from_addr` wrote from inside the company, or every refusal.

    `authentication_results`: raw Authentication-Results values, topmost first;
    `evidence_headers`: (name, value) of the provider stamps (EVIDENCE_HEADER_FIELDS), topmost first.
    """
    from_domain = from_addr.rpartition("@")[2].strip().rstrip(".").lower()
    refusals: list[str] = []
    if policy.authserv_id:
        verdict = check_authentication(authentication_results, authserv_id=policy.authserv_id,
                                       from_domain=from_domain, organizational_domain=organizational_domain)
        if verdict.ok:
            return AuthVerdict(True, f"{verdict.reason} (Authentication-Results from {policy.authserv_id})",
                               verdict.method)
        refusals.append(verdict.reason)
    if policy.provider == "google":
        verdict = google_stamp(authentication_results, from_domain, policy.company_domains)
        if verdict.ok:
            return verdict
        refusals.append(verdict.reason)
    exchange = [(name, value) for name, value in evidence_headers if name.lower().startswith("x-ms-exchange-")]
    if policy.provider == "microsoft365":
        verdict = exchange_stamp(exchange, from_domain, policy.company_domains)
        if verdict.ok:
            return verdict
        refusals.append(verdict.reason)
    elif exchange:
        refusals.append("X-MS-Exchange-Organization-AuthAs is trusted only with mailbox.provider: microsoft365 "
                        "(elsewhere anyone can write it)")
    return AuthVerdict(False, "; ".join(refusals) or "no evidence: configure review.authserv_id")


def exchange_stamp(headers: Sequence[tuple[str, str]], from_domain: str,
                   company_domains: Sequence[str]) -> AuthVerdict:
    """Exchange Online's own verdict on a message from its tenant (provider microsoft365 only)."""
    def values(name: str) -> list[str]:
        return [" ".join(value.split()) for key, value in headers if key.lower() == name]

    auth_as = values(AUTH_AS)
    if not auth_as:
        return AuthVerdict(False, "no X-MS-Exchange-Organization-AuthAs header (not mail from inside the tenant)")
    if len(set(a.lower() for a in auth_as)) > 1:
        return AuthVerdict(False, f"X-MS-Exchange-Organization-AuthAs appears {len(auth_as)} times with different "
                                  "values")
    if auth_as[0].lower() != "internal":
        return AuthVerdict(False, f"X-MS-Exchange-Organization-AuthAs: {auth_as[0]} (only Internal is a colleague "
                                  "of this tenant)")
    source, mechanism = values(AUTH_SOURCE), values(AUTH_MECHANISM)
    if not source or not mechanism:
        return AuthVerdict(False, "X-MS-Exchange-Organization-AuthAs: Internal without AuthSource and "
                                  "AuthMechanism (Exchange writes all three)")
    if not _ours(from_domain, company_domains):
        return AuthVerdict(False, f"X-MS-Exchange-Organization-AuthAs: Internal, but the From domain "
                                  f"{from_domain or '(none)'} is not one of the company's ({', '.join(company_domains)})")
    return AuthVerdict(True, f"X-MS-Exchange-Organization-AuthAs: Internal (AuthSource {source[0]}, "
                             f"AuthMechanism {mechanism[0]})", "exchange-authas")


def google_stamp(headers: Sequence[str], from_domain: str, company_domains: Sequence[str]) -> AuthVerdict:
    """Gmail's MX verdict: the topmost Authentication-Results is mx.google.com's, with DKIM aligned."""
    if not headers:
        return AuthVerdict(False, f"no Authentication-Results from {GOOGLE_AUTHSERV_ID}")
    try:
        topmost = parse_authentication_results(headers[0])
    except AuthResultsError:
        return AuthVerdict(False, "the topmost Authentication-Results cannot be read")
    if topmost.authserv_id.lower() != GOOGLE_AUTHSERV_ID:
        lower = any(_authserv(value) == GOOGLE_AUTHSERV_ID for value in headers[1:])
        return AuthVerdict(False, f"the topmost Authentication-Results is from {topmost.authserv_id}, not "
                                  f"{GOOGLE_AUTHSERV_ID}" + (" (an mx.google.com header below it was not "
                                                              "written by Google's MX)" if lower else ""))
    if not _ours(from_domain, company_domains):
        return AuthVerdict(False, f"the From domain {from_domain or '(none)'} is not one of the company's "
                                  f"({', '.join(company_domains)})")
    if any(r.method == "dmarc" and r.result == "fail" for r in topmost.results):
        return AuthVerdict(False, f"{GOOGLE_AUTHSERV_ID} says dmarc=fail")
    signed = [r for r in topmost.results if r.method == "dkim" and r.result == "pass"
              and aligned(_dkim_domain(r.properties), from_domain)]
    if signed:
        return AuthVerdict(True, f"dkim=pass for {_dkim_domain(signed[0].properties)} (Authentication-Results "
                                 f"from {GOOGLE_AUTHSERV_ID}, the company's own DKIM key)", "google-dkim")
    found = ", ".join(f"{r.method}={r.result}" for r in topmost.results) or "no results"
    return AuthVerdict(False, f"{GOOGLE_AUTHSERV_ID} shows no DKIM pass with the company's own key ({found}); "
                              f"set up DKIM for {from_domain} in the Google Admin console")


def _ours(domain: str, company_domains: Sequence[str]) -> bool:
    return bool(domain) and domain in {d.lower() for d in company_domains}


def _authserv(value: str) -> str:
    try:
        return parse_authentication_results(value).authserv_id.lower()
    except AuthResultsError:
        return ""


def _dkim_domain(properties: dict[str, str]) -> str:
    value = properties.get("header.d") or properties.get("header.i") or ""
    return value.rpartition("@")[2].strip().lower()


def evidence_policy(settings: Settings) -> EvidencePolicy:
    """What this deployment trusts. With Google, mx.google.com is judged by google_stamp's stricter
    rules (topmost only, the company's own DKIM key) even when it is also the configured authserv-id."""
    provider = settings.mailbox.provider
    authserv_id = settings.review.authserv_id
    if provider == "google" and authserv_id.strip().lower() == GOOGLE_AUTHSERV_ID:
        authserv_id = ""
    domains = tuple(dict.fromkeys(address.rpartition("@")[2].lower() for address in settings.mailbox.addresses))
    return EvidencePolicy(provider, authserv_id, domains)
