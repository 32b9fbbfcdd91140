"""The settings adapter: the example config, every class of mistake with its line, secrets, docs."""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path

import pytest

from daemon.adapters.settings import full_load
from daemon.adapters.settings import schema as settings_schema
from daemon.adapters.settings.load import Problem, SettingsError, config_key_paths, load_settings
from daemon.adapters.settings.secret_files import Secrets, check_runtime, load_secrets
from daemon.core.model import LadderStep, Policy, parse_duration

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"
DOCS = REPO / "docs" / "configuration.md"
CONFIGS = Path(__file__).resolve().parent / "data" / "configs"
MINIMAL = (CONFIGS / "minimal.yaml").read_text()
TOKEN_KEY = "k" * 40
# Configs are read with libyaml's parser when PyYAML has it, else the pure-Python one: every test
# here runs with each parser available, so both give the same values, problems and lines.
PARSERS = {"libyaml": full_load.FAST_LOADER, "pure-python": None}


@pytest.fixture(autouse=True, params=[name for name, loader in PARSERS.items() if name == "pure-python" or loader])
def yaml_parser(request, monkeypatch) -> str:
    monkeypatch.setattr(full_load, "FAST_LOADER", PARSERS[request.param])
    return request.param


def problems_of(path: Path | str, environ: dict | None = None) -> list[Problem]:
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ=environ or {})
    return caught.value.problems


def marked_line(path: Path) -> int:
    """The line of a sample that carries the `# <- problem` marker."""
    (line,) = [n for n, text in enumerate(path.read_text().splitlines(), 1) if "# <- problem" in text]
    return line


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------------------------
# Good configurations.


def test_example_config_validates_with_the_values_it_documents():
    settings = load_settings(EXAMPLE, environ={})
    assert settings.company == "Example Ltd"
    assert settings.mailbox.address == "office@example.com"
    assert settings.mailbox.aliases == ("info@example.com",)
    assert [p.id for p in settings.people] == ["alice", "bob"]
    assert [c.id for c in settings.clients] == ["acme", "globex"]
    assert {d for c in settings.clients for d in c.domains} == {"acme.example", "globex.example"}
    assert settings.working_hours.timezone == "Europe/London"
    assert settings.working_hours.holidays.country == "GB"
    assert settings.working_hours.holidays.subdivision == "ENG"
    assert date(2026, 12, 24) in settings.working_hours.holidays.extra
    assert settings.review.reviewers == ("bob",)
    assert settings.mailbox.imap.password_file == "/run/credentials/parting.service/imap-password"
    assert settings.review.token_key_file == "/run/credentials/parting.service/token-key"


def test_named_policy_merges_unresponsive_key_by_key_and_keeps_the_rest():
    settings = load_settings(EXAMPLE, environ={})
    patient = settings.policy_for(settings.client("globex"))
    assert patient.name == "patient"
    assert patient.ignored_after == parse_duration("5 business days")
    assert patient.unresponsive.within == parse_duration("60 days")
    assert patient.unresponsive.ignored_messages == settings.policy.unresponsive.ignored_messages
    assert patient.unresponsive.or_silent_for == settings.policy.unresponsive.or_silent_for
    assert patient.ladder == settings.policy.ladder
    assert settings.policy_for(settings.client("acme")) is settings.policy  # `policy: default`


def test_named_policy_ladder_replaces_the_default_ladder_whole(tmp_path):
    text = MINIMAL + "policies:\n  gentle:\n    ladder: [{after_ignored: 2, action: nudge}]\n"
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.policies["gentle"].ladder == (LadderStep(2, "nudge"),)


