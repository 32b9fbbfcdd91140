"""The settings loader's fast path for plain email addresses reads them exactly as the email
package's parser does (which remains the reader of everything else)."""

from __future__ import annotations

from email.headerregistry import Address

from hypothesis import given
from hypothesis import strategies as st

from daemon.adapters.settings.kinds import EMAIL, Scalar

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
