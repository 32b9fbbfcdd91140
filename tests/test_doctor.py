"""`parting doctor` against real servers: a private Dovecot and an SMTP sink on loopback.

Each test writes a healthy deployment with harness.write_config, breaks one thing, and runs the
real command line (click's CliRunner); the checks it reports, their fixes and the exit status
are what a person setting parting up relies on.
"""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mailfactory as mf
import pytest
import yaml
from click.testing import CliRunner, Result
from harness import write_config
from servers import DovecotServer, SmtpSink

from daemon.adapters.store import SCHEMA_VERSION, Store
from daemon.adapters.store.schema import set_version
from daemon.cli import cli
from daemon.queries.doctor import Check, run_checks

ALL_CHECKS = ["config", "IMAP password", "token key", "database", "IMAP login", "inbox folder",
              "Sent folder", "IMAP IDLE", "colleagues", "SMTP server", "templates", "mode"]
SENT_FIX = "create a Sent folder or name it in mailbox.imap.folders.sent"


@pytest.fixture
def config(tmp_path: Path, dovecot: DovecotServer, smtp_sink: SmtpSink) -> Path:
    path = write_config(tmp_path / "deploy", dovecot, smtp_sink)
    for person in ("alice", "bob", "carol"):  # each colleague wrote lately, through our own server
        send_from(dovecot, f"{person}@example.com", mf.auth_results("example.com"))
    return path


def send_from(dovecot: DovecotServer, sender: str, auth: str | None = None, **headers: str) -> None:
    stamps = {**({"Authentication-Results": auth} if auth else {}), **headers}
    mf.deliver(dovecot, "INBOX", mf.build(sender=sender, to="office@example.com", subject="Hello", body="Hi\n",
                                          when=datetime.now(UTC) - timedelta(days=1), mid=mf.message_id(sender.replace("@", ".") + str(len(headers))),
                                          headers=stamps))


def doctor(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["doctor", "--config", str(config), *args], terminal_width=100)


def checks_of(result: Result) -> dict[str, dict]:
    return {check["name"]: check for check in json.loads(result.stdout)["checks"]}


def line_of(result: Result, name: str) -> str:
    """The report line of one check (its mark, name and first line of detail)."""
    return next(line for line in result.stdout.splitlines() if line[2:].startswith(name + " "))


def fix_of(result: Result, name: str) -> str:
    lines = result.stdout.splitlines()
    start = lines.index(line_of(result, name))
    return next(line for line in lines[start + 1:] if line.startswith("    fix: "))[len("    fix: "):]


def tweak(config: Path, change: Callable[[dict], None]) -> None:
    data = yaml.safe_load(config.read_text())
    change(data)
    config.write_text(yaml.safe_dump(data, sort_keys=False))


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ------------------------------------------------------------------------------ healthy


def test_a_healthy_deployment_passes_every_check(config: Path, dovecot: DovecotServer) -> None:
    result = doctor(config)

    assert result.exit_code == 0, result.output
    report = [line for line in result.stdout.splitlines() if not line.startswith(" ")]  # not continuations
    assert [line[0] for line in report[:-1]] == ["✓"] * len(ALL_CHECKS)
    assert [line[2:].split("  ")[0].strip() for line in report[:-1]] == ALL_CHECKS
    assert report[-1] == f"All {len(ALL_CHECKS)} checks passed."
    assert f"office@example.com at 127.0.0.1:{dovecot.port}" in line_of(result, "IMAP login")
    assert "'Sent' (found by auto)" in line_of(result, "Sent folder")
    assert "will be created by `parting run`" in line_of(result, "database")
    assert "fix:" not in result.stdout


async def test_run_checks_reports_the_checks_in_order(config: Path) -> None:
    checks = await run_checks(config)

    assert [check.name for check in checks] == ALL_CHECKS
    assert all(check.ok and check.fix is None and not check.warning for check in checks)