def test_minimal_config_takes_the_model_defaults(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL), environ={})
    imap, smtp = settings.mailbox.imap, settings.mailbox.smtp
    assert (imap.port, imap.security, imap.username) == (993, "tls", "office@example.com")
    assert (smtp.port, smtp.security, smtp.username) == (587, "starttls", None)
    assert (imap.lookback_days, imap.connect_timeout, imap.read_timeout) == (90, 30.0, 120.0)
    assert imap.idle_renew == parse_duration("25 minutes")
    assert (smtp.data_timeout, smtp.max_per_hour, smtp.max_attempts) == (600.0, 60, 6)
    assert settings.policy == Policy()
    assert settings.policies == {}
    assert settings.mode == "live" and settings.templates_dir is None
    assert settings.working_hours.days == (0, 1, 2, 3, 4)
    assert settings.review.require_authentication is True
    # relative paths are taken from the config's folder
    assert settings.database == str(tmp_path / "parting.db")
    assert settings.mailbox.imap.password_file == str(tmp_path / "imap-password")


@pytest.mark.parametrize("security, port", [("tls", 465), ("starttls", 587)])
def test_smtp_port_defaults_by_security(tmp_path, security, port):
    text = MINIMAL.replace("smtp: {host: smtp.example.com}", f"smtp: {{host: smtp.example.com, security: {security}}}")
    assert load_settings(write(tmp_path, text), environ={}).mailbox.smtp.port == port


def test_values_yaml_would_misread_are_read_as_written(tmp_path):
    text = (MINIMAL.replace("address: office@example.com", "address: [Office@Example.com, Info@Example.com]")
            .replace("  smtp: {host: smtp.example.com}", "  smtp: {host: smtp.example.com}\n  append_to_sent: false")
            + "working_hours: {start: 8:30, end: 17:30}\n")  # unquoted: YAML 1.1 numbers 510 and 1050
    settings = load_settings(write(tmp_path, text), environ={})
    assert settings.working_hours.start == time(8, 30)
    assert settings.working_hours.end == time(17, 30)
    assert settings.mailbox.address == "office@example.com"
    assert settings.mailbox.aliases == ("info@example.com",)
    assert settings.mailbox.append_to_sent == "false"


def test_dry_run_mode_needs_its_folder_and_resolves_it(tmp_path):
    text = MINIMAL + "mode: dry_run\n"
    (problem,) = problems_of(write(tmp_path, text))
    assert (problem.key_path, problem.line) == ("dry_run.folder", MINIMAL.count("\n") + 1)
    settings = load_settings(write(tmp_path, text + "dry_run: {folder: outbox}\n"), environ={})
    assert settings.dry_run_dir == str(tmp_path / "outbox")


# --------------------------------------------------------------------------------------------
# Each class of mistake: its exact message, on the line the marker names.

SAMPLES = [
    ("unknown_key.yaml", "mailbox.imap.pasword_env", "unknown key (did you mean 'password_env'?)"),
    ("wrong_type.yaml", "mailbox.smtp.max_per_hour", "expected a whole number, got 'lots'"),
    ("missing_required.yaml", "state.database",
     "required key is missing: SQLite database file parting keeps its state in."),
    ("bad_duration.yaml", "review.token_ttl",
     "'3 fortnights' is not a duration: write a number and a unit, such as '24 hours', "
     "'3 business days', '30 days' or '10 minutes'"),
    ("unknown_owner.yaml", "clients[0].owner", "'carl' is not a person in people"),
    ("only_reviewer.yaml", "clients[0].owner",
     "alice owns acme and is its only reviewer: add another reviewer to review.reviewers"),
    ("duplicate_address.yaml", "clients[1].addresses[1]",
     "jane@shared.example already belongs to client acme: it can belong to one client only"),
    ("bad_timezone.yaml", "clients[0].timezone",
     "'Europe/Londn' is not a time zone (did you mean 'Europe/London'?): use an IANA name such as "
     "'Europe/London' or 'America/New_York'"),
    ("unknown_holiday_country.yaml", "working_hours.holidays.country",
     "'ZZ' is not a country known to the holidays package: use an ISO 3166 code such as 'GB', 'US' or 'DE'"),
    ("holiday_1890.yaml", "working_hours.holidays.extra[1]",
     "1890-12-24 is a holiday outside any plausible year (1890): write a date between 2000 and 2100"),
    ("zero_ignored_after.yaml", "policy.ignored_after",
     "must not be zero: every request would count as ignored the moment it is sent"),
    ("ladder_out_of_order.yaml", "policy.ladder[1].after_ignored",
     "must be greater than the step before it (2): the ladder is climbed in order, one step at a time"),
    ("inline_password.yaml", "mailbox.imap.password",
     "secrets are never written in the config: use password_file (a file, or a systemd credential name) "
     "or password_env"),
    ("security_none_remote.yaml", "mailbox.smtp.security",
     "security none sends passwords and mail unencrypted, so it is allowed only to a loopback host "
     "(127.0.0.1, ::1, localhost), not 'smtp.example.com': use tls or starttls"),
    ("never_fires.yaml", "policy.unresponsive.within",
     "this policy can never fire: a request counts as ignored only after 5 days, so none can be ignored "
     "inside a window of 2 days; make unresponsive.within longer than ignored_after"),
]


