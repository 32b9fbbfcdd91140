"""How configuration files are read: libyaml's parser gives the nodes and lines PyYAML's own parser
gives, each file is read once per command, and a policy-only file is written over the policies
as they were loaded."""

from __future__ import annotations

import ast
import gc
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from daemon.adapters.settings import full_load
from daemon.adapters.settings.load import load_policy_override, load_settings
from daemon.adapters.store import Store
from daemon.queries import simulate as simulate_query

REPO = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "data" / "configs"
MINIMAL = (CONFIGS / "minimal.yaml").read_text()
SAMPLES = sorted(CONFIGS.glob("*.yaml")) + [REPO / "config.example.yaml"]


def outline(node: Node, *, columns: bool = False) -> list[tuple]:
    """Every node with what the settings reader uses of it: kind, tag, text and line (and its
    column: where a block ends, its end mark, is read nowhere)."""
    found = [(type(node).__name__, node.tag, node.value if isinstance(node, ScalarNode) else None,
              node.start_mark.line, *((node.start_mark.column,) if columns else ()))]
    if isinstance(node, MappingNode):
        for key, value in node.value:
            found += outline(key, columns=columns) + outline(value, columns=columns)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            found += outline(item, columns=columns)
    return found


def parsed(text: str, loader: type) -> list[tuple] | str:
    try:
        return outline(yaml.compose(text, Loader=loader))
    except yaml.YAMLError:
        return "refused"


@pytest.mark.parametrize("path", SAMPLES, ids=[path.name for path in SAMPLES])
def test_libyaml_gives_the_nodes_and_lines_of_the_pure_python_parser(path):
    text = path.read_text()
    assert parsed(text, yaml.CSafeLoader) == parsed(text, yaml.SafeLoader)


def test_a_large_config_gives_the_same_nodes_and_lines_with_either_parser():
    clients = "".join(f"  - id: c{n:04d}\n    name: Client {n} Ltd\n    contact: Pat Doe\n"
                      f"    addresses: [person@c{n:04d}.example]\n    domains:\n      - c{n:04d}.example\n"
                      f"    owner: alice  # a comment\n    timezone: \"Europe/London\"\n" for n in range(300))
    text = MINIMAL.split("clients:")[0] + "clients:\n" + clients + "review:" + MINIMAL.split("review:")[1]
    nodes = parsed(text, yaml.CSafeLoader)
    assert nodes == parsed(text, yaml.SafeLoader)
    assert ("ScalarNode", "tag:yaml.org,2002:str", "c0299.example", text.splitlines().index("      - c0299.example")) \
        in nodes


def test_a_policy_only_file_is_written_over_the_policies_as_they_were_loaded(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL + "policy: {ignored_after: 4 business days}\npolicies:\n  patient: {ignored_after: 6 days}\n")
    settings = load_settings(config, environ={})
    config.write_text(MINIMAL)  # changed since: the comparison is with what was loaded
    other = tmp_path / "other.yaml"
    other.write_text("policy:\n  unresponsive: {ignored_messages: 5}\n")
    compared = load_policy_override(other, settings)
    assert str(compared.policy.ignored_after) == "4 business days"
    assert compared.policy.unresponsive.ignored_messages == 5
    assert str(compared.policies["patient"].ignored_after) == "6 days"
    assert compared.policies["patient"].unresponsive.ignored_messages == 5


def test_settings_not_made_by_load_settings_take_their_policies_from_their_source(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL + "policies:\n  patient: {ignored_after: 6 days}\n")
    settings = replace(load_settings(config, environ={}), company="Copied Ltd")
    other = tmp_path / "other.yaml"
    other.write_text("policy: {ignored_after: 2 business days}\n")
    compared = load_policy_override(other, settings)
    assert (str(compared.policy.ignored_after), str(compared.policies["patient"].ignored_after)) == (
        "2 business days", "6 days")