def test_json_shape(config: Path) -> None:
    result = doctor(config, "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"ok", "checks"} and data["ok"] is True
    assert [check["name"] for check in data["checks"]] == ALL_CHECKS
    for check in data["checks"]:
        assert set(check) == {"name", "ok", "detail", "fix", "warning"}
        assert check["ok"] is True and check["fix"] is None and isinstance(check["detail"], str)


def test_an_existing_database_is_checked_without_being_changed(config: Path) -> None:
    database = config.parent / "parting.db"
    Store.open(database).close()
    before = hashlib.sha256(database.read_bytes()).hexdigest()

    result = doctor(config)

    assert result.exit_code == 0, result.output
    assert f"schema version {SCHEMA_VERSION}, integrity ok" in line_of(result, "database")
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_dry_run_passes_with_a_warning_that_nothing_is_sent(config: Path) -> None:
    outgoing = config.parent / "outgoing"
    outgoing.mkdir()
    tweak(config, lambda data: data.update(mode="dry_run", dry_run={"folder": str(outgoing)}))

    result = doctor(config)

    assert result.exit_code == 0, result.output
    assert line_of(result, "mode").startswith("! mode")
    assert "nothing is sent" in line_of(result, "mode")
    assert checks_of(doctor(config, "--json"))["mode"] == {
        "name": "mode", "ok": True, "warning": True, "fix": None,
        "detail": f"dry_run: nothing is sent; outgoing mail is written to {outgoing} as .eml files"}


# ------------------------------------------------------------------------------ IMAP


def test_a_wrong_imap_password_fails_the_login_with_the_precise_fix(config: Path, dovecot: DovecotServer) -> None:
    password_file = config.parent / "imap-password"
    password_file.write_text("not-the-password-41\n")

    result = doctor(config)

    assert result.exit_code == 1
    assert line_of(result, "IMAP login").startswith("✗ IMAP login")
    assert fix_of(result, "IMAP login").startswith(
        f"check the password in {password_file} (mailbox.imap.password_file)")
    for later in ("inbox folder", "Sent folder", "IMAP IDLE"):
        assert line_of(result, later).endswith("skipped: needs IMAP login")
    assert line_of(result, "SMTP server").startswith("✓")  # independent checks still run
    both = result.stdout + result.stderr + doctor(config, "--json").stdout
    assert "not-the-password-41" not in both and dovecot.password not in both


def test_a_dovecot_without_a_sent_folder_fails_the_sent_check(
        tmp_path: Path, dovecot_without_sent: DovecotServer, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path / "deploy", dovecot_without_sent, smtp_sink)

    result = doctor(config)

    assert result.exit_code == 1
    assert line_of(result, "Sent folder").startswith("✗ Sent folder")
    assert "\\Sent" in line_of(result, "Sent folder")
    assert fix_of(result, "Sent folder") == SENT_FIX
    assert line_of(result, "inbox folder").startswith("✓")


def test_a_named_sent_folder_that_does_not_exist_fails_the_sent_check(config: Path) -> None:
    tweak(config, lambda data: data["mailbox"]["imap"].update(folders={"inbox": "INBOX", "sent": "Outbox"}))

    checks = checks_of(doctor(config, "--json"))

    assert checks["Sent folder"]["ok"] is False
    assert "'Outbox'" in checks["Sent folder"]["detail"]
    assert checks["Sent folder"]["fix"] == SENT_FIX


def test_an_unreachable_imap_server_fails_the_login_and_names_the_settings(config: Path) -> None:
    port = closed_port()
    tweak(config, lambda data: data["mailbox"]["imap"].update(port=port))

    checks = checks_of(doctor(config, "--json"))

    assert checks["IMAP login"]["ok"] is False
    assert f"127.0.0.1:{port}" in checks["IMAP login"]["detail"]
    assert f"port ({port})" in checks["IMAP login"]["fix"]


# ------------------------------------------------------------------------------ credentials


@pytest.mark.parametrize("breakage, detail", [
    (lambda file: (file.unlink(), file.mkdir()), "is a folder"),
    (lambda file: file.unlink(), "does not exist"),
])
def test_an_unreadable_imap_password_file_fails_with_its_fix(config: Path, breakage, detail: str) -> None:
    password_file = config.parent / "imap-password"
    breakage(password_file)

    result = doctor(config)

    assert result.exit_code == 1
    assert line_of(result, "IMAP password") == f"✗ IMAP password  {password_file} {detail}" + (
        ", not a file" if detail == "is a folder" else "")
    fix = fix_of(result, "IMAP password")
    assert "mailbox.imap.password_file" in fix
    if detail == "does not exist":
        assert str(password_file) in fix and "LoadCredential=imap-password:" in fix
    assert line_of(result, "IMAP login").endswith("skipped: needs IMAP password")


def test_a_group_readable_secret_file_fails_with_chmod_600(config: Path) -> None:
    token_key = config.parent / "token-key"
    token_key.chmod(0o640)

    result = doctor(config)

    assert result.exit_code == 1
    assert line_of(result, "token key").startswith("✗ token key")
    assert "mode 0640" in line_of(result, "token key")
    assert fix_of(result, "token key") == f"chmod 600 {token_key}"


def test_a_short_token_key_fails_with_how_to_make_one(config: Path) -> None:
    token_key = config.parent / "token-key"
    token_key.write_text("too-short\n")

    checks = checks_of(doctor(config, "--json"))

    assert checks["token key"]["ok"] is False
    assert "9 bytes" in checks["token key"]["detail"]
    assert f"head -c 48 /dev/urandom | base64 > {token_key}" in checks["token key"]["fix"]


def test_a_password_in_an_unset_environment_variable_fails(config: Path) -> None:
    def use_env(data: dict) -> None:
        del data["mailbox"]["imap"]["password_file"]
        data["mailbox"]["imap"]["password_env"] = "PARTING_TEST_UNSET_PASSWORD"
    tweak(config, use_env)

    checks = checks_of(doctor(config, "--json"))

    assert checks["IMAP password"]["ok"] is False
    assert "PARTING_TEST_UNSET_PASSWORD is not set" in checks["IMAP password"]["detail"]


# ------------------------------------------------------------------------------ SMTP


def test_a_wrong_smtp_password_fails_the_smtp_login_with_the_precise_fix(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    with SmtpSink(users={"office": "smtp-right"}) as sink:
        config = write_config(tmp_path / "deploy", dovecot, sink)
        password_file = config.parent / "smtp-password"
        password_file.write_text("smtp-wrong\n")
        password_file.chmod(0o600)
        tweak(config, lambda data: data["mailbox"]["smtp"].update(username="office",
                                                                  password_file=str(password_file)))

        result = doctor(config)

        assert result.exit_code == 1
        assert line_of(result, "SMTP password").startswith("✓")
        assert line_of(result, "SMTP login").startswith("✗ SMTP login")
        assert fix_of(result, "SMTP login").startswith(
            f"check the password in {password_file} (mailbox.smtp.password_file)")
        assert "smtp-wrong" not in result.stdout
        assert sink.messages == []

        password_file.write_text("smtp-right\n")
        assert doctor(config).exit_code == 0


def test_an_unreachable_smtp_server_fails_and_names_the_settings(config: Path) -> None:
    port = closed_port()
    tweak(config, lambda data: data["mailbox"]["smtp"].update(port=port))

    checks = checks_of(doctor(config, "--json"))

    assert checks["SMTP server"]["ok"] is False
    assert f"127.0.0.1:{port}" in checks["SMTP server"]["detail"]
    assert f"port ({port})" in checks["SMTP server"]["fix"]
    assert checks["IMAP login"]["ok"] is True


# ------------------------------------------------------------------------------ database, templates


def test_a_database_from_a_newer_parting_fails(config: Path) -> None:
    database = config.parent / "parting.db"
    with Store.open(database) as store, store.transaction():
        set_version(store.db, SCHEMA_VERSION + 1)

    checks = checks_of(doctor(config, "--json"))

    assert checks["database"]["ok"] is False
    assert f"version {SCHEMA_VERSION + 1} is newer" in checks["database"]["detail"]
    assert checks["database"]["fix"].startswith("upgrade parting")


def test_a_missing_database_folder_fails_with_how_to_create_it(config: Path) -> None:
    folder = config.parent / "state"
    tweak(config, lambda data: data["state"].update(database=str(folder / "parting.db")))

    checks = checks_of(doctor(config, "--json"))

    assert checks["database"]["ok"] is False
    assert f"mkdir -p {folder}" in checks["database"]["fix"]


def test_a_broken_template_is_named(config: Path) -> None:
    own = config.parent / "templates"
    own.mkdir()
    (own / "nudge.txt.j2").write_text("Subject: Hello {{ person.name }}\n\nDear {{ contact_name }},\n")
    tweak(config, lambda data: data.update(templates={"dir": str(own)}))

    checks = checks_of(doctor(config, "--json"))

    assert checks["templates"]["ok"] is False
    assert "nudge.txt.j2" in checks["templates"]["detail"]
    assert "contact_name" in checks["templates"]["detail"]
    assert str(own) in checks["templates"]["fix"]


# ------------------------------------------------------------------------------ unusable config


def test_a_config_that_cannot_be_loaded_exits_2_with_its_problems(config: Path) -> None:
    tweak(config, lambda data: data["mailbox"].update(colour="blue"))

    result = doctor(config)

    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {config}:")
    assert "mailbox.colour: unknown key" in result.stderr
    check_config = CliRunner().invoke(cli, ["check-config", str(config)])
    assert (check_config.exit_code, check_config.stderr) == (2, result.stderr)


def test_a_config_that_cannot_be_loaded_gives_json_with_the_rest_skipped(config: Path) -> None:
    tweak(config, lambda data: data["mailbox"].update(colour="blue"))

    result = doctor(config, "--json")

    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False
    first, *rest = data["checks"]
    assert first["name"] == "config" and first["ok"] is False
    assert "mailbox.colour: unknown key" in first["detail"]
    assert rest and all(check["detail"] == "skipped: needs config" for check in rest)


def test_check_status_words() -> None:
    assert Check("a", True, "fine").status == "ok"
    assert Check("a", True, "no IDLE", warning=True).status == "warning"
    assert Check("a", False, "broken", "mend it").status == "failed"
    assert Check("a", False, "skipped: needs b").status == "skipped"


# ------------------------------------------------------------------------------ colleagues' evidence


def colleagues(result: Result) -> list[str]:
    lines = result.stdout.splitlines()
    start = lines.index(line_of(result, "colleagues"))
    return [lines[start][2:].split("  ", 1)[1].strip(), *(line.strip() for line in lines[start + 1:start + 3])]


def test_doctor_says_per_person_on_what_evidence_approvals_are_accepted(config: Path) -> None:
    result = doctor(config)
    assert result.exit_code == 0, result.output
    assert colleagues(result)[1] == ("bob: 1 recent message, all with dmarc=pass (Authentication-Results from "
                                     "mx.example.com): approvals accepted")


def test_a_person_without_recent_mail_is_asked_to_send_one(tmp_path: Path, dovecot: DovecotServer,
                                                          smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path / "deploy", dovecot, smtp_sink)
    send_from(dovecot, "alice@example.com", mf.auth_results("example.com"))
    result = doctor(config)
    assert result.exit_code == 0 and line_of(result, "colleagues").startswith("! colleagues")
    assert ("carol: no recent message found: ask Carol White to send one to the mailbox, then run doctor again"
            in colleagues(result))


def test_mail_without_evidence_means_approvals_refused_and_says_what_to_set(config: Path, dovecot: DovecotServer) -> None:
    send_from(dovecot, "bob@example.com")  # no Authentication-Results at all
    result = doctor(config)
    assert result.exit_code == 1
    assert colleagues(result)[1].startswith("bob: 2 recent messages, 1 without evidence (no Authentication-Results "
                                            "from mx.example.com): some approvals would be refused")
    assert "set mailbox.provider (microsoft365, google) or review.authserv_id" in fix_of(result, "colleagues")


def test_microsoft365_colleagues_are_recognised_by_exchange_stamps(tmp_path: Path, dovecot: DovecotServer,
                                                                   smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path / "deploy", dovecot, smtp_sink)
    tweak(config, lambda data: data["mailbox"].update(provider="microsoft365", imap={
        **data["mailbox"]["imap"], "folders": {"sent": "auto"}}))
    stamps = {"X-MS-Exchange-Organization-AuthAs": "Internal", "X-MS-Exchange-Organization-AuthMechanism": "04",
              "X-MS-Exchange-Organization-AuthSource": "AM0PR01MB1234.eurprd01.prod.exchangelabs.com"}
    for person in ("alice", "bob", "carol"):
        send_from(dovecot, f"{person}@example.com", None, **stamps)
    send_from(dovecot, "bob@example.com", None, **{**stamps, "X-MS-Exchange-Organization-AuthAs": "Internal"})
    result = doctor(config)
    assert result.exit_code == 0, result.output
    assert colleagues(result)[1] == ("bob: 2 recent messages, all with X-MS-Exchange-Organization-AuthAs: "
                                     "Internal: approvals accepted")