@pytest.mark.parametrize("name, key_path, message", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_bad_sample_gives_its_precise_message_on_the_right_line(name, key_path, message):
    path = CONFIGS / name
    (problem,) = problems_of(path)
    assert problem == Problem(str(path), marked_line(path), key_path, message)
    assert str(problem) == f"{path}:{marked_line(path)}: {key_path}: {message}"


def test_broken_yaml_is_one_problem_on_the_line_yaml_reports():
    path = CONFIGS / "broken_yaml.yaml"
    (problem,) = problems_of(path)
    assert problem.line == marked_line(path)
    assert str(problem) == f"{path}:{marked_line(path)}: YAML syntax error: mapping values are not allowed here"


def test_yaml_libyaml_refuses_is_read_as_the_pure_python_parser_reads_it(tmp_path):
    # No space after a colon inside {...}: PyYAML's own parser reads on, libyaml stops there.
    text = MINIMAL.replace("domains: [acme.example]", "domains:[acme.example]")
    assert load_settings(write(tmp_path, text), environ={}).clients[0].domains == ("acme.example",)
    path = write(tmp_path, text.replace("company: {name: Example Ltd}", "company: {name:, Example Ltd}"))
    assert problems_of(path) == [
        Problem(str(path), 2, "company.name", "needs a value: Company name, used in emails."),
        Problem(str(path), 2, "company.Example Ltd", "unknown key; the keys here are: name"),
    ]


def test_inline_secret_value_is_never_echoed():
    error = SettingsError(problems_of(CONFIGS / "inline_password.yaml"))
    assert "hunter2" not in str(error) and "hunter2" not in repr(error)


def test_many_problems_are_reported_at_once_in_line_order():
    path = CONFIGS / "many_problems.yaml"
    with pytest.raises(SettingsError) as caught:
        load_settings(path, environ={})
    found = [(p.line, p.key_path) for p in caught.value.problems]
    assert found == [
        (5, "mailbox.imap.lookback"),
        (9, "people[0].email"),
        (12, "clients[0].owner"),
        (13, "working_hours.end"),
        (18, "review.aprovals_required"),
    ]
    assert str(caught.value).splitlines() == [str(p) for p in caught.value.problems]
    assert str(caught.value).splitlines()[-1] == (
        f"{path}:18: review.aprovals_required: unknown key (did you mean 'approvals_required'?)")


@pytest.mark.parametrize("content, message", [
    (None, "no such file: copy config.example.yaml there and edit it"),
    ("", "the file is empty: start from config.example.yaml"),
    ("# only a comment\n", "the file is empty: start from config.example.yaml"),
])
def test_missing_or_empty_file_is_one_problem(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content)
    assert problems_of(path) == [Problem(str(path), 1, "", message)]


def test_a_folder_instead_of_a_file_is_one_problem(tmp_path):
    (problem,) = problems_of(tmp_path)
    assert problem.message == "this is a folder: give the path of the config file"


@pytest.mark.parametrize("addition, key_path, message", [
    ("policy: {ignored_after: 3 days}\npolicy: {ignored_after: 4 days}\n", "policy",
     "written twice (first on line {first})"),
    ("mailbox_x: 1\n", "mailbox_x", "unknown key (did you mean 'mailbox'?)"),
    ("people_list: []\n", "people_list", "unknown key (did you mean 'people'?)"),
    ("policies:\n  default: {}\n", "policies.default", "'default' names the top-level policy: choose another name"),
    ("working_hours: {holidays: {country: GB, subdivision: XYZ}}\n", "working_hours.holidays.subdivision",
     "GB has no subdivision 'XYZ'; known: ENG, NIR, SCT, WLS"),
    ("working_hours: {days: [mon, tues]}\n", "working_hours.days[1]",
     "expected one of mon, tue, wed, thu, fri, sat, sun, got 'tues' (did you mean 'tue'?)"),
    ("working_hours: {start: '25:00'}\n", "working_hours.start",
     "'25:00' is not a time of day: write it as \"09:00\" (24-hour clock)"),
    ("policy: {unresponsive: {ignored_messages: 0}}\n", "policy.unresponsive.ignored_messages",
     "must be at least 1, not 0: with none needed every client would be unresponsive at once, so the "
     "policy could never be fair"),
    ("policy:\n  ladder:\n    - {after_ignored: 1, action: nudge}\n    - {after_ignored: 2, action: nudge}\n",
     "policy.ladder[1].action", "nudge is already step 0: each action appears at most once"),
    ("policy: {ladder: [{after_ignored: 1, action: shout}]}\n", "policy.ladder[0].action",
     "expected one of nudge, notify_owner, draft_release, got 'shout'"),
    ("policies:\n  quick: {ignored_after: 40 days}\n", "policies.quick.ignored_after",
     "this policy can never fire: a request counts as ignored only after 40 days, so none can be ignored "
     "inside a window of 30 days; make unresponsive.within longer than ignored_after"),
    ("followup: {phone_call_after: 24}\n", "followup.phone_call_after",
     "a duration needs a unit, such as '24 hours' or '24 business days'"),
])
def test_more_mistakes_each_name_key_line_and_fix(tmp_path, addition, key_path, message):
    text = MINIMAL + addition
    first = MINIMAL.count("\n") + 1
    (problem,) = problems_of(write(tmp_path, text))
    assert problem.key_path == key_path
    assert problem.message == message.format(first=first)
    assert problem.line >= first  # on the added lines, never somewhere else


IMAP_LINE = "  imap: {host: imap.example.com, password_file: imap-password}"
SMTP_LINE = "  smtp: {host: smtp.example.com}"
CLIENTS = "clients:\n  - {id: acme, name: Acme Ltd, contact: Jane Doe, domains: [acme.example], owner: alice}"


@pytest.mark.parametrize("old, new, line, key_path, message", [
    (IMAP_LINE, "  imap: {host: imap.example.com, password_file: imap-password, idle_renew: 30 minutes}",
     5, "mailbox.imap.idle_renew",
     "must be at most 29 minutes, not 30 minutes: servers may end an IDLE after 30 minutes (RFC 2177)"),
    (IMAP_LINE, "  imap: {host: imap.example.com}", 5, "mailbox.imap",
     "needs password_file or password_env: the password to log in with"),
    (IMAP_LINE, "  imap: {host: imap.example.com, password_file: p, timeouts: {read: 2 business hours}}",
     5, "mailbox.imap.timeouts.read",
     "'2 business hours' is business time; this is wall-clock time, e.g. '30 seconds'"),
    (SMTP_LINE, "  smtp: {host: 127.0.0.1, security: none, port: 70000}", 6, "mailbox.smtp.port",
     "must be between 1 and 65535, not 70000"),
    (SMTP_LINE, "  smtp: {host: smtp.example.com, username: office}", 6, "mailbox.smtp.username",
     "a username but no password: add password_file or password_env, or remove username for a server "
     "without login"),
    ("email: bob@example.com", "email: Alice@Example.com", 10, "people[1].email",
     "alice@example.com is already the email of people[0]"),
    ("domains: [acme.example]", "domains: ['@acme.example']", 12, "clients[0].domains[0]",
     "write the domain alone, as 'acme.example'"),
    ("domains: [acme.example]", "domains: [example.com]", 12, "clients[0].domains[0]",
     "example.com is ours (the mailbox or a member of staff), not the client's"),
    ("domains: [acme.example]", "domains: []", 12, "clients[0]",
     "client acme needs at least one address or domain, or no mail can be recognised as theirs"),
    ("owner: alice}", "owner: alice, policy: patient}", 12, "clients[0].policy",
     "'patient' is not a policy in policies (there are no policies)"),
    ("  authserv_id: mx.example.com\n", "", 13, "review.authserv_id",
     "required while require_authentication is true: the authserv-id that your receiving server writes "
     "in Authentication-Results, e.g. mx.example.com"),
    ("  reviewers: [bob]", "  reviewers: [bob, zoe]", 14, "review.reviewers[1]", "'zoe' is not a person in people"),
    ("  reviewers: [bob]", "  reviewers: bob", 14, "review.reviewers", "expected a list of id, got 'bob'"),
    (CLIENTS, "clients: {acme: alice}", 11, "clients", "expected a list, got a mapping of keys"),
])
def test_rules_across_keys(tmp_path, old, new, line, key_path, message):
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    assert problems_of(path) == [Problem(str(path), line, key_path, message)]


def test_a_missing_section_is_one_problem_not_a_cascade(tmp_path):
    text = MINIMAL.split("review:")[0]
    path = write(tmp_path, text)
    assert problems_of(path) == [
        Problem(str(path), 1, "review", "required key is missing: Two-person review of release emails.")]


def test_holiday_codes_are_read_in_any_case(tmp_path):
    text = MINIMAL + "working_hours: {holidays: {country: gb, subdivision: eng}}\n"
    calendar = load_settings(write(tmp_path, text), environ={}).working_hours.holidays
    assert (calendar.country, calendar.subdivision) == ("GB", "ENG")


def test_loopback_hosts_may_use_plain_text(tmp_path):
    for host in ("127.0.0.1", "localhost", "::1", "127.8.9.10"):
        text = MINIMAL.replace("smtp: {host: smtp.example.com}", f"smtp: {{host: '{host}', security: none}}")
        assert load_settings(write(tmp_path, text), environ={}).mailbox.smtp.port == 25


def test_approvals_required_counts_reviewers_besides_the_owner(tmp_path):
    text = MINIMAL.replace("  reviewers: [bob]", "  reviewers: [alice, bob]\n  approvals_required: 2")
    (problem,) = problems_of(write(tmp_path, text))
    assert problem.message == ("acme needs 2 reviewers besides its owner alice, but review.reviewers has 1 "
                               "(bob): add reviewers or lower review.approvals_required")


def test_a_ladder_step_beyond_the_unresponsive_count_is_allowed(tmp_path):
    text = MINIMAL + ("policy:\n  unresponsive: {ignored_messages: 2}\n"
                      "  ladder: [{after_ignored: 5, action: draft_release}]\n")
    assert load_settings(write(tmp_path, text), environ={}).policy.ladder == (LadderStep(5, "draft_release"),)


# --------------------------------------------------------------------------------------------
# Secrets.


def minimal_with_secret_files(tmp_path: Path, **texts: str) -> Path:
    for name, text in texts.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o600)
    return write(tmp_path, MINIMAL)