def test_simulate_reads_each_file_once_and_leaves_the_collector_as_it_was(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    config.write_text(MINIMAL)
    Store.open(tmp_path / "parting.db").close()
    policy_only = tmp_path / "policy-only.yaml"
    policy_only.write_text("policy: {ignored_after: 1 business days}\n")
    whole = tmp_path / "whole.yaml"
    whole.write_text(MINIMAL + "policy: {ignored_after: 1 business days}\n")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # its own settings cache, empty
    reads: list[str] = []
    compose = full_load._compose
    monkeypatch.setattr(full_load, "_compose", lambda file: reads.append(Path(file).name) or compose(file))
    now = datetime(2026, 11, 3, 10, tzinfo=UTC)
    for other, collecting in ((policy_only, True), (whole, False)):
        (gc.enable if collecting else gc.disable)()
        try:
            data = simulate_query.simulate(config, other, now=now)
            assert gc.isenabled() is collecting
        finally:
            gc.enable()
        assert (data["unchanged"], data["changes"]) == (1, [])
        assert data["policy_hash_before"] != data["policy_hash_after"]
    # The second simulate finds config.yaml in the settings cache (settings/load_cache.py): not read again.
    assert reads == ["config.yaml", "policy-only.yaml", "whole.yaml"]


def test_policy_nodes_with_merge_keys_are_kept_as_written_for_a_policy_override(tmp_path) -> None:
    """The main file's policy nodes are kept for `parting simulate`; reading merges `<<:` keys in
    place, so nodes with one are copied first (and only those: full_load.py `_changed_by_reading`)."""
    text = (REPO / "config.example.yaml").read_text()
    text = text.replace("  unresponsive:                          # when a client counts as unresponsive:",
                        "  unresponsive: &usual                   # when a client counts as unresponsive:", 1)
    text = text.replace("    unresponsive: {within: 60 days}      # merged key by key with policy.unresponsive",
                        "    unresponsive: {<<: *usual}", 1)
    main = tmp_path / "config.yaml"
    main.write_text(text)
    settings = load_settings(main)
    patient = settings.policies["patient"]
    assert (str(patient.unresponsive.within), str(patient.unresponsive.or_silent_for)) == ("30 days", "21 days")
    kept = full_load._policy_pairs[id(settings)]
    assert full_load._changed_by_reading(kept)  # the merge key is still there: copied before reading
    other = tmp_path / "other.yaml"
    other.write_text("policies:\n  patient: {ignored_after: 7 business days}\n")
    for _ in range(2):  # each override reads a fresh copy of the kept nodes
        simulated = load_policy_override(other, settings).policies["patient"]
        assert str(simulated.ignored_after) == "7 business days"
        assert (str(simulated.unresponsive.within), str(simulated.unresponsive.or_silent_for)) == ("30 days", "21 days")
    plain = full_load.read_settings(str(REPO / "config.example.yaml"), {})  # in full: a cache hit keeps no nodes
    assert not full_load._changed_by_reading(full_load._policy_pairs[id(plain)])  # nothing to merge: not copied


def test_the_settings_modules_bind_their_names_by_plain_imports() -> None:
    """A reader follows a load without global rebinding: load.py imports full_load.py inside the
    functions that need it, and no settings module rebinds its globals or answers names through a
    module-level __getattr__ (tests/test_settings_cache.py holds that a hit still imports no YAML)."""
    for path in sorted((REPO / "daemon" / "adapters" / "settings").glob("*.py")):
        tree = ast.parse(path.read_text())
        assert not [node for node in ast.walk(tree) if isinstance(node, ast.Global)], path.name
        assert not [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name) and node.func.id == "globals"], path.name
        assert "__getattr__" not in [node.name for node in tree.body if isinstance(node, ast.FunctionDef)], path.name


