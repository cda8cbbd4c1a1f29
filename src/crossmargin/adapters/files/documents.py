"""Read a book document (YAML or JSON) strictly: what the file says, or a BookFileError naming
the line.

`yaml.safe_load` and `json.loads` are lenient in ways that change a book silently, so both are
wrapped here:

- **duplicate keys** are refused (both parsers keep the last one: a second `quantity:` flips a
  position, a second `accounts:` replaces every account). YAML 1.2 and RFC 8259 both say keys
  should be unique (https://yaml.org/spec/1.2.2/#mapping, https://www.rfc-editor.org/rfc/rfc8259#section-4);
- **ambiguous YAML 1.1 numbers** are refused: `010` is octal 8 to PyYAML (YAML 1.1) and 10 to
  YAML 1.2 readers such as editors' language servers, `1:30` is sexagesimal 90
  (https://yaml.org/type/int.html). `1e6` is a number in YAML 1.2 and JSON but text to YAML 1.1;
  it is read as the number (what a YAML 1.2 editor validating against `crossmargin schema` sees);
- **nesting deeper than MAX_NESTING_DEPTH** is refused before Python's recursion limit turns it
  into a RecursionError (a book is at most 7 levels deep);
- **aliases that blow a document up** ("billion laughs": nine anchors, each a list of ten aliases
  of the one before, are 10^9 nodes once expanded, and the schema check walks every one) are
  refused: the document expanded through its aliases may be at most ALIAS_EXPANSION_FACTOR times
  the nodes it writes (plus ALIAS_EXPANSION_SLACK), counted in one pass over the distinct nodes.
  A shared tier schedule (`&tiers` used by every instrument) stays far below that;
- **bytes that are not UTF-8** are refused with their line (a leading UTF-8 byte-order mark is
  allowed and skipped, as RFC 8259 section 8.1 permits).
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from crossmargin.errors import BookFileError

# A book nests at most 7 levels (book > instruments > [item] > margin > tiers > [tier] > value);
# 64 leaves room for any sane extension and stays far below Python's recursion limit (1000).
MAX_NESTING_DEPTH = 64

# Aliases may multiply a document's nodes at most this much (+ the slack) once expanded: a tier
# schedule shared by 100 instruments through an alias is a factor of ~2; a billion laughs is 10^7.
ALIAS_EXPANSION_FACTOR = 10
ALIAS_EXPANSION_SLACK = 10_000

# The pure-Python JSON parser's building blocks (public in CPython's json package since 2.6, absent
# from typeshed).
_json_decoder: Any = json.decoder
_json_scanner: Any = json.scanner

_MERGE_TAG = "tag:yaml.org,2002:merge"
# YAML 1.1 integers that YAML 1.2 reads differently: leading-zero octal and base 60.
_AMBIGUOUS_INT = re.compile(r"^[-+]?(0[0-7_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)$")
_AMBIGUOUS_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*$")
# YAML 1.2 core-schema floats that YAML 1.1 leaves as text: an exponent without a dot (1e6, 2E-4).
_YAML12_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9]+[eE][-+]?[0-9]+$")


class _DocumentError(Exception):
    """A problem at a line (1-based) of the document, turned into a BookFileError by the caller."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(problem)
        self.line = line
        self.problem = problem


class StrictYamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader refusing duplicate keys, ambiguous YAML 1.1 numbers and deep nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_NESTING_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _DocumentError(
                    mark.line + 1, f"nested more than {MAX_NESTING_DEPTH} levels deep (a book needs 7)"
                )
            node: Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def get_single_node(self) -> Node | None:
        node: Node | None = super().get_single_node()
        if node is not None:
            _check_expansion(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            first_line: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue  # `<<: *defaults` merges; explicit keys beside it may override
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # SafeConstructor reports the unhashable key itself
                line = key_node.start_mark.line + 1
                if key in first_line:
                    raise _DocumentError(
                        line,
                        f"duplicate key {key!r} (first given on line {first_line[key]}); "
                        "each key may appear once in a mapping",
                    )
                first_line[key] = line
        mapping: dict[Any, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: ScalarNode) -> int:
        _refuse_ambiguous(node, _AMBIGUOUS_INT)
        value: int = super().construct_yaml_int(node)
        return value

    def construct_yaml_float(self, node: ScalarNode) -> float:
        _refuse_ambiguous(node, _AMBIGUOUS_FLOAT)
        value: float = super().construct_yaml_float(node)
        return value


class StrictCYamlLoader(StrictYamlLoader):
    """StrictYamlLoader reading its events from libyaml's C scanner and parser (PyYAML's CParser):
    the composer and every check above stay Python's and see the same events, marks included.
    Scanning and parsing were ~95 % of reading the example book in pure Python (`read_document`
    uses this one when PyYAML is built with libyaml, as its wheels are)."""

    def __init__(self, stream: str) -> None:
        from yaml._yaml import CParser  # only where PyYAML has libyaml (yaml.__with_libyaml__)

        super().__init__(stream)
        self._events = CParser(stream)

    def check_event(self, *choices: Any) -> bool:
        found: bool = self._events.check_event(*choices)
        return found

    def peek_event(self) -> Any:
        return self._events.peek_event()

    def get_event(self) -> Any:
        return self._events.get_event()

    def dispose(self) -> None:
        self._events.dispose()
        super().dispose()


def _check_expansion(root: Node) -> None:
    """Refuse a document whose alias-expanded size exceeds ALIAS_EXPANSION_FACTOR x its distinct
    nodes + ALIAS_EXPANSION_SLACK. Aliases are shared node objects, so the expanded size of each
    distinct node is computed once (children before parents, an explicit stack: no recursion)."""
    expanded: dict[int, int] = {}
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in expanded:
            continue
        children: list[Node] = []
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        if children_done:
            expanded[id(node)] = 1 + sum(expanded[id(child)] for child in children)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in expanded)
    distinct = len(expanded)
    limit = ALIAS_EXPANSION_FACTOR * distinct + ALIAS_EXPANSION_SLACK
    if expanded[id(root)] > limit:
        raise _DocumentError(
            root.start_mark.line + 1,
            f"aliases expand the document to {expanded[id(root)]:,} nodes from {distinct:,} written "
            f"(at most {limit:,}): a YAML alias bomb is refused",
        )


def _refuse_ambiguous(node: ScalarNode, pattern: re.Pattern[str]) -> None:
    text = str(node.value)
    if pattern.match(text):
        raise _DocumentError(
            node.start_mark.line + 1,
            f"ambiguous number {text!r}: YAML 1.1 reads a leading 0 as octal and a ':' as base 60, "
            "YAML 1.2 does not; write it without them (or quote it if it is text)",
        )


StrictYamlLoader.add_constructor("tag:yaml.org,2002:int", StrictYamlLoader.construct_yaml_int)
StrictYamlLoader.add_constructor("tag:yaml.org,2002:float", StrictYamlLoader.construct_yaml_float)
StrictYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", _YAML12_EXPONENT_FLOAT, list("-+0123456789")
)


