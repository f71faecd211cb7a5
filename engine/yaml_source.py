"""Safe YAML loading that remembers where every key and value came from.

PyYAML's composer gives us nodes with marks; we build plain Python data from them
ourselves instead of using a constructor, which lets us:

- keep the line and column of every key and value (for ``path:line:col`` errors),
- reject duplicate keys and any tag that is not plain data (no ``!!python/...``),
- resolve scalars by YAML 1.2 core rules (``no`` stays a string, ``9:30`` is not base 60),
- bound alias expansion: a "billion laughs" document is refused after a fixed number
  of nodes instead of being expanded.

Scanning and parsing (text to events) is most of the time, so it is done by libyaml when
PyYAML has it; composing nodes stays in Python, where the limits above are enforced as the
nodes are built. libyaml words errors differently, and parts ways with PyYAML on tabs,
unusual line breaks and where a value left out sits; a text with any of those, or one libyaml
rejects, is read again by PyYAML's own parser: messages and positions are PyYAML's always.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.events import Event, ScalarEvent
from yaml.resolver import Resolver

from engine.diagnostics import Diagnostic, Severity
from engine.errors import YamlSourceError

try:
    from yaml._yaml import CParser

    HAVE_LIBYAML = True
except ImportError:  # PyYAML built without libyaml: PyYAML's parser does it all
    HAVE_LIBYAML = False

MAX_FILE_BYTES = 1024 * 1024
MAX_NODES = 50_000
MAX_DEPTH = 64
MAX_INT_CHARS = 100

Path = tuple[str | int, ...]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:timestamp",
}


@dataclass(frozen=True)
class Position:
    """A 1-based line and column."""

    line: int
    column: int


@dataclass
class SourceDocument:
    """Plain data loaded from YAML, with the position of every key and value by path."""

    path: str
    data: Any
    text: str
    keys: dict[Path, Position] = field(default_factory=dict)
    values: dict[Path, Position] = field(default_factory=dict)

    def where(self, loc: Path, *, key: bool = False) -> Position:
        """The position of ``loc``, or of its closest ancestor that has one."""
        table = self.keys if key else self.values
        probe = tuple(loc)
        while probe:
            if probe in table:
                return table[probe]
            if not key and probe in self.keys:
                return self.keys[probe]
            probe = probe[:-1]
        return Position(1, 1)

    def diagnostic(
        self, loc: Path, message: str, *, key: bool = False, severity: Severity = "error"
    ) -> Diagnostic:
        pos = self.where(loc, key=key)
        return Diagnostic(self.path, pos.line, pos.column, message, severity)


class _Builder:
    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.keys: dict[Path, Position] = {}
        self.values: dict[Path, Position] = {}
        self.errors: list[Diagnostic] = []

    def error(self, node: yaml.Node, message: str) -> None:
        mark = node.start_mark
        self.errors.append(Diagnostic(self.path, mark.line + 1, mark.column + 1, message))

    def build(self, node: yaml.Node, loc: Path, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge(
                node,
                f"document expands to more than {MAX_NODES} nodes "
                "(aliases or size); refusing to load it",
            )
        if depth > MAX_DEPTH:
            raise _TooLarge(node, f"nesting is deeper than {MAX_DEPTH} levels")
        self.values[loc] = Position(node.start_mark.line + 1, node.start_mark.column + 1)
        if node.tag not in _PLAIN_TAGS:
            self.error(node, f"tag '{node.tag}' is not allowed; playbooks hold plain data only")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i), depth + 1) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.MappingNode)  # the composer makes no fourth kind of node
        return self.mapping(node, loc, depth)

    def mapping(self, node: yaml.MappingNode, loc: Path, depth: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                self.error(key_node, "merge keys ('<<') are not supported; repeat the keys")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.error(key_node, "keys must be plain strings")
                continue
            key = key_node.value
            child = (*loc, key)
            if key in out:
                first = self.keys[child]
                self.error(key_node, f"duplicate key '{key}' (first defined at line {first.line})")
                continue
            self.keys[child] = Position(
                key_node.start_mark.line + 1, key_node.start_mark.column + 1
            )
            out[key] = self.build(value_node, child, depth + 1)
        return out

    @staticmethod
    def scalar(node: yaml.ScalarNode) -> Any:
        text = node.value
        if node.style or node.tag == "tag:yaml.org,2002:str":
            return text
        if _NULL.match(text):
            return None
        if _BOOL.match(text):
            return text.lower() == "true"
        if _INT.match(text):
            # Python refuses to convert more than 4,300 digits (a ValueError traceback, found
            # by the reliability fuzzer); no playbook number needs more than a few, so a
            # longer one stays text and the schema reports where it is wrong.
            return int(text) if len(text) <= MAX_INT_CHARS else text
        if _FLOAT.match(text) and any(ch.isdigit() for ch in text):
            return float(text)
        return text


class _TooLarge(Exception):
    def __init__(self, node: yaml.Node, message: str) -> None:
        self.node = node
        self.message = message


class _TooDeep(Exception):
    def __init__(self, event: Event) -> None:
        mark = event.start_mark  # both parsers mark every event; the stubs allow None
        self.position = Position(mark.line + 1, mark.column + 1) if mark else Position(1, 1)


class _TooManyNodes(_TooDeep):
    pass


class _LimitedComposer(Composer):
    """Stops composing at MAX_DEPTH, instead of recursing until Python's recursion limit
    (slow for ``[[[[...`` and dependent on the interpreter's stack)."""

    _depth = 0
    _nodes = 0
    # Given by the parser the loader mixes this composer with.
    peek_event: Callable[[], Event]

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        # Stop composing past MAX_NODES too, rather than composing a 1 MB file of tiny keys
        # in full (seconds) before the builder refuses it (reliability fuzzer).
        self._nodes += 1
        try:
            if self._depth > MAX_DEPTH + 1:
                raise _TooDeep(self.peek_event())
            if self._nodes > MAX_NODES:
                raise _TooManyNodes(self.peek_event())
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _DepthLimitedLoader(_LimitedComposer, yaml.SafeLoader):
    """PyYAML's own (pure Python) reader, scanner and parser under the limited composer."""


# libyaml and PyYAML do not agree on tabs, carriage returns and the Unicode line breaks
# (and a byte order mark moves columns): a text holding any of them takes PyYAML's path.
_LIBYAML_DIVERGES = re.compile("[\t\r\x85\u2028\u2029\ufeff]")


class _PositionsDiverge(Exception):
    """libyaml would place a node elsewhere than PyYAML does: read the text with PyYAML."""


if HAVE_LIBYAML:

    class _LibyamlLoader(_LimitedComposer, CParser, Resolver):
        """libyaml's scanner and parser (the events) under the same limited composer."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            _LimitedComposer.__init__(self)
            Resolver.__init__(self)

        def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
            # A value left out (``key:``, ``{a: }``, ``? k`` at the end of the file) is an
            # empty plain scalar whose position the two parsers choose differently: in a flow
            # mapping libyaml puts it at the next token, PyYAML after the ':'; at the end of a
            # file libyaml counts a line break that is not there. Checked before the limits,
            # which report the position of the node they stop at.
            event = self.peek_event()
            if isinstance(event, ScalarEvent) and not event.value and not event.style:
                raise _PositionsDiverge
            return super().compose_node(parent, index)


def _compose(text: str) -> yaml.Node | None:
    """The node tree of ``text``; PyYAML's errors (and positions) when it has any."""
    if HAVE_LIBYAML and not _LIBYAML_DIVERGES.search(text):
        try:
            # What yaml.compose does, which PyYAML's stubs let take only PyYAML's own loaders.
            loader = _LibyamlLoader(text)
            try:
                return loader.get_single_node()
            finally:
                loader.dispose()
        except _TooDeep:
            raise  # the limits were hit while composing: same nodes, same marks
        except (yaml.YAMLError, UnicodeError, RecursionError, _PositionsDiverge):
            pass  # PyYAML, below, says what is wrong in its own words and at its position
    return yaml.compose(text, Loader=_DepthLimitedLoader)


def load_yaml(text: str, path: str) -> SourceDocument:
    """Parse ``text`` as one YAML document; raise `YamlSourceError` on any problem."""
    if len(text.encode("utf-8", errors="replace")) > MAX_FILE_BYTES:
        raise YamlSourceError(
            [
                Diagnostic(
                    path,
                    1,
                    1,
                    f"file is larger than {MAX_FILE_BYTES} bytes; split it into several playbooks",
                )
            ]
        )
    with _cyclic_gc_paused():
        return _load(text, path)


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a document is composed and built.

    Composing 1,000 steps makes some 50,000 objects (nodes, marks, events) that live until
    the data is built and then go by reference counting: they hold no cycles (a recursive
    alias does; it is collected after the pause). With the collector running, they were
    promoted to its oldest generation and set off a full collection of the whole process on
    almost every load, a quarter of the time `playbook validate` took. The collector is
    restarted afterwards only if it was running, so a caller that paused it keeps it paused.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _load(text: str, path: str) -> SourceDocument:
    try:
        root = _compose(text)
    except _TooDeep as exc:
        message = (
            f"document has more than {MAX_NODES} nodes; refusing to load it"
            if isinstance(exc, _TooManyNodes)
            else f"nesting is deeper than {MAX_DEPTH} levels"
        )
        raise YamlSourceError(
            [Diagnostic(path, exc.position.line, exc.position.column, message)]
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlSourceError([Diagnostic(path, line, col, f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as exc:
        raise YamlSourceError([Diagnostic(path, 1, 1, f"invalid YAML: {exc}")]) from None
    except RecursionError:
        raise YamlSourceError(
            [Diagnostic(path, 1, 1, f"nesting is deeper than {MAX_DEPTH} levels")]
        ) from None
    builder = _Builder(path)
    if root is None:
        return SourceDocument(path, None, text)
    try:
        data = builder.build(root, (), 0)
    except _TooLarge as exc:
        builder.error(exc.node, exc.message)
        data = None
    except RecursionError:
        builder.error(root, f"nesting is deeper than {MAX_DEPTH} levels")
        data = None
    if builder.errors:
        raise YamlSourceError(builder.errors)
    return SourceDocument(path, data, text, builder.keys, builder.values)