def test_secrets_from_files_next_to_the_config(tmp_path):
    path = minimal_with_secret_files(tmp_path, **{"imap-password": "s3cret pass\n", "token-key": TOKEN_KEY + "\n"})
    secrets = load_secrets(load_settings(path, environ={}), environ={})
    assert secrets == Secrets("s3cret pass", None, TOKEN_KEY.encode(), ())


def test_secrets_from_credentials_directory_by_relative_name(tmp_path):
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "imap-password").write_text("from-systemd")
    (credentials / "token-key").write_text(TOKEN_KEY)
    environ = {"CREDENTIALS_DIRECTORY": str(credentials)}
    settings = load_settings(write(tmp_path, MINIMAL), environ=environ)
    assert settings.mailbox.imap.password_file == str(credentials / "imap-password")
    assert settings.database == str(tmp_path / "parting.db")  # plain paths stay beside the config
    secrets = load_secrets(settings, environ=environ)
    assert (secrets.imap_password, secrets.token_key) == ("from-systemd", TOKEN_KEY.encode())


def test_secrets_from_environment(tmp_path):
    text = (MINIMAL.replace("password_file: imap-password", "password_env: IMAP_PASSWORD")
            .replace("smtp: {host: smtp.example.com}", "smtp: {host: smtp.example.com, username: office, "
                     "password_env: SMTP_PASSWORD}")
            .replace("token_key_file: token-key", "token_key_env: PARTING_TOKEN_KEY"))
    environ = {"IMAP_PASSWORD": "imap-pw", "SMTP_PASSWORD": "smtp-pw\n", "PARTING_TOKEN_KEY": TOKEN_KEY}
    secrets = load_secrets(load_settings(write(tmp_path, text), environ={}), environ=environ)
    assert secrets.imap_password == "imap-pw"
    assert secrets.smtp_password == "smtp-pw"
    assert secrets.token_key == TOKEN_KEY.encode()


