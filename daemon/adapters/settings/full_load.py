"""Reading a config file in full (a settings-cache miss): YAML nodes, the schema, the checks.

Rules of this module:
- Only load.py imports it, inside the function that needs it (load_settings on a cache miss):
  it brings PyYAML, the schema and its checks, which a report on an unchanged config, answered
  by load_cache.py, does without.
- The only YAML reader in parting, and only through a safe loader's composer: values are
  built from the node tree (reader.py), so every problem knows its line. libyaml's parser reads
  the file when PyYAML has it (same nodes, same lines); a file it refuses is read again by the
  pure-Python parser, which then decides: its message and line are the ones reported, and what
  it accepts is read as it reads it. (libyaml also reads a few forms the YAML spec allows and
  the pure-Python parser refuses, such as a tab or '?' inside a plain value.)
- Each file is read once per load: the main file's policy nodes are kept with the Settings
  built from it, for a policy-only file (`parting simulate`) to be written over. Settings from
  the cache, or not made here, have none kept: their file is read on first use, and of a file
  written plainly only the policy sections are composed (`_policy_pairs_of`: the same nodes and
  lines; a 10,000-client file's clients cost `parting simulate` over a second); any other file
  is composed whole.
- Everything is validated up front and every problem is reported at once, sorted by line, as
  "file:line: key.path: message". Keys and defaults come from settings_schema.SCHEMA alone.
- Secrets are never in the file: only paths (`*_file`) and environment variable names
  (`*_env`); secret_files.py reads them.
"""

from __future__ import annotations

import copy
import os
import re
import weakref
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from daemon.adapters.settings import schema
from daemon.adapters.settings.build import build_policy, build_settings
from daemon.adapters.settings.kinds import Scalar, did_you_mean
from daemon.adapters.settings.problems import Problem, SettingsError, problem_at, remember_key_lines
from daemon.adapters.settings.providers import apply_preset
from daemon.adapters.settings.reader import Reader, describe, join
from daemon.adapters.settings.rules import cross_check, merge_policy, ok
from daemon.adapters.settings.schema import Section
from daemon.core.model import Settings

# libyaml's composer reads a 10,000-client file some 15 times faster than the pure-Python one
# (None: the pure-Python one alone; tests set it so to run with each parser).
FAST_LOADER = getattr(yaml, "CSafeLoader", None)
_POLICY_KEYS = ("policy", "policies")
# id(settings) -> the policy nodes of the main file it came from, as written (see _base_policy_pairs).
_policy_pairs: dict[int, list[tuple[Node, Node]]] = {}


def parser() -> str:
    """Which YAML parser a load uses, for the settings cache's key ("default": libyaml's when PyYAML has it)."""
    return "default" if FAST_LOADER is getattr(yaml, "CSafeLoader", None) else repr(FAST_LOADER)


def read_settings(file: str, environ: Mapping[str, str]) -> Settings:
    """Read, validate and build the settings of `file`; raise SettingsError listing every problem."""
    return _settings_from(_compose(file), file, environ)


def _settings_from(root: Node, file: str, environ: Mapping[str, str]) -> Settings:
    reader = Reader(file)
    if not isinstance(root, MappingNode):
        raise SettingsError([Problem(file, 1, "", "expected keys such as 'company:' and 'mailbox:' at the "
                                     f"top of the file, got {describe(root)}")])
    # Copied before reading when reading can change them: the reader merges `<<:` keys into the
    # nodes in place (and retags `=` keys). Most files have neither, and then the copy (a few ms
    # for every command) is not needed.
    policy_pairs = _top_pairs(root, _POLICY_KEYS)
    if _changed_by_reading(policy_pairs):
        policy_pairs = copy.deepcopy(policy_pairs)
    tree = reader.section(root, schema.SCHEMA, "")
    filled = apply_preset(tree, set(reader.lines), _preset_value) if ok(tree["mailbox"]["provider"]) else []
    cross_check(tree, set(reader.lines),
                lambda path, message, at=None: reader.report(path, message, reader.line_of(at or path)))
    if reader.problems:
        raise SettingsError(reader.problems)
    settings = build_settings(tree, file, Path(file).absolute().parent, environ, tuple(filled))
    remember_key_lines(settings, reader.lines)
    _keep_policy_pairs(settings, policy_pairs)
    return settings


