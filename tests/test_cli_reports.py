"""The read-side commands: status, explain, simulate, drafts, outbox, deadlines, pause/resume.

Each test runs the real `parting` command line (click's CliRunner, 100 columns) against the
example configuration and a store filled through the Store API. Time is injected through the
hidden `parting --clock-file`, as for the daemon.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from daemon.adapters.settings.load import SettingsError, load_policy_override, load_settings
from daemon.adapters.store import MessageRow, Store
from daemon.cli import cli
from daemon.core.policy import evaluate
from daemon.core.workhours import Calendar
from daemon.runtime.clock import write_clock_file

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"
UTC = UTC
NOW = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)  # a Tuesday; London is on GMT, New York on EST


def utc(month: int, day: int, hour: int = 10) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=UTC)


# acme (default policy: 3 business days, 3 ignored within 30 days) never answered three questions;
# globex (the `patient` policy: 5 business days) answered one and has a fresh one open.
ACME = [("acme-q1", "out", utc(10, 5), "Invoice details?"), ("acme-q2", "out", utc(10, 12), "Access codes?"),
        ("acme-q3", "out", utc(10, 19), "Meeting date?")]
GLOBEX = [("globex-q1", "out", utc(10, 26, 14), "Shipping address?"),
          ("globex-r1", "in", utc(10, 27, 14), "Re: Shipping address?"),
          ("globex-q2", "out", utc(10, 30, 14), "Which plan?")]


def row(message_id: str, direction: str, at: datetime, subject: str, client: str) -> MessageRow:
    ours, theirs = "office@example.com", f"contact@{client}.example"
    return MessageRow(
        message_id=f"{message_id}@mail.example", client_id=client, thread_id=f"t-{message_id}",
        direction=direction, at=at, subject=subject, from_addr=ours if direction == "out" else theirs,
        to_addrs=(theirs,) if direction == "out" else (ours,), question=direction == "out",
    )


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    database = tmp_path / "state" / "parting.db"
    database.parent.mkdir()
    config = tmp_path / "config.yaml"
    config.write_text(EXAMPLE.read_text().replace("/var/lib/parting/parting.db", str(database)))
    clock = tmp_path / "clock"
    write_clock_file(clock, NOW)
    monkeypatch.setenv("USER", "carol")
    monkeypatch.delenv("PARTING_CONFIG", raising=False)
    with Store.open(database) as store:
        rows = [row(*m, client="acme") for m in ACME] + [row(*m, client="globex") for m in GLOBEX]
        store.add_messages((r, "Sent" if r.direction == "out" else "INBOX", 1, n) for n, r in enumerate(rows, 1))
    return {"config": config, "database": database, "tmp": tmp_path, "clock": clock}


def run(setup: dict, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--clock-file", str(setup["clock"]), *args, "--config", str(setup["config"])],
                              terminal_width=100)


def ok(setup: dict, *args: str) -> str:
    result = run(setup, *args)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: TEST CLOCK: now is read from")
    return result.stdout


def as_json(setup: dict, *args: str) -> dict:
    return json.loads(ok(setup, *args, "--json"))


def fits(output: str, width: int = 100) -> bool:
    return all(len(line) <= width for line in output.splitlines())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- status ---------------------------------------------------------------------------------


def test_status_evaluates_each_client_from_the_stored_history(setup):
    data = as_json(setup, "status")
    clients = {c["id"]: c for c in data["clients"]}
    assert clients["acme"]["state"] == "unresponsive"
    assert clients["acme"]["ignored"] == 3 and clients["acme"]["open_requests"] == 3
    assert clients["acme"]["last_in"] is None
    assert clients["acme"]["last_out"] == utc(10, 19).isoformat()
    assert clients["globex"]["state"] == "awaiting"
    assert clients["globex"]["last_in"] == utc(10, 27, 14).isoformat()
    assert clients["globex"]["owner_name"] == "Alice Smith"
    # Five business days (New York) after Fri 30 Oct 10:00 EST.
    assert clients["globex"]["next_due"] == utc(11, 6, 15).isoformat()
    assert (data["drafts_in_review"], data["outbox_attention"], data["deadlines_due"], data["quarantined"],
            data["triage"]) == (0, 0, 0, 0, [])


def test_status_table_is_readable_at_100_columns(setup):
    with Store.open(setup["database"]) as store:
        store.add_triage("stray@mail.example", None, "no client matches the sender", NOW)
        store.quarantine("INBOX", 1, 99, "unreadable headers", None, 10, NOW)
    output = ok(setup, "status")
    assert fits(output)
    lines = output.splitlines()
    acme = next(line for line in lines if line.lstrip().startswith("acme"))
    assert "alice" in acme and "unresponsive" in acme and "never" in acme
    # Times are in the working-hours zone: London was on summer time on 19 October.
    assert "Mon 19 Oct 11:00" in acme and "Mon 19 Oct 10:00" not in acme
    assert "Quarantined: 1" in output and "Triage: 1" in output
    assert "no client matches the sender" in output


def test_status_without_a_database_says_how_to_get_one(setup):
    setup["database"].unlink()
    result = run(setup, "status")
    assert result.exit_code == 2
    assert "does not exist yet: `parting run` creates it" in result.output
    assert not setup["database"].exists()


# ---- explain --------------------------------------------------------------------------------


def test_explain_names_the_ignored_messages_and_the_policy(setup):
    data = as_json(setup, "explain", "acme")
    assert data["state"] == "unresponsive" and data["policy_name"] == "default"
    fired = {hit["rule"]: hit["message_ids"] for hit in data["reasons"]}
    assert fired["ignored-threshold"] == ["acme-q1@mail.example", "acme-q2@mail.example", "acme-q3@mail.example"]
    assert fired["silent-too-long"] == ["acme-q1@mail.example"]
    assert fired["ladder:draft_release"] == ["acme-q3@mail.example"]
    assert [m["id"] for m in data["messages"]] == [f"acme-q{n}@mail.example" for n in (1, 2, 3)]
    assert data["messages"][0] == {"id": "acme-q1@mail.example", "at": utc(10, 5).isoformat(), "direction": "out",
                                   "subject": "Invoice details?"}
    assert data["explain"][-1] == data["next"]


def test_explain_reads_as_evidence_then_rules_then_what_next(setup):
    output = ok(setup, "explain", "globex")
    assert fits(output)
    words = " ".join(output.split())
    order = [words.index(part) for part in ("Evidence", "Rules that fired", "Policy 'patient' [",
                                            "Next: the verdict may change on Fri 6 Nov 2026 10:00")]
    assert order == sorted(order)
    assert "globex-q2@mail.example 'Which plan?'" in output
    assert "answered" in output and "globex-r1@mail.example" in output


def test_an_unknown_client_is_an_error_with_a_suggestion(setup):
    result = run(setup, "explain", "acmee")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == f"error: no client 'acmee' in {setup['config']} (did you mean 'acme'?)"


# ---- simulate -------------------------------------------------------------------------------

STRICTER = """\
policy:
  ignored_after: 1 business days
  unresponsive: {ignored_messages: 1, within: 30 days}