def test_every_unusable_secret_is_named_with_its_fix(tmp_path):
    (tmp_path / "token-key").mkdir()  # tests run as root: a folder is unreadable as a file for anyone
    path = write(tmp_path, MINIMAL)
    settings = load_settings(path, environ={})
    with pytest.raises(SettingsError) as caught:
        load_secrets(settings, environ={})
    imap_line = MINIMAL.splitlines().index("  imap: {host: imap.example.com, password_file: imap-password}") + 1
    token_line = MINIMAL.splitlines().index("  token_key_file: token-key") + 1
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{imap_line}: mailbox.imap.password_file: cannot read {tmp_path}/imap-password: no such file; "
        "create it with the IMAP password on one line, or point mailbox.imap.password_file at the right file",
        f"{path}:{token_line}: review.token_key_file: cannot read {tmp_path}/token-key: it is a folder; "
        "point review.token_key_file at the file inside it",
    ]


@pytest.mark.parametrize("imap_password, token_key, key_path, message", [
    ("\n", TOKEN_KEY, "mailbox.imap.password_file", "{dir}/imap-password is empty; write the IMAP password into it"),
    ("pw", "short-key\n", "review.token_key_file",
     "the token key is 9 bytes; it must be at least 32: make one with `head -c 48 /dev/urandom | base64 > token-key`"),
])
def test_empty_password_and_short_token_key_are_refused(tmp_path, imap_password, token_key, key_path, message):
    path = minimal_with_secret_files(tmp_path, **{"imap-password": imap_password, "token-key": token_key})
    with pytest.raises(SettingsError) as caught:
        load_secrets(load_settings(path, environ={}), environ={})
    (problem,) = caught.value.problems
    assert (problem.key_path, problem.message) == (key_path, message.format(dir=tmp_path))
    assert "short-key" not in str(caught.value)