def _preset_value(key_path: str, value: object) -> object:
    """A preset value as the key's kind converts it (presets are written like the config)."""
    spec: Any = schema.SCHEMA
    for part in key_path.split("."):
        spec = spec.keys[part]
    if isinstance(value, list):
        return [spec.kind.convert(Scalar(item, str(item))) for item in value]
    return spec.kind.convert(Scalar(value, str(value)))


def _top_pairs(root: Node, keys: tuple[str, ...]) -> list[tuple[Node, Node]]:
    """The (key, value) node pairs of these top-level keys, in file order."""
    if not isinstance(root, MappingNode):
        return []
    return [(k, v) for k, v in root.value if isinstance(k, ScalarNode) and k.value in keys]


_MERGE_TAGS = ("tag:yaml.org,2002:merge", "tag:yaml.org,2002:value")


def _changed_by_reading(pairs: list[tuple[Node, Node]]) -> bool:
    """Whether reading may change these nodes: a mapping among them (aliases followed) has a key
    that SafeConstructor.flatten_mapping rewrites (`<<`, `=`)."""
    stack: list[Node] = [node for pair in pairs for node in pair]
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, MappingNode):
            for key, value in node.value:
                if key.tag in _MERGE_TAGS:
                    return True
                stack += (key, value)
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)
    return False


def _keep_policy_pairs(settings: Settings, pairs: list[tuple[Node, Node]]) -> None:
    """Keep `pairs` for as long as `settings` lives (an id is reused once its object is gone)."""
    _policy_pairs[id(settings)] = pairs
    weakref.finalize(settings, _policy_pairs.pop, id(settings), None)


def _base_policy_pairs(base: Settings) -> list[tuple[Node, Node]]:
    """The policy nodes of the file `base` was loaded from, fresh for each use (reading changes
    them). Settings from the settings cache, or not made here, have none kept: their file
    (base.source) is read on first use, once."""
    if id(base) not in _policy_pairs:
        _keep_policy_pairs(base, _policy_pairs_of(base.source))
    return copy.deepcopy(_policy_pairs[id(base)])


# A line at column 0 that is not blank, a comment or a sequence entry (which may sit at its key's
# own column), and a top-level key written plainly on it: `policy:`, `clients:`.
_TOP_LINE = re.compile(r"^(?![\s#]|-(?:[ \t]|\r?$))[^\n]+", re.MULTILINE)
_TOP_KEY = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)[ \t]*:(?:[ \t]|\r?$)")
_SHARED = ("&", "*", "<<")  # anchors, aliases, merges: what one section may take from another


def _policy_pairs_of(file: str) -> list[tuple[Node, Node]]:
    """What `_top_pairs(_compose(file), _POLICY_KEYS)` gives, composing only the policy sections
    when the file is written plainly: every line at column 0 a plain top-level key, a comment or a
    sequence entry, and nothing in those sections that could refer elsewhere (no anchor, alias or
    merge). The lines between them are left out but counted, so each node keeps its line and
    column. Any other file, or a doubt (the sections do not compose alone, or not to the keys
    found), is composed whole."""
    text = _read_text(file)
    lines = [(line.start(), _TOP_KEY.match(line.group())) for line in _TOP_LINE.finditer(text)]
    tops = [(start, key.group(1)) for start, key in lines if key is not None]
    if tops and len(tops) == len(lines):
        pieces: list[str] = []
        names: list[str] = []
        done = 0  # text[:done] is accounted for
        for (start, name), end in zip(tops, [start for start, _ in tops[1:]] + [len(text)], strict=True):
            if name in _POLICY_KEYS:
                pieces += ["\n" * text.count("\n", done, start), text[start:end]]
                names.append(name)
                done = end
        sections = "".join(pieces)
        if not any(mark in sections for mark in _SHARED):
            try:
                root = _compose_text(sections) if names else None
            except yaml.YAMLError:
                root = None
            pairs = _top_pairs(root, _POLICY_KEYS) if root is not None else []
            if [key.value for key, _ in pairs] == names:
                return pairs
    return _top_pairs(_compose(file), _POLICY_KEYS)


