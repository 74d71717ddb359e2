"""YAML reading that remembers where every value came from.

PyYAML's C parser does the heavy lifting; construction (Python in PyYAML anyway) is subclassed so that
every mapping and sequence remembers its line and the line of each key or item. That costs little, and it
is what lets a semantic error found much later ("unknown component 'vsever8'") point at the exact line.
Duplicate keys, which PyYAML silently resolves to the last value, are reported instead.
"""

from __future__ import annotations

from typing import Any

import yaml

from vigil.gcpause import gc_paused

__all__ = ["FileLines", "LineDict", "LineList", "YamlSyntaxError", "line_of", "load_yaml"]

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class LineDict(dict[str, Any]):
    """A dict that knows the line of itself and of each of its keys (1-based)."""

    __slots__ = ("key_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}


class LineList(list[Any]):
    """A list that knows the line of itself and of each item (1-based)."""

    __slots__ = ("item_lines", "line")

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []


class YamlSyntaxError(Exception):
    """The text is not YAML; ``line`` is 1-based (0 if unknown)."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class _Loader(_BaseLoader):  # type: ignore[misc]
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str]] = []

    def construct_yaml_map(self, node: yaml.MappingNode) -> Any:
        data = LineDict(node.start_mark.line + 1)
        yield data
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            if key in data:
                self.duplicates.append((key_node.start_mark.line + 1, key))
            data[key] = self.construct_object(value_node, deep=True)
            data.key_lines[key] = key_node.start_mark.line + 1

    def construct_yaml_seq(self, node: yaml.SequenceNode) -> Any:
        data = LineList(node.start_mark.line + 1)
        yield data
        for item in node.value:
            data.append(self.construct_object(item, deep=True))
            data.item_lines.append(item.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _Loader.construct_yaml_seq)
# Timestamps stay strings: a model has no use for YAML's implicit datetime, and strings keep errors readable.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_yaml_str)


def load_yaml(text: str) -> tuple[Any, list[tuple[int, str]]]:
    """Parse one YAML document.

    Returns the data (mappings as LineDict, sequences as LineList) and the duplicate keys found as
    ``(line, key)``. Raises YamlSyntaxError for text that is not a single YAML document.
    """
    loader = _Loader(text)
    try:
        data = loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise YamlSyntaxError(f"not valid YAML: {exc.problem or exc.context}", line) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"not valid YAML: {exc}", 0) from None
    except RecursionError:
        raise YamlSyntaxError("not valid YAML: nested too deeply", 0) from None
    finally:
        loader.dispose()
    return data, loader.duplicates


def line_of(data: Any, path: tuple[str | int, ...]) -> int:
    """Return the line of the deepest node along ``path`` that can be located (0 if none)."""
    line = getattr(data, "line", 0)
    node = data
    for part in path:
        if isinstance(node, LineDict) and isinstance(part, str) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineList) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


class FileLines:
    """The lines of one file's values, worked out by the line-aware parse on first use only.

    The fast parser that loads a model knows no lines; parsing again with PyYAML costs ~15x more, so it runs
    when there is a problem to point at. Components keep this (not the parsed data) to place their monitors
    later, which costs a model without problems nothing but one object per file.
    """

    __slots__ = ("_lined", "_text", "file")

    def __init__(self, file: str, text: str, lined: Any = None) -> None:
        self.file = file
        self._text = text
        self._lined = lined

    @property
    def lined(self) -> Any:
        """The data with line information (LineDict/LineList); None if the text is not YAML to PyYAML."""
        if self._lined is None:
            try:
                # Outside the loader too (monitors_of), the GC would walk the new tree over and over for nothing.
                with gc_paused():
                    self._lined, _ = load_yaml(self._text)
            except YamlSyntaxError:
                self._lined = False
            self._text = ""  # parsed once: the text is not needed any more
        return self._lined or None

    def line(self, path: tuple[str | int, ...]) -> int:
        """Return the 1-based line of the deepest node along ``path`` that can be located (0 if none)."""
        lined = self.lined
        return line_of(lined, path) if lined is not None else 0