def test_unset_environment_variable_is_named(tmp_path):
    text = MINIMAL.replace("password_file: imap-password", "password_env: IMAP_PASSWORD")
    minimal_with_secret_files(tmp_path, **{"token-key": TOKEN_KEY})
    with pytest.raises(SettingsError) as caught:
        load_secrets(load_settings(write(tmp_path, text), environ={}), environ={})
    (problem,) = caught.value.problems
    assert problem.message == ("environment variable IMAP_PASSWORD is not set; give the service the IMAP "
                               "password in it (systemd EnvironmentFile=) or use mailbox.imap.password_file")


def test_secret_readable_by_others_gives_a_warning(tmp_path):
    path = minimal_with_secret_files(tmp_path, **{"imap-password": "pw", "token-key": TOKEN_KEY})
    (tmp_path / "imap-password").chmod(0o644)
    secrets = load_secrets(load_settings(path, environ={}), environ={})
    assert secrets.warnings == (f"{tmp_path}/imap-password (mailbox.imap.password_file) can be read by other "
                                "users; chmod 600 it or use LoadCredential=",)


def test_secrets_never_appear_in_str_or_repr(tmp_path):
    path = minimal_with_secret_files(tmp_path, **{"imap-password": "hunter2-imap", "token-key": TOKEN_KEY})
    secrets = load_secrets(load_settings(path, environ={}), environ={})
    for shown in (str(secrets), repr(secrets), f"{secrets}", str([secrets])):
        assert "hunter2-imap" not in shown and TOKEN_KEY not in shown
    assert "imap_password='***'" in repr(secrets) and "smtp_password=None" in repr(secrets)


