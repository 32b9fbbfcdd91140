"""Walking a composed YAML node tree along the settings schema (for full_load.py, on a cache miss).

Rules of this module:
- Only full_load.py imports it, when a config must be read in full (load_cache.py answers
  an unchanged one): it brings PyYAML, the schema and its checks.
- Values are converted by the schema's kinds, and every problem is collected with its key path
  and line, never raised one by one.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from daemon.adapters.settings import schema
from daemon.adapters.settings.kinds import IDENT, Invalid, Scalar, did_you_mean, shown
from daemon.adapters.settings.problems import Problem
from daemon.adapters.settings.rules import BAD
from daemon.adapters.settings.schema import Items, Leaf, Named, Section, Spec

_STR_TAG = "tag:yaml.org,2002:str"


def describe(node: Node | None) -> str:
    if isinstance(node, MappingNode):
        return "a mapping of keys"
    if isinstance(node, SequenceNode):
        return "a list"
    if node is None or node.tag.endswith(":null"):
        return "nothing"
    return shown(node.value)


def _is_null(node: Node) -> bool:
    return isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class Reader:
    """Walks the node tree along the schema, converting values and collecting problems."""

    def __init__(self, file: str):
        self.file = file
        self.problems: list[Problem] = []
        self.lines: dict[str, int] = {}
        # A bare constructor, not a loader: a loader's parser states refer back to it, and that
        # cycle would keep every node it constructed alive until the next garbage collection.
        self._constructor = SafeConstructor()

    def report(self, path: str, message: str, line: int | None = None) -> None:
        self.problems.append(Problem(self.file, line or self.line_of(path), path, message))

    def line_of(self, path: str) -> int:
        """The line of `path`, or of its nearest written ancestor (a missing key's parent)."""
        while path:
            if path in self.lines:
                return self.lines[path]
            parent = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", path)
            if parent == path:
                break
            path = parent
        return 1

    def section(self, node: Node | None, spec: Section, path: str, partial: bool = False) -> dict:
        out: dict[str, Any] = {}
        seen: dict[str, int] = {}
        if node is not None:
            try:
                self._constructor.flatten_mapping(node)  # type: ignore[arg-type]  # a mapping, checked by the caller
            except yaml.YAMLError as error:
                self.report(path, f"cannot merge keys: {getattr(error, 'problem', error)}", _line(node))
            for key_node, value_node in node.value:
                line = _line(key_node)
                if not isinstance(key_node, ScalarNode) or _is_null(key_node):
                    self.report(path, "a key must be a plain word", line)
                    continue
                key, key_path = key_node.value, join(path, key_node.value)
                if key in seen:
                    self.report(key_path, f"written twice (first on line {seen[key]})", line)
                    continue
                seen[key] = line
                sub = spec.keys.get(key)
                if sub is None:
                    known = list(spec.keys)
                    hint = did_you_mean(key, known) or f"; the keys here are: {', '.join(known)}"
                    message = schema.SECRET_MESSAGE if schema.is_inline_secret(key) else "unknown key" + hint
                    self.report(key_path, message, line)
                    continue
                self.lines[key_path] = line
                out[key] = self.value(value_node, sub, key_path, partial)
        if not partial:
            for key, sub in spec.keys.items():
                if key in out:
                    continue
                if key not in seen and getattr(sub, "required", False):
                    self.report(join(path, key), f"required key is missing: {sub.doc}")
                out[key] = self.absent(sub)
        return out

    def absent(self, spec: Spec) -> Any:
        if isinstance(spec, Section):
            return {key: self.absent(sub) for key, sub in spec.keys.items()}
        if isinstance(spec, Items):
            return [dict(item) for item in spec.default]
        if isinstance(spec, Named):
            return {}
        if spec.required:
            return BAD
        if spec.default is None:
            return None
        if spec.many == "one":
            return spec.kind.convert(Scalar(spec.default, str(spec.default)))
        defaults = spec.default if isinstance(spec.default, list | tuple) else (spec.default,)
        return [spec.kind.convert(Scalar(item, str(item))) for item in defaults]

    def value(self, node: Node, spec: Spec, path: str, partial: bool) -> Any:
        if isinstance(spec, Section):
            if _is_null(node):
                return self.section(None, spec, path, partial)
            if not isinstance(node, MappingNode):
                self.report(path, f"expected a mapping of keys, got {describe(node)}")
                return self.absent(spec)
            return self.section(node, spec, path, partial)
        if isinstance(spec, Items):
            if _is_null(node) and not spec.required:
                return self.absent(spec)
            if not isinstance(node, SequenceNode):
                self.report(path, f"expected a list, got {describe(node)}")
                return []
            items = []
            for index, item in enumerate(node.value):
                item_path = f"{path}[{index}]"
                self.lines[item_path] = _line(item)
                if not isinstance(item, MappingNode):
                    self.report(item_path, f"expected a mapping of keys, got {describe(item)}")
                    items.append(BAD)
                    continue
                items.append(self.section(item, spec.item, item_path))
            if len(node.value) < spec.min_items:
                self.report(path, f"needs at least {spec.min_items} entry: {spec.doc}")
            return items
        if isinstance(spec, Named):
            return self.named(node, spec, path)
        return self.leaf(node, spec, path)

    def named(self, node: Node, spec: Named, path: str) -> dict:
        if _is_null(node):
            return {}
        if not isinstance(node, MappingNode):
            self.report(path, f"expected a mapping of names to policies, got {describe(node)}")
            return {}
        out = {}
        for key_node, value_node in node.value:
            name = str(key_node.value)
            name_path = join(path, name)
            self.lines[name_path] = _line(key_node)
            try:
                IDENT.convert(Scalar(name, name))
            except Invalid as error:
                self.report(name_path, str(error))
                continue
            if name == "default" or name in out:
                self.report(name_path, "'default' names the top-level policy: choose another name"
                            if name == "default" else "written twice")
                continue
            out[name] = self.value(value_node, spec.item, name_path, partial=True)
        return out

    def leaf(self, node: Node, spec: Leaf, path: str) -> Any:
        if _is_null(node):
            if spec.nullable:
                return None
            if spec.required:
                self.report(path, f"needs a value: {spec.doc}")
                return BAD
            return self.absent(spec)
        if spec.many == "one" or (spec.many == "one_or_list" and isinstance(node, ScalarNode)):
            if not isinstance(node, ScalarNode):
                self.report(path, f"expected {spec.kind.name}, got {describe(node)}")
                return BAD
            value = self.scalar(node, spec, path)
            return value if spec.many == "one" or value is BAD else [value]
        if not isinstance(node, SequenceNode):
            self.report(path, f"expected a list of {spec.kind.name}, got {describe(node)}")
            return BAD
        values = []
        for index, item in enumerate(node.value):
            item_path = f"{path}[{index}]"
            self.lines[item_path] = _line(item)
            if not isinstance(item, ScalarNode) or _is_null(item):
                self.report(item_path, f"expected {spec.kind.name}, got {describe(item)}")
                values.append(BAD)
            else:
                values.append(self.scalar(item, spec, item_path))
        if spec.required and not node.value:
            self.report(path, f"needs at least one entry: {spec.doc}")
        return values

    def scalar(self, node: ScalarNode, spec: Leaf, path: str) -> Any:
        if node.tag == _STR_TAG:
            value = node.value  # what the constructor gives a string, without its bookkeeping (most values)
        else:
            try:
                value = self._constructor.construct_object(node)
            except (yaml.YAMLError, ValueError, OverflowError):
                value = node.value  # e.g. 2026-13-45 matches YAML's date pattern but is no date
        try:
            return spec.kind.convert(Scalar(value, str(node.value)))
        except Invalid as error:
            self.report(path, str(error), _line(node))
            return BAD