def _plain_config(clients: int) -> str:
    """A config as dump_config writes one: sequences at their key's column, policy after the clients."""
    tree = yaml.safe_load((REPO / "config.example.yaml").read_text())
    tree["clients"] = [{**tree["clients"][0], "id": f"c{n:05d}", "name": f"Client {n}",
                        "addresses": [f"person@c{n:05d}.example"], "domains": [f"c{n:05d}.example"]}
                       for n in range(clients)]
    tree = {key: value for key, value in tree.items() if key not in full_load._POLICY_KEYS}
    return full_load.dump_config(tree) + full_load.dump_config(
        {"policy": {"ignored_after": "3 business days", "unresponsive": {"ignored_messages": 2}},
         "policies": {"patient": {"ignored_after": "6 business days"}}})


def _composes(text: str) -> bool:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader) is not None
    except yaml.YAMLError:
        return False


POLICY_FILES = {
    **{path.name: path.read_text() for path in SAMPLES if _composes(path.read_text())},
    "dump_config": _plain_config(30),
    "windows line ends": (REPO / "config.example.yaml").read_text().replace("\n", "\r\n"),
    "comments and blank lines at column 0 inside": MINIMAL + "policy:\n# about the window\n\n  ignored_after: 4 days\n"
                                                   "# the next\npolicies:\n  patient:\n\n    ignored_after: 9 days\n",
    "policies first, policy last": "policies:\n  patient: {ignored_after: 9 days}\n" + MINIMAL
                                   + "policy: {ignored_after: 4 days}\n",
    "anchors (composed whole)": MINIMAL.replace("company:", "x-usual: &usual {ignored_after: 4 days}\ncompany:", 1)
                                + "policy: *usual\n",
    "a quoted key (composed whole)": MINIMAL + '"policy": {ignored_after: 4 days}\n',
    "a document start (composed whole)": "---\n" + MINIMAL + "policy: {ignored_after: 4 days}\n",
    "a flow mapping at the top (composed whole)": "{policy: {ignored_after: 4 days}, company: {name: X}}\n",
    "no policy": MINIMAL,
}


@pytest.mark.parametrize("parser", ["libyaml", "pure-python"])
@pytest.mark.parametrize("name", list(POLICY_FILES))
def test_a_files_policy_sections_give_the_nodes_and_lines_of_the_whole_file(tmp_path, monkeypatch, name, parser) -> None:
    """full_load._policy_pairs_of, which `parting simulate` uses on a settings-cache hit."""
    monkeypatch.setattr(full_load, "FAST_LOADER", yaml.CSafeLoader if parser == "libyaml" else None)
    path = tmp_path / "config.yaml"
    path.write_bytes(POLICY_FILES[name].encode())
    whole = full_load._top_pairs(full_load._compose(str(path)), full_load._POLICY_KEYS)
    alone = full_load._policy_pairs_of(str(path))
    placed = [[outline(node, columns=True) for node in pair] for pair in whole]
    assert [[outline(node, columns=True) for node in pair] for pair in alone] == placed
    if name not in (*(path.name for path in SAMPLES), "no policy"):
        assert whole  # each file made here has policies


def test_of_a_plain_file_only_the_policy_sections_are_composed(tmp_path, monkeypatch) -> None:
    """The clients of a large file are not composed to find its policies (a 10,000-client file:
    over a second of `parting simulate`, bench/README.md)."""
    path = tmp_path / "config.yaml"
    path.write_text(_plain_config(300))
    settings = load_settings(path, environ={})
    base = replace(settings, company="Copied Ltd")  # none of the nodes kept with settings: read its file
    composed: list[str] = []
    compose_text = full_load._compose_text
    monkeypatch.setattr(full_load, "_compose_text", lambda text: composed.append(text) or compose_text(text))
    other = tmp_path / "other.yaml"
    other.write_text("policies:\n  patient: {unresponsive: {ignored_messages: 5}}\n")
    compared = load_policy_override(other, base)
    assert str(compared.policies["patient"].ignored_after) == "6 business days"  # from the main file
    assert compared.policies["patient"].unresponsive.ignored_messages == 5
    assert len(composed) == 2 and "c00299" not in composed[1] and "ignored_after: 6 business days" in composed[1]