def dump_config(tree: Mapping[str, object]) -> str:
    """A configuration as YAML text, keys in the order given (for generated configs: the demo's)."""
    return yaml.safe_dump(dict(tree), sort_keys=False, allow_unicode=True)


def _merge_nodes(base: Node, over: Node) -> Node:
    """`over` written on top of `base`: mappings merge key by key, anything else is replaced."""
    if not (isinstance(base, MappingNode) and isinstance(over, MappingNode)):
        return over
    merged = {k.value: (k, v) for k, v in base.value if isinstance(k, ScalarNode)}
    for key, value in over.value:
        if isinstance(key, ScalarNode) and key.value in merged:
            value = _merge_nodes(merged[key.value][1], value)
        merged[key.value if isinstance(key, ScalarNode) else id(key)] = (key, value)
    return MappingNode(over.tag, list(merged.values()), over.start_mark, over.end_mark)


def _merged_over_base(root: MappingNode, base: Settings) -> MappingNode:
    """A policy-only file changes the main file's policies: what it leaves out stays as it was
    (`policy: {ignored_after: 30 days}` means "my policy, with a 30-day window")."""
    originals = {k.value: v for k, v in _base_policy_pairs(base)}
    return MappingNode(root.tag, [(k, _merge_nodes(originals[k.value], v) if isinstance(k, ScalarNode)
                                   and k.value in originals else v) for k, v in root.value],
                       root.start_mark, root.end_mark)


def load_policy_override(path: str | Path, base: Settings) -> Settings:
    """`base` judged by the policies of another file, for `parting simulate`.

    The file is either a full configuration (it is loaded whole, then given base's people and
    clients, so the same clients are compared) or a policy-only file holding just `policy:`
    and/or `policies:`, read with the same schema and rules as the main config and written over
    base's file: a key it leaves out (at any depth; a ladder is replaced whole) keeps base's value,
    and named policies are merged over the resulting top-level policy as usual.
    Raises SettingsError listing every problem with its line.
    """
    file = str(path)
    if not Path(file).exists():
        raise SettingsError([Problem(file, 1, "", "no such file: write the policy to compare there (`policy:` "
                                     "and/or `policies:`), or give a whole configuration")])
    root = _compose(file)
    written_keys = [k.value for k, _ in root.value if isinstance(k, ScalarNode)] \
        if isinstance(root, MappingNode) else []
    if any(key in schema.SCHEMA.keys and key not in _POLICY_KEYS for key in written_keys):
        other = _settings_from(root, file, os.environ)
        missing = [c for c in base.clients if c.policy and c.policy not in other.policies]
        if missing:
            names = sorted(other.policies)
            raise SettingsError([problem_at(other, "policies", f"client {c.id} uses policy {c.policy!r}, which "
                                            f"this file does not define{did_you_mean(c.policy or '', names)}")
                                 for c in missing])
        return replace(other, people=base.people, clients=base.clients)

    only = Section({key: schema.SCHEMA.keys[key] for key in _POLICY_KEYS}, "A policy-only file.")
    reader = Reader(file)
    if not isinstance(root, MappingNode):
        raise SettingsError([Problem(file, 1, "", "expected `policy:` and/or `policies:` at the top of the file "
                                     f"(or a whole configuration), got {describe(root)}")])
    root = _merged_over_base(root, base)
    tree = reader.section(root, only, "")
    written = [key for key in _POLICY_KEYS if key in reader.lines]
    if not written and not reader.problems:
        reader.report("", "neither `policy:` nor `policies:` is written here: nothing to compare", 1)
    readers = dict.fromkeys(_POLICY_KEYS, reader)
    if len(written) < len(_POLICY_KEYS):
        base_reader = Reader(base.source)
        # Only the policy keys of the main file: the rest was validated when it was loaded.
        kept = MappingNode("tag:yaml.org,2002:map", _base_policy_pairs(base))
        base_tree = base_reader.section(kept, only, "")
        for key in _POLICY_KEYS:
            if key not in written:
                tree[key], readers[key] = base_tree[key], base_reader
    # The rules across keys want a whole tree; everything but the policies is left at its
    # defaults, which they accept, so only policy problems can be reported.
    whole = {**reader.absent(schema.SCHEMA), "policy": tree["policy"], "policies": tree["policies"], "clients": []}

    def report(key_path: str, message: str, at: str | None = None) -> None:
        owner = readers["policies" if key_path.startswith("policies") else "policy"]
        owner.report(key_path, message, owner.line_of(at or key_path))

    cross_check(whole, set(), report)
    for client in base.clients:
        if client.policy and client.policy not in tree["policies"]:
            readers["policies"].report("policies", f"client {client.id} uses policy {client.policy!r}, which this "
                                       f"file does not define{did_you_mean(client.policy, sorted(tree['policies']))}")
    distinct = {id(each): each for each in (reader, *readers.values())}.values()
    problems = [problem for each in distinct for problem in each.problems]
    if problems:
        raise SettingsError(problems)
    return replace(base, policy=build_policy("default", tree["policy"]),
                   policies={name: build_policy(name, merge_policy(tree["policy"], partial))
                             for name, partial in tree["policies"].items()})


