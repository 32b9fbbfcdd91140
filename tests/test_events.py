"""The event vocabulary (daemon/core/events.py): every kind the code can write is declared and has
words; the store refuses what is not declared; old events still render."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from daemon.adapters.store import Store
from daemon.core.events import KINDS, UndeclaredEvent, Wording, describe

DAEMON = Path(__file__).resolve().parent.parent / "daemon"
T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
WORDING = Wording(ZoneInfo("Europe/Berlin"), T0)
# The values an f-string kind can take, read from the code that builds it. A new f-string kind
# fails test_every_kind_the_code_writes_is_declared until it is listed here.
FSTRING_KINDS = {
    "outbox_{action}": {"outbox_resend", "outbox_cancel"},  # flows/operator_actions.py: resend_outbox, cancel_outbox
}


def _kind_values(node: ast.expr) -> tuple[set[str], set[str], set[str]]:
    """(literal kinds, f-string patterns, parameter names) a kind argument can be."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}, set(), set()
    if isinstance(node, ast.IfExp):
        a, b = _kind_values(node.body), _kind_values(node.orelse)
        return a[0] | b[0], a[1] | b[1], a[2] | b[2]
    if isinstance(node, ast.JoinedStr):
        pattern = "".join(part.value if isinstance(part, ast.Constant) else "{" + ast.unparse(part.value) + "}"
                          for part in node.values if isinstance(part, ast.Constant | ast.FormattedValue))
        return set(), {pattern}, set()
    if isinstance(node, ast.Name):
        return set(), set(), {node.id}
    raise AssertionError(f"an event kind written as {ast.unparse(node)!r}: write it as a literal")


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def written_kinds(root: Path = DAEMON) -> tuple[set[str], set[str]]:
    """Every event kind the code under `root` can write: append_event calls, and calls of the helpers
    that pass their own parameter on as the kind (sending.py's `_event`), followed to their callers."""
    kinds: set[str] = set()
    patterns: set[str] = set()
    for path in root.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        writers = {"append_event": 0}  # function name -> index of its kind argument
        changed = True
        while changed:
            changed = False
            for func in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
                params = [a.arg for a in func.args.args]
                for call in [n for n in ast.walk(func) if isinstance(n, ast.Call)]:
                    index = writers.get(_called_name(call) or "")
                    if index is None or func.name == "append_event" or len(call.args) <= index:
                        continue
                    _, _, names = _kind_values(call.args[index])
                    for name in names:
                        if name in params and writers.get(func.name) != params.index(name):
                            writers[func.name] = params.index(name)
                            changed = True
        for call in [n for n in ast.walk(tree) if isinstance(n, ast.Call)]:
            index = writers.get(_called_name(call) or "")
            if index is None or len(call.args) <= index:
                continue
            literal, fstrings, _ = _kind_values(call.args[index])
            kinds |= literal
            patterns |= fstrings
    return kinds, patterns


def test_every_kind_the_code_writes_is_declared_and_worded() -> None:
    kinds, patterns = written_kinds()
    assert patterns <= set(FSTRING_KINDS), f"enumerate the values of {patterns - set(FSTRING_KINDS)} in FSTRING_KINDS"
    for pattern in patterns:
        kinds |= FSTRING_KINDS[pattern]
    assert len(kinds) >= 30, kinds  # the scan found the writers (sending.py's helper included)
    assert {"sent", "send_deferred", "outbox_confirm", "release_queued", "client_resumed"} <= kinds
    assert kinds - set(KINDS) == set(), "written but not declared in daemon/core/events.py"
    for kind in kinds:
        words = describe(kind, {}, None, WORDING)
        assert words and words != kind.replace("_", " "), (kind, words)


def test_the_scan_sees_a_new_undeclared_kind(tmp_path: Path) -> None:
    (tmp_path / "flow.py").write_text(
        "def step(store, now, ok):\n"
        "    store.append_event('brand_new' if ok else 'verdict', at=now)\n"
        "    _event(store, 'via_helper')\n"
        "def _event(store, kind):\n"
        "    store.append_event(kind, at=None)\n")
    kinds, _ = written_kinds(tmp_path)
    assert kinds == {"brand_new", "verdict", "via_helper"}
    assert kinds - set(KINDS) == {"brand_new", "via_helper"}


def _sample(key: str) -> object:
    if key.endswith("_at") or key == "not_before":
        return "2026-11-03T09:00:00+00:00"
    if key in ("recipients", "ladder", "asking", "missing", "rules"):
        return []
    if key in ("authentication",):
        return {"ok": True, "method": "dmarc", "reason": "dmarc=pass"}
    return f"<{key}>"


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_declared_kind_renders_with_every_field_and_with_none(kind: str) -> None:
    full = describe(kind, {key: _sample(key) for key in KINDS[kind].fields}, "Ann", WORDING)
    empty = describe(kind, {}, None, WORDING)  # an old event that carried none of today's keys
    assert full.strip() and empty.strip()
    assert "{" not in full and "Traceback" not in full


def test_times_in_the_words_are_in_the_readers_zone_without_this_years_number() -> None:
    words = describe("release_queued", {"version": 2, "outbox_id": 7, "not_before": "2026-11-03T09:00:00+00:00"},
                     None, WORDING)
    assert words == "version 2 queued (outbox row 7), not before Tue 3 Nov 10:00"


def test_the_store_refuses_an_undeclared_kind_and_writes_nothing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as store:
        with pytest.raises(UndeclaredEvent, match="'review_aproved' is not declared in daemon/core/events.py"):
            store.append_event("review_aproved", at=T0)
        assert store.events() == []


def test_the_store_refuses_a_renamed_data_key_naming_it(tmp_path: Path) -> None:
    with Store.open(tmp_path / "p.db") as store:
        with pytest.raises(UndeclaredEvent, match="'deadline_set' has data key\\(s\\) due that"):
            store.append_event("deadline_set", at=T0, data={"deadline_id": 1, "kind": "phone_call", "due": "x"})
        assert store.events() == []
        store.append_event("deadline_set", at=T0, data={"deadline_id": 1, "kind": "phone_call", "due_at": "x"})
        assert [e.kind for e in store.events()] == ["deadline_set"]


def test_an_old_event_with_keys_no_longer_written_still_reads_and_renders(tmp_path: Path) -> None:
    """Written by an older version (straight into the table): a key since renamed, another gone."""
    with Store.open(tmp_path / "p.db") as store:
        store.db.execute("INSERT INTO events (at, kind, client_id, draft_id, message_ids, data, policy_hash) "
                         "VALUES (?, 'review_decision', 'acme', 1, '[]', ?, NULL)",
                         ["2026-11-02T10:00:00+00:00", '{"who": "ann", "cmd": "approve", "version": 1}'])
        [old] = store.events()
    words = describe(old.kind, old.data, None, WORDING)
    assert words.startswith("someone (None):  version 1; now None")
    assert describe("kind_from_a_newer_version", {"a": 1}, None, WORDING) == "kind from a newer version"

