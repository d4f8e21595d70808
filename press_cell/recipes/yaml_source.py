"""Read YAML through its node graph so every value keeps the line it came from.

PyYAML's ``compose`` gives nodes with start marks; the views below read typed values from those
nodes and record a ``Problem`` (file, line, key, what was wrong, what is allowed) instead of
raising at the first fault, so a lab sees every mistake in a file at once.
"""

import difflib
import math
from pathlib import Path

import yaml

from press_cell.recipes.errors import Problem, RecipeError, SourceMark


class ProblemLog:
    """Collect problems while a file is read; raise them together at the end."""

    def __init__(self):
        """Start with no problems."""
        self.problems = []

    def add(self, mark, key: str, message: str) -> None:
        """Record a problem at ``mark`` (a SourceMark or a text label) for ``key``."""
        self.problems.append(Problem(str(mark), key, message))

    def raise_if_any(self, error_class=RecipeError) -> None:
        """Raise ``error_class`` carrying every recorded problem, if there is any."""
        if self.problems:
            raise error_class(self.problems)


def _mark(node, file: str) -> SourceMark:
    """Return the node's place; nodes merged in from another text keep that text's name."""
    name = node.start_mark.name
    return SourceMark(name if name and not name.startswith("<unicode") else file,
                      node.start_mark.line + 1)


def compose_file(path, log: ProblemLog):
    """Parse ``path`` into a YAML node graph; return ``(root MapView or None, file label)``."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        log.add(file, "<file>", f"cannot read the file ({exc.strerror}); a readable YAML file "
                "is required")
        return None, file
    return compose_text(text, file, log)


def compose_text(text: str, file: str, log: ProblemLog):
    """Parse YAML ``text`` labelled ``file`` (used in every mark); same return as compose_file."""
    try:
        # the reader checks the characters while it is built: a control character (ESC, NUL..)
        # raises here, before parsing (found by test_fuzz_goals)
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        log.add(SourceMark(file, line), "<syntax>",
                f"not valid YAML: character #x{exc.character:04x} is not allowed (YAML text is "
                "printable Unicode, tabs and line breaks only)")
        return None, file
    loader.name = file              # marks carry this name, so merged nodes keep their source
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = SourceMark(file, line + 1) if line is not None else file
        log.add(where, "<syntax>", f"not valid YAML: {getattr(exc, 'problem', exc)}")
        return None, file
    finally:
        loader.dispose()
    if root is None:
        log.add(SourceMark(file, 1), "<document>", "the file is empty; a mapping is required")
        return None, file
    if not isinstance(root, yaml.MappingNode):
        log.add(_mark(root, file), "<document>", "the top level must be a mapping of sections")
        return None, file
    return MapView(root, file, "", log), file


class _Unreadable:
    """The value of a scalar whose explicit tag does not fit its text (``!!float abc``)."""


_UNREADABLE = _Unreadable()
# What PyYAML's safe constructor raises for a tag that does not fit its text: ``!!float abc``
# (ValueError), ``!!bool maybe`` (KeyError), ``!!timestamp 2020-02-30`` (ValueError), an unknown
# ``!!python/...`` tag (ConstructorError). Found by test_fuzz_config.
_CONSTRUCT_ERRORS = (yaml.YAMLError, ValueError, KeyError, TypeError, OverflowError)


def _scalar_value(node):
    """Construct the Python value of a scalar node with YAML's safe rules (or ``_UNREADABLE``)."""
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except _CONSTRUCT_ERRORS:
        return _UNREADABLE