policies:
  patient: {ignored_after: 1 business days}
"""
LOOSER = """\
policy:
  ignored_after: 10 business days
  unresponsive: {ignored_messages: 5, within: 60 days, or_silent_for: null}
"""


def simulate(setup: dict, text: str, *extra: str) -> Result:
    policy = setup["tmp"] / "other.yaml"
    policy.write_text(text)
    return run(setup, "simulate", "--policy", str(policy), *extra)


def test_simulate_a_stricter_policy_moves_the_awaiting_client_and_writes_nothing(setup):
    before = sha256(setup["database"])
    result = simulate(setup, STRICTER, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [(c["client"], c["before"], c["after"]) for c in data["changes"]] == [("globex", "awaiting", "unresponsive")]
    change = data["changes"][0]
    assert change["ladder_before"] == [] and change["ladder_after"] == ["nudge"]
    assert change["why"].startswith("globex: awaiting -> unresponsive (1 ignored)")
    assert {hit["rule"] for hit in change["rules_fired"]} >= {"request-ignored", "ignored-threshold"}
    assert data["unchanged"] == 1
    assert data["policy_hash_before"] != data["policy_hash_after"]
    assert sha256(setup["database"]) == before


def test_simulate_a_looser_policy_relieves_the_unresponsive_client(setup):
    before = sha256(setup["database"])
    result = simulate(setup, LOOSER)
    assert result.exit_code == 0, result.output
    assert fits(result.stdout)
    line = next(line for line in result.output.splitlines() if line.startswith("acme"))
    assert "unresponsive -> overdue" in line
    assert "globex" not in result.output.split("would change")[1].split("unchanged")[0]
    assert "1 client(s) unchanged. Nothing was written" in result.output
    assert sha256(setup["database"]) == before


def test_simulate_at_an_earlier_date_sees_only_what_had_happened(setup):
    # On 13 October only acme's first question had been ignored: the stricter policy makes it
    # unresponsive at once; the default policy still calls it overdue.
    data = json.loads(simulate(setup, STRICTER, "--at", "2026-10-13", "--json").stdout)
    assert data["at"] == "2026-10-12T23:00:00+00:00"  # midnight in London, summer time
    acme = next(c for c in data["changes"] if c["client"] == "acme")
    assert (acme["before"], acme["after"], acme["ignored_before"]) == ("overdue", "unresponsive", 1)


def test_simulate_takes_unwritten_keys_from_the_main_config(setup):
    # Only the named policy changes; the default policy (acme's) comes from the main file.
    data = json.loads(simulate(setup, "policies:\n  patient: {ignored_after: 1 business days}\n", "--json").stdout)
    assert [(c["client"], c["after"]) for c in data["changes"]] == [("globex", "overdue")]
    assert data["policy_hash_before"] == data["policy_hash_after"]


def test_simulate_with_a_broken_policy_file_names_file_and_line(setup):
    result = simulate(setup, "policy:\n  ignored_after: 3 business days\n  unresponsive: {within: 1 days}\n")
    assert result.exit_code == 2
    assert f"{setup['tmp'] / 'other.yaml'}:3: policy.unresponsive.within: this policy can never fire" in result.output
    # A policy-only file is written over the main file's policies: the named policy `patient`
    # that globex uses is kept, so adding another named policy is no error.
    result = simulate(setup, "policies:\n  stricter: {ignored_after: 1 days}\n")
    assert result.exit_code == 0, result.output
    result = simulate(setup, "policies:\n  patient: {ignored_after: 0}\n")
    assert result.exit_code == 2 and f"{setup['tmp'] / 'other.yaml'}:2: policies.patient.ignored_after" in result.output
    result = simulate(setup, "polcy:\n  ignored_after: 1 days\n")
    assert result.exit_code == 2 and "polcy: unknown key (did you mean 'policy'?)" in result.output


def test_a_full_config_as_the_other_policy_keeps_this_configs_clients(setup):
    other = setup["tmp"] / "full.yaml"
    text = setup["config"].read_text().replace("ignored_after: 3 business days", "ignored_after: 10 business days")
    other.write_text(text.replace("id: acme ", "id: acme-renamed "))
    settings = load_settings(setup["config"])
    loaded = load_policy_override(other, settings)
    assert loaded.clients == settings.clients and loaded.people == settings.people
    assert str(loaded.policy.ignored_after) == "10 business days"
    assert str(loaded.policies["patient"].ignored_after) == "5 business days"


def test_named_policies_of_the_main_config_are_merged_over_the_new_default(setup):
    settings = load_settings(setup["config"])
    looser = setup["tmp"] / "looser.yaml"
    looser.write_text(LOOSER)
    patient = load_policy_override(looser, settings).policies["patient"]
    # Written under policies.patient in the main file ...
    assert (str(patient.ignored_after), str(patient.unresponsive.within)) == ("5 business days", "60 days")
    # ... the rest inherited from the new top-level policy.
    assert (patient.unresponsive.ignored_messages, patient.unresponsive.or_silent_for) == (5, None)


def test_simulate_with_a_missing_policy_file_says_what_to_write(setup):
    result = run(setup, "simulate", "--policy", str(setup["tmp"] / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml:1: no such file: write the policy to compare there" in result.output


def test_decisions_do_not_create_a_missing_database(setup):
    setup["database"].unlink()
    result = run(setup, "pause", "acme")
    assert result.exit_code == 2 and "does not exist yet" in result.output
    assert not setup["database"].exists()


def test_a_policy_only_file_is_validated_like_the_main_config(setup):
    settings = load_settings(setup["config"])
    broken = setup["tmp"] / "broken.yaml"
    broken.write_text("policy:\n  ladder:\n    - {after_ignored: 2, action: nudge}\n"
                      "    - {after_ignored: 1, action: notify_owner}\n")
    with pytest.raises(SettingsError) as caught:
        load_policy_override(broken, settings)
    assert [str(p) for p in caught.value.problems] == [
        f"{broken}:4: policy.ladder[1].after_ignored: must be greater than the step before it (2): "
        "the ladder is climbed in order, one step at a time"]


# ---- drafts ---------------------------------------------------------------------------------


def fill_drafts(setup: dict) -> int:
    with Store.open(setup["database"]) as store:
        first = "Dear Jane,\n\nwe think it best to part ways.\n\nKind regards\n"
        second = "Dear Jane,\n\nafter careful thought we think it best to part ways.\n\nKind regards\n"
        draft_id = store.create_draft("acme", "release", "Our work together", first, "h1", "parting", "ep-start",
                                      utc(10, 23), "owner_review")
        store.append_event("draft_created", at=utc(10, 23), client_id="acme", draft_id=draft_id,
                           data={"kind": "release", "version": 1, "writer": "parting"})
        store.append_event("review_requested", at=utc(10, 23), client_id="acme", draft_id=draft_id,
                           data={"person": "alice", "role": "owner", "version": 1,
                                 "expires_at": utc(10, 26).isoformat()})
        store.add_version(draft_id, second, "h2", "alice", utc(10, 26))
        store.endorse(draft_id, 2, "alice", "owner", "wrote", utc(10, 26), "r1@example.com",
                      {"ok": True, "reason": "dmarc=pass", "method": "dmarc"})
        store.append_event("review_decision", at=utc(10, 26), client_id="acme", draft_id=draft_id,
                           data={"person": "alice", "role": "owner", "command": "edit", "reason": "", "version": 1,
                                 "new_version": 2, "state": "second_review",
                                 "authentication": {"ok": True, "reason": "dmarc=pass", "method": "dmarc"},
                                 "authentication_skipped": False})
        store.set_draft_state(draft_id, "second_review", utc(10, 26))
        store.create_draft("globex", "nudge", "A reminder", "Hello Hank\n", "h3", "parting", "ep-x", utc(11, 2),
                           "owner_review")
    return draft_id


def test_drafts_lists_state_version_and_endorsements(setup):
    fill_drafts(setup)
    data = as_json(setup, "drafts")
    first, second = data["drafts"]
    assert (first["client"], first["kind"], first["state"], first["version"]) == ("acme", "release", "second_review", 2)
    assert first["endorsements"] == [{
        "person": "alice", "name": "Alice Smith", "role": "owner", "how": "wrote", "version": 2,
        "at": utc(10, 26).isoformat(), "via_message_id": "r1@example.com",
        "authentication": {"ok": True, "reason": "dmarc=pass", "method": "dmarc"}}]
    assert "1 more endorsement of version 2 from someone other than the owner alice" in first["missing"]
    assert (second["client"], second["endorsements"]) == ("globex", [])
    output = ok(setup, "drafts")
    assert fits(output)
    assert "Alice Smith (owner) wrote" in output and "nobody yet" in output
    assert as_json(setup, "status")["drafts_in_review"] == 2


def test_drafts_show_has_text_diff_and_history(setup):
    draft_id = fill_drafts(setup)
    data = as_json(setup, "drafts", "show", str(draft_id))
    assert data["text"].startswith("Dear Jane,\n\nafter careful thought")
    (diff,) = data["diffs"]
    assert (diff["from"], diff["to"]) == (1, 2)
    assert "-we think it best to part ways." in diff["diff"].splitlines()
    assert "+after careful thought we think it best to part ways." in diff["diff"].splitlines()
    assert [e["kind"] for e in data["history"]] == ["draft_created", "review_requested", "review_decision"]
    assert data["history"][2]["who"] == "Alice Smith"
    output = ok(setup, "drafts", "show", str(draft_id))
    assert fits(output)
    assert "Changes from version 1 to 2" in output
    assert "Alice Smith (owner): EDIT version 1, making version 2; now second_review; authentication pass (dmarc)" \
        in " ".join(output.split())
    assert "asked Alice Smith (owner) to review version 1" in output


def test_drafts_show_of_a_missing_draft_is_an_error(setup):
    result = run(setup, "drafts", "show", "42")
    assert (result.exit_code, result.stderr.splitlines()[-1]) == (2, "error: no draft 42")


# ---- outbox ---------------------------------------------------------------------------------


def fill_outbox(store: Store) -> dict[str, int]:
    ids = {}
    for name in ("uncertain", "sent", "queued"):
        ids[name] = store.enqueue(f"{name}@example.com", "release", "office@example.com", ["jane@acme.example"],
                                  b"Subject: Our work together\r\n\r\nbody\r\n", utc(11, 2), client_id="acme")
        if name != "queued":
            store.claim_next(utc(11, 2, 11))
    store.mark_uncertain(ids["uncertain"], utc(11, 2, 12))
    store.mark_sent(ids["sent"], "250 ok", utc(11, 2, 12))
    return ids


def test_outbox_lists_rows_and_points_at_those_needing_a_person(setup):
    with Store.open(setup["database"]) as store:
        fill_outbox(store)
    data = as_json(setup, "outbox")
    assert [(r["state"], r["attempts"], r["subject"]) for r in data["rows"]] == [
        ("uncertain", 1, "Our work together"), ("sent", 1, "Our work together"), ("queued", 0, "Our work together")]
    assert data["rows"][1]["sent_at"] == utc(11, 2, 12).isoformat()
    output = ok(setup, "outbox")
    assert fits(output)
    assert "1 row(s) need a person" in output and "jane@acme.example" in output
    assert as_json(setup, "status")["outbox_attention"] == 1


def test_outbox_resend_and_cancel_from_the_allowed_states_record_who(setup):
    with Store.open(setup["database"]) as store:
        ids = fill_outbox(store)
    output = ok(setup, "outbox", "resend", str(ids["uncertain"]))
    assert f"Outbox row {ids['uncertain']}" in output and "uncertain -> queued, by carol" in output
    cancelled = as_json(setup, "outbox", "cancel", str(ids["queued"]))
    assert (cancelled["from_state"], cancelled["state"], cancelled["by"]) == ("queued", "cancelled", "carol")
    with Store.open_readonly(setup["database"]) as store:
        assert store.row(ids["uncertain"]).state == "queued"
        events = store.events(kinds=["outbox_resend", "outbox_cancel"])
    assert [(e.kind, e.data["outbox_id"], e.data["by"], e.data["from_state"]) for e in events] == [
        ("outbox_resend", ids["uncertain"], "carol", "uncertain"), ("outbox_cancel", ids["queued"], "carol", "queued")]


def test_outbox_decisions_from_the_wrong_state_change_nothing(setup):
    with Store.open(setup["database"]) as store:
        ids = fill_outbox(store)
    for action in ("resend", "cancel"):
        result = run(setup, "outbox", action, str(ids["sent"]))
        assert result.exit_code == 2
        assert result.stderr.splitlines()[-1].startswith(f"error: cannot {action} outbox row {ids['sent']}: it is sent")
    result = run(setup, "outbox", "resend", str(ids["queued"]))
    assert result.exit_code == 2 and "only uncertain or failed rows allow that" in result.output
    assert run(setup, "outbox", "cancel", "99").stderr.splitlines()[-1] == "error: no outbox row 99"
    with Store.open_readonly(setup["database"]) as store:
        assert store.events(kinds=["outbox_resend", "outbox_cancel"]) == []
        assert [store.row(i).state for i in ids.values()] == ["uncertain", "sent", "queued"]


def test_outbox_confirm_marks_an_uncertain_row_delivered_and_nothing_else(setup):
    with Store.open(setup["database"]) as store:
        ids = fill_outbox(store)
    confirmed = as_json(setup, "outbox", "confirm", str(ids["uncertain"]))
    assert (confirmed["from_state"], confirmed["state"], confirmed["by"]) == ("uncertain", "sent", "carol")
    result = run(setup, "outbox", "confirm", str(ids["queued"]))
    assert result.exit_code == 2 and "only an uncertain row can be confirmed" in result.output
    with Store.open_readonly(setup["database"]) as store:
        assert store.row(ids["uncertain"]).server_reply == "confirmed delivered by carol"
        assert [e.data["outbox_id"] for e in store.events(kinds=["outbox_confirm"])] == [ids["uncertain"]]
        assert store.row(ids["queued"]).state == "queued"


def test_a_resent_row_starts_its_attempts_afresh(setup):
    with Store.open(setup["database"]) as store:
        ids = fill_outbox(store)
        assert store.row(ids["uncertain"]).attempts == 1
    ok(setup, "outbox", "resend", str(ids["uncertain"]))
    with Store.open_readonly(setup["database"]) as store:
        assert store.row(ids["uncertain"]).attempts == 0, "a person's resend is not charged the old failures"


# ---- deadlines ------------------------------------------------------------------------------


def fill_deadlines(store: Store) -> dict[str, int]:
    data = {"phone": "+44 20 7946 0000", "contact": "Jane Doe"}
    ids = {
        "overdue": store.add_deadline("phone_call", "acme", utc(11, 2), utc(11, 1), draft_id=None, data=data),
        "open": store.add_deadline("retrospective", "acme", utc(11, 9), utc(11, 1), data=data),
        "closed": store.add_deadline("phone_call", "globex", utc(10, 20), utc(10, 19), data={"phone": "+1 555 0100"}),
    }
    store.close_deadline(ids["closed"], "done", utc(10, 21), "alice", "spoke to Hank")
    return ids


def test_deadlines_lists_overdue_then_open_then_closed(setup):
    with Store.open(setup["database"]) as store:
        ids = fill_deadlines(store)
    data = as_json(setup, "deadlines")
    assert [(d["id"], d["status"]) for d in data["deadlines"]] == [
        (ids["overdue"], "overdue"), (ids["open"], "open"), (ids["closed"], "done")]
    assert (data["overdue"], data["open"], data["closed"]) == (1, 2, 1)
    output = ok(setup, "deadlines")
    assert fits(output)
    assert "1 overdue, 2 open, 1 closed" in output
    assert "+44 20 7946 0000" in output and "spoke to Hank" in output
    assert as_json(setup, "status")["deadlines_due"] == 1


def test_deadlines_done_closes_once_with_the_note(setup):
    with Store.open(setup["database"]) as store:
        ids = fill_deadlines(store)
    output = ok(setup, "deadlines", "done", str(ids["overdue"]), "--note", "called Jane, no answer")
    assert "is done, by carol: called Jane, no answer" in output
    with Store.open_readonly(setup["database"]) as store:
        closed = store.deadline(ids["overdue"])
        (event,) = store.events(kinds=["deadline_closed"])
    assert (closed.state, closed.closed_by, closed.note, closed.closed_at) == (
        "done", "carol", "called Jane, no answer", NOW)
    assert event.data["deadline_id"] == ids["overdue"]
    again = run(setup, "deadlines", "done", str(ids["overdue"]), "--note", "twice")
    assert again.exit_code == 2 and "is already done (by carol, Tue 3 Nov 2026 10:00): nothing changed" in again.output
    assert run(setup, "deadlines", "done", "77", "--note", "x").stderr.splitlines()[-1] == "error: no deadline 77"


# ---- pause / resume -------------------------------------------------------------------------


def test_pause_and_resume_change_the_state_status_reports(setup):
    output = ok(setup, "pause", "acme")
    assert "Acme Ltd (acme) paused by carol" in output
    assert {c["id"]: c["state"] for c in as_json(setup, "status")["clients"]}["acme"] == "paused"
    assert "was already paused" in ok(setup, "pause", "acme")
    ok(setup, "resume", "acme")
    assert {c["id"]: c["state"] for c in as_json(setup, "status")["clients"]}["acme"] == "unresponsive"
    with Store.open_readonly(setup["database"]) as store:
        events = store.events(client_id="acme")
    assert [(e.kind, e.data) for e in events] == [("client_paused", {"by": "carol"}),
                                                  ("client_resumed", {"by": "carol"})]
    result = run(setup, "pause", "globx")
    assert result.exit_code == 2 and "(did you mean 'globex'?)" in result.output


def test_read_only_commands_leave_the_database_untouched(setup):
    fill_drafts(setup)
    before = sha256(setup["database"])
    for args in (("status",), ("explain", "acme"), ("drafts",), ("drafts", "show", "1"), ("outbox",),
                 ("deadlines",)):
        ok(setup, *args)
    assert sha256(setup["database"]) == before


def test_group_options_reach_their_subcommands(setup):
    draft_id = fill_drafts(setup)
    result = CliRunner().invoke(cli, ["--clock-file", str(setup["clock"]), "drafts", "--config", str(setup["config"]), "--json", "show", str(draft_id)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["draft"]["id"] == draft_id


def test_the_clock_file_is_used_only_when_named_on_the_command_line_and_then_said(setup, monkeypatch):
    """An environment variable cannot quietly move a command's time; the hidden --clock-file can, loudly."""
    monkeypatch.setenv("PARTING_TEST_CLOCK_FILE", str(setup["clock"]))  # the old way: now ignored
    plain = CliRunner().invoke(cli, ["status", "--json", "--config", str(setup["config"])])
    assert plain.exit_code == 0, plain.output
    assert abs(datetime.fromisoformat(json.loads(plain.stdout)["now"]) - datetime.now(UTC)) < timedelta(hours=1)
    assert plain.stderr == ""
    tested = run(setup, "status", "--json")
    assert json.loads(tested.stdout)["now"] == NOW.isoformat()
    assert tested.stderr == f"warning: TEST CLOCK: now is read from {setup['clock']} (--clock-file)\n"


def test_status_judges_the_history_again_after_an_answer_recorded_outside_email(setup):
    # The daemon stored acme's verdict (unresponsive); a person then records that Jane answered by
    # phone. The messages table did not change, but the history did: status must show what the
    # history says now, not the stored verdict (a verdict reused while acme's message count stays
    # the same would still say unresponsive).
    settings = load_settings(setup["config"])
    acme = next(c for c in settings.clients if c.id == "acme")
    with Store.open(setup["database"]) as store:
        stored = evaluate(acme, store.envelopes("acme"), settings.policy_for(acme),
                          Calendar(settings.working_hours, acme.timezone), NOW)
        store.save_verdict("acme", stored.to_dict(), NOW)
    assert stored.state == "unresponsive"
    ok(setup, "answered", "acme", "--by", "phone", "--note", "Jane sends all three on Friday",
       "--at", "2026-11-03 09:00")
    row = {c["id"]: c for c in as_json(setup, "status")["clients"]}["acme"]
    assert (row["state"], row["ignored"], row["open_requests"], row["ladder"]) == ("active", 0, 0, [])
    with Store.open(setup["database"]) as store:
        assert store.latest_verdicts()["acme"]["state"] == "unresponsive"  # status only reads
