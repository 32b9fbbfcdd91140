"""core/quicktext.py reads the first text of plain-shaped mail exactly as mailbody.first_text (the
standard library's MIME parser) reads it, or declines (NOT_PLAIN): on the malformed corpus, on
realistic mail, on hand-made tricky shapes and on random messages built from plain and hostile
pieces. It must also take the fast path for ordinary mail, or it saves nothing."""

from __future__ import annotations

import base64
import sys
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.core.mail import message_text
from daemon.core.mailbody import first_text
from daemon.core.quicktext import NOT_PLAIN, quick_first_text

CORPUS = Path(__file__).resolve().parent.parent / "corpus" / "malformed"


def agrees(raw: bytes) -> bool:
    """Asserts the fast answer (if any) is first_text's; True when the fast path answered."""
    quick = quick_first_text(raw)
    if quick is NOT_PLAIN:
        return False
    assert quick == first_text(raw), raw[:300]
    return True


def crlf(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def realistic() -> list[bytes]:
    sys.path.insert(0, str(CORPUS.parent.parent))
    from mailfactory import bounce, build, out_of_office, outlook_reply, reply, request, statement

    when = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return [request("jane@acme.example", "Lease", when, "r1")[0],
            request("jane@acme.example", "Lease", when, "r2", question="Could you send it?")[0],
            statement("hank@globex.example", "Report", when, "s1")[0],
            reply("jane@acme.example", "<a@b>", "Lease", when, "p1")[0],
            out_of_office("jane@acme.example", "<a@b>", "Lease", when, "o1")[0],
            outlook_reply("bill@initech.example", "TPS", when, "t1", bytes(22))[0],
            bounce("x@y.example", "<a@b>", when, "b1")[0],
            build(sender="a@b.example", to="c@d.example", subject="Hi", body="Hello?\n", when=when, mid="<m@x>")]


def multipart(first_part: str, *, boundary: str = "XyZ", content_type: str | None = None, preamble: str = "",
              rest: str = "--{b}\nContent-Type: text/html\n\n<p>hi</p>\n--{b}--\n") -> bytes:
    content_type = content_type or f'multipart/alternative;\n boundary="{boundary}"'
    head = f"From: a@b.example\nSubject: s\nMIME-Version: 1.0\nContent-Type: {content_type}\n\n"
    return (head + preamble + f"--{boundary}\n" + first_part + rest.format(b=boundary)).encode("utf-8",
                                                                                                "surrogateescape")


TRICKY = [
    multipart("Content-Type: text/plain; charset=utf-8\n\nCould you send it?\n\nThanks\n"),
    multipart("Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 8bit\n\n"
              "Grüße, können Sie?\n"),
    multipart("Content-Type: text/plain\n\nno charset \xe9t\xe9\n".encode("latin-1").decode("ascii", "surrogateescape")),
    multipart("Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n"
              "Caf=E9 soft=\nbreak\n"),
    multipart("Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
              + base64.encodebytes("Können Sie?\n".encode()).decode()),
    multipart("Content-Type: text/plain\n\nbody\n", preamble="This is a multi-part message in MIME format.\n"),
    multipart("Content-Type: text/plain\n\nbody\n", content_type="multipart/mixed; boundary=XyZ"),
    multipart("Content-Type: text/plain\n\nbody\n", content_type='multipart/mixed; boundary="XyZ"; x=1'),
    multipart("Content-Type: text/plain\n\nbody\n", content_type="multipart/mixed; boundary=XyZ  "),
    multipart("Content-Type: text/plain\n\nbody\n", content_type="multipart/mixed; boundary*=''XyZ"),
    multipart("Content-Type: text/plain\n\nbody\n", content_type="multipart/digest; boundary=XyZ"),
    multipart("Content-Type: text/plain\n\nbody\n", content_type="multipart/mixed"),
    multipart("\nno headers in this part\n"),
    multipart("Content-Type: text/plain\n\nno close boundary\n", rest=""),
    multipart("Content-Type: text/plain\n\nno close boundary, no last break", rest=""),
    multipart("Content-Type: text/plain\n\nlast line\n\n\n"),
    multipart("Content-Type: text/plain\n\n--XyZx is not a boundary\n--XyZ-- \n"),
    multipart("Content-Type: text/plain\n\nbefore a boundary with blanks\n", rest="--{b} \t\nContent-Type: text/x\n\nx\n"),
    multipart("Content-Type: text/plain\nContent-Disposition: attachment; filename=a.txt\n\nattached\n"),
    multipart("Content-Type: text/html\n\n<p>Which day?</p>\n"),
    multipart("Content-Type: multipart/related; boundary=inner\n\n--inner\nContent-Type: text/plain\n\ninner\n"
              "--inner--\n"),
    multipart("Content-Type: text/plain\n  ; charset=utf-8\n\nfolded part header\n"),
    multipart("Content-Type: text/plain\nContent-Type: text/html\n\nduplicate part header\n"),
    multipart("Content-Type: text/plain\n--XyZ\n\nboundary inside the part header\n"),
    multipart("no colon here\n\nbody\n"),
    multipart("Content-Type: text/plain; charset=unknown-8bit\n\nbody \xe9\n"),
    multipart("Content-Type: text/plain; charset=rot13\n\nnot a text codec\n"),
    multipart("Content-Type: text/plain\nContent-Transfer-Encoding: x-uuencode\n\nbegin 644 a\n`\nend\n"),
    multipart("Content-Type: text/plain; charset=\"utf-8\"\n\ncontrol \x07 chars\r\n\tand tabs\n"),
    multipart("Content-Type: text/plain\n\nbody\n", preamble="--XyZ--\n"),
    multipart("Content-Type: text/plain\n\nbody\n", preamble="--XyZ\n"),
    multipart("Content-Type: text/plain\n\nbody\n", boundary="a:b"),
    multipart("--a:b\nContent-Type: text/plain\n\nboundary twice, and read as a header\n", boundary="a:b"),
    multipart("Content-Type: text/plain\n\n", rest="--{b}--\n"),
    # Only the content fields count, whatever their case, and the first of each; others are noise.
    b"From: a@b.example\nX-Content-Type: text/html\ncontent-type: TEXT/plain; charset=latin-1\n"
    b"CONTENT-TRANSFER-ENCODING: quoted-printable\nContent-Type: text/html\n\nCaf=E9\n",
    multipart("X-Content-Type: text/html\nCONTENT-TYPE: text/plain\ncontent-disposition: inline\n\nmixed case\n"),
    multipart("Content-Disposition: inline\nContent-Disposition: attachment\nContent-Type: text/plain\n\nfirst wins\n"),
    b"From: a@b.example\nContent-Type : text/html\n\nblank before the colon\n",
    b"From: a@b.example\nSubject: plain root\n\nCould you?\n",
    b"From: a@b.example\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
    + base64.encodebytes("Können Sie?".encode()),
    b"From: a@b.example\nContent-Type: text/html\n\n<p>html root</p>\n",
    b"From: a@b.example\nContent-Disposition: attachment\n\nattached root\n",
    b"From a@b Mon Jan  1 00:00:00 2026\nFrom: a@b.example\n\nmbox line\n",
    b"From: a@b.example\rSubject: bare CR\r\n\r\nbody\r\n",
    b"From: a@b.example\nSubject: =?utf-8?q?caf=C3=A9?=\n\nencoded subject\n",
    b"From: a@b.example\n\n",
    b"From: a@b.example\nX: \x00nul\n\nbody\x00 with nul\n",
]


def test_the_corpora_read_as_first_text_reads_them() -> None:
    answered = 0
    for raw in [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))] + realistic():
        for shape in (raw, crlf(raw)):
            answered += agrees(shape)
    assert answered >= 20  # ordinary mail takes the fast path