# --------------------------------------------------------------------------------------------
# What `run` needs from the machine.


def test_check_runtime_accepts_writable_folders(tmp_path):
    settings = load_settings(write(tmp_path, MINIMAL + "mode: dry_run\ndry_run: {folder: .}\n"), environ={})
    assert check_runtime(settings) == []


def test_check_runtime_names_missing_folders_with_their_lines(tmp_path):
    text = MINIMAL.replace("state: {database: parting.db}", "state: {database: missing/parting.db}")
    text += "mode: dry_run\ndry_run:\n  folder: nowhere\ntemplates: {dir: no-templates}\n"
    path = write(tmp_path, text)
    problems = check_runtime(load_settings(path, environ={}))
    lines = text.splitlines()
    assert [(p.line, p.key_path) for p in problems] == [
        (lines.index("state: {database: missing/parting.db}") + 1, "state.database"),
        (lines.index("  folder: nowhere") + 1, "dry_run.folder"),
        (lines.index("templates: {dir: no-templates}") + 1, "templates.dir"),
    ]
    assert problems[0].message.startswith(f"the folder {tmp_path}/missing does not exist; create it")


# --------------------------------------------------------------------------------------------
# One schema: the example sets every key and the docs describe every key.


def test_every_key_the_loader_accepts_is_set_in_the_example():
    written = set(config_key_paths(EXAMPLE))
    missing = [path for path in settings_schema.accepted_key_paths() if path not in written]
    assert missing == [], f"add these keys, commented, to config.example.yaml: {missing}"


def test_every_key_in_the_example_is_documented():
    documented = set(re.findall(r"`([^`\n]+)`", DOCS.read_text()))
    undocumented = [path for path in config_key_paths(EXAMPLE) if path not in documented]
    assert undocumented == [], f"document these keys in docs/configuration.md: {undocumented}"


def test_docs_reference_matches_the_schema():
    reference = DOCS.read_text().split("## Reference", 1)[1]
    assert settings_schema.reference_markdown() in reference, (
        "regenerate the reference: python -m daemon.adapters.settings.schema")


def test_canonical_key_paths_fold_list_indexes_and_policy_names():
    assert settings_schema.canonical_key_path("clients[3].owner") == "clients[].owner"
    assert settings_schema.canonical_key_path("policies.patient") == "policies.<name>"
    assert settings_schema.canonical_key_path("policies.patient.ladder[0].action") == "policy.ladder[].action"


def test_only_the_settings_adapter_imports_yaml():
    importers = [path.relative_to(REPO) for path in (REPO / "daemon").rglob("*.py")
                 if re.search(r"^\s*(import yaml|from yaml)", path.read_text(), re.MULTILINE)]
    assert sorted(importers) == [Path("daemon/adapters/settings/full_load.py"),
                               Path("daemon/adapters/settings/reader.py")]


def test_names_that_reach_mail_headers_must_be_one_line(tmp_path) -> None:
    """Company, staff and client names go into From, To and Subject: a raw or RFC 2047-encoded
    line break there could forge headers, so the config is refused with the line and key."""
    text = (CONFIGS / "minimal.yaml").read_text()
    text = text.replace("name: Acme Ltd", "name: \"Acme =?UTF-8?Q?Ltd=0ABcc:_x@evil.example?=\"")
    text = text.replace("name: Bob Jones", "name: \"Bob\\r\\nBcc: x@evil.example\"")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    message = str(error.value)
    assert ": clients[0].name: cannot go into an email header" in message
    assert ": people[1].name: cannot go into an email header" in message