def _describe(node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if _scalar_value(node) is _UNREADABLE:
        tag = node.tag.removeprefix("tag:yaml.org,2002:")
        return f"{node.value!r} tagged {tag!r}, which YAML cannot read as that type"
    return repr(node.value)


class MapView:
    """A YAML mapping node read with its marks; typed getters log problems and return None."""

    def __init__(self, node, file: str, path: str, log: ProblemLog, anchor=None):
        """Wrap a MappingNode found at dotted ``path`` in ``file``.

        ``anchor`` is the node of the key that names this mapping; missing keys are reported
        at its line (``pellet:``), which is where a reader looks for them.
        """
        self.node = node
        self.anchor = anchor
        self.file = file
        self.path = path
        self.log = log
        self._items = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if key is None:
                log.add(_mark(key_node, file), self.key_path("<key>"),
                        "mapping keys must be plain names")
                continue
            if key in self._items:
                first = self._items[key][0].start_mark.line + 1
                log.add(_mark(key_node, file), self.key_path(key),
                        f"duplicate key (first given on line {first}); each key once")
                continue
            self._items[key] = (key_node, value_node)

    @property
    def mark(self) -> SourceMark:
        """Return where this mapping starts (the line of the key naming it, if known)."""
        return _mark(self.anchor if self.anchor is not None else self.node, self.file)

    def key_path(self, key: str) -> str:
        """Return the dotted path of ``key`` inside this mapping."""
        return f"{self.path}.{key}" if self.path else key

    def keys(self):
        """Return the keys in file order."""
        return list(self._items)

    def has(self, key: str) -> bool:
        """Return whether ``key`` is present."""
        return key in self._items

    def mark_of(self, key: str) -> SourceMark:
        """Return the line of ``key`` (or of the mapping when the key is absent)."""
        if key in self._items:
            return _mark(self._items[key][0], self.file)
        return self.mark

    def problem(self, key: str, message: str) -> None:
        """Log a problem about ``key`` at its line."""
        self.log.add(self.mark_of(key), self.key_path(key), message)

    def check_keys(self, allowed) -> None:
        """Log every key not in ``allowed``, suggesting the closest allowed name."""
        allowed = list(allowed)
        for key in self._items:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                self.problem(key, f"unknown key{hint}; allowed keys: {', '.join(allowed)}")

    def require_one_of(self, keys) -> str | None:
        """Return the single key of ``keys`` present; log a problem if none or several are."""
        present = [k for k in keys if k in self._items]
        if len(present) == 1:
            return present[0]
        names = ", ".join(keys)
        if not present:
            self.log.add(self.mark, self.path or "<document>", f"one of {names} is required")
        else:
            self.problem(present[1], f"give only one of {names}")
        return None

    def _node(self, key: str, required: bool, what: str):
        if key not in self._items:
            if required:
                self.log.add(self.mark, self.key_path(key), f"missing key; {what} is required")
            return None
        return self._items[key][1]

    def number(self, key: str, what: str, required: bool = True) -> float | None:
        """Return a finite number (int or float), or None after logging why not."""
        node = self._node(key, required, what)
        if node is None:
            return None
        value = None
        if isinstance(node, yaml.ScalarNode):
            value = _scalar_value(node)
            if isinstance(value, str) and node.style is None:
                # YAML 1.1 reads 1e6 (no dot, no exponent sign) as text; YAML 1.2 and labs do not.
                try:
                    value = float(value)
                except ValueError:
                    value = None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem(key, f"expected a number, got {_describe(node)}; {what} is required")
            return None
        if not math.isfinite(value):
            self.problem(key, f"got {node.value}; a finite number is required ({what})")
            return None
        return float(value)

    def integer(self, key: str, what: str, required: bool = True) -> int | None:
        """Return an integer, or None after logging why not."""
        node = self._node(key, required, what)
        if node is None:
            return None
        value = _scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(key, f"expected a whole number, got {_describe(node)}; {what} is required")
            return None
        return value

    def string(self, key: str, what: str, required: bool = True) -> str | None:
        """Return a non-empty text value, or None after logging why not."""
        node = self._node(key, required, what)
        if node is None:
            return None
        value = _scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            self.problem(key, f"expected text, got {_describe(node)}; {what} is required")
            return None
        return value

    def boolean(self, key: str, what: str, default: bool) -> bool:
        """Return true/false (``default`` when absent), logging a problem for anything else."""
        node = self._node(key, False, what)
        if node is None:
            return default
        value = _scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_describe(node)}; {what}")
            return default
        return value

    def mapping(self, key: str, what: str, required: bool = True):
        """Return the MapView of a nested mapping, or None after logging why not."""
        node = self._node(key, required, what)
        if node is None:
            return None
        if not isinstance(node, yaml.MappingNode):
            self.problem(key, f"expected a mapping, got {_describe(node)}; {what} is required")
            return None
        return MapView(node, self.file, self.key_path(key), self.log, self._items[key][0])

    def items(self, key: str, what: str, required: bool = True):
        """Return ``[(name, MapView)]`` for a mapping of named mappings (e.g. dies by name)."""
        section = self.mapping(key, what, required)
        if section is None:
            return []
        out = []
        for name in section.keys():
            view = section.mapping(name, what)
            if view is not None:
                out.append((name, view))
        return out

    def sequence(self, key: str, what: str, required: bool = True):
        """Return a list of ``(index, node)`` for a YAML list, or None after logging why not."""
        node = self._node(key, required, what)
        if node is None:
            return None
        if not isinstance(node, yaml.SequenceNode):
            self.problem(key, f"expected a list, got {_describe(node)}; {what} is required")
            return None
        return list(enumerate(node.value))

    def element_mapping(self, key: str, index: int, node, what: str):
        """Return the MapView of list element ``key[index]``, or None after logging why not."""
        path = f"{self.key_path(key)}[{index}]"
        if not isinstance(node, yaml.MappingNode):
            self.log.add(_mark(node, self.file), path,
                         f"expected a mapping, got {_describe(node)}; {what} is required")
            return None
        return MapView(node, self.file, path, self.log)

    def element_string(self, key: str, index: int, node, what: str) -> str | None:
        """Return list element ``key[index]`` as text, or None after logging why not."""
        value = _scalar_value(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            self.log.add(_mark(node, self.file), f"{self.key_path(key)}[{index}]",
                         f"expected text, got {_describe(node)}; {what} is required")
            return None
        return value


def merge_mapping(base, over, log: ProblemLog, file: str, strict_depth: int = 2,
                  path: str = "", depth: int = 0) -> None:
    """Deep-merge MappingNode ``over`` into MappingNode ``base`` in place.

    Mappings merge key by key, anything else replaces. Keys in the first ``strict_depth``
    levels (sections and recipe names) must already exist in ``base``: a misspelt name is
    logged with the allowed names instead of silently adding a new entry.
    """
    for key_node, value_node in over.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        key_path = f"{path}.{key}" if path else str(key)
        index = next((i for i, (k, _) in enumerate(base.value)
                      if isinstance(k, yaml.ScalarNode) and k.value == key), None)
        if index is None:
            if depth < strict_depth:
                names = [k.value for k, _ in base.value if isinstance(k, yaml.ScalarNode)]
                log.add(_mark(key_node, file), key_path, f"unknown name in overrides; allowed: "
                        f"{', '.join(names) or 'none'}")
            else:
                base.value.append((key_node, value_node))
            continue
        current = base.value[index][1]
        if isinstance(current, yaml.MappingNode) and isinstance(value_node, yaml.MappingNode):
            merge_mapping(current, value_node, log, file, strict_depth, key_path, depth + 1)
        else:
            base.value[index] = (key_node, value_node)
