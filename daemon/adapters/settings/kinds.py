"""Kinds of configuration values: each turns one written scalar into a checked value or says why not.

Rules of this module:
- No YAML here: kinds receive plain `Scalar` values; adapters/settings.py reads the file.
- A kind raises Invalid with a message a user can act on (what is wrong, how to write it);
  the loader turns it into a Problem with the key's line.
- Pure checks: no file or network access beyond the time zone and holiday tables.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache

from daemon.core.model import parse_duration

# zoneinfo, the holidays codes and tables are imported where a value is checked: a report on a
# config kept by load_cache.py imports this module for did_you_mean alone (queries/common.py).


class Invalid(ValueError):
    """A value that does not fit its key; the message becomes the Problem's message."""


@dataclass(frozen=True)
class Scalar:
    value: object  # as YAML's safe constructor built it (str, int, bool, date, ...)
    text: str  # the characters as written, without quotes


@dataclass(frozen=True)
class Kind:
    name: str  # what the value is, for docs and "expected ..." messages
    convert: Callable[[Scalar], object]


def shown(text: object, limit: int = 40) -> str:
    text = str(text)
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str:
    import difflib  # here: only a mistake needs it, and every command reads the settings

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------------
# Kinds of values.


def _text(s: Scalar) -> str:
    text = s.text.strip()
    if not text:
        raise Invalid("must not be empty")
    return text


TEXT = Kind("text", _text)
PATH = Kind("path", _text)


def _pattern(name: str, regex: str, hint: str) -> Kind:
    compiled = re.compile(regex)

    def convert(s: Scalar) -> str:
        text = _text(s)
        if not compiled.fullmatch(text):
            raise Invalid(f"{shown(text)} is not a valid {name}: {hint}")
        return text

    return Kind(name, convert)


IDENT = _pattern("id", r"[A-Za-z0-9][A-Za-z0-9_.-]*", "use letters, digits, '_', '.' and '-'")
ENV_NAME = _pattern("environment variable name", r"[A-Za-z_][A-Za-z0-9_]*", "e.g. IMAP_PASSWORD")


def whole_number(low: int | None = None, high: int | None = None, why: str = "") -> Kind:
    def convert(s: Scalar) -> int:
        if isinstance(s.value, bool) or not isinstance(s.value, int):
            unquote = " (write it without quotes)" if s.text.strip().isdigit() else ""
            raise Invalid(f"expected a whole number, got {shown(s.text)}{unquote}")
        if low is not None and s.value < low or high is not None and s.value > high:
            bounds = f"at least {low}" if high is None else f"between {low} and {high}"
            raise Invalid(f"must be {bounds}, not {s.value}{why}")
        return s.value

    return Kind("whole number" if low is None else f"whole number ≥ {low}", convert)


def _bool(s: Scalar) -> bool:
    if not isinstance(s.value, bool):
        raise Invalid(f"expected true or false, got {shown(s.text)}")
    return s.value


BOOL = Kind("true or false", _bool)
PORT = Kind("port 1-65535", whole_number(1, 65535).convert)


def choice(*options: str) -> Kind:
    def convert(s: Scalar) -> str:
        text = ("true" if s.value else "false") if isinstance(s.value, bool) else s.text.strip()
        if text not in options:
            listed = ", ".join(options)
            raise Invalid(f"expected one of {listed}, got {shown(text)}{did_you_mean(text, options)}")
        return text

    return Kind("one of " + " | ".join(options), convert)


def duration(*, zero: bool = True, business: bool = True, at_most: timedelta | None = None,
             zero_why: str = "", at_most_why: str = "") -> Kind:
    def convert(s: Scalar):
        try:
            value = parse_duration(s.value if isinstance(s.value, (int, float)) else s.text)
        except ValueError as error:
            raise Invalid(str(error)) from None
        if value.is_zero and not zero:
            raise Invalid(f"must not be zero{zero_why}")
        if value.business and not business:
            raise Invalid(f"{shown(value)} is business time; this is wall-clock time, e.g. '30 seconds'")
        if at_most is not None and value.as_timedelta() > at_most:
            raise Invalid(f"must be at most {_span(at_most)}, not {value}{at_most_why}")
        return value

    name = "duration" if business else "wall-clock duration"
    return Kind(name, convert)