def test_tricky_shapes_read_as_first_text_reads_them() -> None:
    answered = sum(agrees(shape) for raw in TRICKY for shape in (raw, crlf(raw)))
    assert answered >= 30


def test_ordinary_shapes_take_the_fast_path() -> None:
    for raw in (TRICKY[0], TRICKY[3], TRICKY[4], TRICKY[5], TRICKY[13], TRICKY[-9]):
        assert quick_first_text(raw) is not NOT_PLAIN
        assert quick_first_text(crlf(raw)) is not NOT_PLAIN
    assert message_text(crlf(TRICKY[0])) == "Could you send it?\n\nThanks"


HEADERS = ["Content-Type: text/plain", "Content-Type: text/plain; charset=utf-8", "Content-Type: text/html",
           "Content-Type: text/plain;\n charset=iso-8859-1", "Content-Transfer-Encoding: quoted-printable",
           "Content-Transfer-Encoding: base64", "Content-Disposition: attachment", "Content-Disposition: inline",
           "X-Other: v", " folded", "no colon", "", "From x", "Content-Type: multipart/mixed; boundary=b"]
LINES = ["Could you?", "", " ", "--b", "--b--", "--b ", "--bb", "--b--x", "=E9=", "\xe9t\xe9", "\t", "From me",
         "--", "\x0b", "Content-Type: text/html", "=?utf-8?q?x?="]
ROOTS = ['multipart/alternative; boundary="b"', "multipart/mixed;\n boundary=b", "multipart/mixed; boundary=\"b\" ",
         "text/plain", "multipart/digest; boundary=b", "multipart/mixed; boundary=\"c\"", "text/plain; charset=latin-1"]


@settings(max_examples=400, deadline=None)
@given(root=st.sampled_from(ROOTS), preamble=st.lists(st.sampled_from(LINES), max_size=2),
       part_headers=st.lists(st.sampled_from(HEADERS), max_size=3), body=st.lists(st.sampled_from(LINES), max_size=6),
       tail=st.sampled_from(["", "\n", "--b--\n", "--b\nContent-Type: text/plain\n\nsecond\n--b--\n"]),
       line_break=st.sampled_from(["\n", "\r\n"]))
def test_random_messages_read_as_first_text_reads_them(root, preamble, part_headers, body, tail, line_break) -> None:
    lines = ["From: a@b.example", f"Content-Type: {root}", "", *preamble, "--b", *part_headers, "", *body]
    text = "\n".join(lines) + "\n" + tail
    agrees(text.replace("\n", line_break).encode("utf-8", "surrogateescape"))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_fold_of_ascii_text_is_the_unicode_fold(text: str) -> None:
    import unicodedata

    from daemon.core.mailbody import fold

    decomposed = unicodedata.normalize("NFKD", text)
    assert fold(text) == " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).casefold().split())