def _compose(file: str) -> Node:
    text = _read_text(file)
    try:
        root = _compose_text(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        detail = f"{error.problem} ({error.context})" if error.context else str(error.problem)
        raise _failed(file, mark.line + 1 if mark else 1, f"YAML syntax error: {detail}") from None
    except yaml.YAMLError as error:
        position = getattr(error, "position", 0) or 0
        raise _failed(file, text[:position].count("\n") + 1, f"YAML cannot read this: {error}") from None
    if root is None:
        raise _failed(file, 1, "the file is empty: start from config.example.yaml")
    return root


def _failed(file: str, line: int, message: str) -> SettingsError:
    return SettingsError([Problem(file, line, "", message)])


def _read_text(file: str) -> str:
    try:
        data = Path(file).read_bytes()
    except FileNotFoundError:
        raise _failed(file, 1, "no such file: copy config.example.yaml there and edit it") from None
    except IsADirectoryError:
        raise _failed(file, 1, "this is a folder: give the path of the config file") from None
    except PermissionError:
        raise _failed(file, 1, "cannot read the file: permission denied; make it readable by the service user") from None
    except OSError as error:
        raise _failed(file, 1, f"cannot read the file: {error.strerror}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _failed(file, data[: error.start].count(b"\n") + 1, "the file is not UTF-8 text") from None


def _compose_text(text: str) -> Node | None:
    if FAST_LOADER is not None:
        try:
            return yaml.compose(text, Loader=FAST_LOADER)
        except yaml.YAMLError:
            pass  # libyaml words its errors differently: the pure-Python parser tells what is wrong
    return yaml.compose(text, Loader=yaml.SafeLoader)


def config_key_paths(path: str | Path) -> list[str]:
    """Every key written in a config file, as a canonical path (`clients[].owner`, `policy.ladder[].action`)."""
    root = _compose(str(path))
    found: list[str] = []

    def walk(node: Node, prefix: str) -> None:
        if isinstance(node, MappingNode):
            for key_node, value_node in node.value:
                key_path = join(prefix, str(key_node.value))
                found.append(key_path)
                walk(value_node, key_path)
        elif isinstance(node, SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, f"{prefix}[{index}]")

    walk(root, "")
    return list(dict.fromkeys(schema.canonical_key_path(key_path) for key_path in found))
