"""Do core/mail.py's header fast paths read values exactly as email.policy.default does?

    .venv/bin/python -m bench.parsing_check [--values 200000] [--seed 1]

The fast paths (plain address lists, plain Content-Type, plain ASCII text) skip the structured
parser for values of simple shapes. This checks, on random values built from both plain pieces
and troublesome ones (quotes, comments, encoded words, groups, RFC 2231 parameters, repeated
keys, line breaks, non-ASCII), that whenever a fast path accepts a value its answer equals the
structured parser's. A mismatch is printed and the exit status is 1.
"""

from __future__ import annotations

import argparse
import random
import string
import sys
from email import policy

import bench  # noqa: F401 - the repo root on sys.path
from daemon.core import mail

STRUCTURED = policy.default

ADDRESS_PIECES = (
    "jane", "doe", "Jane", "Doe", "O'Brien", "a.b", "x@y.example", "jane.doe@client.example", "<", ">", ",", ", ",
    " ", "  ", "\t", '"', "=?utf-8?q?M=C3=BCller?=", "(c)", "@", ".", " <a@b.c>", "Ltd", "Example", "-", "_", "+tag",
    "!#$%", "[1.2.3.4]", "\\", ";", ":", "ü", "=", "?", "~", "'", "a@b", "<a@b>", "Group: a@b;", "\r\n ",
)
TYPE_PIECES = (
    "text", "plain", "/", "multipart", "alternative", ";", " ", "charset", "=", "UTF-8", '"', "boundary", "----abc",
    "format", "flowed", "*", "'", "\\", "(c)", "\t", "TEXT", "Plain", "a=b", "x", "=?", "é", ":", "report-type",
    "delivery-status", '"a b"', '"q\\"x"', "%", "charset*=utf-8''x",
)
ATEXT = string.ascii_letters + string.digits + "!#$%&'*+/^_`{|}~-"
TOKEN = string.ascii_letters + string.digits + "!#$%&+.^_`|~-"
QUOTED = " !#$%&'()*+,-./0123456789:;<=>?@ABCxyz[]^_`{|}~"


def structured_addresses(value: str) -> object:
    try:
        return [(a.display_name or "", a.addr_spec or "") for a in STRUCTURED.header_fetch_parse("To", value).addresses]
    except Exception as error:  # noqa: BLE001 - an exception is an answer to compare too
        return ("raised", type(error).__name__)


def structured_content_type(value: str) -> object:
    try:
        header = STRUCTURED.header_fetch_parse("Content-Type", value)
        return header.content_type, {k.lower(): str(v) for k, v in header.params.items()}
    except Exception as error:  # noqa: BLE001
        return ("raised", type(error).__name__)