def _span(span: timedelta) -> str:
    minutes = int(span.total_seconds() // 60)
    return f"{minutes} minutes" if minutes < 120 else f"{minutes // 60} hours"


DURATION = duration()
TIMEOUT = duration(zero=False, business=False)


def _email(s: Scalar) -> str:
    text = s.text.strip()
    problem = f"{shown(text)} is not an email address: write it as name@example.com, with no display name"
    local, at, domain = text.rpartition("@")
    if not at or "@" in local or not local or _SPACE.search(text) or not _is_domain(domain):
        raise Invalid(problem)
    if _PLAIN_ADDRESS.fullmatch(text):
        # A dot-atom at an ASCII domain is its own addr_spec: the email package's parser (~0.5 ms an
        # address, a tenth of a second for a config naming 200 clients) would only give it back.
        return text.lower()
    from email.headerregistry import Address

    try:
        parsed = Address(addr_spec=text)
    except (ValueError, IndexError):
        raise Invalid(problem) from None
    return parsed.addr_spec.lower()


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_ADDRESS = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9.-]+")


_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SPACE = re.compile(r"\s")  # \s of a str pattern is str.isspace()


def _is_domain(text: str) -> bool:
    if text.isascii():  # the idna codec only checks an ASCII name's label lengths, as _LABEL does
        ascii_form = text.lower()
    else:
        try:
            ascii_form = text.lower().encode("idna").decode("ascii")
        except UnicodeError:
            return False
    labels = ascii_form.split(".")
    return len(labels) >= 2 and all(_LABEL.fullmatch(label) for label in labels)


def _domain(s: Scalar) -> str:
    text = s.text.strip().lower().rstrip(".")
    if text.startswith(("@", "*.")):
        raise Invalid(f"write the domain alone, as {shown(text.lstrip('@*.'))}")
    if not _is_domain(text):
        raise Invalid(f"{shown(text)} is not a domain name such as 'example.com'")
    return text


EMAIL = Kind("email address", _email)
DOMAIN = Kind("domain", _domain)


def _host(s: Scalar) -> str:
    text = _text(s)
    if any(c.isspace() for c in text) or "/" in text or text.count(":") == 1:
        raise Invalid(f"{shown(text)}: write just the host name or IP address, without scheme or port")
    return text


HOST = Kind("host name or IP address", _host)


@cache
def _zone_names() -> tuple[str, ...]:
    from zoneinfo import available_timezones

    return tuple(sorted(available_timezones()))


def _timezone(s: Scalar) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    text = _text(s)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        hint = did_you_mean(text, _zone_names())
        raise Invalid(f"{shown(text)} is not a time zone{hint}: use an IANA name such as "
                      "'Europe/London' or 'America/New_York'") from None
    return text


TIMEZONE = Kind("time zone (IANA name)", _timezone)


def _time_of_day(s: Scalar) -> str:
    # YAML 1.1 reads an unquoted 17:30 as the number 1050; the written text is what we want.
    text = s.text.strip()
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise Invalid(f"{shown(text)} is not a time of day: write it as \"09:00\" (24-hour clock)")
    return f"{int(match[1]):02d}:{match[2]}"


TIME_OF_DAY = Kind("time HH:MM", _time_of_day)


def _holiday_date(s: Scalar) -> date:
    value = s.value
    if isinstance(value, datetime) or not isinstance(value, (date, str)):
        raise Invalid(f"expected a date written as 2026-12-24, got {shown(s.text)}")
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise Invalid(f"{shown(s.text)} is not a date: write it as 2026-12-24") from None
    if not 2000 <= value.year <= 2100:
        raise Invalid(f"{value.isoformat()} is a holiday outside any plausible year ({value.year}): "
                      "write a date between 2000 and 2100")
    return value


HOLIDAY_DATE = Kind("date YYYY-MM-DD", _holiday_date)


def _country(s: Scalar) -> str:
    from daemon.adapters.settings import holiday_codes

    text = _text(s).upper()
    if holiday_codes.is_country(text):  # read from the package's registry file, without importing it
        return text
    from holidays.registry import EntityLoader

    # The codes list_supported_countries() has as keys, from the package's registry alone: that
    # function also imports every country's module for its subdivisions (~0.2-0.5 s per command).
    known = set(EntityLoader.get_country_codes(include_aliases=True))
    if text not in known:
        hint = did_you_mean(text, sorted(known))
        raise Invalid(f"{shown(text)} is not a country known to the holidays package{hint}: use an ISO 3166 "
                      "code such as 'GB', 'US' or 'DE'")
    return text


COUNTRY = Kind("country code (ISO 3166)", _country)


def subdivision_spelling(country: str, subdivision: str) -> str | None:
    """`subdivision` as the holidays package spells it for `country`, or None if it has no such one."""
    from daemon.adapters.settings import holiday_codes
    from daemon.core.holiday_tables import country_holidays

    if holiday_codes.has_subdivision(country, subdivision):  # as listed in the country's source file
        return subdivision
    try:
        country_holidays(country, subdiv=subdivision)  # the one country's module, not all of them
        return subdivision
    except (NotImplementedError, KeyError):
        import holidays  # every country's module, but only to spell out a mistake

        known = holidays.list_supported_countries().get(country, [])
        return next((name for name in known if name.casefold() == subdivision.casefold()), None)
