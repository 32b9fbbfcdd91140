"""Writes the malformed-mail corpus (tests/corpus/malformed/*.eml) deterministically.

Run `python tests/corpus/make_malformed.py [OUTDIR]`; tests/core/test_mail.py checks that the
committed files are exactly what this script produces, so edit cases here, then regenerate.
Every file stays under 2 MB.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRLF = b"\r\n"


def headers(*lines: bytes) -> bytes:
    return CRLF.join(lines) + CRLF


BASE = headers(
    b"From: Jane Doe <jane@acme.example>",
    b"To: office@example.com",
    b"Date: Mon, 02 Mar 2026 10:00:00 +0000",
)


def nested_multipart(depth: int) -> bytes:
    body = b"Content-Type: text/plain\r\n\r\ninnermost text\r\n"
    for level in range(depth):
        boundary = b"level%d" % level
        body = (
            b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n--' + boundary + CRLF
            + body + b"\r\n--" + boundary + b"--\r\n"
        )
    return body


def cases() -> dict[str, bytes]:
    rng = random.Random(20260302)
    many_parts = b"".join(b"--P\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(300))
    return {
        "empty.eml": b"",
        "only_nul_bytes.eml": b"\x00" * 64,
        "only_body.eml": b"Hello,\r\nthis file has no header fields at all.\r\n\r\nRegards\r\n",
        "binary_garbage.eml": b"\x89PNG\r\n\x1a\n" + rng.randbytes(8192),
        "header_only.eml": headers(
            b"Message-ID: <header-only@acme.example>", b"From: jane@acme.example", b"Subject: just headers"
        ) + CRLF,
        "broken_rfc2047.eml": BASE + headers(
            b"Message-ID: <rfc2047@acme.example>",
            b"Subject: =?utf-8?q?unterminated word and =?utf-8?b?!!!notbase64?= end",
            b"Cc: =?utf-8?b?SmFu?= <=?utf-8?q?bad?=@acme.example>, =?iso-8859-1?q?Ren=E9?= <rene@acme.example>",
        ) + CRLF + b"body\r\n",
        "encoded_newline_subject.eml": BASE + headers(
            b"Message-ID: <newline@acme.example>", b"Subject: =?utf-8?q?Hello=0D=0ABcc:_evil@attacker.example?="
        ) + CRLF + b"body\r\n",
        "missing_boundary.eml": BASE + headers(
            b"Message-ID: <noboundary@acme.example>", b"Subject: no boundary", b"Content-Type: multipart/mixed"
        ) + CRLF + b"--x\r\nContent-Type: text/plain\r\n\r\nlost part\r\n--x--\r\n",
        "nul_bytes.eml": BASE.replace(b"Jane", b"Ja\x00ne") + headers(
            b"Message-ID: <nul\x00@acme.example>", b"Subject: nul\x00 bytes"
        ) + CRLF + b"text with \x00 inside\r\n",
        "huge_header_line.eml": BASE + b"Subject: " + b"x" * (1024 * 1024) + CRLF + CRLF + b"body\r\n",
        "long_folded_header.eml": BASE + b"X-Long: " + b"\r\n word" * 20000 + CRLF + CRLF + b"body\r\n",
        "header_section_too_large.eml": BASE + b"".join(b"X-Filler-%06d: value\r\n" % i for i in range(14000)) + CRLF,
        "many_headers.eml": BASE + headers(b"Message-ID: <many@acme.example>", b"Subject: many headers")
        + b"".join(b"X-Filler-%05d: value\r\n" % i for i in range(9000)) + CRLF + b"body\r\n",
        "to_open_quote.eml": headers(b"From: jane@acme.example", b'To: "', b"Message-ID: <quote@acme.example>")
        + CRLF,
        "message_id_brackets.eml": headers(b"From: jane@acme.example", b"Message-ID: <[...]>") + CRLF,
        "message_id_garbage.eml": headers(b"From: jane@acme.example", b"Message-ID: this is not an id") + CRLF,
        "pathological_quotes.eml": headers(b"From: jane@acme.example", b"To: " + b'"' * 60000) + CRLF,
        "pathological_dots.eml": headers(b"From: a" + b"." * 60000 + b"@acme.example", b"Cc: " + b"(<" * 30000)
        + CRLF,
        "many_pathological_values.eml": headers(b"From: jane@acme.example", *[b"To: " + b"(<" * 500] * 200,
                                                 b"To: ok@acme.example") + CRLF,
        "bad_charsets.eml": BASE + headers(
            b"Message-ID: <charset@acme.example>",
            b"Subject: =?x-no-such-charset?q?abc?= =?base64?q?def?=",
            b'Content-Type: text/plain; charset="no-such-charset"',
        ) + CRLF + b"caf\xc3\xa9 text\r\n",
        "non_text_codec_charset.eml": BASE + headers(
            b"Message-ID: <codec@acme.example>", b"Content-Type: text/plain; charset=rot13"
        ) + CRLF + b"uryyb\r\n",
        "eight_bit_headers.eml": headers(
            b"From: J\xc3\xb6rg M\xc3\xbcller <joerg@acme.example>",
            b"To: Ren\xe9 <rene@acme.example>",
            b"Subject: Gr\xc3\xbc\xc3\x9fe \xff\xfe",
            b"Message-ID: <8bit@acme.example>",
        ) + CRLF + b"K\xf6rper\r\n",
        "truncated.eml": BASE + headers(
            b"Message-ID: <truncated@acme.example>", b"Content-Type: multipart/mixed; boundary=T"
        ) + CRLF + b"--T\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nSGVsbG8gd29y",
        "truncated_in_header.eml": b"From: jane@acme.example\r\nSubject: cut he",
        "header_without_colon.eml": headers(
            b"From: jane@acme.example", b"Message-ID: <nocolon@acme.example>",
            b"This line has no colon", b"Subject: after the broken line",
        ) + CRLF + b"body\r\n",
        "duplicate_headers.eml": headers(
            b"From: first@acme.example", b"From: second@acme.example",
            b"To: a@acme.example", b"To: b@acme.example, a@acme.example",
            b"Subject: first subject", b"Subject: second subject",
            b"Message-ID: <dup-1@acme.example>", b"Message-ID: <dup-2@acme.example>",
            b"Date: Mon, 02 Mar 2026 10:00:00 +0000", b"Date: Tue, 03 Mar 2026 10:00:00 +0000",
        ) + CRLF,
        "deeply_nested.eml": BASE + b"Message-ID: <deep@acme.example>\r\n" + nested_multipart(150),
        "nested_beyond_walk_depth.eml": BASE + b"Message-ID: <depth30@acme.example>\r\n" + nested_multipart(30),
        "message_rfc822_chain.eml": BASE + b"Message-ID: <chain@acme.example>\r\n"
        + b"Content-Type: message/rfc822\r\n\r\n" * 2000 + b"From: x@y.example\r\n\r\ninner\r\n",
        "parts_300.eml": BASE
        + headers(b"Message-ID: <parts@acme.example>", b"Content-Type: multipart/mixed; boundary=P") + CRLF + many_parts + b"--P--\r\n",
        "invalid_base64.eml": BASE + headers(
            b"Message-ID: <b64@acme.example>", b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: base64",
        ) + CRLF + b"SGVsbG8@@@ ***not base64!!!\r\nd29ybGQ\r\n",
        "invalid_quoted_printable.eml": BASE + headers(
            b"Message-ID: <qp@acme.example>", b"Content-Type: text/plain; charset=utf-8",
            b"Content-Transfer-Encoding: quoted-printable",
        ) + CRLF + b"caf=C3=A9 =ZZ broken =\r\nsoft=\r\n=",
        "unknown_transfer_encoding.eml": BASE + headers(
            b"Message-ID: <cte@acme.example>", b"Content-Transfer-Encoding: x-martian"
        ) + CRLF + b"plain words\r\n",
        "part_header_semicolons.eml": BASE + headers(
            b"Message-ID: <semis@acme.example>", b"Content-Type: multipart/mixed; boundary=S"
        ) + CRLF + b'--S\r\nContent-Type: text/plain; x="' + b";" * (1024 * 1024) + b'"\r\n\r\nafter\r\n--S--\r\n',
        "html_unclosed_markup.eml": BASE + headers(b"Message-ID: <html@acme.example>", b"Content-Type: text/html")
        + CRLF + b"<p>Could you reply</p>" + b"<a " * 100000 + b"<!--" * 50000 + CRLF,
        "date_year_99999.eml": headers(b"From: jane@acme.example", b"Date: Mon, 1 Jan 99999 00:00:00 +0000") + CRLF,
        "date_garbage.eml": headers(b"From: jane@acme.example", b"Date: yesterday-ish, around noon") + CRLF,
        "references_garbage.eml": headers(
            b"From: jane@acme.example",
            b"In-Reply-To: bare-id@acme.example",
            b"References: <a@acme.example> junk <<b@acme.example>> <c d@acme.example>",
            b"\t<a@acme.example> <>",
        ) + CRLF,
        "bare_cr_line_endings.eml": b"From: jane@acme.example\rSubject: cr only\rMessage-ID: <cr@acme.example>"
        b"\r\rbody\r",
        "lf_line_endings.eml": b"From: jane@acme.example\nSubject: lf only\nMessage-ID: <lf@acme.example>\n\nbody\n",
        "mbox_from_line.eml": b"From jane@acme.example Mon Mar  2 10:00:00 2026\r\n" + BASE
        + b"Message-ID: <mbox@acme.example>\r\n\r\nbody\r\n",
        "invalid_addresses.eml": headers(
            b"From: <@>", b"To: a@b@c, @nodomain, nolocal@, <spaces in@acme.example>, ok@acme.example",
            b"Reply-To: ;;;,,,", b"Message-ID: <addr@acme.example>",
        ) + CRLF,
    }


def main(argv: list[str]) -> int:
    outdir = Path(argv[1]) if len(argv) > 1 else HERE / "malformed"
    outdir.mkdir(parents=True, exist_ok=True)
    for name, data in sorted(cases().items()):
        assert len(data) < 2_000_000, name
        (outdir / name).write_bytes(data)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
