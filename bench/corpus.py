"""A realistic company mailbox, generated fast, and two ways to put it into a private Dovecot.

The mailbox of a small service business over the past months: our requests to clients (Sent)
and their replies (INBOX), Outlook replies threaded only by Thread-Index, follow-ups, statements
that ask nothing, out-of-office replies, bounces, newsletters and strangers, colleagues writing
to the office. Messages carry the headers real mail carries (Received, DKIM-Signature,
Authentication-Results, MIME parts in text and HTML), so Dovecot and the parser do real work.

tests/mailfactory.py builds messages through email.message.EmailMessage (~0.9 ms each, 90 s for
100,000), so this module formats the bytes directly (~30 us each). `check_sample` reads a
sample back with the core parser to prove the shapes are what the ingest path expects.

bench/fixture.py puts the messages into Dovecot.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

OFFICE = "office@example.com"
STAFF = (("alice", "Alice Smith", "alice@example.com"), ("bob", "Bob Jones", "bob@example.com"),
         ("carol", "Carol White", "carol@example.com"))
AUTHSERV = "mx.example.com"

_TOPICS = (
    "Project kickoff", "Budget figures for Q{q}", "Signed contract", "Delivery address", "Invoice {n}",
    "Meeting on {day}", "Access to the shared drive", "Quarterly report", "Purchase order {n}",
    "Missing documents", "Tax forms {year}", "Renewal of the service agreement", "Workshop dates",
    "Site visit", "Payment schedule", "Data export", "Logo files for the brochure", "Audit preparation",
    "Travel arrangements", "Training plan", "Änderungen am Vertrag", "Pièces justificatives",
)
_QUESTIONS = (
    "Could you send us the signed form by Friday?", "Can you confirm the delivery address?",
    "Would you please check the attached figures and let us know?", "When would suit you for a call?",
    "Please send the missing documents so we can finish the filing.",
    "Could you tell us who should receive the invoices from now on?",
)
_STATEMENTS = (
    "The report is attached for your records. No action needed.",
    "Thank you for your order. We will be in touch once it ships.",
    "As discussed, the meeting notes are below for reference.",
)
_REPLIES = (
    "Thanks, here it is.", "Sorry for the delay, the form is attached.", "Yes, that address is right.",
    "Tuesday at 10 works for us.", "I have forwarded this to our accountant, she will reply shortly.",
    "Please find the documents attached. Let me know if anything is missing.",
)
# Most conversations are about one of the client's projects ("Signed contract: Harbour Street");
# the rest carry a bare topic, which many clients share.
_PROJECTS = ("Harbour Street", "North Wing", "Riverside", "Old Mill", "Station Road", "Hillcrest", "Market Hall",
             "Eastgate", "Canal Works", "Parkside", "Brookfield", "Kingsway", "Orchard Lane", "Westfield",
             "Quayside", "Elm Court", "Foundry", "Highfield", "Lakeside", "Abbey Road", "Mill Lane", "Granary",
             "Seaview", "Bridge Street", "Castle Yard", "Meadowbank", "Ropewalk", "Tannery", "Wharf", "Chapel Row")
PROJECT_SHARE = 0.6
_FIRST = ("Jane", "Tom", "Maria", "Hank", "Olga", "Pierre", "Sven", "Aiko", "Chen", "Fatima", "Liam", "Noor")
_LAST = ("Doe", "Scorpio", "Müller", "Dubois", "Larsen", "Tanaka", "Wei", "Haddad", "O'Brien", "Novak")
_LISTS = ("news.shopmail.example", "updates.saasco.example", "letters.tradepress.example",
          "offers.officesupply.example", "events.chamber.example")
_MUAS = ("Mozilla Thunderbird 128.5.0", "Microsoft Outlook 16.0", "Apple Mail (2.3774)", "Roundcube Webmail/1.6.9")
_ZONES = ("Europe/London", "Europe/Berlin", "America/New_York", "Asia/Tokyo", None)


@dataclass(frozen=True)
class ClientSpec:
    id: str
    name: str
    contact: str
    domain: str
    addresses: tuple[str, ...]  # people at the client who write to us
    owner: str
    timezone: str | None

    def as_config(self) -> dict:
        entry = {"id": self.id, "name": self.name, "contact": self.contact,
                 "addresses": [self.addresses[0]], "domains": [self.domain], "owner": self.owner}
        if self.timezone:
            entry["timezone"] = self.timezone
        return entry


@dataclass
class Mail:
    folder: str  # "INBOX" | "Sent"
    when: datetime
    raw: bytes  # LF line endings, as maildir files hold them
    kind: str
    message_id: str = ""
    extra: dict = field(default_factory=dict)

    def crlf(self) -> bytes:
        return self.raw.replace(b"\n", b"\r\n")


def make_clients(count: int, seed: int = 7) -> list[ClientSpec]:
    rng = random.Random(seed)
    clients = []
    for index in range(count):
        domain = f"client{index:05d}.example"
        people = []
        for _ in range(rng.randint(1, 3)):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            local = f"{first}.{last}".lower().replace("'", "").replace("ü", "ue")
            people.append((f"{first} {last}", f"{local}@{domain}"))
        clients.append(ClientSpec(
            id=f"c{index:05d}", name=f"Client {index:05d} Ltd", contact=people[0][0], domain=domain,
            addresses=tuple(dict.fromkeys(addr for _, addr in people)), owner=("alice", "carol")[index % 2],  # bob reviews
            timezone=_ZONES[index % len(_ZONES)]))
    return clients


# ------------------------------------------------------------------------------------------
# Formatting.


def _b64ish(rng: random.Random, length: int) -> str:
    return base64.b64encode(rng.randbytes(length)).decode()[:length]


def _fold(text: str, width: int = 76) -> str:
    return "\n\t".join(text[i:i + width] for i in range(0, len(text), width))


def _encoded_subject(subject: str) -> str:
    if subject.isascii():
        return subject
    data = subject.encode("utf-8")
    quoted = "".join(chr(b) if (48 <= b <= 57 or 65 <= b <= 90 or 97 <= b <= 122) else f"={b:02X}" for b in data)
    return f"=?utf-8?q?{quoted}?="


def _name_addr(name: str, addr: str) -> str:
    if not name:
        return addr
    if not name.isascii():
        return f"{_encoded_subject(name)} <{addr}>"
    return f'"{name}" <{addr}>' if "'" in name or "," in name else f"{name} <{addr}>"


class _Writer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.dkim_b = [_fold("b=" + _b64ish(rng, 342)) for _ in range(8)]
        self.bh = [_b64ish(rng, 43) + "=" for _ in range(8)]
        self.words = ("we", "the", "project", "will", "send", "report", "figures", "meeting", "please", "thanks",
                      "office", "schedule", "invoice", "review", "next", "week", "documents", "team", "update")

        # Drawing every word afresh made generation 5x slower; one paragraph per length will do.
        self.paragraphs: dict[int, str] = {}

    def paragraph(self, words: int) -> str:
        if words not in self.paragraphs:
            rng = self.rng
            text = " ".join(rng.choice(self.words) for _ in range(words)).capitalize() + "."
            self.paragraphs[words] = "\n".join(text[i:i + 72] for i in range(0, len(text), 72))
        return self.paragraphs[words]

    def received(self, sender_domain: str, when: datetime, hops: int) -> list[str]:
        rng, lines = self.rng, []
        stamp = format_datetime(when)
        lines.append("Return-Path: <{sender}>")
        lines.append(f"Delivered-To: {OFFICE}")
        lines.append(f"Received: from {AUTHSERV}\n\tby imap.example.com with LMTP\n\tid {_b64ish(rng, 22)}\n"
                     f"\t(envelope-from <{{sender}}>)\n\tfor <{OFFICE}>; {stamp}")
        for hop in range(hops):
            ip = f"203.0.113.{rng.randint(1, 254)}"
            lines.append(f"Received: from mail{hop}.{sender_domain} (mail{hop}.{sender_domain} [{ip}])\n"
                         f"\tby {AUTHSERV} (Postfix) with ESMTPS id {_b64ish(rng, 11).upper()}\n"
                         f"\tfor <{OFFICE}>; {stamp}")
        return lines

    def message(self, *, sender: tuple[str, str], to: Sequence[tuple[str, str]], subject: str, when: datetime,
                mid: str, body: str, inbound: bool, cc: Sequence[tuple[str, str]] = (),
                in_reply_to: str | None = None, references: Sequence[str] = (), extra: Sequence[str] = (),
                html: bool = True, auth: str = "pass") -> bytes:
        rng = self.rng
        name, addr = sender
        domain = addr.rsplit("@", 1)[1]
        head: list[str] = []
        if inbound:
            head += [line.replace("{sender}", addr) for line in self.received(domain, when, rng.randint(1, 2))]
            head.append(f"Authentication-Results: {AUTHSERV};\n\tdkim={auth} header.d={domain} header.s=s1;\n"
                        f"\tspf={auth} smtp.mailfrom={domain};\n\tdmarc={auth} header.from={domain}")
            head.append(f"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1;\n"
                        f"\tt={int(when.timestamp())}; h=from:to:subject:date:message-id;\n"
                        f"\tbh={rng.choice(self.bh)};\n\t{rng.choice(self.dkim_b)}")
        head.append(f"From: {_name_addr(name, addr)}")
        head.append("To: " + ", ".join(_name_addr(n, a) for n, a in to))
        if cc:
            head.append("Cc: " + ", ".join(_name_addr(n, a) for n, a in cc))
        head.append(f"Subject: {_encoded_subject(subject)}")
        head.append(f"Date: {format_datetime(when)}")
        head.append(f"Message-ID: {mid}")
        if in_reply_to:
            head.append(f"In-Reply-To: {in_reply_to}")
        if references:
            head.append("References: " + "\n ".join(references))
        head.extend(extra)
        head.append(f"User-Agent: {rng.choice(_MUAS)}" if not inbound or rng.random() < 0.5
                    else f"X-Mailer: {rng.choice(_MUAS)}")
        head.append("MIME-Version: 1.0")
        head.append("Content-Language: en-GB")
        if html:
            boundary = "------------" + _b64ish(rng, 24).replace("+", "0").replace("/", "1")
            text = body + "\n\n" + self.paragraph(rng.randint(20, 120)) + "\n"
            html_text = "<html><body><p>" + text.replace("\n\n", "</p><p>") + "</p></body></html>\n"
            head.append(f'Content-Type: multipart/alternative;\n boundary="{boundary}"')
            payload = (f"This is a multi-part message in MIME format.\n--{boundary}\n"
                       f"Content-Type: text/plain; charset=UTF-8; format=flowed\nContent-Transfer-Encoding: 8bit\n\n"
                       f"{text}\n--{boundary}\nContent-Type: text/html; charset=UTF-8\n"
                       f"Content-Transfer-Encoding: 8bit\n\n{html_text}\n--{boundary}--\n")
        else:
            head.append("Content-Type: text/plain; charset=UTF-8; format=flowed")
            head.append("Content-Transfer-Encoding: 8bit")
            payload = body + "\n"
        return ("\n".join(head) + "\n\n" + payload).encode("utf-8")


# ------------------------------------------------------------------------------------------
# The mailbox.


class _Generator:
    def __init__(self, clients: Sequence[ClientSpec], seed: int, end: datetime, span_days: int) -> None:
        self.rng = random.Random(seed)
        self.writer = _Writer(self.rng)
        self.clients = clients
        self.end = end
        self.start = end - timedelta(days=span_days)
        self.mails: list[Mail] = []
        self.counter = 0

    def mid(self, domain: str) -> str:
        self.counter += 1
        return f"<{self.rng.getrandbits(64):016x}.{self.counter}@{domain}>"

    def moment(self) -> datetime:
        seconds = self.rng.uniform(0, (self.end - self.start).total_seconds())
        return (self.start + timedelta(seconds=seconds)).replace(microsecond=0)

    def later(self, when: datetime, low_hours: float, high_hours: float) -> datetime:
        return (when + timedelta(hours=self.rng.uniform(low_hours, high_hours))).replace(microsecond=0)

    def add(self, folder: str, when: datetime, raw: bytes, kind: str, mid: str, **extra: object) -> None:
        if when < self.end:
            self.mails.append(Mail(folder, when, raw, kind, mid.strip("<>"), dict(extra)))

    def subject(self, client: ClientSpec | None = None) -> str:
        rng = self.rng
        topic = rng.choice(_TOPICS).format(q=rng.randint(1, 4), n=rng.randint(1000, 99999),
                                           day=rng.choice(("Monday", "Friday")), year=rng.choice((2025, 2026)))
        if client is not None and rng.random() < PROJECT_SHARE:
            number = int(client.id[1:])
            project = _PROJECTS[(number * 7 + rng.randint(0, 2)) % len(_PROJECTS)]  # three projects a client
            return f"{topic}: {project}"
        return topic

    def staff(self) -> tuple[str, str]:
        return ("Example Ltd", OFFICE) if self.rng.random() < 0.7 else self.rng.choice(STAFF)[1:]

    def client_person(self, client: ClientSpec) -> tuple[str, str]:
        addr = self.rng.choice(client.addresses)
        first, last = addr.split("@")[0].split(".")
        return f"{first.capitalize()} {last.capitalize().replace('ue', 'ü')}", addr

    # -- kinds of mail -------------------------------------------------------------------------

    def conversation(self) -> None:
        rng, w = self.rng, self.writer
        client = rng.choice(self.clients)
        subject, when = self.subject(client), self.moment()
        ours, person = self.staff(), self.client_person(client)
        cc = [self.client_person(client)] if len(client.addresses) > 1 and rng.random() < 0.2 else []
        thread_index = None
        extra: list[str] = []
        if rng.random() < 0.1:  # sent from Outlook: the client's Outlook threads by Thread-Index alone
            thread_index = bytes(rng.getrandbits(8) for _ in range(22))
            extra.append(f"Thread-Index: {base64.b64encode(thread_index).decode()}")
            extra.append(f"Thread-Topic: {subject}")
        mid = self.mid("example.com")
        body = f"Hello {person[0].split()[0]},\n\n{rng.choice(_QUESTIONS)}\n\nThank you,\n{ours[0]}"
        self.add("Sent", when, w.message(sender=ours, to=[person], cc=cc, subject=subject, when=when, mid=mid,
                                         body=body, inbound=False, extra=extra), "request", mid, client=client.id)
        refs = [mid]
        if rng.random() < 0.05:
            ooo_when = self.later(when, 0.001, 0.01)
            ooo = self.mid(client.domain)
            self.add("INBOX", ooo_when, w.message(
                sender=person, to=[ours], subject=f"Automatic reply: {subject}", when=ooo_when, mid=ooo,
                body="I am out of the office until Monday.", inbound=True, in_reply_to=mid, references=[mid],
                extra=["Auto-Submitted: auto-replied", "X-Auto-Response-Suppress: All"], html=False),
                "out-of-office", ooo, client=client.id)
        last = when
        for round_ in range(3):
            if rng.random() > (0.75 if round_ == 0 else 0.45):
                return  # the client did not answer (yet)
            last = self.later(last, 1, 96)
            reply = self.mid(client.domain)
            quote = "\n".join("> " + line for line in body.splitlines())
            reply_body = f"{rng.choice(_REPLIES)}\n\nOn {format_datetime(when)}, {ours[0]} wrote:\n{quote}"
            if thread_index is not None:  # Outlook: RE:, Thread-Index, no In-Reply-To or References
                index = base64.b64encode(thread_index + bytes(rng.getrandbits(8) for _ in range(5))).decode()
                raw = w.message(sender=person, to=[ours], subject=f"RE: {subject}", when=last, mid=reply,
                                body=reply_body, inbound=True, extra=[f"Thread-Index: {index}",
                                                                      f"Thread-Topic: {subject}"])
            else:
                raw = w.message(sender=person, to=[ours], cc=cc, subject=f"Re: {subject}", when=last, mid=reply,
                                body=reply_body, inbound=True, in_reply_to=refs[-1], references=refs)
            self.add("INBOX", last, raw, "client-reply", reply, client=client.id)
            refs = [*refs, reply]
            if rng.random() > 0.5:
                return
            last = self.later(last, 0.5, 48)
            follow = self.mid("example.com")
            asks = rng.random() < 0.5
            body = f"Hello {person[0].split()[0]},\n\n" + (rng.choice(_QUESTIONS) if asks else "Thank you, noted.")
            self.add("Sent", last, w.message(sender=ours, to=[person], cc=cc, subject=f"Re: {subject}", when=last,
                                             mid=follow, body=body, inbound=False, in_reply_to=refs[-1],
                                             references=refs), "follow-up", follow, client=client.id)
            refs = [*refs, follow]

    def statement(self) -> None:
        rng, w = self.rng, self.writer
        client = rng.choice(self.clients)
        when, ours, person = self.moment(), self.staff(), self.client_person(client)
        mid = self.mid("example.com")
        self.add("Sent", when, w.message(sender=ours, to=[person], subject=self.subject(client), when=when, mid=mid,
                                         body=f"Hello,\n\n{rng.choice(_STATEMENTS)}\n\n{ours[0]}", inbound=False),
                 "statement", mid, client=client.id)

    def client_starts(self) -> None:
        rng, w = self.rng, self.writer
        client = rng.choice(self.clients)
        when, person, subject = self.moment(), self.client_person(client), self.subject(client)
        mid = self.mid(client.domain)
        self.add("INBOX", when, w.message(sender=person, to=[("Example Ltd", OFFICE)], subject=subject, when=when,
                                          mid=mid, body="Hello,\n\nA quick question about our account.",
                                          inbound=True), "client-new", mid, client=client.id)
        if rng.random() < 0.8:
            answer_when = self.later(when, 0.5, 30)
            answer = self.mid("example.com")
            self.add("Sent", answer_when, w.message(
                sender=self.staff(), to=[person], subject=f"Re: {subject}", when=answer_when, mid=answer,
                body="Hello,\n\nThanks, all sorted.", inbound=False, in_reply_to=mid, references=[mid]),
                "our-answer", answer, client=client.id)

    def newsletter(self) -> None:
        rng, w = self.rng, self.writer
        domain = rng.choice(_LISTS)
        when, mid = self.moment(), self.mid(domain)
        extra = [f"List-Id: Weekly news <weekly.{domain}>", f"List-Unsubscribe: <https://{domain}/u/{rng.getrandbits(48):x}>,"
                 f" <mailto:unsubscribe@{domain}>", "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                 "Precedence: bulk", f"Feedback-ID: {rng.getrandbits(32)}:campaign:{domain}"]
        body = "\n\n".join(w.paragraph(rng.randint(60, 200)) for _ in range(rng.randint(3, 10)))
        self.add("INBOX", when, w.message(sender=("Newsletter", f"news@{domain}"), to=[("", OFFICE)],
                                          subject=f"This week at {domain.split('.')[1]}: {self.subject()}", when=when,
                                          mid=mid, body=body, inbound=True, extra=extra), "newsletter", mid)

    def stranger(self) -> None:
        rng, w = self.rng, self.writer
        domain = f"prospect{rng.randint(1, 5000)}.example"
        person = (f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", f"info@{domain}")
        when, subject, mid = self.moment(), f"Enquiry: {self.subject()}", self.mid(domain)
        self.add("INBOX", when, w.message(sender=person, to=[("", OFFICE)], subject=subject, when=when, mid=mid,
                                          body="Hello,\n\nDo you offer this service? What are your rates?",
                                          inbound=True, auth=rng.choice(("pass", "none", "fail"))), "stranger", mid)
        if rng.random() < 0.3:
            answer_when, answer = self.later(when, 1, 48), self.mid("example.com")
            self.add("Sent", answer_when, w.message(
                sender=self.staff(), to=[person], subject=f"Re: {subject}", when=answer_when, mid=answer,
                body="Hello,\n\nYes, our rates are attached.", inbound=False, in_reply_to=mid, references=[mid]),
                "stranger-answer", answer)

    def colleague(self) -> None:
        rng, w = self.rng, self.writer
        _, name, addr = rng.choice(STAFF)
        when, mid = self.moment(), self.mid("example.com")
        self.add("INBOX", when, w.message(sender=(name, addr), to=[("", OFFICE)], subject=f"Note: {self.subject()}",
                                          when=when, mid=mid, body="FYI, see below.", inbound=True, html=False),
                 "colleague", mid)

    def bounce(self) -> None:
        rng = self.rng
        client = rng.choice(self.clients)
        when, mid = self.moment(), self.mid(AUTHSERV)
        lost = f"former@{client.domain}"
        boundary = f"dsn-{rng.getrandbits(48):x}"
        body = (f"This is a MIME-encapsulated message.\n\n--{boundary}\nContent-Type: text/plain\n\n"
                f"Your message could not be delivered.\n\n--{boundary}\nContent-Type: message/delivery-status\n\n"
                f"Reporting-MTA: dns; {AUTHSERV}\n\nFinal-Recipient: rfc822; {lost}\nAction: failed\n"
                f"Status: 5.1.1\n\n--{boundary}\nContent-Type: text/rfc822-headers\n\nMessage-ID: <x@example.com>\n\n"
                f"--{boundary}--")
        raw = (f"Return-Path: <>\nFrom: Mail Delivery System <MAILER-DAEMON@{AUTHSERV}>\nTo: {OFFICE}\n"
               f"Subject: Undelivered Mail Returned to Sender\nDate: {format_datetime(when)}\nMessage-ID: {mid}\n"
               f"Auto-Submitted: auto-replied\nMIME-Version: 1.0\nContent-Type: multipart/report; "
               f'report-type=delivery-status;\n boundary="{boundary}"\n\n{body}\n').encode()
        self.add("INBOX", when, raw, "bounce", mid, client=client.id)


_KINDS = (("conversation", 50), ("statement", 8), ("client_starts", 8), ("newsletter", 18), ("stranger", 8),
          ("colleague", 6), ("bounce", 1))


def generate(count: int, clients: Sequence[ClientSpec], *, end: datetime, seed: int = 1,
             span_days: int = 330) -> list[Mail]:
    """About `count` messages (exactly `count`: the surplus of the last conversation is cut),
    dated over the `span_days` before `end`, each folder in arrival order."""
    generator = _Generator(clients, seed, end, span_days)
    names = [name for name, _ in _KINDS]
    weights = [weight for _, weight in _KINDS]
    while len(generator.mails) < count:
        getattr(generator, generator.rng.choices(names, weights)[0])()
    mails = sorted(generator.mails[:count], key=lambda m: (m.folder, m.when))
    return mails


def summary(mails: Iterable[Mail]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for mail in mails:
        counts[f"{mail.folder}:{mail.kind}"] = counts.get(f"{mail.folder}:{mail.kind}", 0) + 1
    return dict(sorted(counts.items()))


def check_sample(mails: Sequence[Mail], every: int = 97) -> int:
    """Parse every `every`-th message with the core parser; raise if one reads wrongly."""
    from daemon.core.mail import parse_message

    checked = 0
    for mail in mails[::every]:
        parsed = parse_message(mail.crlf())
        if parsed.message_id != mail.message_id:
            raise AssertionError(f"{mail.kind}: Message-ID read as {parsed.message_id!r}, not {mail.message_id!r}")
        if mail.kind in ("out-of-office", "newsletter", "bounce") and not parsed.auto_reply:
            raise AssertionError(f"{mail.kind} {mail.message_id} not read as automatic")
        if mail.kind in ("client-reply", "request") and parsed.auto_reply:
            raise AssertionError(f"{mail.kind} {mail.message_id} read as automatic: {parsed.auto_reply}")
        checked += 1
    return checked


def now_utc() -> datetime:
    return datetime.fromtimestamp(int(time.time()), UTC)
