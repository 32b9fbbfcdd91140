"""The settings loader's fast path for plain email addresses reads them exactly as the email
package's parser does (which remains the reader of everything else)."""

from __future__ import annotations

import re
from email.headerregistry import Address

from hypothesis import example, given
from hypothesis import strategies as st

from daemon.adapters.settings.kinds import EMAIL, Invalid, Scalar, _is_domain

ATEXT = "abcXYZ019!#$%&'*+/=?^_`{|}~-"
local_parts = st.text(alphabet=ATEXT + '."\\ (),:;<>@[]é', min_size=1, max_size=12)
domains = st.sampled_from(["example.com", "Mail.Example.ORG", "a-b.example", "xn--bcher-kva.example", "bücher.example",
                           "-bad.example", "example", "ex ample.com", "example..com"])


def slow_path(text: str) -> str | None:
    try:
        return Address(addr_spec=text).addr_spec.lower()
    except Exception:  # noqa: BLE001 - any refusal counts as one
        return None


@given(local_parts, domains)
def test_plain_addresses_read_as_the_email_package_reads_them(local: str, domain: str) -> None:
    text = f"{local}@{domain}"
    try:
        fast = EMAIL.convert(Scalar(text, text))
    except Exception:  # noqa: BLE001 - refused, as before (only what is accepted must read the same)
        return
    assert fast == slow_path(text)


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def domain_by_idna(text: str) -> bool:
    """What the loader answered before its ASCII fast path: every name through the idna codec."""
    try:
        labels = text.lower().encode("idna").decode("ascii").split(".")
    except UnicodeError:
        return False
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


@given(st.text(alphabet="aZ09-._ \u00e9\u0130\u212a\u00a0\u2003", max_size=14)
       | st.sampled_from(["x" * 63 + ".com", "x" * 64 + ".com", "a..b", "a.b.", "-a.b", "K.COM"]))
@example("0.0 ")  # found by Hypothesis: a trailing space is trimmed, not inside the address
def test_domains_are_judged_as_the_idna_codec_judges_them(text: str) -> None:
    assert _is_domain(text) == domain_by_idna(text)
    address = f"someone@{text}"
    try:
        EMAIL.convert(Scalar(address, address))
        taken = True
    except Invalid:
        taken = False
    # a space inside it, Unicode's included, makes it no address (as str.isspace says); spaces
    # around a value are trimmed, as from every value (kinds._text), so a trailing one is not inside
    if any(c.isspace() for c in text.rstrip()):
        assert not taken