class _StrictJsonDecoder(json.JSONDecoder):
    """json.JSONDecoder refusing duplicate keys (with their line) and deep nesting.

    Uses the pure-Python scanner, whose object and array parsers can be wrapped; books are small
    documents (large books keep positions in CSV/Parquet), so its speed is not a concern.
    """

    memo: dict[str, str]

    def __init__(self) -> None:
        super().__init__()
        self._depth = 0
        self.parse_object = self._parse_object
        self.parse_array = self._parse_array
        self.scan_once = _json_scanner.py_make_scanner(self)

    def _enter(self, text: str, position: int) -> None:
        self._depth += 1
        if self._depth > MAX_NESTING_DEPTH:
            raise _DocumentError(
                _line_of(text, position), f"nested more than {MAX_NESTING_DEPTH} levels deep (a book needs 7)"
            )

    def _parse_array(self, s_and_end: tuple[str, int], scan_once: Any) -> tuple[list[Any], int]:
        self._enter(*s_and_end)
        try:
            result: tuple[list[Any], int] = _json_decoder.JSONArray(s_and_end, scan_once)
            return result
        finally:
            self._depth -= 1

    def _parse_object(
        self, s_and_end: tuple[str, int], strict: bool, scan_once: Any, *args: Any, **kwargs: Any
    ) -> tuple[dict[str, Any], int]:
        text, start = s_and_end
        self._enter(text, start)
        try:
            pairs, end = _json_decoder.JSONObject(
                s_and_end, strict, scan_once, None, lambda items: items, self.memo
            )
        finally:
            self._depth -= 1
        mapping: dict[str, Any] = {}
        for key, value in pairs:
            if key in mapping:
                first, second = _key_lines(text, start, end, key)
                raise _DocumentError(
                    second,
                    f"duplicate key {key!r} (first given on line {first}); "
                    "each key may appear once in an object",
                )
            mapping[key] = value
        return mapping, end


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _key_lines(text: str, start: int, end: int, key: str) -> tuple[int, int]:
    """Lines of the first two occurrences of `key` as a key of the object text[start:end] (the
    object is known to be valid JSON, so walking its members cannot fail)."""
    decoder = json.JSONDecoder()
    whitespace = _json_decoder.WHITESPACE.match
    lines: list[int] = []
    position = whitespace(text, start).end()
    while position < end and text[position] == '"' and len(lines) < 2:
        name, after = _json_decoder.scanstring(text, position + 1)
        if name == key:
            lines.append(_line_of(text, position))
        position = whitespace(text, after).end() + 1  # past ':'
        _, position = decoder.raw_decode(text, whitespace(text, position).end())
        position = whitespace(text, position).end()
        if position < end and text[position] == ",":
            position = whitespace(text, position + 1).end()
    while len(lines) < 2:
        lines.append(_line_of(text, start))
    return lines[0], lines[1]


def decode_utf8(data: bytes, path: str) -> str:
    """UTF-8 text of a file (a leading byte-order mark skipped), or a BookFileError naming the
    line and column of the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise BookFileError(
            path,
            f"line {line}",
            f"not UTF-8: byte 0x{data[error.start]:02x} at column {column}; save the file as UTF-8",
        ) from None


def _load_yaml(text: str, *, libyaml: bool) -> Any:
    """One YAML document through the strict loader, its events from libyaml or pure Python."""
    loader = StrictCYamlLoader(text) if libyaml else StrictYamlLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_document(path: Path, *, libyaml: bool = yaml.__with_libyaml__) -> Any:
    """The parsed YAML (any suffix but .json) or JSON document of a book file; YAML events from
    libyaml when PyYAML has it (`libyaml`: the tests read every document both ways).

    Raises BookFileError(path, 'file' or 'line N', problem) for an unreadable file, bytes that are
    not UTF-8, malformed syntax, duplicate keys, ambiguous numbers or excessive nesting.
    """
    where = str(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        if path.is_dir() and (path / "synth.json").is_file():  # said what it is and who reads it
            raise BookFileError(
                where,
                "file",
                "a directory written by `crossmargin synth`, read by stress and cascade; this command "
                "reads a book file (YAML or JSON; big books name Parquet tables in positions_file "
                "and balances_file)",
            ) from None
        raise BookFileError(where, "file", f"cannot read: {error.strerror}") from None
    text = decode_utf8(data, where)
    is_json = path.suffix.lower() == ".json"
    try:
        if is_json:
            return _StrictJsonDecoder().decode(text)
        try:
            return _load_yaml(text, libyaml=libyaml)
        except yaml.YAMLError:
            if not libyaml:
                raise
            # Refused either way; the pure-Python parser's message quotes the offending lines.
            return _load_yaml(text, libyaml=False)
    except _DocumentError as error:
        raise BookFileError(where, f"line {error.line}", error.problem) from None
    except json.JSONDecodeError as error:
        raise BookFileError(where, f"line {error.lineno}", f"malformed json: {error.msg}") from None
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        field = "file" if mark is None else f"line {mark.line + 1}"
        raise BookFileError(where, field, f"malformed yaml: {error}") from None
    except yaml.YAMLError as error:
        raise BookFileError(where, "file", f"malformed yaml: {error}") from None
    except (ValueError, RecursionError) as error:
        # Python's own limits (an integer of more than 4300 digits) and, defensively, a nesting
        # the depth checks above did not see.
        kind = "json" if is_json else "yaml"
        raise BookFileError(where, "file", f"malformed {kind}: {error}") from None