def structured_text(value: str) -> object:
    try:
        return str(STRUCTURED.header_fetch_parse("Subject", value))
    except Exception as error:  # noqa: BLE001
        return ("raised", type(error).__name__)


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def word(self, alphabet: str, low: int = 1, high: int = 6) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(low, high)))

    def mixed(self, pieces: tuple[str, ...], high: int) -> str:
        return "".join(self.rng.choice(pieces) for _ in range(self.rng.randint(1, high)))

    def plain_address_list(self) -> str:
        rng, items = self.rng, []
        for _ in range(rng.randint(1, 4)):
            address = ".".join(self.word(ATEXT) for _ in range(rng.randint(1, 3))) + "@" + \
                      ".".join(self.word(ATEXT) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.5:
                address = " ".join(self.word(ATEXT) for _ in range(rng.randint(1, 3))) + f" <{address}>"
            items.append(address)
        value = rng.choice((", ", ",", " , ", ",\t")).join(items)
        return f" {value}\t" if rng.random() < 0.2 else value

    def plain_content_type(self) -> str:
        rng = self.rng
        value = f"{self.word(TOKEN, 1, 8)}/{self.word(TOKEN, 1, 8)}"
        for _ in range(rng.randint(0, 3)):
            key = self.word(TOKEN if rng.random() < 0.3 else string.ascii_letters + "._-0123456789", 1, 8)
            text = self.word(TOKEN, 1, 8) if rng.random() < 0.5 else '"' + self.word(QUOTED, 0, 10) + '"'
            value += rng.choice((";", " ;", "; ", ";\t")) + f"{key}={text}"
        return value

    def text(self) -> str:
        rng = self.rng
        return "".join(chr(rng.randint(0, 127)) if rng.random() < 0.7 else
                       rng.choice(("=?", "?=", "=?utf-8?q?x?=", " ", "\t", "Re: ", "é", "\r\n"))
                       for _ in range(rng.randint(0, 30)))


    def encoded_word(self) -> str:
        rng = self.rng
        text = "".join(rng.choice(("a", "Z", " ", "  ", "\t", "é", "Ü", "_", "?", "=", ",", '"', "<", "\\", "(", "\n",
                                   "\x07", "ß", "€", "-", ".")) for _ in range(rng.randint(0, 12)))
        charset = rng.choice(("utf-8", "UTF-8", "iso-8859-1", "latin-1", "us-ascii", "bogus", "utf-8*en"))
        try:
            data = text.encode(charset.split("*")[0])
        except (LookupError, UnicodeEncodeError):
            data = text.encode("utf-8")
        if rng.random() < 0.5:
            body = "".join(chr(b) if chr(b).isalnum() and b < 128 else "_" if b == 32 and rng.random() < 0.5
                           else f"={b:02X}" for b in data)
            word = f"=?{charset}?{rng.choice('qQ')}?{body}?="
        else:
            import base64
            word = f"=?{charset}?{rng.choice('bB')}?{base64.b64encode(data).decode()}?="
        if rng.random() < 0.1:  # damaged ones too
            word = word[:rng.randint(0, len(word))] + rng.choice(("=", "?", " ", "=Z", "")) + word[rng.randint(0, len(word)):]
        return word

    def encoded_list(self) -> str:
        rng = self.rng
        items = []
        for _ in range(rng.randint(1, 3)):
            address = f"{self.word(ATEXT)}@{self.word(ATEXT)}.example"
            items.append(f"{self.encoded_word()} <{address}>" if rng.random() < 0.7 else address)
        return rng.choice((", ", ",")).join(items)


def check(values: int, seed: int) -> int:
    generate = Generator(seed)
    cases = (
        ("address list", mail._plain_addresses, structured_addresses,
         (generate.plain_address_list, lambda: generate.mixed(ADDRESS_PIECES, 8))),
        ("content type", mail._plain_content_type, structured_content_type,
         (generate.plain_content_type, lambda: generate.mixed(TYPE_PIECES, 10))),
        ("text", lambda v: v if mail._is_plain_text(v) else None, structured_text, (generate.text,)),
        ("encoded word", mail._encoded_word_text, structured_text, (generate.encoded_word,)),
        ("address list with encoded names", mail._plain_addresses, structured_addresses, (generate.encoded_list,)),
    )
    failures = 0
    for name, fast, slow, makers in cases:
        accepted = 0
        for number in range(values):
            value = makers[number % len(makers)]()
            answer = fast(value)
            if answer is None:
                continue
            accepted += 1
            expected = slow(value)
            if answer != expected:
                failures += 1
                if failures <= 20:
                    print(f"MISMATCH {name}: {value!r}\n  fast path:  {answer!r}\n  structured: {expected!r}")
        print(f"{name}: {accepted:,} of {values:,} random values took the fast path; all compared")
    print("no mismatch" if not failures else f"{failures} mismatch(es)")
    return 1 if failures else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.parsing_check", description=__doc__.split("\n")[0])
    parser.add_argument("--values", type=int, default=200_000, help="random values per fast path")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    return check(args.values, args.seed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
